"""Real Papo server processes on loopback ports, for the integration, browser, cluster and chaos tests.

    with ServerProcess(DEFAULT_MODE, f"sqlite:///{tmp_path}/papo.db") as server:
        token = register(server.url, "ana", "correct-horse")

Every process is started in its own session and ended by its PID; close() (or leaving the `with`)
always kills it and removes its log, and an atexit hook catches any a crashed test run left behind.
"""
import atexit
import contextlib
import ctypes
import fcntl
import http.client
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import typing

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODES = ("eventlet", "gevent", "threading")
DEFAULT_MODE = "gevent"  # the mode users run: chat.config.DEFAULT_ASYNC_MODE (test_lifecycle.py holds them equal)
TEST_SECRET = "integration-test-secret-key"
PASSWORD = "correct-horse"
START_TIMEOUT = 15.0
STOP_TIMEOUT = 5.0
SYS_PIDFD_GETFD = 438  # the same number on every Linux architecture (5.6 and later)

_WITH_NOFILE = ("import os, resource, sys; hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]; "
                "resource.setrlimit(resource.RLIMIT_NOFILE, (int(sys.argv[1]), hard)); "
                "os.execv(sys.argv[2], sys.argv[2:])")
# Every password, token and key the helpers here used in this run: none may appear in a server's log.
# ServerProcess.close() reads its log for them before removing it, and notes what it found in LEAKS;
# the suites' `no_secret_in_server_logs` fixture fails the run on any (tests/integration/conftest.py).
SECRETS: set[str] = {TEST_SECRET, PASSWORD}
LEAKS: list[str] = []
_running: "set[ServerProcess]" = set()  # {ServerProcess} started and not yet closed, for the atexit safety net


class ServerError(RuntimeError):
    """A server that would not start, or died; the message ends with its log tail."""


