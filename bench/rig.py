"""The benchmark's rig: the machine's readings, processes started and stopped by PID, and one recorded
generator invocation.

bench/run.py (the suites of `make bench`) and the workload modules beside it (disk.py, storm.py,
scaling.py) share it. Standard library only.
"""
import atexit
import contextlib
import json
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

from figures import MEMORY, kept_up

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
RESULTS = BENCH / "results"
BASELINE = BENCH / "baseline.json"
LOADGEN = BENCH / "loadgen" / "loadgen.js"
REFERENCE = BENCH / "reference" / "server.js"
MEMORY_SERVER = BENCH / "memory_server.py"
VENV_PY = ROOT / ".venv" / "bin" / "python"
HOST = "127.0.0.1"
SCHEMA = 1

T0 = time.monotonic()
VERBOSE = False


def log(message):
    """One progress line on stderr with the time since the start."""
    print(f"[bench {time.monotonic() - T0:6.1f}s] {message}", file=sys.stderr, flush=True)

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
            found = re.search(r"MemTotal:\s+(\d+)", handle.read())
        if found:
            mem_kb = int(found.group(1))
    except OSError:
        pass
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return {"cpu_model": model, "cores": os.cpu_count(), "mem_total_kb": mem_kb,
            "kernel": os.uname().release, "os": _os_name(), "open_files_limit": soft,
            "open_files_hard_limit": hard}


def _os_name():
    try:
        with open("/etc/os-release") as handle:
            found = re.search(r'PRETTY_NAME="?([^"\n]+)', handle.read())
    except OSError:
        return "unknown"
    return found.group(1) if found else "unknown"


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
    for name, package in (("socket.io", BENCH / "reference/node_modules/socket.io/package.json"),):
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
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
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


def on_signal(signum, _frame):
    raise SystemExit(128 + signum)


class ServerError(RuntimeError):
    pass


class Server:
    """One server process: Papo in an ASYNC_MODE, or the Node reference.

    `env` adds settings to Papo's (REDIS_URL, DATABASE_URL); `redis` gives the reference its Redis
    adapter. `start(port)` binds that port (a restart keeps its clients' address), else a free one.
    """

    def __init__(self, kind, workdir, label="", *, env=None, redis=None):
        self.kind = kind  # "reference", "eventlet", "gevent", "threading", or a mode + MEMORY
        self.workdir = workdir
        self.label = label
        self.env = dict(env or {})
        self.redis = redis
        self.proc = None
        self.port = None
        self.log_path = None
        self.start_s = None
        self.start_cpu_s = None

    @property
    def papo(self):
        return self.kind != "reference"

    @property
    def mode(self):
        """Papo's ASYNC_MODE."""
        return self.kind.removesuffix(MEMORY)

    @property
    def cache_key(self):
        """Whose users the generator's tokens are: the reference's, or those of Papo's database."""
        if not self.papo:
            return "reference"
        return "papo-pg" if self.env.get("DATABASE_URL", "").startswith("postgresql") else "papo"

    @property
    def url(self):
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self):
        assert self.proc is not None, "not started"
        return self.proc.pid

    def argv(self):
        if self.papo:
            entry = MEMORY_SERVER if self.kind.endswith(MEMORY) else "app.py"
            return [python(), entry, "--host", HOST, "--port", self.port]
        redis = ["--redis", self.redis] if self.redis else []
        return ["node", REFERENCE, "--host", HOST, "--port", self.port, *redis]

    def start(self, port=None):
        t = time.monotonic()
        self.port = port or free_port()
        self.log_path = self.workdir / f"server-{self.kind}-{self.port}.log"
        env = dict(papo_env(self.mode, self.workdir), **self.env) if self.papo else None
        with open(self.log_path, "ab") as out:
            self.proc = CHILDREN.start(self.argv(), cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                       stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerError(f"{self.kind} exited with {self.proc.returncode}: {self.log_tail()}")
            if healthy(self.url):
                self.start_s = round(time.monotonic() - t, 2)
                self.start_cpu_s = proc_cpu_seconds(self.pid)
                return self
            time.sleep(0.05)
        self.stop()
        raise ServerError(f"{self.kind} did not answer /healthz within 60 s: {self.log_tail()}")

    def stop(self, grace=5.0):
        if self.proc is not None:
            CHILDREN.stop(self.proc, grace)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines=6):
        assert self.log_path is not None, "not started"
        try:
            return " | ".join(self.log_path.read_text(errors="replace").strip().splitlines()[-lines:])
        except OSError:
            return ""


def arg_list(options):
    """{"clients": 100} -> ["--clients", 100]: a plan's options as the generator's arguments."""
    out = []
    for key, value in options.items():
        out += [f"--{key}", value]
    return out


