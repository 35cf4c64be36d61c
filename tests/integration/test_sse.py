"""Server-Sent Events on real servers: delivery, exact resumption, refusals, keepalives, endings, cost."""
import itertools
import json
import socket

import pytest
import requests

from tests.servers import DEFAULT_MODE, MODES, post_message, register, request

from .conftest import start_server
from .raw import open_socketio, raise_open_file_limit
from .sse_client import EventStream

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

NOTIFY = "sse-test-notify-token-0123"
KEEPALIVE = "0.3"
ENV = {"NOTIFY_TOKEN": NOTIFY, "SSE_KEEPALIVE": KEEPALIVE}
_names = itertools.count(1)


def start(mode, tmp_path_factory, **env):
    """A started server with the streams' settings (a short keepalive); the caller closes it."""
    return start_server(mode, tmp_path_factory, **{**ENV, **env})


@pytest.fixture(scope="module", params=MODES)
def server(request, tmp_path_factory):
    server = start(request.param, tmp_path_factory)
    yield server
    server.close()


@pytest.fixture
def fresh_server(request, tmp_path_factory):
    server = start(request.param, tmp_path_factory)
    yield server
    server.close()


@pytest.fixture
def streams():
    """Open EventStreams; every one is dropped at the end."""
    opened = []

    def make(*args, **kwargs):
        stream = EventStream(*args, **kwargs)
        opened.append(stream)
        return stream

    yield make
    for stream in opened:
        stream.close()


def user(server, prefix="s"):
    name = f"{prefix}{next(_names)}"
    return name, register(server.url, name)


def room():
    return f"sse-{next(_names)}"


def edit(server, token, room_name, seq, text):
    status, body = request(server.url, "PATCH", f"/api/rooms/{room_name}/messages/{seq}", {"text": text}, token=token)
    assert status == 200, body
    return body["message"]


def test_a_message_posted_over_http_reaches_the_stream(server, streams):
    _, token = user(server)
    lobby = room()
    stream = streams(server.url, token, rooms=[lobby])
    assert stream.status == 200 and stream.headers["Content-Type"].startswith("text/event-stream")
    stream.wait_until(lambda s: s.last_id is not None)  # the stream's place, before any event
    posted = post_message(server.url, token, lobby, "over http")
    stream.wait_until(lambda s: s.of("message"))
    assert stream.of("message") == [posted]
    assert stream.retry == 3000


def test_a_plain_requests_client_reads_each_event_as_it_comes(server):
    """The docs' backend example: requests hands lines over as chunks arrive, never waiting to fill a buffer."""
    _, token = user(server)
    lobby = room()
    with requests.get(f"{server.url}/api/stream?rooms={lobby}", headers={"Authorization": f"Bearer {token}"},
                      stream=True, timeout=(5, 10)) as response:
        assert response.status_code == 200
        lines = (str(line) for line in response.iter_lines(decode_unicode=True))
        assert next(lines).startswith("retry: ")
        posted = post_message(server.url, token, lobby, "for requests")
        data = next(line for line in lines if line.startswith("data:"))
        assert json.loads(data[5:]) == posted


def test_changes_and_notifications_reach_the_stream(server, streams):
    name, token = user(server)
    lobby = room()
    stream = streams(server.url, token, rooms=[lobby], notifications=True)
    stream.wait_until(lambda s: s.last_id is not None)
    posted = post_message(server.url, token, lobby, "first")
    changed = edit(server, token, lobby, posted["seq"], "first, edited")
    status, note = request(server.url, "POST", "/api/notify", {"title": "deploy", "body": "done", "user": name},
                           token=NOTIFY)
    assert status == 202
    status, _ = request(server.url, "POST", "/api/notify", {"title": "to the room", "body": "", "room": lobby},
                        token=NOTIFY)
    assert status == 202
    stream.wait_until(lambda s: len(s.events) == 4)
    assert [e["event"] for e in stream.events] == ["message", "message_updated", "notification", "notification"]
    assert stream.events[1]["data"] == changed
    assert stream.events[2]["data"]["id"] == note["id"]


