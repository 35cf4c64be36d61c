"""Fixtures: 4 Papo processes sharing Redis and a fresh PostgreSQL database, nginx in front of them.

The processes reach PostgreSQL through a TcpProxy the tests can cut, and use a Redis database of
their own; test modules here share one cluster, and a test that kills a process starts it again.
"""
import itertools
import os
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.integration.conftest import clients  # noqa: F401 (a fixture the cluster tests use)
from tests.integration.conftest import no_secret_in_server_logs  # noqa: F401 (autouse: the run's logs hold no secret)
from tests.needs import need_program
from tests.servers import DEFAULT_MODE, ServerProcess, free_port, health, register, request
from tests.services import PG_PORT, RedisServer, fresh_database, need_postgres, need_redis
from tools.cluster import FAIL_TIMEOUT, Nginx

from .proxy import TcpProxy

PROCESSES = 4
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
    need_postgres()
    need_program("nginx")
    need_redis()


class Cluster:
    """The processes, nginx in front of them, and the proxy in front of PostgreSQL."""

    def __init__(self, servers, nginx, proxy, redis):
        self.servers = servers
        self.nginx = nginx
        self.proxy = proxy
        self.redis = redis
        self.redis_url = redis.url
        self._restarted: float = -FAIL_TIMEOUT

    @property
    def url(self):
        """nginx's address, once it hashes every route cookie to its own process again.

        nginx leaves a process it could not reach out of the hash for FAIL_TIMEOUT seconds, restarted
        or not: clients that connect meanwhile land on another process whatever their cookie, and a
        test that counts on one cookie, one process would find its clients split.
        """
        time.sleep(max(0.0, self._restarted + FAIL_TIMEOUT - time.monotonic()))
        return self.nginx.url

    def restart(self, server):
        """Start a killed (or running) process again on its port and wait until every process answers."""
        server.restart()
        self._restarted = time.monotonic()
        self.wait_healthy()

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
    """A fresh PostgreSQL database for the session, by name; dropped at the end."""
    need_services()
    with fresh_database("papo_cluster") as url:
        yield url.rsplit("/", 1)[1]


@pytest.fixture(scope="session")
def cluster(database):
    """4 processes in the default mode, a Redis of their own, PostgreSQL through a proxy, nginx in front."""
    need_services()
    redis = RedisServer().start()
    proxy = TcpProxy(("127.0.0.1", PG_PORT))
    db_url = f"postgresql://127.0.0.1:{proxy.port}/{database}"
    env = {"REDIS_URL": redis.url, "NOTIFY_TOKEN": NOTIFY_TOKEN, "LOG_LEVEL": "WARNING"}
    servers = [ServerProcess(DEFAULT_MODE, db_url, env=env) for _ in range(PROCESSES)]
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
