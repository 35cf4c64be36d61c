"""Server-Sent Events without a server: the feed's order and cursors, the wire format, the view's refusals."""
import json

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from chat import feed as feeds
from chat import sse
from chat.errors import ChatError


def message(room, seq, rev=0, text="hi"):
    return {"id": str(seq), "room": room, "seq": seq, "user": "ana", "text": text, "ts": 1, "client_id": None,
            "rev": rev, "edited_at": None, "deleted": False, "reactions": {}}


def placed(rooms=("a",), notifications=False, seq=0, rev=0, note=0):
    feed = feeds.Feed("ana", list(rooms), notifications)
    for room in rooms:
        feed.seq[room], feed.rev[room] = seq, rev
    if notifications:
        feed.note, feed.floor = note, note
    return feed


def seqs(events):
    return [data["seq"] for _, data, _ in events]


# the feed

def test_messages_come_out_once_and_in_seq_order():
    feed = placed()
    out = feed.accept("message", message("a", 1)) + feed.accept("message", message("a", 1))
    assert seqs(out) == [1]
    assert feed.accept("message", message("a", 3)) == []  # ahead of 2: it waits
    assert feed.holding()
    out = feed.accept("message", message("a", 2))
    assert seqs(out) == [2, 3] and not feed.holding()
    assert [cursor for _, _, cursor in out] == ["a.2.0", "a.3.0"]


def test_changes_come_out_in_rev_order_and_move_only_the_rev():
    feed = placed(seq=5, rev=2)
    assert feed.accept("message_updated", message("a", 4, rev=4)) == []
    out = feed.accept("message_updated", message("a", 1, rev=3))
    assert [(name, data["rev"]) for name, data, _ in out] == [("message_updated", 3), ("message_updated", 4)]
    assert feed.cursor() == "a.5.4"
    assert feed.accept("message_updated", message("a", 1, rev=3)) == []


def test_events_of_other_rooms_and_other_kinds_are_ignored():
    feed = placed()
    assert feed.accept("message", message("b", 1)) == []
    assert feed.accept("presence", {"room": "a"}) == []
    assert feed.accept("notification", {"id": "n1", "title": "t"}) == []  # notifications not asked for
    assert feed.accept("message", "not an object") == []


def test_stored_notifications_once_live_ones_always():
    feed = placed(rooms=("a",), notifications=True, note=4)
    assert feed.accept("notification", {"id": "n3"}) == []  # before the start
    assert [data["id"] for _, data, _ in feed.accept("notification", {"id": "n6"})] == ["n6"]
    assert [data["id"] for _, data, _ in feed.accept("notification", {"id": "n5"})] == ["n5"]  # late, not lost
    assert feed.accept("notification", {"id": "n6"}) == []
    assert feed.cursor() == "a.0.0,~6"
    room_note = {"id": "b1", "room": "a", "title": "t"}
    assert feed.accept("notification", room_note) == [("notification", room_note, "a.0.0,~6")]
    assert feed.accept("notification", {"id": "b2", "room": "elsewhere"}) == []


def test_resync_delivers_what_was_read_and_every_rev_up_to_the_last():
    feed = placed(seq=1, rev=1)
    feed.accept("message", message("a", 4))  # heard ahead of 2 and 3
    out = feed.resync("a", 9, [message("a", 2), message("a", 3, rev=8)], [message("a", 1, rev=5)])
    assert [(name, data["seq"]) for name, data, _ in out] == [
        ("message", 2), ("message", 3), ("message_updated", 1), ("message", 4)]
    assert feed.cursor() == "a.4.9"
    assert feed.accept("message_updated", message("a", 3, rev=8)) == []  # already in the message read


class FakeStore:
    """The reads start() and catch_up() make, over lists."""

    def __init__(self, messages, notes=()):
        self.messages = messages
        self.notes = list(notes)

    def last_rev(self, room):
        return max((m["rev"] for m in self.messages if m["room"] == room), default=0)

    def last_seq(self, room):
        return max((m["seq"] for m in self.messages if m["room"] == room), default=0)

    def messages_after(self, room, after, limit):
        return [m for m in self.messages if m["room"] == room and m["seq"] > after][:limit]

    def changed_since(self, room, since, revs_since, limit):
        found = [m for m in self.messages if m["room"] == room and m["seq"] <= since and m["rev"] > revs_since]
        return sorted(found, key=lambda m: m["rev"])[:limit]

    def notifications(self, user, after, limit):
        if after is None:
            return self.notes[-limit:]
        return [n for n in self.notes if int(n["id"][1:]) > after][:limit]


