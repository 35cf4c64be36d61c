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

from tests.integration.client import ChatClient
from tests.needs import listening, need, need_program
from tests.servers import ServerProcess, free_port, health, register, request
from tools.cluster import Nginx

from .proxy import TcpProxy

PROCESSES = 4
PG_PORT = 5432
REDIS_START = ["redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "-::1", "--port", "6379", "--save", "",
               "--appendonly", "no", "--dir", "/var/lib/redis", "--logfile", "/var/log/redis/ci.log"]
NOTIFY_TOKEN = "cluster-notify-token"
_names = itertools.count(1)


def need_services():
    need(listening(6379), "Redis is not listening on 127.0.0.1:6379")
    need(listening(PG_PORT), "PostgreSQL is not listening on 127.0.0.1:5432")
    need_program("nginx")
    need_program("redis-cli")


def redis_up():
    return subprocess.run(["redis-cli", "-h", "127.0.0.1", "ping"], capture_output=True, text=True).stdout.strip() == "PONG"


def stop_redis():
    subprocess.run(["redis-cli", "-h", "127.0.0.1", "shutdown", "nosave"], capture_output=True, timeout=10)


def start_redis(timeout=10.0):
    """Start the machine's Redis again with the command it was started with; wait for PONG."""
    if redis_up():
        return
    os.makedirs("/var/lib/redis", exist_ok=True)
    os.makedirs("/var/log/redis", exist_ok=True)
    subprocess.run(REDIS_START, check=True, capture_output=True, timeout=10)
    deadline = time.monotonic() + timeout
    while not redis_up():
        if time.monotonic() > deadline:
            raise RuntimeError("Redis did not come back")
        time.sleep(0.05)


class Cluster:
    """The processes, nginx in front of them, and the proxy in front of PostgreSQL."""

    def __init__(self, servers, nginx, proxy, redis_url):
        self.servers = servers
        self.nginx = nginx
        self.proxy = proxy
        self.redis_url = redis_url

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
    """4 eventlet processes, REDIS_URL on a Redis database of their own, PostgreSQL through a proxy, nginx."""
    need_services()
    start_redis()
    proxy = TcpProxy(("127.0.0.1", PG_PORT))
    redis_url = f"redis://127.0.0.1:6379/{8 + os.getpid() % 8}"
    _clear_redis(redis_url)
    db_url = f"postgresql://127.0.0.1:{proxy.port}/{database}"
    env = {"REDIS_URL": redis_url, "NOTIFY_TOKEN": NOTIFY_TOKEN, "LOG_LEVEL": "WARNING"}
    servers = [ServerProcess("eventlet", db_url, env=env) for _ in range(PROCESSES)]
    nginx = None
    try:
        servers[0].start()  # the first runs the migrations; the others start side by side
        with ThreadPoolExecutor(PROCESSES) as pool:
            list(pool.map(lambda s: s.start(), servers[1:]))
        nginx = Nginx(f"127.0.0.1:{free_port()}", [f"127.0.0.1:{s.port}" for s in servers]).start()
        yield Cluster(servers, nginx, proxy, redis_url)
    finally:
        if nginx:
            nginx.close()
        for server in servers:
            server.close()
        proxy.close()
        start_redis()
        _clear_redis(redis_url)


def _clear_redis(url):
    import redis

    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter("papo:*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


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


@pytest.fixture
def clients():
    """Open ChatClients (url, token, **options); all are disconnected at the end."""
    opened = []

    def make(url, token, **options):
        client = ChatClient(url, token, **options)
        opened.append(client)
        return client.connect()

    yield make
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(_close_quietly, opened))


def _close_quietly(client):
    try:
        client.close()
    except Exception:
        pass
