#!/usr/bin/env python3
"""Papo's benchmark driver: `make bench` (at most 10 minutes) and `make bench-quick` (at most 2).

    python bench/run.py [--quick] [--budget S] [--no-report] [--save-baseline] [-v]
    python bench/run.py --profile MODE WORKLOAD [--seconds N]

It starts every server itself (Papo per ASYNC_MODE, and the Node reference in bench/reference/),
drives them with the Node load generator (bench/loadgen/, one JSON line per invocation), and
writes every invocation's result, with the machine's load around it, to
bench/results/bench-<date>-<mode>.json (and bench/results/latest.json). bench/report.py turns
that file into docs/benchmarks.md and docs/img/bench_*.png; it runs at the end unless
--no-report. The first full run's results, without the CDF points, are kept as
bench/baseline.json (or again with --save-baseline), for the report's "before and after".

Everything binds 127.0.0.1; every invocation is bounded (--max-seconds, and a kill by PID past
it); every process started is stopped by its PID, also on Ctrl-C and on errors.

--profile MODE WORKLOAD records a py-spy flame graph (SVG, --nonblocking) of a Papo server in
MODE (eventlet, gevent, threading) under WORKLOAD (fanout, latency, persist, idle, capacity,
or a transport way: ws, sio-polling, short-poll, long-poll) into bench/results/.

Standard library only: it runs under the project's venv so that the report can use matplotlib.
"""
import argparse
import atexit
import json
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
RESULTS = BENCH / "results"
BASELINE = BENCH / "baseline.json"
LOADGEN = BENCH / "loadgen" / "loadgen.js"
REFERENCE = BENCH / "reference" / "server.js"
VENV_PY = ROOT / ".venv" / "bin" / "python"
HOST = "127.0.0.1"
SCHEMA = 1

T0 = time.monotonic()
VERBOSE = False