def test_start_without_a_cursor_places_the_feed_at_the_present():
    store = FakeStore([message("a", 1), message("a", 2, rev=1)], [{"id": "n7"}])
    feed = feeds.Feed("ana", ["a", "b"], True)
    initial, missed = feeds.start(feed, store, None)
    assert initial == "a.2.1,b.0.0,~7" and missed == []


def test_start_after_a_cursor_replays_exactly_what_came_after_it():
    store = FakeStore([message("a", n, rev=(3 if n == 1 else 0)) for n in range(1, 1203)],
                      [{"id": f"n{n}"} for n in range(1, 600)])
    feed = feeds.Feed("ana", ["a"], True)
    initial, missed = feeds.start(feed, store, "a.2.1,~3")
    assert initial == "a.2.1,~3"
    names = [name for name, _, _ in missed]
    assert seqs([e for e in missed if e[0] == "message"]) == list(range(3, 1203))
    assert names.count("message_updated") == 1 and names.count("notification") == 596
    assert missed[-1][2] == "a.1202.3,~599"


# cursors and query strings

def test_a_cursor_reads_back():
    assert feeds.parse_cursor("a.2.1,b-c.0.0,~7") == ({"a": (2, 1), "b-c": (0, 0)}, 7)
    assert feeds.parse_cursor("~0") == ({}, 0)


@pytest.mark.parametrize("bad", ["", "a", "a.1", "a.1.x", "A.1.1", "a.1.1,a.2.2", "~1,~2", "a.-1.0", "a..1",
                                 "a.1.1,", "~", "a.99999999999999999.0", "a.1.1" + ",b.1.1" * 2000])
def test_a_bad_cursor_is_refused_as_invalid_payload(bad):
    with pytest.raises(ChatError) as refused:
        feeds.parse_cursor(bad)
    assert refused.value.code == "invalid_payload"


@given(st.text(max_size=200))
def test_any_text_is_a_cursor_or_invalid_payload(text):
    try:
        rooms, note = feeds.parse_cursor(text)
    except ChatError as error:
        assert error.code == "invalid_payload"
    else:
        feed = feeds.Feed("ana", list(rooms), note is not None)
        for room, (seq, rev) in rooms.items():
            feed.seq[room], feed.rev[room] = seq, rev
        feed.note = note
        assert feeds.parse_cursor(feed.cursor()) == (rooms, note)


@given(st.text(max_size=200))
def test_any_rooms_are_rooms_or_a_contract_refusal(text):
    try:
        rooms = feeds.parse_rooms(text, 100)
    except ChatError as error:
        assert error.code in ("invalid_room", "forbidden")
    else:
        assert len(rooms) == len(set(rooms)) <= 100


# the wire

def test_an_event_is_its_type_its_id_and_one_line_of_json():
    data = {"text": "two\nlines\r\nand\u2028more", "room": "a"}
    raw = sse.event("message", sse.encode(data), "a.1.0")
    head, _, rest = raw.partition(b"\ndata: ")
    assert head == b"event: message\nid: a.1.0"
    assert rest.endswith(b"\n\n") and b"\n" not in rest[:-2] and b"\r" not in rest[:-2]
    assert json.loads(rest[:-2]) == data
    assert sse.preamble("a.1.0", 2000) == b"retry: 2000\nid: a.1.0\n\n"


# the view, on the test client (the threading server's generator)

@pytest.fixture
def settings():
    return {"SSE_KEEPALIVE": "0.05", "MAX_FRAME_BYTES": 2048}


