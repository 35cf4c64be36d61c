"""Changes to messages over the wire: a client that drops while messages are edited, deleted and reacted
to catches up exactly when it joins again with since and revs_since, also after the server's kill -9."""
import threading

import pytest

from tests.servers import DEFAULT_MODE, ServerProcess, post_message, read_messages, register, request
from tests.services import fresh_database

from .client import ChatClient
from .conftest import start_server

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]


class Replica:
    """What a client knows of one room: {seq: Message}, and the highest seq and rev it has seen."""

    def __init__(self):
        self.messages = {}
        self.last_seq = 0
        self.last_rev = 0

    def joined(self, ack):
        self.last_rev = max(self.last_rev, ack["last_rev"])
        for message in ack["messages"] + ack.get("updated", []):
            self.apply(message)

    def apply(self, message):
        known = self.messages.get(message["seq"])
        if known is None or known["rev"] <= message["rev"]:
            self.messages[message["seq"]] = message
        self.last_seq = max(self.last_seq, message["seq"])
        self.last_rev = max(self.last_rev, message["rev"])

    def rejoin(self, client, room):
        ack = client.call("join", {"room": room, "since": self.last_seq, "revs_since": self.last_rev})
        assert ack["ok"], ack
        revs = [m["rev"] for m in ack["updated"]]
        assert revs == sorted(revs) and all(rev > self.last_rev for rev in revs)
        assert all(m["seq"] <= self.last_seq for m in ack["updated"])
        self.joined(ack)
        return ack


def change(client, event, **payload):
    ack = client.call(event, payload)
    assert ack["ok"], ack
    return ack["message"]


@pytest.mark.parametrize("mode,crash", [("eventlet", False), ("eventlet", True), ("gevent", True)])
def test_a_client_that_dropped_catches_up_on_every_change(mode, crash, tmp_path_factory):
    server = start_server(mode, tmp_path_factory)
    room = "changes"
    try:
        ana_token, bo_token = register(server.url, "ana"), register(server.url, "bo")
        ana, bo = ChatClient(server.url, ana_token).connect(), ChatClient(server.url, bo_token).connect()
        replica = Replica()
        ana.join(room)
        replica.joined(bo.call("join", {"room": room, "since": 0, "revs_since": 0}))
        for i in range(1, 11):
            replica.apply(ana.send(room, f"message {i}")["message"])

        live = [change(ana, "edit", room=room, seq=2, text="second, fixed"),
                change(bo, "react", room=room, seq=3, emoji="👍", on=True)]
        assert bo.wait_until(lambda c: sum(name == "message_updated" for name, _ in c.events) == 2)
        for name, payload in bo.events:
            if name == "message_updated":
                replica.apply(payload)
        assert replica.last_rev == live[-1]["rev"] == 2
        bo.close()

        change(ana, "edit", room=room, seq=2, text="second, fixed twice")
        change(ana, "delete", room=room, seq=4)
        change(ana, "react", room=room, seq=3, emoji="🎉", on=True)
        ana.send(room, "message 11")
        change(ana, "edit", room=room, seq=11, text="message 11, fixed")
        change(ana, "react", room=room, seq=1, emoji="❤️", on=True)
        change(ana, "react", room=room, seq=1, emoji="❤️", on=False)
        change(ana, "edit", room=room, seq=2, text="second, fixed twice")  # a repeat: no rev
        ana.close()
        if crash:
            assert server.kill() == -9
            server.start()

        back = ChatClient(server.url, bo_token).connect()
        try:
            ack = replica.rejoin(back, room)
            assert ack["last_rev"] == 8 and [m["seq"] for m in ack["updated"]] == [2, 4, 3, 1]
            stored = {m["seq"]: m for m in read_messages(server.url, bo_token, room)}
            assert replica.messages == stored
            assert stored[4]["deleted"] and stored[4]["text"] == ""
            assert stored[3]["reactions"] == {"👍": ["bo"], "🎉": ["ana"]} and stored[1]["reactions"] == {}
            again = replica.rejoin(back, room)
            assert again["updated"] == [] and again["messages"] == []
        finally:
            back.close()
    finally:
        server.close()


def test_search_and_unread_over_http_never_leak_a_private_room(tmp_path_factory):
    server = start_server(DEFAULT_MODE, tmp_path_factory)
    try:
        owner, outsider = register(server.url, "olga"), register(server.url, "otto")
        assert request(server.url, "POST", "/api/rooms", {"name": "vault", "private": True}, token=owner)[0] == 201
        assert request(server.url, "POST", "/api/rooms/vault/messages", {"text": "swordfish inside"},
                       token=owner)[0] == 201
        assert request(server.url, "POST", "/api/rooms/open/messages", {"text": "swordfish outside"},
                       token=owner)[0] == 201
        status, body = request(server.url, "GET", "/api/search?q=swordfish", token=outsider)
        assert status == 200 and [m["room"] for m in body["results"]] == ["open"]
        status, body = request(server.url, "GET", "/api/search?q=swordfish", token=owner)
        assert [m["room"] for m in body["results"]] == ["open", "vault"]
        rooms = request(server.url, "GET", "/api/rooms", token=outsider)[1]["rooms"]
        assert rooms == [{"name": "open", "members": 0, "last_seq": 1, "last_read": 0, "unread": 1}]
    finally:
        server.close()


@pytest.fixture
def postgres_url():
    """A fresh PostgreSQL database for two server processes; dropped at the end."""
    with fresh_database("papo_state") as url:
        yield url


def test_two_processes_take_gap_free_revs_and_a_client_catches_up_on_the_other(postgres_url):
    room = "shared"
    with ServerProcess("eventlet", postgres_url) as first, ServerProcess("gevent", postgres_url) as second:
        ana, bo = register(first.url, "ana"), register(first.url, "bo")
        reader = ChatClient(first.url, bo).connect()
        replica = Replica()
        replica.joined(reader.call("join", {"room": room, "since": 0, "revs_since": 0}))
        for i in range(1, 7):
            replica.apply(post_message(second.url, ana, room, f"message {i}"))
        reader.close()

        revs, failures = [], []

        def editor(n):
            url = (first.url, second.url)[n % 2]
            for i in range(10):
                status, body = request(url, "PATCH", f"/api/rooms/{room}/messages/{1 + (n + i) % 6}",
                                       {"text": f"edit {n}.{i}"}, token=ana)
                if status == 200:
                    revs.append(body["message"]["rev"])
                else:
                    failures.append((status, body))

        threads = [threading.Thread(target=editor, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert failures == [] and sorted(revs) == list(range(1, 41))
        status, _ = request(second.url, "POST", f"/api/rooms/{room}/messages/2/reactions",
                            {"emoji": "🔥", "on": True}, token=bo)
        assert status == 200

        back = ChatClient(second.url, bo).connect()
        try:
            ack = replica.rejoin(back, room)
            assert ack["last_rev"] == 41 and ack["updated"][-1]["reactions"] == {"🔥": ["bo"]}
            assert replica.messages == {m["seq"]: m for m in read_messages(first.url, bo, room)}
        finally:
            back.close()