def log(message):
    """One progress line on stderr with the time since the start."""
    print(f"[bench {time.monotonic() - T0:6.1f}s] {message}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------- the plans
# Durations are the measurement windows of the load generator (after its warm-up); sizes and
# repeats are cut down in the quick plan. `budget` is the driver's own limit in seconds: a step
# whose estimate does not fit in what is left is skipped and listed in the report.
FULL = {
    "name": "full",
    "budget": 555,
    "user_pool": 50,  # registered once per run: persist needs 50 distinct senders
    # seconds per phase on a quiet machine (per round for the servers): the budget is shared out so
    "shares": {"transport": 80, "sweep": 50, "reference": [38, 28], "eventlet": [56, 44], "gevent": [56, 44],
               "threading": 30},
    "rounds": 3,
    "servers": ["reference", "eventlet", "gevent"],
    "threading": True,
    "threading_workloads": None,
    "transport": {"sizes": [10, 100, 1000], "rate": 0.5, "duration": 3, "warmup": 0.8,
                  "sweep_clients": 100, "sweep_rates": [3, 10, 30], "sweep_duration": 2},
    "fanout": {"clients": 200, "senders": 5, "inflight": 50, "duration": 3, "warmup": 0.5},
    "latency": {"clients": 100, "rooms": 10, "rate": 20, "duration": 3, "warmup": 1, "drain": 2},
    "persist": {"senders": 50, "duration": 3, "warmup": 0.5},
    "capacity": {"step": 1000, "max-clients": 10000, "samples": 20, "concurrent": 4, "limit-ms": 250,
                 "settle": 0.3},  # steps of 1,000: Papo now holds twice the reference, and each step costs time
    # idle sizes measured in round 1; later rounds repeat only the largest (the goals' 10k)
    "idle_first": [10000, 1000, 5000],  # the goals' size first: a busy machine cuts the others
    "idle_repeat": [10000],
    "threading_idle": [1000],
    "threading_capacity_max": 1500,
}
QUICK = {
    "name": "quick",
    "budget": 112,
    "user_pool": 20,
    "shares": {"transport": 26, "sweep": 12, "reference": [15], "eventlet": [18], "gevent": [17], "threading": 9},
    "rounds": 1,
    "servers": ["reference", "eventlet", "gevent"],
    "threading": True,
    "threading_workloads": ["fanout", "latency"],
    "transport": {"sizes": [10, 100], "rate": 0.5, "duration": 1.5, "warmup": 0.5,
                  "sweep_clients": 100, "sweep_rates": [5], "sweep_duration": 1.5},
    "fanout": {"clients": 200, "senders": 5, "inflight": 50, "duration": 1.5, "warmup": 0.5},
    "latency": {"clients": 100, "rooms": 10, "rate": 20, "duration": 1.5, "warmup": 0.5, "drain": 1.5},
    "persist": {"senders": 20, "duration": 1.5, "warmup": 0.5},
    "capacity": {"step": 500, "max-clients": 1000, "samples": 12, "concurrent": 4, "limit-ms": 250,
                 "settle": 0.3},
    "idle_first": [1000],
    "idle_repeat": [],
    "threading_idle": [],
    "threading_capacity_max": 0,
}
WAYS = [  # (name in the report, loadgen --way, extra arguments)
    ("ws", "ws", []),
    ("sio-polling", "sio-polling", []),
    ("short-poll 1s", "short-poll", ["--interval", "1000"]),
    ("short-poll 250ms", "short-poll", ["--interval", "250"]),
    ("long-poll", "long-poll", ["--poll-timeout", "25"]),
]
SECRET_KEY = "papo-bench-secret-key-not-for-production"


# ------------------------------------------------------------------------------ the machine
def loadavg():
    with open("/proc/loadavg") as handle:
        return [float(x) for x in handle.read().split()[:3]]


def cpu_busy_seconds():
    """Every core's busy time so far (all processes), from /proc/stat."""
    with open("/proc/stat") as handle:
        fields = [int(x) for x in handle.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def proc_cpu_seconds(pid):
    try:
        with open(f"/proc/{pid}/stat") as handle:
            stat = handle.read()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_rss_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as handle:
            match = re.search(r"VmRSS:\s+(\d+)", handle.read())
    except OSError:
        return None
    return int(match.group(1)) if match else None


def machine_info():
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem_kb = None
    try:
        with open("/proc/meminfo") as handle:
            mem_kb = int(re.search(r"MemTotal:\s+(\d+)", handle.read()).group(1))
    except (OSError, AttributeError):
        pass
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return {"cpu_model": model, "cores": os.cpu_count(), "mem_total_kb": mem_kb,
            "kernel": os.uname().release, "os": _os_name(), "open_files_limit": soft,
            "open_files_hard_limit": hard}


def _os_name():
    try:
        with open("/etc/os-release") as handle:
            return re.search(r'PRETTY_NAME="?([^"\n]+)', handle.read()).group(1)
    except (OSError, AttributeError):
        return "unknown"


def versions():
    """The versions the figures depend on: Python side from the venv, Node side from node_modules."""
    found = {}
    code = ("import importlib.metadata as m, json, sys\n"
            "names = ['Flask', 'Flask-SocketIO', 'python-socketio', 'python-engineio', 'eventlet', 'gevent',"
            " 'simple-websocket', 'SQLAlchemy', 'matplotlib', 'py-spy']\n"
            "out = {'Python': sys.version.split()[0]}\n"
            "for n in names:\n"
            "    try: out[n] = m.version(n)\n"
            "    except m.PackageNotFoundError: out[n] = None\n"
            "print(json.dumps(out))")
    try:
        found.update(json.loads(subprocess.run([str(python())], input=code, capture_output=True, text=True,
                                               timeout=30, check=True).stdout))
    except (OSError, subprocess.SubprocessError, ValueError) as error:
        found["Python"] = f"unknown ({error})"
    try:
        found["Node"] = subprocess.run(["node", "--version"], capture_output=True, text=True,
                                       timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        found["Node"] = None
    for name, package in (("socket.io", BENCH / "reference/node_modules/socket.io/package.json"),
                          ("ws (load generator)", BENCH / "loadgen/node_modules/ws/package.json")):
        try:
            found[name] = json.loads(package.read_text())["version"]
        except (OSError, ValueError, KeyError):
            found[name] = None
    return found


def python():
    return VENV_PY if VENV_PY.exists() else Path(sys.executable)


def git_commit():
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "chat", "app.py"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return out + (" (chat/ modified)" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def raise_open_files():
    """Soft open-files limit up to the hard one; children (servers, generator) inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


# ------------------------------------------------------------------------------ processes
class Children:
    """Every process the driver starts, stopped by PID: at the end of its step, or at exit."""

    def __init__(self):
        self.procs = {}

    def start(self, argv, **kwargs):
        # a session of its own: a Ctrl-C in the terminal reaches the driver, which stops them
        proc = subprocess.Popen([str(a) for a in argv], start_new_session=True, **kwargs)
        self.procs[proc.pid] = proc
        return proc

    def stop(self, proc, grace=5.0):
        if proc.poll() is None:
            try:
                os.kill(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                try:
                    os.kill(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(10)
        self.procs.pop(proc.pid, None)

    def stop_all(self):
        for proc in list(self.procs.values()):
            try:
                self.stop(proc, grace=3.0)
            except Exception as error:  # keep stopping the others
                print(f"bench: could not stop {proc.pid}: {error}", file=sys.stderr)


CHILDREN = Children()
atexit.register(CHILDREN.stop_all)


def _on_signal(signum, _frame):
    raise SystemExit(128 + signum)


class ServerError(RuntimeError):
    pass


class Server:
    """One server process: Papo in an ASYNC_MODE, or the Node reference."""

    def __init__(self, kind, workdir, label=""):
        self.kind = kind  # "reference", "eventlet", "gevent", "threading"
        self.workdir = workdir
        self.label = label
        self.proc = None
        self.port = None
        self.log_path = None
        self.start_s = None

    @property
    def papo(self):
        return self.kind != "reference"

    @property
    def url(self):
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self):
        return self.proc.pid

    def start(self):
        t = time.monotonic()
        self.port = free_port()
        self.log_path = self.workdir / f"server-{self.kind}-{self.port}.log"
        out = open(self.log_path, "wb")
        try:
            if self.papo:
                self.proc = CHILDREN.start([python(), "app.py", "--host", HOST, "--port", self.port], cwd=ROOT,
                                           env=papo_env(self.kind, self.workdir), stdin=subprocess.DEVNULL,
                                           stdout=out, stderr=subprocess.STDOUT)
            else:
                self.proc = CHILDREN.start(["node", REFERENCE, "--host", HOST, "--port", self.port], cwd=ROOT,
                                           stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        finally:
            out.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerError(f"{self.kind} exited with {self.proc.returncode}: {self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=2) as answer:
                    if answer.status == 200:
                        self.start_s = round(time.monotonic() - t, 2)
                        return self
            except OSError:
                pass
            time.sleep(0.05)
        self.stop()
        raise ServerError(f"{self.kind} did not answer /healthz within 60 s: {self.log_tail()}")

    def stop(self, grace=5.0):
        if self.proc is not None:
            CHILDREN.stop(self.proc, grace)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines=6):
        try:
            return " | ".join(self.log_path.read_text(errors="replace").strip().splitlines()[-lines:])
        except OSError:
            return ""


def papo_settings(workdir):
    """Papo's settings for the benchmark: the abuse limits lifted, so that they are not what it measures."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    max_conn = 10 ** 6 if hard == resource.RLIM_INFINITY else max(1000, hard - 300)
    return {
        "SECRET_KEY": SECRET_KEY,  # fixed: tokens stay valid across the run's server restarts
        "DATABASE_URL": f"sqlite:///{workdir / 'papo.db'}",
        "LOG_LEVEL": "WARNING",
        "RATE_BURST": "1000000000",
        "RATE_PER_SECOND": "1000000000",
        "EVENT_BURST": "1000000000",
        "EVENT_PER_SECOND": "1000000000",
        "MAX_CONNECTIONS_PER_USER": "10000000",
        "MAX_CONNECTIONS": str(max_conn),
        "MAX_ROOMS_PER_CONNECTION": "1000",
        "LOGIN_BURST": "1000000000",
        "LOGIN_PER_SECOND": "1000000000",
    }


def known_settings():
    """Names of the settings chat/config.py knows today (the hardening work adds and renames some)."""
    try:
        text = (ROOT / "chat" / "config.py").read_text()
    except OSError:
        return None
    return set(re.findall(r"^\s{4}([A-Z][A-Z0-9_]+):\s", text, re.M))


def papo_env(mode, workdir):
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "NOTIFY_TOKEN", "ADMIN_USERS",
                                                            "FLASK_RUN_FROM_CLI", "PYTHONSTARTUP")}
    known = known_settings()
    for name, value in papo_settings(workdir).items():
        if known is None or name in known or name in ("SECRET_KEY", "DATABASE_URL"):
            env[name] = value
    env["ASYNC_MODE"] = mode
    env["PYTHONUNBUFFERED"] = "1"
    return env


def settings_check():
    """The lifted limits chat/config.py does not know (renamed?): the report says so."""
    known = known_settings()
    if known is None:
        return ["chat/config.py not readable: settings passed blind"]
    missing = [name for name in papo_settings(Path("/tmp")) if name not in known and name not in (
        "SECRET_KEY", "DATABASE_URL")]
    return [f"chat/config.py has no setting {name}: not passed" for name in missing]


# ------------------------------------------------------------------------------ load generator
class TokenCache:
    """The generator's --token-cache, one file per server kind, re-keyed to each new port.

    The generator keys tokens by origin (port included); Papo's tokens stay valid across the
    run's servers (same SECRET_KEY, same database), so each restart reuses the pool instead of
    hashing 50 passwords again.
    """

    def __init__(self, path):
        self.path = path

    def prepare(self, origin, prefix="bench_u"):
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return
        key = f"{origin}|{prefix}"
        if key in data or not data:
            return
        best = max(data.values(), key=lambda entry: len(entry.get("users", {})))
        data[key] = best
        self.path.write_text(json.dumps(data))


class Runner:
    """Runs one loadgen invocation at a time and records it with the machine's state around it."""

    def __init__(self, record_path, workdir, meta):
        self.record_path = record_path
        self.workdir = workdir
        self.meta = meta
        self.runs = []
        self.skipped = []
        self.notes = []
        self.phases = {}
        self.caches = {"papo": TokenCache(workdir / "tokens-papo.json"),
                       "reference": TokenCache(workdir / "tokens-reference.json")}
        self.connect_rate = {}  # server kind -> connections/s seen, for the time estimates
        self.users = meta.get("user_pool")
        self.save()

    def loadgen(self, server, workload, args, *, section, round_no=None, label="", max_seconds=120,
                extra=None):
        cache = self.caches["papo" if server.papo else "reference"]
        cache.prepare(server.url)
        argv = ["node", LOADGEN, workload, "--url", server.url, "--server-pid", server.pid,
                "--token-cache", cache.path, "--max-seconds", int(max_seconds), "--label", label] + list(args)
        if self.users and "--users" not in args:
            argv += ["--users", self.users]  # the one pool registered at the start, shared by every workload
        name = f"{server.kind}{' r' + str(round_no) if round_no else ''} {label or workload}"
        if not server.alive():
            raise ServerError(f"{server.kind} is not running: {server.log_tail()}")
        la0 = loadavg()
        busy0 = cpu_busy_seconds()
        srv0 = proc_cpu_seconds(server.pid)
        ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = datetime.now(timezone.utc).isoformat(timespec="seconds")
        t = time.monotonic()
        err_path = self.workdir / f"loadgen-{len(self.runs) + 1:03d}.err"
        with open(err_path, "wb") as err:
            proc = CHILDREN.start(argv, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err)
            out = b""
            try:
                out, _ = proc.communicate(timeout=max_seconds + 20)
            except subprocess.TimeoutExpired:
                pass
            finally:
                CHILDREN.stop(proc)  # past its time, or on Ctrl-C: by its PID; else only forgotten
        wall = time.monotonic() - t
        ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        srv1 = proc_cpu_seconds(server.pid)
        busy1 = cpu_busy_seconds()
        la1 = loadavg()
        gen_cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
        srv_cpu = srv1 - srv0 if srv0 is not None and srv1 is not None else None
        result = None
        for line in reversed(out.decode(errors="replace").strip().splitlines()):
            try:
                result = json.loads(line)
                break
            except ValueError:
                continue
        error = None
        if result is None:
            error = f"no result (exit {proc.returncode}): {tail(err_path)}"
        elif not result.get("ok"):
            error = result.get("error") or "not ok"
        others = None
        if srv_cpu is not None and wall > 0:
            others = round(max(0.0, (busy1 - busy0) - srv_cpu - gen_cpu) / wall, 2)
        run = {
            "id": len(self.runs) + 1, "section": section, "server": server.kind, "round": round_no,
            "workload": workload, "label": label or workload, "args": [str(a) for a in args],
            "started": started, "wall_s": round(wall, 2), "loadavg_start": la0[0], "loadavg_end": la1[0],
            "others_cpu_cores": others, "server_cpu_s": round(srv_cpu, 2) if srv_cpu is not None else None,
            "generator_cpu_s": round(gen_cpu, 2), "server_start_s": server.start_s,
            "server_rss_kb_end": proc_rss_kb(server.pid), "error": error, "result": result,
        }
        if extra:
            run.update(extra)
        self.runs.append(run)
        if result and result.get("connect_per_s") and result.get("connected", 0) >= 500:
            self.connect_rate[server.kind] = result["connect_per_s"]
        self.save()
        log(f"{name}: {headline(run)} ({wall:.1f}s, load {la0[0]:.2f}->{la1[0]:.2f})")
        if VERBOSE:
            sys.stderr.write(tail(err_path, 12, sep="\n") + "\n")
        return run

    def skip(self, what, why):
        self.skipped.append({"what": what, "why": why})
        log(f"skipped {what}: {why}")
        self.save()

    def save(self, final=False):
        data = dict(self.meta)
        data.update({"runs": self.runs, "skipped": self.skipped, "notes": self.notes, "phases": self.phases,
                     "complete": final})
        if final:
            data["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
            data["elapsed_s"] = round(time.monotonic() - T0, 1)
            data["machine"]["loadavg_end"] = loadavg()
        tmp = self.record_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1))
        tmp.replace(self.record_path)
        return data


def tail(path, lines=4, sep=" | "):
    try:
        return sep.join(Path(path).read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return ""


def headline(run):
    """The one figure that tells how an invocation went, for the progress line."""
    r = run.get("result") or {}
    if run.get("error"):
        return f"FAILED: {str(run['error'])[:200]}"
    gen = (r.get("generator") or {}).get("cpu_pct")
    g = f", generator {gen}%" if gen is not None else ""
    w = r.get("workload")
    if w == "fanout":
        return f"{r.get('deliveries_per_s', 0):,.0f} deliveries/s{g}"
    if w in ("latency", "transport"):
        lat = r.get("latency_ms") or {}
        kept = "" if w == "latency" else (", kept up" if kept_up(r) else ", fell behind")
        return f"p50 {lat.get('p50')} ms p99 {lat.get('p99')} ms, delivered {r.get('delivered_ratio')}{kept}{g}"
    if w == "persist":
        return f"{r.get('acked_per_s', 0):,.0f} acked/s{g}"
    if run.get("section") == "setup":
        return f"{r.get('connected')} users registered, with their tokens and a connection each"
    if w == "idle":
        rss = r.get("server_rss_kb") or {}
        return (f"{r.get('connected')}/{r.get('clients')} connected at {r.get('connect_per_s')}/s, "
                f"{rss.get('per_connection_kb')} KB/conn, broadcast to all {r.get('reach_all_ms_median')} ms{g}")
    if w == "capacity":
        return f"capacity {r.get('capacity_clients')} clients ({r.get('stop_reason')}){g}"
    return "ok"


# ------------------------------------------------------------------------------ the steps
class Budget:
    """The run's time: a total, shared out between phases in proportion to their planned shares.

    Entering a phase gives it (time left) x (its share / the shares of the phases still to come):
    a phase that ran fast leaves more to the others, one that ran slow (a busy machine) takes
    from each of them, so that every server still gets measured. A step runs only if its estimate
    fits both in its phase and in the total less the reserve kept for the report.
    """

    RESERVE = 6

    def __init__(self, seconds, shares=()):
        self.seconds = seconds
        self.shares = dict(shares)
        self.phase_end = None

    def left(self):
        return self.seconds - (time.monotonic() - T0)

    def fits(self, estimate):
        if self.left() < estimate + self.RESERVE:
            return False
        # within a phase, a step may run over a little: the phases after it share the difference
        return self.phase_end is None or self.phase_end - time.monotonic() >= 0.7 * estimate

    def enter(self, name):
        share = self.shares.pop(name, 0)
        rest = share + sum(self.shares.values())
        self.phase_end = time.monotonic() + max(0.0, self.left() - self.RESERVE) * (share / rest if rest else 1)

    def leave(self):
        self.phase_end = None


def shares(plan):
    """The phases in order with their planned seconds (what they took on a quiet machine)."""
    sh = plan["shares"]
    out = [("transport", sh["transport"]), ("sweep", sh["sweep"])]
    for round_no in range(1, plan["rounds"] + 1):
        for kind in plan["servers"]:
            per = sh[kind]
            out.append((f"{kind} {round_no}", per[min(round_no, len(per)) - 1]))
    if plan["threading"]:
        out.append(("threading", sh["threading"]))
    return out


def est_idle(runner, kind, clients):
    default = 3000 if kind == "reference" else 450
    rate = runner.connect_rate.get(kind, default)
    return 3 + clients / rate + 4


def drain(way_args):
    """Seconds to wait after the window for its last messages: past the keep-up rule's p99 limit
    (1 s; short polling two intervals + 1 s) a late message no longer changes the verdict."""
    if "--interval" in way_args:
        return round(2 * int(way_args[way_args.index("--interval") + 1]) / 1000 + 1, 2)
    return 1.5


def kept_up(result):
    """The report's keep-up rule (the generator's, with a short window's quantisation allowed for)."""
    sys.path.insert(0, str(BENCH))
    import report
    return report.kept_up(result)


def arg_list(options):
    out = []
    for key, value in options.items():
        out += [f"--{key}", value]
    return out


class Bench:
    def __init__(self, plan, runner, budget):
        self.plan = plan
        self.runner = runner
        self.budget = budget

    def phase(self, name, t):
        self.runner.phases[name] = round(self.runner.phases.get(name, 0) + time.monotonic() - t, 1)

    def server(self, kind, label=""):
        server = Server(kind, self.runner.workdir, label)
        log(f"starting {kind}")
        server.start()
        log(f"{kind} ready on {server.url} in {server.start_s}s (pid {server.pid})")
        return server

    # the user pool, once per run ------------------------------------------------------------
    def register(self, server):
        t = time.monotonic()
        pool = self.plan["user_pool"]
        run = self.runner.loadgen(server, "idle", ["--clients", pool, "--users", pool, "--broadcasts", 0,
                                                    "--hold", 0], section="setup", label="register user pool",
                                  max_seconds=180)
        self.runner.phases["register_users_s"] = round(time.monotonic() - t, 1)
        if run.get("error"):
            raise ServerError(f"registering the user pool failed: {run['error']}")

    # (a) ----------------------------------------------------------------------------------------
    def transport(self, server):
        tp = self.plan["transport"]
        t = time.monotonic()
        for clients in tp["sizes"]:
            for name, way, extra in WAYS:
                est = tp["duration"] + tp["warmup"] + 1 + clients / 300 + (drain(extra) if clients >= 1000 else 0)
                if not self.budget.fits(est):
                    self.runner.skip(f"transport {name} at {clients} clients", "time budget")
                    continue
                self.runner.loadgen(server, "transport", ["--way", way, "--clients", clients, "--rate", tp["rate"],
                                                          "--duration", tp["duration"], "--warmup", tp["warmup"],
                                                          "--drain", drain(extra)] + extra,
                                    section="transport", label=f"{name} x{clients}", max_seconds=90,
                                    extra={"way": name, "clients": clients, "rate": tp["rate"]})
        self.phase("transport_sizes_s", t)

    def sweep(self, server):
        """Raise the per-client rate step by step, every way at a step before the next step, so that a
        short budget cuts the highest rates rather than the last ways; a way leaves at its first failure."""
        tp = self.plan["transport"]
        t = time.monotonic()
        clients = tp["sweep_clients"]
        alive = []
        for name, way, extra in WAYS:
            base = [r for r in self.runner.runs if r["section"] == "transport" and r.get("way") == name
                    and r.get("clients") == clients]
            if not base or kept_up(base[-1].get("result")):
                alive.append((name, way, extra))  # fell behind at the base rate already: nothing to raise
        for rate in tp["sweep_rates"]:
            for name, way, extra in list(alive):
                est = 2 + tp["sweep_duration"] + tp["warmup"]
                if not self.budget.fits(est):
                    self.runner.skip(f"rate sweep {name} at {rate}/s per client", "time budget")
                    continue
                run = self.runner.loadgen(server, "transport", [
                    "--way", way, "--clients", clients, "--rate", rate, "--duration", tp["sweep_duration"],
                    "--warmup", tp["warmup"], "--drain", drain(extra)] + extra, section="sweep",
                    label=f"{name} x{clients} @{rate}/s", max_seconds=60,
                    extra={"way": name, "clients": clients, "rate": rate})
                if not kept_up(run.get("result")):
                    alive.remove((name, way, extra))
        self.phase("transport_sweep_s", t)

    # (b), (c) -------------------------------------------------------------------------------------
    def workloads(self, server, round_no, *, capacity_max=None, only=None):
        p = self.plan
        steps = [
            ("fanout", arg_list(p["fanout"]), p["fanout"]["duration"] + p["fanout"]["warmup"] + 3),
            ("latency", arg_list(p["latency"]), p["latency"]["duration"] + p["latency"]["warmup"] + 3),
        ]
        cap = dict(p["capacity"])
        if capacity_max is not None:
            cap["max-clients"] = capacity_max
        cap_seconds = 60 if p["name"] == "full" else 25
        if cap["max-clients"] > 0:
            steps.append(("capacity", arg_list(cap), 9 if p["name"] == "full" else 4))
        steps.append(("persist", arg_list(p["persist"]), p["persist"]["duration"] + p["persist"]["warmup"] + 2))
        for workload, args, est in steps:
            if only is not None and workload not in only:
                continue
            if not self.budget.fits(est):
                self.runner.skip(f"{server.kind} round {round_no} {workload}", "time budget")
                continue
            max_seconds = cap_seconds if workload == "capacity" else 60
            self.runner.loadgen(server, workload, args, section="server", round_no=round_no, max_seconds=max_seconds)

    def idle(self, kind, sizes, round_no):
        for clients in sizes:
            est = est_idle(self.runner, kind, clients)
            if not self.budget.fits(est):
                self.runner.skip(f"{kind} round {round_no} idle {clients}", "time budget")
                continue
            server = self.server(kind)  # a fresh server per size: its memory before is the bare process's
            try:
                self.runner.loadgen(server, "idle", ["--clients", clients, "--broadcasts", 3, "--hold", 1],
                                    section="server", round_no=round_no, label=f"idle {clients}",
                                    max_seconds=max(60, int(est * 3)), extra={"clients": clients})
            finally:
                server.stop(grace=1.5)  # 10k connections make a graceful exit slow; nothing is being written

    def idle_sizes(self, kind, round_no):
        sizes = self.plan["idle_first"] if round_no == 1 else self.plan["idle_repeat"]
        # one descriptor per WebSocket: a size past the open-files limit would measure the limit
        limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        fits = [n for n in sizes if n + 200 <= limit]
        for n in sizes:
            if n not in fits and round_no == 1:
                self.runner.notes.append(f"{kind} idle at {n}: not run, {n} descriptors pass the open-files "
                                         f"limit of {limit}")
        return fits

    def rounds(self):
        p = self.plan
        for round_no in range(1, p["rounds"] + 1):
            for kind in p["servers"]:
                t = time.monotonic()
                self.budget.enter(f"{kind} {round_no}")
                try:
                    if not self.budget.fits(10):
                        self.runner.skip(f"{kind} round {round_no}", "time budget")
                        continue
                    try:
                        server = self.server(kind)
                    except ServerError as error:
                        self.runner.skip(f"{kind} round {round_no}", str(error))
                        continue
                    try:
                        self.workloads(server, round_no)
                        server.stop()
                        self.idle(kind, self.idle_sizes(kind, round_no), round_no)
                    except ServerError as error:
                        self.runner.skip(f"the rest of {kind} round {round_no}", str(error))
                    finally:
                        server.stop()
                finally:
                    self.budget.leave()
                    self.phase(f"{kind}_s", t)

    def threading_once(self):
        p = self.plan
        t = time.monotonic()
        if not self.budget.fits(10):
            self.runner.skip("threading (development server)", "time budget")
            return
        try:
            server = self.server("threading")
        except ServerError as error:
            self.runner.skip("threading (development server)", str(error))
            return
        try:
            self.workloads(server, 1, capacity_max=p["threading_capacity_max"], only=p.get("threading_workloads"))
            server.stop()
            self.idle("threading", p["threading_idle"], 1)
        except ServerError as error:
            self.runner.skip("the rest of threading", str(error))
        finally:
            server.stop()
        self.phase("threading_s", t)


# ------------------------------------------------------------------------------ main
def npm_check():
    missing = [d for d in ("loadgen", "reference") if not (BENCH / d / "node_modules").is_dir()]
    if missing:
        raise SystemExit("bench: run `npm ci --prefix bench/loadgen && npm ci --prefix bench/reference` first "
                         f"(missing node_modules in {', '.join(missing)}; `make bench` does it)")


def run_bench(args):
    plan = dict(QUICK if args.quick else FULL)
    if args.budget:
        plan["budget"] = args.budget
    npm_check()
    limits = raise_open_files()
    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    record = Path(args.out) if args.out else RESULTS / f"bench-{stamp}-{plan['name']}.json"
    workdir = Path(tempfile.mkdtemp(prefix="papo-bench-"))
    atexit.register(shutil.rmtree, workdir, True)
    machine = machine_info()
    machine["loadavg_start"] = loadavg()
    meta = {
        "schema": SCHEMA, "mode": plan["name"], "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "started_local": datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "machine": machine, "versions": versions(), "commit": git_commit(), "plan": plan,
        "papo_settings": {k: v for k, v in papo_settings(Path("<tmp>")).items() if k != "SECRET_KEY"},
        "ways": [w[0] for w in WAYS], "user_pool": plan["user_pool"],
    }
    log(f"{plan['name']} run, budget {plan['budget']} s; results into {record.relative_to(ROOT)}; "
        f"open files {limits[0]}; load average {machine['loadavg_start']}")
    runner = Runner(record, workdir, meta)
    runner.notes.extend(settings_check())
    budget = Budget(plan["budget"], shares(plan))
    bench = Bench(plan, runner, budget)
    failed = None
    try:
        t = time.monotonic()
        server = bench.server("eventlet")
        try:
            bench.register(server)
            budget.enter("transport")
            bench.transport(server)
            budget.enter("sweep")
            bench.sweep(server)
        finally:
            budget.leave()
            server.stop()
        bench.rounds()
        if plan["threading"]:
            budget.enter("threading")
            bench.threading_once()
            budget.leave()
        runner.phases["total_measuring_s"] = round(time.monotonic() - t, 1)
    except ServerError as error:
        failed = str(error)
        runner.notes.append(f"stopped early: {error}")
        log(f"stopped early: {error}")
    finally:
        CHILDREN.stop_all()
        data = runner.save(final=True)
        shutil.copyfile(record, RESULTS / "latest.json")
    log(f"measuring done in {data['elapsed_s']} s; {len(data['runs'])} invocations, "
        f"{sum(1 for r in data['runs'] if r['error'])} failed, {len(data['skipped'])} skipped")
    if plan["name"] == "full" and not failed and (args.save_baseline or not BASELINE.exists()):
        write_baseline(data)
    if not args.no_report:
        sys.path.insert(0, str(BENCH))
        import report
        report.write(data, baseline=load_baseline())
        log(f"wrote docs/benchmarks.md and docs/img/bench_*.png in {time.monotonic() - T0:.1f}s overall")
    bad = [r for r in data["runs"] if r["error"]]
    if failed or (bad and len(bad) > len(data["runs"]) // 4):
        log("too many failed invocations: see the report's errors")
        return 1
    return 0


def compact(data):
    """The results without the bulk (CDF points, per-broadcast details): small enough to commit."""
    def strip(value):
        if isinstance(value, dict):
            return {k: strip(v) for k, v in value.items() if k not in ("cdf", "broadcasts", "latency_arrivals_ms")}
        if isinstance(value, list):
            return [strip(v) for v in value]
        return value
    return strip(data)


def write_baseline(data):
    small = compact(data)
    runs = small.pop("runs")
    head = json.dumps(small, separators=(",", ":"))
    body = ",\n".join(json.dumps(r, separators=(",", ":")) for r in runs)  # one invocation a line: readable diffs
    BASELINE.write_text(head[:-1] + ',"runs":[\n' + body + "\n]}\n")
    log(f"kept these results as {BASELINE.relative_to(ROOT)} ({BASELINE.stat().st_size // 1024} KB)")


def load_baseline():
    try:
        return json.loads(BASELINE.read_text())
    except (OSError, ValueError):
        return None


# ------------------------------------------------------------------------------ --profile
PROFILE_WORKLOADS = {
    "fanout": ("fanout", ["--duration", "{d}", "--warmup", "1"]),
    "latency": ("latency", ["--duration", "{d}", "--warmup", "1"]),
    "persist": ("persist", ["--duration", "{d}", "--warmup", "1"]),
    "idle": ("idle", ["--clients", "5000", "--hold", "1", "--broadcasts", "5"]),
    "capacity": ("capacity", ["--step", "500", "--max-clients", "5000", "--samples", "40"]),
}
for _name, _way, _extra in WAYS:
    PROFILE_WORKLOADS.setdefault(_way, ("transport", ["--way", _way, "--clients", "100", "--rate", "2",
                                                      "--duration", "{d}", "--warmup", "1"] + _extra))


def run_profile(args):
    mode, workload = args.profile
    if mode not in ("eventlet", "gevent", "threading"):
        raise SystemExit("bench: --profile MODE is one of eventlet, gevent, threading")
    if workload not in PROFILE_WORKLOADS:
        raise SystemExit(f"bench: --profile WORKLOAD is one of {', '.join(PROFILE_WORKLOADS)}")
    npm_check()
    raise_open_files()
    spy = shutil.which("py-spy", path=str(ROOT / ".venv" / "bin")) or shutil.which("py-spy")
    if not spy:
        raise SystemExit("bench: py-spy is not installed (make setup-dev installs requirements-dev.txt)")
    RESULTS.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="papo-profile-"))
    atexit.register(shutil.rmtree, workdir, True)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    svg = RESULTS / f"profile-{mode}-{workload}-{stamp}.svg"
    meta = {"schema": SCHEMA, "mode": "profile", "machine": machine_info(), "versions": {}, "plan": {},
            "user_pool": FULL["user_pool"]}
    runner = Runner(RESULTS / f"profile-{mode}-{workload}-{stamp}.json", workdir, meta)
    name, extra = PROFILE_WORKLOADS[workload]
    extra = [a.replace("{d}", str(args.seconds)) for a in extra]
    bench = Bench(FULL, runner, Budget(10 ** 6))
    server = bench.server(mode)
    spy_proc = None
    try:
        bench.register(server)
        # py-spy samples the whole run of the workload: connect, warm-up and window
        duration = int(args.seconds + 15 if name != "idle" else 60)
        spy_proc = CHILDREN.start([spy, "record", "--pid", server.pid, "--nonblocking", "--rate", "200",
                                   "--format", "flamegraph", "--output", svg, "--duration", duration],
                                  stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=open(workdir / "py-spy.err", "wb"))
        time.sleep(1.0)
        if spy_proc.poll() is not None:
            raise SystemExit(f"bench: py-spy stopped at once: {tail(workdir / 'py-spy.err')}")
        run = runner.loadgen(server, name, extra, section="profile", label=f"profile {workload}", max_seconds=120)
    finally:
        if spy_proc is not None and spy_proc.poll() is None:
            os.kill(spy_proc.pid, signal.SIGINT)  # py-spy writes what it has on SIGINT
            try:
                spy_proc.wait(30)
            except subprocess.TimeoutExpired:
                CHILDREN.stop(spy_proc)
            CHILDREN.procs.pop(spy_proc.pid, None)
        server.stop()
        runner.save(final=True)
    if svg.exists():
        log(f"flame graph: {svg.relative_to(ROOT)}; result: {headline(run)}")
        return 0
    log(f"py-spy wrote nothing: {tail(workdir / 'py-spy.err')}")
    return 1


def main(argv=None):
    global VERBOSE
    parser = argparse.ArgumentParser(prog="bench/run.py", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer sizes and repeats, at most 2 minutes")
    parser.add_argument("--budget", type=float, help="seconds for the measurements (default: full 555, quick 112)")
    parser.add_argument("--out", help="results file (default bench/results/bench-<date>-<mode>.json)")
    parser.add_argument("--no-report", action="store_true", help="measure only; bench/report.py writes it later")
    parser.add_argument("--save-baseline", action="store_true", help="keep this full run as bench/baseline.json")
    parser.add_argument("--profile", nargs=2, metavar=("MODE", "WORKLOAD"),
                        help="py-spy flame graph of Papo in MODE under WORKLOAD, into bench/results/")
    parser.add_argument("--seconds", type=float, default=10, help="--profile: the workload's window (default 10)")
    parser.add_argument("-v", "--verbose", action="store_true", help="show the generator's own progress lines")
    args = parser.parse_args(argv)
    VERBOSE = args.verbose
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)
    try:
        return run_profile(args) if args.profile else run_bench(args)
    except KeyboardInterrupt:
        log("interrupted: stopping every process started")
        return 130
    finally:
        CHILDREN.stop_all()


if __name__ == "__main__":
    sys.exit(main())