def test_the_view_refuses_with_the_contract(client, user, papo):
    _, token = user()
    owner, owner_token = user()
    papo.service.create_room(owner, "secret", True)
    auth = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/stream?rooms=lobby").status_code == 401
    refused = client.get("/api/stream?rooms=lobby", headers={"Authorization": "Bearer nope"})
    assert refused.status_code == 401 and refused.json["error"]["code"] == "unauthorized"
    refused = client.get("/api/stream?rooms=secret", headers=auth)
    assert refused.status_code == 403 and refused.json["error"]["code"] == "forbidden"
    refused = client.get("/api/stream?rooms=Bad!", headers=auth)
    assert refused.status_code == 400 and refused.json["error"]["code"] == "invalid_room"
    refused = client.get("/api/stream?rooms=lobby", headers={**auth, "Last-Event-ID": "nonsense"})
    assert refused.status_code == 400 and refused.json["error"]["code"] == "invalid_payload"
    refused = client.get("/api/stream?rooms=lobby", headers={**auth, "Last-Event-ID": "lobby.1.1" * 300})
    assert refused.status_code == 413 and refused.json["error"]["code"] == "too_large"


def test_the_view_streams_the_replay_then_comments(client, user, papo):
    name, token = user()
    papo.service.post(name, "lobby", "one", None)
    response = client.get("/api/stream?rooms=lobby&last_event_id=lobby.0.0", buffered=False,
                          headers={"Authorization": f"Bearer {token}"})
    try:
        assert response.status_code == 200 and response.mimetype == "text/event-stream"
        chunks = iter(response.response)
        first = next(chunks)
        assert first.startswith(b"retry: 3000\nid: lobby.0.0\n\nevent: message\nid: lobby.1.0\n")
        assert next(chunks) == b":\n\n"
    finally:
        response.close()
    assert not papo.guard._sockets  # the stream's place under the connection cap is given back


@pytest.fixture
def signed_in(user):
    """One user's token for every example of a test."""
    tokens = []
    return lambda: tokens[0] if tokens else tokens.append(user()[1]) or tokens[0]


@hypothesis_settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rooms=st.text(max_size=80), cursor=st.text(max_size=80), flag=st.text(max_size=5))
def test_no_query_string_crashes_the_view(client, signed_in, rooms, cursor, flag):
    token = signed_in()
    response = client.get("/api/stream", query_string={"rooms": rooms, "notifications": flag,
                                                       "last_event_id": cursor},
                          headers={"Authorization": f"Bearer {token}"}, buffered=False)
    try:
        if response.status_code != 200:
            assert response.status_code in (400, 403, 413) and response.json["error"]["code"] in (
                "invalid_room", "invalid_payload", "forbidden", "too_large")
    finally:
        response.close()


# the hub's side, on a FakeHub and a socket pair: no green thread, timers and callbacks by hand

def read_all(sock):
    sock.setblocking(False)
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except BlockingIOError:
            return data
        if not chunk:
            return data + b"<EOF>"
        data += chunk


def test_a_stream_on_the_hub_orders_fills_gaps_from_the_store_keeps_alive_and_finishes():
    import socket

    from chat.transport.connection import Flusher
    from chat.transport.hubs import FakeHub
    from chat.transport.stream import Keepalive, Stream

    hub = FakeHub()
    server_end, client_end = socket.socketpair()
    server_end.setblocking(False)
    store = FakeStore([message("a", 1), message("a", 2), message("a", 3)])
    feed = placed()
    subscription = sse.HubSubscription("sse-1", feed, store)
    subscription.hear("message", message("a", 1))  # before live(): it waits
    closed = []
    stream = Stream(server_end, Flusher(hub), on_closed=lambda: closed.append(True))
    subscription.live(stream)
    subscription.hear("message", message("a", 3), sse.encode(message("a", 3)))  # 2 is missing: 3 waits
    hub.run()
    assert read_all(client_end).count(b"event: message") == 1
    hub.run(sse.GAP_SECONDS)  # the gap outlived its wait: the store is read
    assert read_all(client_end).count(b"id: a.") == 2
    assert feed.cursor() == "a.3.0" and not feed.holding()
    Keepalive(hub, 1.0).ensure()
    hub.run(1.0)
    assert read_all(client_end) == b"3\r\n:\n\n\r\n"
    subscription.end(sse.ended("logged_out", "you signed out"))
    hub.run()
    tail = read_all(client_end)
    assert b"event: session_ended" in tail and tail.endswith(b"0\r\n\r\n<EOF>") and closed == [True]
    assert stream not in Stream.open
    client_end.close()
