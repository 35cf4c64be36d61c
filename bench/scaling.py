"""Scale-out, the driver's side: the Redis and PostgreSQL the processes share, and the processes.

Papo runs as 1, 2 or 3 processes with REDIS_URL and one PostgreSQL database (several processes on
one SQLite file are refused), and as one process without Redis on the same database; the Node
reference as 1 and 2 processes with its Redis adapter. The benchmark starts its own redis-server
on a free port (nothing else on the machine shares its channels) and creates its own database,
dropping it at the end; everything binds 127.0.0.1 and is stopped by PID.
"""
import shutil
import subprocess
import time
import uuid
from typing import Any

from rig import CHILDREN, HOST, ROOT, SECRET_KEY, Server, ServerError, free_port, log, python

PG: dict[str, Any] = {"host": HOST, "port": 5432, "user": "postgres"}
REDIS_DB = 7  # the database number the benchmark's own redis-server gives its clients; flushed at the end


class Redis:
    """A redis-server of the benchmark's own: in memory only, loopback, a free port."""

    def __init__(self, workdir):
        self.workdir = workdir
        self.proc = None
        self.port = None

    def start(self):
        program = shutil.which("redis-server")
        if not program:
            raise ServerError("redis-server is not installed")
        self.port = free_port()
        with open(self.workdir / "redis.log", "ab") as out:
            self.proc = CHILDREN.start([program, "--bind", HOST, "--port", self.port, "--save", "",
                                        "--appendonly", "no", "--protected-mode", "yes"],
                                       stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.cli("PING") == "PONG":
                return self
            time.sleep(0.1)
        self.stop()
        raise ServerError("redis-server did not answer PING within 10 s")

    def url(self):
        return f"redis://{HOST}:{self.port}/{REDIS_DB}"

    def cli(self, *command):
        try:
            return subprocess.run(["redis-cli", "-h", HOST, "-p", str(self.port), "-n", str(REDIS_DB), *command],
                                  capture_output=True, text=True, timeout=5).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return None

    def flush(self):
        self.cli("FLUSHDB")

    def stop(self):
        if self.proc is not None:
            self.flush()
            CHILDREN.stop(self.proc, grace=3)
            self.proc = None


class Database:
    """A PostgreSQL database of the benchmark's own, created at start and dropped at the end."""

    def __init__(self):
        self.name = f"papo_bench_{uuid.uuid4().hex[:8]}"
        self.created = False

    @property
    def url(self):
        return f"postgresql://{PG['user']}@{PG['host']}:{PG['port']}/{self.name}"

    def psql(self, sql):
        return subprocess.run(["psql", "-h", PG["host"], "-p", str(PG["port"]), "-U", PG["user"], "-d", "postgres",
                               "-v", "ON_ERROR_STOP=1", "-qc", sql], capture_output=True, text=True, timeout=30)

    def create(self):
        if not shutil.which("psql"):
            raise ServerError("psql is not installed: PostgreSQL is needed for several processes")
        done = self.psql(f"CREATE DATABASE {self.name}")
        if done.returncode:
            raise ServerError(f"PostgreSQL at {PG['host']}:{PG['port']}: {done.stderr.strip()[:200]}")
        self.created = True
        migrate(self.url)
        return self

    def drop(self):
        if self.created:
            self.psql(f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)")
            self.created = False


def migrate(database_url):
    """`papo migrate` where the project has it; else the first process's start-up migrates.

    Run as this checkout's chat.cli (cwd first on sys.path), as app.py runs: a venv's `papo` script may be
    another checkout's editable install, whose migrations this checkout's server would not know."""
    if not (ROOT / "chat" / "cli.py").exists():
        return
    code = "import sys; from chat.cli import main; sys.argv[0] = 'papo'; main()"
    done = subprocess.run([str(python()), "-c", code, "migrate"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env={"DATABASE_URL": database_url, "SECRET_KEY": SECRET_KEY,
                                            "PATH": str(ROOT / ".venv" / "bin")})
    if done.returncode:
        log(f"papo migrate: exit {done.returncode}: {done.stderr.strip()[-200:]}")


def papo_processes(workdir, n, database, mode, redis=None):
    """n Papo processes on one database (and Redis when given), started one after the other."""
    env = {"DATABASE_URL": database.url}
    if redis is not None:
        env["REDIS_URL"] = redis.url()
    label = f"{n} process{'es' if n > 1 else ''}" + (", Redis" if redis is not None else ", no Redis")
    return start_all([Server(mode, workdir, label, env=env) for _ in range(n)])


def reference_processes(workdir, n, redis):
    """n reference processes sharing broadcasts through socket.io's Redis adapter."""
    label = f"{n} process{'es' if n > 1 else ''}, Redis adapter"
    return start_all([Server("reference", workdir, label, redis=redis.url()) for _ in range(n)])


def start_all(servers):
    try:
        for server in servers:
            server.start()
    except ServerError:
        stop_all(servers)
        raise
    return servers


def stop_all(servers):
    for server in servers:
        server.stop()