# Test servers take ports below the kernel's ephemeral range (32768 and up here), so that no bind to
# port 0 and no outgoing connection lands on one, and each port is reserved by a lock file while a test
# process uses it: a server killed and restarted on its port cannot find another test's server there
# (the chaos test once did: its clients went on talking to another run's server).
PORTS = range(20000, 32000)
_PORT_LOCKS = os.path.join(tempfile.gettempdir(), "papo-test-ports")
_reserved: dict[int, typing.IO[str]] = {}  # {port: its open lock file}


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on and no other test process holds; release_port() frees it."""
    os.makedirs(_PORT_LOCKS, exist_ok=True)
    while True:
        port = random.randrange(PORTS.start, PORTS.stop)
        if port in _reserved:
            continue
        lock = open(os.path.join(_PORT_LOCKS, f"{port}.lock"), "w")  # noqa: SIM115 (held until release_port)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                sock.bind(("127.0.0.1", port))
        except OSError:
            lock.close()
            continue
        _reserved[port] = lock
        return port


def release_port(port):
    """Let other test processes take a port free_port() gave this one."""
    lock = _reserved.pop(port, None)
    if lock is not None:
        lock.close()


class ServerProcess:
    """One Papo server: `python app.py` in ASYNC_MODE eventlet or gevent, or `flask run` for threading.

    env adds or overrides environment variables (a value of None removes one); nofile sets the
    process's soft limit of open files, as a fresh machine's shell would (often 1024). The rate limits
    default to generous test values so that throughput tests are not refused; pass RATE_BURST and
    RATE_PER_SECOND in env to test the limiter itself. Passwords are hashed with a cheap method so
    that suites registering many users stay fast; the unit suites keep the default scrypt.
    """

    def __init__(self, mode, db_url, env=None, port=None, nofile=None):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.mode = mode
        self.db_url = db_url
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self.extra_env = dict(env or {})
        self.nofile = nofile
        self.process = None
        self._dir = tempfile.mkdtemp(prefix=f"papo-{mode}-")
        self.log_path = os.path.join(self._dir, "server.log")
        self._log = None

    def __repr__(self):
        return f"<ServerProcess {self.mode} {self.url} pid={self.pid}>"

    @property
    def url(self):
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self):
        return self.process.pid if self.process else None

    def command(self):
        if self.mode == "threading":
            command = [sys.executable, "-m", "flask", "--app", "app", "run", "--no-reload", "--no-debugger",
                       "--host", self.host, "--port", str(self.port)]
        else:
            command = [sys.executable, "app.py", "--host", self.host, "--port", str(self.port)]
        if self.nofile:
            command = [sys.executable, "-c", _WITH_NOFILE, str(self.nofile)] + command
        return command

    def environment(self):
        env = dict(os.environ)
        for name in ("REDIS_URL", "FLASK_DEBUG", "FLASK_APP", "FLASK_RUN_PORT", "FLASK_RUN_HOST"):
            env.pop(name, None)
        env.update(ASYNC_MODE=self.mode, DATABASE_URL=self.db_url, SECRET_KEY=TEST_SECRET,
                   RATE_BURST="100000", RATE_PER_SECOND="100000", PYTHONUNBUFFERED="1",
                   PASSWORD_HASH="pbkdf2:sha256:1000",
                   PYTHONDONTWRITEBYTECODE="1")
        for name, value in self.extra_env.items():
            if value is None:
                env.pop(name, None)
            else:
                env[name] = str(value)
        return env

    # life cycle

    def start(self, timeout=START_TIMEOUT):
        """Start the process and wait until GET /healthz answers 200; ServerError with the log if not."""
        process = self.spawn()
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise ServerError(f"{self.mode} server exited with {process.returncode} while starting"
                                  f"\n{self.log_tail()}")
            if health(self.url, timeout=1.0) == 200 and self._listening():
                return self
            if time.monotonic() > deadline:
                self.kill()
                raise ServerError(f"{self.mode} server not healthy after {timeout:.0f} s\n{self.log_tail()}")
            time.sleep(0.05)

    def spawn(self) -> subprocess.Popen:
        """Start the process without waiting for it."""
        if self.alive():
            raise ServerError(f"{self!r} is already running")
        if self._log is None:
            self._log = open(self.log_path, "ab")  # noqa: SIM115 (open for the process's life; close() shuts it)
        self._log.write(f"--- start {' '.join(self.command())}\n".encode())
        self._log.flush()
        self.process = subprocess.Popen(self.command(), cwd=ROOT, env=self.environment(), stdin=subprocess.DEVNULL,
                                        stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        _running.add(self)
        return self.process

    def alive(self):
        return self.process is not None and self.process.poll() is None

    def _listening(self):
        """Whether this process (not some other one on the same port) holds the listening socket."""
        import psutil

        assert self.process is not None
        with contextlib.suppress(psutil.Error):
            return any(conn.status == psutil.CONN_LISTEN and conn.laddr.port == self.port
                       for conn in psutil.Process(self.process.pid).net_connections(kind="tcp"))
        return False

    def kill(self):
        """SIGKILL by PID, as a crash would; the exit status (None if it was not running)."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            _signal(self.process.pid, signal.SIGKILL)
        return self.process.wait()

    def stop(self, timeout=STOP_TIMEOUT):
        """SIGTERM, wait up to timeout, then SIGKILL; the exit status (negative: the signal that ended it)."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            _signal(self.process.pid, signal.SIGTERM)
            try:
                return self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        return self.kill()

    def restart(self, timeout=START_TIMEOUT):
        """Kill the process if it still runs and start it again on the same port and database."""
        self.kill()
        return self.start(timeout)

    def close(self):
        """Kill the process, read its log for any secret of the run (LEAKS), and remove it."""
        try:
            self.kill()
        finally:
            LEAKS.extend(self.leaks())
            if self._log:
                self._log.close()
                self._log = None
            shutil.rmtree(self._dir, ignore_errors=True)
            _running.discard(self)
            release_port(self.port)

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc):
        self.close()

    # looking at it

    def log_tail(self, lines=40):
        try:
            with open(self.log_path, "rb") as handle:
                text = handle.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def leaks(self):
        """What of SECRETS (and of this server's own secret settings) its log holds: ["<server>: <prefix>"]."""
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as handle:
                log = handle.read()
        except OSError:
            return []
        return [f"{self!r}: {secret[:6]}..." for secret in SECRETS | self.secrets() if secret in log]

    def secrets(self):
        """The values of this server's settings that are secrets (SECRET_KEY, *_TOKEN, *PASSWORD*)."""
        return {str(value) for name, value in self.extra_env.items() if value is not None and len(str(value)) >= 8
                and (name == "SECRET_KEY" or name.endswith("_TOKEN") or "PASSWORD" in name)}

    def rss(self):
        """The resident memory of the server process, in bytes."""
        with open(f"/proc/{self.pid}/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def socket_option(self, client: socket.socket, level: int, option: int, timeout: float = 5.0) -> int:
        """getsockopt on the server's end of the client's TCP connection, once the server has accepted it.

        Linux only: the server's descriptors are copied into this process with pidfd_getfd(2), which
        a parent may do to its own child.
        """
        libc = ctypes.CDLL(None)
        wanted = client.getsockname()
        deadline = time.monotonic() + timeout
        pidfd = os.pidfd_open(self.pid)
        try:
            while time.monotonic() < deadline:
                for name in os.listdir(f"/proc/{self.pid}/fd"):
                    fd = libc.syscall(SYS_PIDFD_GETFD, pidfd, int(name), 0)
                    if fd < 0:
                        continue
                    try:
                        copy = socket.socket(fileno=fd)
                    except OSError:
                        os.close(fd)
                        continue
                    with copy, contextlib.suppress(OSError):
                        if copy.type == socket.SOCK_STREAM and copy.getpeername() == wanted:
                            return copy.getsockopt(level, option)
                time.sleep(0.05)
        finally:
            os.close(pidfd)
        raise AssertionError(f"{self!r} holds no accepted socket for {wanted} after {timeout} s")


def _signal(pid, sig):
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


@atexit.register
def _kill_leftovers():
    for server in list(_running):
        server.close()


# talking to it over HTTP with nothing but the standard library


def request(url, method, path, body=None, token=None, timeout=10.0):
    """(status, decoded JSON body or None) of one HTTP request."""
    host, port = url.split("//", 1)[1].rsplit(":", 1)
    headers = {"Content-Type": "application/json"}
    if token:
        SECRETS.add(token)
        headers["Authorization"] = f"Bearer {token}"
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.request(method, path, body=None if body is None else json.dumps(body), headers=headers)
        response = conn.getresponse()
        raw = response.read()
    finally:
        conn.close()
    try:
        return response.status, json.loads(raw) if raw else None
    except ValueError:
        return response.status, None


def health(url, timeout=2.0):
    """The status of GET /healthz, or None when nothing answers."""
    try:
        return request(url, "GET", "/healthz", timeout=timeout)[0]
    except (OSError, http.client.HTTPException):
        return None


def register(url, name, password=PASSWORD):
    """Create a user and return a bearer token for it."""
    status, body = request(url, "POST", "/api/users", {"username": name, "password": password})
    if status != 201:
        raise ServerError(f"registering {name}: {status} {body}")
    return login(url, name, password)


def login(url, name, password=PASSWORD):
    """A bearer token for an existing user."""
    status, body = request(url, "POST", "/api/tokens", {"username": name, "password": password})
    if status != 200:
        raise ServerError(f"token for {name}: {status} {body}")
    SECRETS.update((password, body["token"]))
    return body["token"]


def post_message(url, token, room, text, client_id=None):
    """POST a message to a room; the stored Message."""
    status, body = request(url, "POST", f"/api/rooms/{room}/messages", {"text": text, "client_id": client_id},
                           token=token)
    if status not in (200, 201):
        raise ServerError(f"posting to {room}: {status} {body}")
    return body["message"]


def read_messages(url, token, room, after=0, limit=500):
    """Every message of a room after a seq (up to limit), oldest first."""
    status, body = request(url, "GET", f"/api/rooms/{room}/messages?after={after}&limit={limit}", token=token)
    if status != 200:
        raise ServerError(f"reading {room}: {status} {body}")
    return body["messages"]


def check_no_secret_logged():
    """Raise AssertionError naming every server log of this run that held a secret (those still running too)."""
    leaks = LEAKS + [leak for server in list(_running) for leak in server.leaks()]
    assert not leaks, f"secrets in server logs: {leaks}"
