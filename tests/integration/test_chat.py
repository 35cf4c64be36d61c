"""Chat over the wire against one real server per async mode: fan-out, seq under concurrency, long poll."""
import json
import threading
import time
from socket import IPPROTO_TCP, TCP_NODELAY, create_connection
from typing import Any

import pytest

from tests.integration.client import ChatClient
from tests.integration.raw import open_socketio, recv_ack
from tests.servers import post_message, read_messages, request

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


@pytest.mark.parametrize("transport", ["websocket", "polling"])
def test_every_member_receives_a_message_and_the_ack_has_it_stored(server, user, room, clients, transport):
    members = [user() for _ in range(3)]
    sockets = [clients(server.url, token, transports=[transport]) for _, token in members]
    for socket in sockets:
        assert socket.transport == transport
        socket.join(room)

    ack = sockets[0].send(room, "  hello over " + transport + "  ", client_id="first")

    assert ack["ok"] is True
    message = ack["message"]
    assert message["room"] == room and message["seq"] == 1 and message["user"] == members[0][0]
    assert message["text"] == "hello over " + transport and message["client_id"] == "first"
    assert isinstance(message["id"], str) and isinstance(message["ts"], int)
    for socket in sockets:
        assert socket.wait_until(lambda c: c.received.get(room)), f"{transport} client got nothing"
    time.sleep(0.2)  # room for a wrong second copy to arrive
    for socket in sockets:
        assert socket.received[room] == [message]
    assert read_messages(server.url, members[1][1], room) == [message]


def test_a_repeated_client_id_is_stored_and_broadcast_once(server, user, room, clients):
    (_, alice), (_, bob) = user(), user()
    sender, reader = clients(server.url, alice), clients(server.url, bob)
    sender.join(room)
    reader.join(room)

    first = sender.send(room, "once", client_id="retry-1")["message"]
    again = sender.send(room, "once", client_id="retry-1")["message"]

    assert again == first
    assert reader.wait_until(lambda c: c.received.get(room))
    time.sleep(0.2)
    assert reader.seqs(room) == [1]