def test_last_event_id_after_a_drop_gets_exactly_what_was_missed(server, streams):
    _, token = user(server)
    _, writer = user(server, "w")
    a, b = room(), room()
    first = streams(server.url, token, rooms=[a, b])
    first.wait_until(lambda s: s.last_id is not None)
    seen = [post_message(server.url, writer, a, f"seen {n}") for n in range(3)]
    first.wait_until(lambda s: len(s.events) == 3)
    cursor = first.last_id
    first.close()

    missed = [post_message(server.url, writer, r, f"missed {n}") for n in range(3) for r in (a, b)]
    changed = edit(server, writer, a, seen[0]["seq"], "seen 0, edited while away")
    for header in (True, False):  # Last-Event-ID, then last_event_id in the query: the same answer
        again = streams(server.url, token, rooms=[a, b], last_event_id=cursor, query_id=not header)
        again.wait_until(lambda s: len(s.events) == 7)
        assert again.of("message") == sorted(missed, key=lambda m: (m["room"] != a, m["seq"]))
        assert again.of("message_updated") == [changed]
        again.close()
    live = streams(server.url, token, rooms=[a, b], last_event_id=cursor)
    live.wait_until(lambda s: len(s.events) == 7)
    last = post_message(server.url, writer, b, "live")
    live.wait_until(lambda s: s.of("message", b)[-1:] == [last])
    assert live.seqs(a) == [4, 5, 6] and live.seqs(b) == [1, 2, 3, 4]
    assert len({e["id"] for e in live.events}) == 8


@pytest.mark.parametrize("fresh_server", MODES, indirect=True)
def test_last_event_id_after_kill_9_and_a_restart_gets_exactly_what_was_missed(fresh_server, streams):
    server = fresh_server
    name, token = user(server)
    lobby = room()
    stream = streams(server.url, token, rooms=[lobby], notifications=True)
    stream.wait_until(lambda s: s.last_id is not None)
    before = [post_message(server.url, token, lobby, f"before {n}") for n in range(4)]
    stream.wait_until(lambda s: len(s.events) == 4)
    cursor = stream.events[1]["id"]  # as if the connection had dropped after the second one

    assert server.kill() == -9
    stream.wait_until(lambda s: s.ended.is_set())
    server.start()
    after = [post_message(server.url, token, lobby, f"after {n}") for n in range(2)]
    status, note = request(server.url, "POST", "/api/notify", {"title": "back", "body": "", "user": name},
                           token=NOTIFY)
    assert status == 202
    resumed = streams(server.url, token, rooms=[lobby], notifications=True, last_event_id=cursor)
    resumed.wait_until(lambda s: len(s.events) == 5)
    assert resumed.of("message") == before[2:] + after
    assert [n["id"] for n in resumed.of("notification")] == [note["id"]]
    sentinel = post_message(server.url, token, lobby, "sentinel")
    resumed.wait_until(lambda s: s.of("message")[-1:] == [sentinel])
    assert resumed.seqs(lobby) == [3, 4, 5, 6, 7]


def test_a_private_room_is_refused_and_a_bad_token_is_unauthorized(server, streams):
    owner, owner_token = user(server, "o")
    _, token = user(server)
    secret = room()
    status, _ = request(server.url, "POST", "/api/rooms", {"name": secret, "private": True}, token=owner_token)
    assert status in (200, 201)
    refused = streams(server.url, token, rooms=[secret])
    assert refused.status == 403 and refused.error["error"]["code"] == "forbidden"
    assert streams(server.url, owner_token, rooms=[secret]).status == 200
    refused = streams(server.url, "not-a-token", rooms=["lobby"])
    assert refused.status == 401 and refused.error["error"]["code"] == "unauthorized"
    refused = streams(server.url, None, rooms=["lobby"])
    assert refused.status == 401
    refused = streams(server.url, token, rooms=["Not A Room"])
    assert refused.status == 400 and refused.error["error"]["code"] == "invalid_room"
    refused = streams(server.url, token, rooms=["lobby"], last_event_id="lobby.x")
    assert refused.status == 400 and refused.error["error"]["code"] == "invalid_payload"


