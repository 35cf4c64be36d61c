"""Sessions end on every process: two servers sharing Redis and PostgreSQL, the ending asked of the other one."""
import itertools
import os
import time

import pytest

from tests.services import RedisServer, fresh_database, need_redis
from tests.servers import DEFAULT_MODE, PASSWORD, ServerProcess, login, register, request

from .test_sessions import NOTIFY, MonitorClient, assert_no_secret_logged, ended, refused_everywhere, still_served

WATCHER = f"watcher{os.getpid()}"
_names = itertools.count(1)


@pytest.fixture(scope="module")
def database():
    need_redis()
    with fresh_database("papo_sessions") as url:
        yield url


@pytest.fixture(scope="module")
def secrets():
    return [PASSWORD, NOTIFY]


@pytest.fixture(scope="module")
def pair(database, secrets):
    """Two processes in the default mode on one Redis of their own and one PostgreSQL database."""
    redis = RedisServer().start()
    env = {"REDIS_URL": redis.url, "NOTIFY_TOKEN": NOTIFY, "ADMIN_USERS": WATCHER}
    servers = [ServerProcess(DEFAULT_MODE, database, env=env) for _ in range(2)]
    try:
        for server in servers:
            server.start()
        yield servers
        for server in servers:
            assert_no_secret_logged(server, secrets)
    finally:
        for server in servers:
            server.close()
        redis.stop()


def person(pair, secrets):
    name = f"p{next(_names)}x{os.getpid()}"
    token = register(pair[0].url, name)
    secrets.append(token)
    return name, token


def refused_soon(url, token, timeout=3.0):
    """Within a second (a process trusts what it read of a session that long), the token is refused."""
    deadline = time.monotonic() + timeout
    while not refused_everywhere(url, token):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def test_a_logout_on_one_process_ends_the_connection_on_the_other(pair, secrets, open_client):
    first, second = pair
    ana, token = person(pair, secrets)
    other_session = login(first.url, ana)
    secrets.append(other_session)
    _, bo_token = person(pair, secrets)
    there = open_client(first.url, token)
    kept = open_client(first.url, other_session, ("polling",))
    bystander = open_client(first.url, bo_token)
    assert request(second.url, "POST", "/api/logout", token=token)[0] == 204
    assert ended(there, "logged_out")
    assert still_served(kept) and still_served(bystander)
    assert refused_soon(first.url, token)


def test_log_out_everywhere_reaches_every_process(pair, secrets, open_client):
    first, second = pair
    ana, token = person(pair, secrets)
    here, there = open_client(second.url, token), open_client(first.url, token, ("polling",))
    status, body = request(second.url, "POST", "/api/sessions/revoke", token=token)
    assert status == 200 and body == {"revoked": 1}
    assert ended(here, "revoked") and ended(there, "revoked")
    assert refused_soon(first.url, token)


def test_an_admin_disconnect_counts_and_ends_connections_on_every_process(pair, secrets, open_client):
    first, second = pair
    abuser, token = person(pair, secrets)
    _, bo_token = person(pair, secrets)
    connections = [open_client(first.url, token), open_client(second.url, token), open_client(first.url, token)]
    bystander = open_client(first.url, bo_token)
    status, body = request(second.url, "POST", f"/api/users/{abuser}/disconnect", {"revoke": True}, token=NOTIFY)
    assert status == 200 and body == {"disconnected": 3}
    assert all(ended(client, "disconnected_by_admin") for client in connections)
    assert still_served(bystander)
    assert refused_soon(first.url, token)


def test_a_revocation_on_one_process_ends_a_monitor_connection_on_the_other(pair, secrets, open_client):
    first, second = pair
    token = register(second.url, WATCHER)
    secrets.append(token)
    dashboard = MonitorClient(first.url, token)
    try:
        chat = open_client(first.url, token)
        assert dashboard.watching()
        status, body = request(second.url, "POST", "/api/sessions/revoke", token=token)
        assert status == 200 and body == {"revoked": 1}
        assert dashboard.ended("revoked") and ended(chat, "revoked")
        assert refused_soon(first.url, token)
    finally:
        dashboard.close()
