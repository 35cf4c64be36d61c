"""The services suites share beside Papo: a fresh PostgreSQL database, a Redis server of their own."""
import contextlib
import os
import subprocess
import time
import uuid
from collections.abc import Iterator

from tests.needs import listening, need, need_program
from tests.servers import free_port

PG_PORT = 5432
PG_ADMIN = f"postgresql://127.0.0.1:{PG_PORT}/postgres"


def need_postgres():
    need(listening(PG_PORT), f"PostgreSQL is not listening on 127.0.0.1:{PG_PORT}")


def need_redis():
    need_program("redis-server")
    need_program("redis-cli")


@contextlib.contextmanager
def fresh_database(prefix: str) -> Iterator[str]:
    """Create a PostgreSQL database of its own; yield its URL; drop it, connections and all."""
    need_postgres()
    import psycopg

    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    try:
        yield f"postgresql://127.0.0.1:{PG_PORT}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


class RedisServer:
    """A Redis server of the suite's own on a free loopback port, so a restart disturbs nothing else."""

    def __init__(self):
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = None

    def up(self):
        ping = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(self.port), "ping"],
                              capture_output=True, text=True)
        return ping.stdout.strip() == "PONG"

    def start(self, timeout=10.0):
        """Start it (again, on the same port) and wait for PONG."""
        if self.process is None or self.process.poll() is not None:
            self.process = subprocess.Popen(
                ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while not self.up():
            if time.monotonic() > deadline:
                raise RuntimeError(f"Redis did not start on port {self.port}")
            time.sleep(0.05)
        return self

    def stop(self):
        """Stop it by PID, as a crash or a restart would."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
