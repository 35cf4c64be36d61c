"""Fixtures: 4 Papo processes sharing Redis and a fresh PostgreSQL database, nginx in front of them.

The processes reach PostgreSQL through a TcpProxy the tests can cut, and use a Redis database of
their own; test modules here share one cluster, and a test that kills a process starts it again.
"""
import itertools
import os
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.integration.conftest import clients  # noqa: F401 (a fixture the cluster tests use)
from tests.integration.conftest import no_secret_in_server_logs  # noqa: F401 (autouse: the run's logs hold no secret)
from tests.needs import listening, need, need_program
from tests.servers import ServerProcess, free_port, health, register, request
from tools.cluster import Nginx

from .proxy import TcpProxy

PROCESSES = 4
PG_PORT = 5432
NOTIFY_TOKEN = "cluster-notify-token"
_names = itertools.count(1)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Put the tail of every process's log in a failed test's report: the logs go when the cluster does."""
    outcome = yield
    report = outcome.get_result()
    cluster = getattr(item, "funcargs", {}).get("cluster")
    if report.when == "call" and report.failed and cluster is not None:
        for server in cluster.servers:
            report.sections.append((f"log of the process on port {server.port}", server.log_tail(30)))


def need_services():
    need(listening(PG_PORT), "PostgreSQL is not listening on 127.0.0.1:5432")
    need_program("nginx")
    need_program("redis-server")
    need_program("redis-cli")


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


class Cluster:
    """The processes, nginx in front of them, and the proxy in front of PostgreSQL."""

    def __init__(self, servers, nginx, proxy, redis):
        self.servers = servers
        self.nginx = nginx
        self.proxy = proxy
        self.redis = redis
        self.redis_url = redis.url

    @property
    def url(self):
        return self.nginx.url

    def connections(self):
        """{server: the connections it holds now}."""
        counts = {}
        for server in self.servers:
            status, body = request(server.url, "GET", "/healthz")
            counts[server] = body.get("connections", 0) if status == 200 else 0
        return counts

    def settled_connections(self):
        """connections(), read until two readings agree: clients of earlier tests may still be leaving."""
        previous = None
        for _ in range(50):
            counts = self.connections()
            if counts == previous:
                return counts
            previous = counts
            time.sleep(0.2)
        raise AssertionError(f"connection counts never settled: {counts}")

    def wait_healthy(self, timeout=15.0):
        deadline = time.monotonic() + timeout
        while not all(health(s.url) == 200 for s in self.servers):
            if time.monotonic() > deadline:
                raise AssertionError("cluster not healthy: " + ", ".join(
                    f"{s.url}={health(s.url)}" for s in self.servers))
            time.sleep(0.1)


@pytest.fixture(scope="session")
def database():
    """A fresh PostgreSQL database for the session; dropped at the end."""
    need_services()
    import psycopg

    name = f"papo_cluster_{os.getpid()}"
    admin = f"postgresql://127.0.0.1:{PG_PORT}/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")
    yield name
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(scope="session")
def cluster(database):
    """4 eventlet processes, a Redis of their own, PostgreSQL through a proxy, nginx in front."""
    need_services()
    redis = RedisServer().start()
    proxy = TcpProxy(("127.0.0.1", PG_PORT))
    db_url = f"postgresql://127.0.0.1:{proxy.port}/{database}"
    env = {"REDIS_URL": redis.url, "NOTIFY_TOKEN": NOTIFY_TOKEN, "LOG_LEVEL": "WARNING"}
    servers = [ServerProcess("eventlet", db_url, env=env) for _ in range(PROCESSES)]
    nginx = None
    try:
        servers[0].start()  # the first runs the migrations; the others start side by side
        with ThreadPoolExecutor(PROCESSES) as pool:
            list(pool.map(lambda s: s.start(), servers[1:]))
        nginx = Nginx(f"127.0.0.1:{free_port()}", [f"127.0.0.1:{s.port}" for s in servers]).start()
        yield Cluster(servers, nginx, proxy, redis)
    finally:
        if nginx:
            nginx.close()
        for server in servers:
            server.close()
        proxy.close()
        redis.stop()


@pytest.fixture
def user(cluster):
    """Register a new user (on any process: they share the database); (name, token)."""

    def make(prefix="c"):
        name = f"{prefix}{next(_names)}x{os.getpid()}"
        return name, register(cluster.servers[0].url, name)

    return make


@pytest.fixture
def room():
    return f"cl-{os.getpid()}-{next(_names)}"