def test_four_concurrent_senders_get_gap_free_seqs(server, user, room, clients):
    senders = [clients(server.url, token) for _, token in (user() for _ in range(4))]
    for socket in senders:
        socket.join(room)
    per_sender = 40
    start = threading.Barrier(len(senders))
    acks: list[list[dict]] = [[] for _ in senders]

    def send_all(index):
        start.wait()
        for n in range(per_sender):
            acks[index].append(senders[index].send(room, f"s{index} m{n}"))

    threads = [threading.Thread(target=send_all, args=(i,)) for i in range(len(senders))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not any(thread.is_alive() for thread in threads)

    total = per_sender * len(senders)
    assert all(ack["ok"] for sent in acks for ack in sent)
    acked = sorted(ack["message"]["seq"] for sent in acks for ack in sent)
    assert acked == list(range(1, total + 1))
    for sent in acks:  # each sender's own messages are in the order it sent them
        seqs = [ack["message"]["seq"] for ack in sent]
        assert seqs == sorted(seqs)
    stored = read_messages(server.url, senders[0].token, room)
    assert [m["seq"] for m in stored] == list(range(1, total + 1))
    assert len({m["id"] for m in stored}) == total
    for socket in senders:
        assert socket.wait_until(lambda c: len(c.received.get(room, [])) >= total)
        assert sorted(socket.seqs(room)) == list(range(1, total + 1))


def test_text_no_database_can_keep_is_refused_and_the_messages_beside_it_are_stored(server, user, room, clients):
    """JSON carries an unpaired surrogate ("\\udcff") that UTF-8 cannot, and NUL, which PostgreSQL refuses."""
    (_, good_token), (_, bad_token) = user(), user()
    good, bad = clients(server.url, good_token), clients(server.url, bad_token)
    good.join(room)
    bad.join(room)
    refusals: list[Any] = []

    def send_bad():
        for n in range(20):
            refusals.append(bad.send(room, f"lone {n} \udcff")["error"]["code"])
            refusals.append(bad.send(room, f"nul {n} \x00")["error"]["code"])
            refusals.append(bad.send(room, "fine text", client_id=f"\ud800{n}")["error"]["code"])
            refusals.append(request(server.url, "POST", f"/api/rooms/{room}/messages", {"text": "\udcff"},
                                    token=bad_token)[1]["error"]["code"])

    sender = threading.Thread(target=send_bad)
    sender.start()
    acks = [good.send(room, f"m{n}") for n in range(40)]
    sender.join(30)
    assert not sender.is_alive()
    assert refusals == ["invalid_message", "invalid_message", "invalid_payload", "invalid_message"] * 20
    assert [ack["message"]["seq"] for ack in acks] == list(range(1, 41))
    assert [m["text"] for m in read_messages(server.url, good_token, room)] == [f"m{n}" for n in range(40)]


def test_messages_sent_without_waiting_for_acks_keep_their_order_and_a_later_event_waits_for_them(
        server, user, room, clients):
    (_, alice), (_, bob) = user(), user()
    sender, reader = clients(server.url, alice), clients(server.url, bob)
    sender.join(room)
    reader.join(room)
    count = 60
    acks: dict[int, dict] = {}
    all_acked = threading.Event()

    def on_ack(index):
        def acked(ack):
            acks[index] = ack
            if len(acks) == count:
                all_acked.set()
        return acked

    for index in range(count):  # one after another on one connection, none waiting for the last one's ack
        sender.sio.emit("message", {"room": room, "text": f"m{index}", "client_id": f"o{index}"},
                        callback=on_ack(index))
    history = sender.call("history", {"room": room, "limit": 100})

    assert all_acked.wait(10)
    assert [acks[i]["message"]["seq"] for i in range(count)] == list(range(1, count + 1))
    assert [acks[i]["message"]["text"] for i in range(count)] == [f"m{i}" for i in range(count)]
    assert [m["text"] for m in history["messages"]] == [f"m{i}" for i in range(count)]
    assert reader.wait_until(lambda c: len(c.received.get(room, [])) >= count)
    assert sorted(reader.seqs(room)) == list(range(1, count + 1))


def test_a_waiting_long_poll_is_woken_by_a_post_not_by_its_timeout(server, user, room):
    (_, reader), (_, writer) = user(), user()
    post_message(server.url, writer, room, "before the poll")
    gaps = []
    for n in range(3):
        answer: dict[str, Any] = {}

        def poll(after=n + 1, answer=answer):
            answer["reply"] = request(server.url, "GET", f"/api/rooms/{room}/poll?after={after}&timeout=10",
                                      token=reader, timeout=15)
            answer["at"] = time.monotonic()

        poller = threading.Thread(target=poll)
        poller.start()
        time.sleep(0.2)
        assert poller.is_alive(), f"the poll answered before anything was posted: {answer}"
        sent = post_message(server.url, writer, room, f"wake {n}")
        posted_at = time.monotonic()
        poller.join(5)
        assert not poller.is_alive(), "the long poll did not wake"
        status, body = answer["reply"]
        assert status == 200 and body["messages"] == [sent]
        gaps.append(answer["at"] - posted_at)
    print(f"{server.mode}: long-poll wake after POST returned: max {max(gaps) * 1000:.1f} ms")
    assert max(gaps) < 1, f"long poll woke {max(gaps) * 1000:.0f} ms after the POST"  # its timeout is 10 s


def test_accepted_sockets_send_at_once_without_waiting_for_acks(server):
    """Nagle's algorithm holds a small write back until the last one is acknowledged, which the client
    may delay by 40 ms: every accepted connection has TCP_NODELAY, inherited from the listening socket."""
    if server.mode == "threading":
        pytest.skip("TCP_NODELAY is a production-server (eventlet, gevent) promise")
    with create_connection((server.host, server.port), timeout=5) as client:
        assert server.socket_option(client, IPPROTO_TCP, TCP_NODELAY) != 0


def test_rooms_joined_in_the_handshake_are_answered_right_after_connect_in_order(server, user, room):
    _, token = user()
    for n in range(3):
        post_message(server.url, token, room, f"m{n}", client_id=f"h{n}")
    ws = open_socketio(server, token, join=[{"room": room, "since": 1}, {"room": "No Such Name"}])
    try:
        answers: list[dict[str, Any]] = []
        while len(answers) < 2:
            name, payload = json.loads(ws.recv()[2:])  # 42["event", payload]: joined, presence
            if name == "joined":
                answers.append(payload)
        first, second = answers
        assert first["ok"] and [m["text"] for m in first["messages"]] == ["m1", "m2"]
        assert first["last_seq"] == 3 and first["room"] == room
        assert second == {"ok": False, "room": "No Such Name", "error": second["error"]}
        assert second["error"]["code"] == "invalid_room"
        ws.send("420" + json.dumps(["message", {"room": room, "text": "after", "client_id": "h9"}]))
        assert recv_ack(ws, 0)["message"]["seq"] == 4  # in the room: the handshake joined it
    finally:
        ws.close()


@pytest.mark.parametrize("transport", ["websocket", "polling"])
def test_a_client_coming_back_rejoins_in_its_handshake_and_gets_what_it_missed(server, user, room, clients, transport):
    name, token = user()
    first = clients(server.url, token, transports=[transport], handshake_joins=True)
    first.join(room)
    held = dict(first.rooms)  # before close(): over polling, `first` may still get "away 0" while it goes
    first.close()
    for n in range(3):
        post_message(server.url, token, room, f"away {n}", client_id=f"a{n}")
    back = ChatClient(server.url, token, transports=[transport], handshake_joins=True)
    back.rooms = held
    try:
        back.connect()
        missed = ["away 0", "away 1", "away 2"]
        assert back.wait_until(lambda c: [m["text"] for m in c.received.get(room, [])] == missed)
        assert [(r, since, ack["ok"]) for r, since, ack in back.joins] == [(room, 0, True)]
        assert back.send(room, "here again")["message"]["seq"] == 4
    finally:
        back.close()