def healthy(url):
    try:
        with urllib.request.urlopen(url + "/healthz", timeout=2) as answer:
            return answer.status == 200
    except OSError:
        return False


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
        self.caches = {key: TokenCache(workdir / f"tokens-{key}.json") for key in ("papo", "papo-pg", "reference")}
        self.connect_rate = {}  # server kind -> connections/s seen, for the time estimates
        self.users = meta.get("user_pool")
        self.save()

    def loadgen(self, server, workload, args, *, section, round_no=None, label="", max_seconds=120,
                extra=None, servers=None, on_ready=None):
        """One generator invocation against `server` (or every one of `servers`, spread by --urls),
        recorded with the machine's state around it. on_ready(run) is called, in this thread, when the
        generator prints its {"event":"ready"} line (the storm's restart); what it returns joins the run."""
        servers = servers or [server]
        cache = self.caches[server.cache_key]
        cache.prepare(server.url)
        pids = ",".join(str(s.pid) for s in servers)
        argv = ["node", LOADGEN, workload, "--url", server.url, "--server-pid", pids, "--token-cache", cache.path,
                "--max-seconds", int(max_seconds), "--label", label] + list(args)
        if len(servers) > 1:
            argv += ["--urls", ",".join(s.url for s in servers)]
        if self.users and "--users" not in args:
            argv += ["--users", self.users]  # the one pool registered at the start, shared by every workload
        name = f"{server.kind}{' r' + str(round_no) if round_no else ''} {label or workload}"
        for s in servers:
            if not s.alive():
                raise ServerError(f"{s.kind} is not running: {s.log_tail()}")
        before = Readings(servers)
        err_path = self.workdir / f"loadgen-{len(self.runs) + 1:03d}.err"
        out, code, ready = invoke(argv, err_path, max_seconds, on_ready)
        after = Readings(servers)
        result, error = parse_result(out, code, err_path)
        run = {
            "id": len(self.runs) + 1, "section": section, "server": server.kind, "round": round_no,
            "workload": workload, "label": label or workload, "args": [str(a) for a in args],
            "started": before.started, "server_start_s": server.start_s, "servers": len(servers),
            "server_rss_kb_end": proc_rss_kb(server.pid), "error": error, "result": result,
            **before.delta(after),
        }
        run.update(ready or {})
        run.update(extra or {})
        self.runs.append(run)
        if result and result.get("connect_per_s") and result.get("connected", 0) >= 500:
            self.connect_rate[server.kind] = result["connect_per_s"]
        self.save()
        load = f"load {run['loadavg_start']:.2f}->{run['loadavg_end']:.2f}"
        log(f"{name}: {headline(run)} ({run['wall_s']:.1f}s, {load})")
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
            data["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
            data["elapsed_s"] = round(time.monotonic() - T0, 1)
            data["machine"]["loadavg_end"] = loadavg()
        tmp = self.record_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1))
        tmp.replace(self.record_path)
        return data


class Readings:
    """The machine around an invocation: load average, every core's busy time, the servers' CPU."""

    def __init__(self, servers):
        self.pids = [s.pid for s in servers]
        self.started = datetime.now(UTC).isoformat(timespec="seconds")
        self.t = time.monotonic()
        self.load = loadavg()[0]
        self.busy = cpu_busy_seconds()
        self.server_cpu = [proc_cpu_seconds(pid) for pid in self.pids]
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.children = usage.ru_utime + usage.ru_stime

    def delta(self, end):
        """wall_s, load averages, server and generator CPU, and what other processes took (in cores).
        A server restarted meanwhile (another PID) has no CPU figure here."""
        wall = end.t - self.t
        gen = end.children - self.children
        pairs = list(zip(self.server_cpu, end.server_cpu, strict=True)) if self.pids == end.pids else []
        srv = None if not pairs or any(a is None or b is None for a, b in pairs) else sum(b - a for a, b in pairs)
        others = None if srv is None or wall <= 0 else round(max(0.0, (end.busy - self.busy) - srv - gen) / wall, 2)
        return {"wall_s": round(wall, 2), "loadavg_start": self.load, "loadavg_end": end.load,
                "others_cpu_cores": others, "server_cpu_s": None if srv is None else round(srv, 2),
                "generator_cpu_s": round(gen, 2)}


def invoke(argv, err_path, max_seconds, on_ready=None):
    """Run the generator: (stdout, exit code, what on_ready returned). Stopped by PID past its time."""
    with open(err_path, "wb") as err:
        if on_ready is None:
            proc = CHILDREN.start(argv, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err)
            ready = None
        else:
            proc = CHILDREN.start(argv, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE)
            seen = threading.Event()
            threading.Thread(target=copy_until_ready, args=(proc.stderr, err, seen), daemon=True).start()
            ready = on_ready() if wait_ready(proc, seen, max_seconds) else None
        out = b""
        try:
            out, _ = proc.communicate(timeout=max_seconds + 20)
        except subprocess.TimeoutExpired:
            pass
        finally:
            CHILDREN.stop(proc)  # past its time, or on Ctrl-C: by its PID; else only forgotten
    return out, proc.returncode, ready


def copy_until_ready(stream, err, seen):
    """Copy the generator's stderr into its log, and tell when its {"event":"ready"} line came."""
    for line in iter(stream.readline, b""):
        err.write(line)
        err.flush()
        if line.startswith(b'{"event":"ready"'):
            seen.set()


def wait_ready(proc, seen, max_seconds):
    deadline = time.monotonic() + max_seconds
    while not seen.wait(0.1):
        if proc.poll() is not None or time.monotonic() > deadline:
            return False
    return True


def parse_result(out, code, err_path):
    """(the last JSON line of stdout, its error or None)."""
    for line in reversed(out.decode(errors="replace").strip().splitlines()):
        try:
            result = json.loads(line)
        except ValueError:
            continue
        return result, None if result.get("ok") else (result.get("error") or "not ok")
    return None, f"no result (exit {code}): {tail(err_path)}"


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
    if w == "storm":
        text = f"{r.get('connected')} connected in {r.get('connect_s')} s, {r.get('server_cpu_us_per_connect')} µs each"
        if r.get("restarted"):
            text += (f"; all back {r.get('recovered_s')} s after the first drop" if r.get("recovered")
                     else f"; {r.get('back')} back by the deadline")
            text += ", nothing missing" if r.get("nothing_missing") else f", {r.get('missing')} missing"
        return text + g
    if w == "capacity":
        return f"capacity {r.get('capacity_clients')} clients ({r.get('stop_reason')}){g}"
    return "ok"
