"""Stored notifications reach a user's next connect, though the server remembers who has none.

A server that claims its SQLite file answers a connect of a user it knows has no unread
notification without reading (chat/store/unread.py). These check the two ways that knowledge goes
stale: a notification the server itself stores, and one `flask notify --direct` stores from
another process.
"""
import os
import subprocess
import sys

import pytest

from tests.servers import MODES, ROOT, TEST_SECRET, request

from .conftest import start_server

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

NOTIFY = "notifications-test-notify-token"


@pytest.fixture(scope="module", params=MODES)
def server(request, tmp_path_factory):
    server = start_server(request.param, tmp_path_factory, NOTIFY_TOKEN=NOTIFY)
    yield server
    server.close()


def notifications(client):
    return [payload for name, payload in client.events if name == "notification"]


def connected(clients, server, token, room):
    """A connection whose connect has been handled to the end: a join's ack comes after it."""
    client = clients(server.url, token)
    client.join(room)
    return client


def test_a_notification_the_server_stores_reaches_the_next_connect(server, user, room, clients):
    name, token = user()
    first = connected(clients, server, token, room)
    assert notifications(first) == []
    first.close()

    status, _ = request(server.url, "POST", "/api/notify", {"user": name, "title": "Disk 91%"}, token=NOTIFY)
    assert status == 202

    second = connected(clients, server, token, room)
    assert second.wait_until(lambda c: notifications(c))
    assert [note["title"] for note in notifications(second)] == ["Disk 91%"]
    status, _ = request(server.url, "POST", "/api/notifications/read", {"up_to": notifications(second)[0]["id"]},
                        token=token)
    assert status == 200
    third = connected(clients, server, token, room)
    assert notifications(third) == []


def test_a_notification_another_process_stores_reaches_the_next_connect(server, user, room, clients):
    name, token = user()
    for _ in range(2):  # the second connect is answered from what the server remembers
        quiet = connected(clients, server, token, room)
        assert notifications(quiet) == []
        quiet.close()

    env = {**os.environ, "DATABASE_URL": server.db_url, "SECRET_KEY": TEST_SECRET}
    env.pop("REDIS_URL", None)
    done = subprocess.run([sys.executable, "-m", "flask", "--app", "app", "notify", "--direct", "--user", name,
                           "--title", "From cron"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr

    after = connected(clients, server, token, room)
    assert after.wait_until(lambda c: notifications(c))
    assert [note["title"] for note in notifications(after)] == ["From cron"]