def test_an_idle_stream_gets_comments(server, streams):
    _, token = user(server)
    stream = streams(server.url, token, rooms=[room()])
    stream.wait_until(lambda s: s.comments >= 3)  # SSE_KEEPALIVE is 0.3 s here
    assert stream.events == [] and not stream.ended.is_set()


def test_the_per_user_connection_cap_counts_streams(tmp_path_factory, streams):
    server = start(DEFAULT_MODE, tmp_path_factory, MAX_CONNECTIONS_PER_USER="2")
    try:
        _, token = user(server)
        held = [streams(server.url, token, rooms=["lobby"]) for _ in range(2)]
        assert all(s.status == 200 for s in held)
        refused = streams(server.url, token, rooms=["lobby"])
        assert refused.status == 429 and refused.error["error"]["code"] == "rate_limited"
        held[0].close()
        again = None
        for _ in range(50):  # the server notices the drop when it reads the end of the connection
            again = streams(server.url, token, rooms=["lobby"])
            if again.status == 200:
                break
        assert again is not None and again.status == 200
    finally:
        server.close()


def test_logging_out_ends_the_stream_with_session_ended(server, streams):
    _, token = user(server)
    stream = streams(server.url, token, rooms=[room()])
    stream.wait_until(lambda s: s.last_id is not None)
    status, _ = request(server.url, "POST", "/api/logout", token=token)
    assert status == 204
    stream.wait_until(lambda s: s.ended.is_set())
    assert [e["event"] for e in stream.events] == ["session_ended"]
    assert stream.events[0]["data"]["code"] == "logged_out"


@pytest.mark.parametrize("fresh_server", MODES, indirect=True)
def test_sigterm_ends_the_stream(fresh_server, streams):
    _, token = user(fresh_server)
    stream = streams(fresh_server.url, token, rooms=[room()])
    stream.wait_until(lambda s: s.last_id is not None)
    assert fresh_server.stop() == 0
    stream.wait_until(lambda s: s.ended.is_set())


def open_stream_raw(server, token, rooms):
    """A stream on a raw socket, read up to the end of its first block; the socket."""
    sock = socket.create_connection((server.host, server.port), timeout=10)
    sock.sendall(f"GET /api/stream?rooms={rooms} HTTP/1.1\r\nHost: {server.host}\r\n"
                 f"Authorization: Bearer {token}\r\n\r\n".encode())
    data = b""
    while b"id: " not in data or not data.endswith((b"\n\n", b"\n\n\r\n")):
        chunk = sock.recv(4096)
        assert chunk, f"the stream closed: {data!r}"
        data += chunk
    assert data.startswith(b"HTTP/1.1 200"), data[:200]
    return sock


def open_idle(kind, server, token):
    """An idle WebSocket (Socket.IO connected) or stream; its socket."""
    return open_socketio(server, token).sock if kind == "websocket" else open_stream_raw(server, token, "lobby")


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["eventlet", "gevent"])
def test_1000_idle_streams_cost_no_more_than_1000_idle_websockets(mode, tmp_path_factory):
    """A bound, not a timing: each kind on a server of its own, RSS growth after 1,000 idle connections."""
    count = 1000
    raise_open_file_limit(count + 300)
    growth = {}
    for kind in ("websocket", "sse"):
        server = start(mode, tmp_path_factory, MAX_CONNECTIONS_PER_USER="5000", SSE_KEEPALIVE="15")
        held = []
        try:
            _, token = user(server)
            for _ in range(20):  # warm up: the first connections build what every later one shares
                held.append(open_idle(kind, server, token))
            before = server.rss()
            for _ in range(count):
                held.append(open_idle(kind, server, token))
            growth[kind] = server.rss() - before
        finally:
            for sock in held:
                sock.close()
            server.close()
    print(f"{mode}: 1,000 idle WebSockets +{growth['websocket'] / 1e6:.1f} MB, "
          f"1,000 idle streams +{growth['sse'] / 1e6:.1f} MB")
    assert growth["sse"] <= 2 * growth["websocket"] + 2_000_000, growth
