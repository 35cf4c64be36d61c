"""The reconnect storm, the driver's side: restart a server under its connected clients, and time it.

The generator (`loadgen.js storm --restart`) connects N clients in rooms, keeps a trickle of
messages going and prints {"event":"ready"}; `restart` then stops the server (SIGTERM, its drain
bounded by `drain_limit` seconds and kill -9 past it; or kill -9 at once) and starts it again on
the same port with the same database, while the clients reconnect with the browser client's
backoff and re-join with `since`. The generator reports when the last one was back and whether
any seq was missing; the run keeps the driver's own times beside it (epoch seconds, one clock).
"""
import contextlib
import os
import signal
import subprocess
import time

from rig import CHILDREN, proc_cpu_seconds

SIGNALS = {"sigterm": signal.SIGTERM, "kill9": signal.SIGKILL}


def restart(server, how, drain_limit=30.0):
    """Stop `server` by SIGTERM or SIGKILL (`how`: sigterm, kill9) and start it again on its port."""
    old_pid, port = server.pid, server.port
    old_cpu = proc_cpu_seconds(old_pid)
    t_signal = time.time()
    with contextlib.suppress(ProcessLookupError):
        os.kill(old_pid, SIGNALS[how])
    forced = False
    try:
        server.proc.wait(drain_limit)
    except subprocess.TimeoutExpired:
        forced = True  # the drain did not finish in time
        with contextlib.suppress(ProcessLookupError):
            os.kill(old_pid, signal.SIGKILL)
        server.proc.wait(10)
    t_exit = time.time()
    exit_code = server.proc.returncode
    CHILDREN.procs.pop(old_pid, None)
    quiet_start_cpu = server.start_cpu_s  # its first start's, with no client waiting
    server.start(port=port)
    return {"restart": {
        "how": how, "t_signal_wall_s": round(t_signal, 3), "exit_s": round(t_exit - t_signal, 3),
        "drain_forced": forced, "exit_code": exit_code,
        "down_s": round(time.time() - t_signal, 3), "start_s": server.start_s, "old_pid": old_pid,
        "new_pid": server.pid, "old_server_cpu_s_total": old_cpu, "quiet_start_cpu_s": quiet_start_cpu,
    }}


def recovery_cpu(server, run):
    """The restarted server's CPU from its start to now, less a quiet start's (recovery, replay, the check): per client.

    Papo's port is open from the process's first moment, so its health check answers only after the
    clients queued ahead of it: what it has used by then is recovery, not start-up.
    """
    now_cpu = proc_cpu_seconds(server.pid)
    clients = (run.get("result") or {}).get("clients")
    quiet = (run.get("restart") or {}).get("quiet_start_cpu_s")
    if now_cpu is None or quiet is None or not clients:
        return None
    cpu = now_cpu - quiet
    return {"server_cpu_s_after_start": round(cpu, 2), "server_cpu_us_per_reconnect": round(cpu * 1e6 / clients, 1)}
