"""Edits, deletions, reactions, read state and search through the Socket.IO test client and HTTP."""
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chat.service import REACTIONS
from tests.conftest import events


@pytest.fixture
def trio(user, connect):
    """Three users, each with one connection, all in room `lobby`, and ana's three messages there."""
    sockets = {}
    for name in ("ana", "bo", "cy"):
        _, token = user(name)
        sockets[name] = connect(token)
        assert sockets[name].emit("join", {"room": "lobby"}, callback=True)["ok"]
    for i in range(3):
        sockets["ana"].emit("message", {"room": "lobby", "text": f"m{i + 1}", "client_id": f"c{i}"}, callback=True)
    for socket in sockets.values():
        socket.get_received()
    return sockets


def call(socket, event, **payload):
    return socket.emit(event, payload, callback=True)


def test_messages_carry_the_new_fields_unchanged(trio):
    ack = call(trio["ana"], "message", room="lobby", text="new", client_id="n")
    assert ack["message"]["rev"] == 0 and ack["message"]["edited_at"] is None
    assert ack["message"]["deleted"] is False and ack["message"]["reactions"] == {}


def test_only_the_author_edits_and_everyone_hears_of_it(trio):
    assert call(trio["bo"], "edit", room="lobby", seq=1, text="hijack")["error"]["code"] == "forbidden"
    ack = call(trio["ana"], "edit", room="lobby", seq=1, text=" fixed ")
    assert ack["ok"] and ack["message"]["text"] == "fixed" and ack["message"]["rev"] == 1
    assert ack["message"]["edited_at"] is not None and ack["message"]["seq"] == 1
    for socket in trio.values():
        assert events(socket, "message_updated") == [ack["message"]]
    again = call(trio["ana"], "edit", room="lobby", seq=1, text="fixed")
    assert again == ack and events(trio["bo"], "message_updated") == []
    history = call(trio["cy"], "history", room="lobby")["messages"]
    assert history[0] == ack["message"]


def test_unknown_seqs_and_bad_payloads_are_refused(trio):
    assert call(trio["ana"], "edit", room="lobby", seq=99, text="x")["error"]["code"] == "not_found"
    assert call(trio["ana"], "delete", room="lobby", seq=99)["error"]["code"] == "not_found"
    assert call(trio["ana"], "edit", room="lobby", seq=1, text="  ")["error"]["code"] == "invalid_message"
    assert call(trio["ana"], "edit", room="lobby", text="x")["error"]["code"] == "invalid_payload"
    assert call(trio["ana"], "react", room="lobby", seq=1, emoji="💩", on=True)["error"]["code"] == "invalid_payload"
    assert call(trio["ana"], "react", room="lobby", seq=1, emoji="👍👍", on=True)["error"]["code"] == "invalid_payload"
    assert call(trio["ana"], "react", room="lobby", seq=1, emoji="👍", on=1)["error"]["code"] == "invalid_payload"


def test_delete_leaves_a_tombstone_and_repeats_are_harmless(trio):
    assert call(trio["bo"], "delete", room="lobby", seq=2)["error"]["code"] == "forbidden"
    ack = call(trio["ana"], "delete", room="lobby", seq=2)
    assert ack["message"]["deleted"] and ack["message"]["text"] == "" and ack["message"]["seq"] == 2
    assert call(trio["ana"], "delete", room="lobby", seq=2) == ack
    assert len(events(trio["cy"], "message_updated")) == 1
    assert call(trio["ana"], "edit", room="lobby", seq=2, text="back")["error"]["code"] == "not_found"
    assert call(trio["bo"], "react", room="lobby", seq=2, emoji="👍", on=True)["error"]["code"] == "not_found"


def test_the_owner_of_a_private_room_deletes_anyones_message(user, connect):
    _, owner_token = user("olga")
    _, guest_token = user("gus")
    owner, guest = connect(owner_token), connect(guest_token)
    assert call(owner, "create_room", room="club")["ok"]
    assert call(owner, "invite", room="club", user="gus")["ok"]
    assert call(guest, "join", room="club")["ok"] and call(owner, "join", room="club")["ok"]
    call(guest, "message", room="club", text="oops", client_id="g")
    call(owner, "message", room="club", text="mine", client_id="o")
    assert call(owner, "delete", room="club", seq=1)["message"]["deleted"]
    assert call(guest, "delete", room="club", seq=2)["error"]["code"] == "forbidden"


def test_reactions_toggle_per_user_and_show_who(trio):
    call(trio["bo"], "react", room="lobby", seq=1, emoji="👍", on=True)
    ack = call(trio["cy"], "react", room="lobby", seq=1, emoji="👍", on=True)
    assert ack["message"]["reactions"] == {"👍": ["bo", "cy"]} and ack["message"]["rev"] == 2
    assert call(trio["cy"], "react", room="lobby", seq=1, emoji="👍", on=True)["message"]["rev"] == 2
    off = call(trio["bo"], "react", room="lobby", seq=1, emoji="👍", on=False)
    assert off["message"]["reactions"] == {"👍": ["cy"]} and off["message"]["rev"] == 3
    assert call(trio["bo"], "react", room="lobby", seq=1, emoji="👍", on=False)["message"]["rev"] == 3
    heart = call(trio["bo"], "react", room="lobby", seq=1, emoji="❤️", on=True)
    assert heart["message"]["reactions"] == {"👍": ["cy"], "❤️": ["bo"]}
    assert len(events(trio["ana"], "message_updated")) == 4


def test_a_rejoin_with_revs_since_gets_exactly_the_changes_missed(trio, connect, user):
    ack = call(trio["bo"], "join", room="lobby", since=3, revs_since=0)
    assert ack["last_rev"] == 0 and ack["updated"] == [] and ack["messages"] == []
    call(trio["bo"], "leave", room="lobby")
    call(trio["ana"], "edit", room="lobby", seq=3, text="three")
    call(trio["cy"], "react", room="lobby", seq=1, emoji="🎉", on=True)
    call(trio["ana"], "message", room="lobby", text="m4", client_id="c4")
    call(trio["ana"], "edit", room="lobby", seq=4, text="four")
    call(trio["ana"], "delete", room="lobby", seq=1)
    back = call(trio["bo"], "join", room="lobby", since=3, revs_since=0)
    assert back["last_rev"] == 4
    assert [(m["seq"], m["rev"]) for m in back["updated"]] == [(3, 1), (1, 4)]
    assert back["updated"][1]["deleted"] and back["messages"][0]["text"] == "four"
    assert "updated" not in call(trio["bo"], "join", room="lobby", since=3)
    assert call(trio["bo"], "join", room="lobby", since=4, revs_since=3)["updated"] == [back["updated"][1]]


def test_read_state_rises_only_and_reaches_other_tabs_and_the_room(trio, connect, papo):
    second_tab = connect(papo.identity.issue_token("bo")["token"])
    joined = call(trio["bo"], "join", room="lobby")
    assert joined["last_read"] == 0 and joined["unread"] == 3
    assert call(trio["bo"], "read", room="lobby", seq=2) == {"ok": True, "room": "lobby", "last_read": 2}
    assert events(second_tab, "read") == [{"room": "lobby", "user": "bo", "last_read": 2}]
    assert events(trio["ana"], "read") == [{"room": "lobby", "user": "bo", "last_read": 2}]
    assert len(events(trio["bo"], "read")) == 1
    assert call(trio["bo"], "read", room="lobby", seq=1)["last_read"] == 2
    assert call(trio["bo"], "read", room="lobby", seq=50)["last_read"] == 3
    again = call(trio["bo"], "join", room="lobby", since=3)
    assert again["last_read"] == 3 and again["unread"] == 0
    assert call(trio["bo"], "read", room="lobby", seq=-1)["error"]["code"] == "invalid_payload"
    assert call(trio["bo"], "read", room="nowhere", seq=1)["error"]["code"] == "not_found"


def test_rooms_list_the_callers_unread(trio, client, papo):
    call(trio["bo"], "read", room="lobby", seq=1)
    token = papo.identity.issue_token("bo")["token"]
    rooms = client.get("/api/rooms", headers={"Authorization": f"Bearer {token}"}).get_json()["rooms"]
    assert rooms == [{"name": "lobby", "members": 3, "last_seq": 3, "last_read": 1, "unread": 2}]
    assert "unread" not in client.get("/api/rooms").get_json()["rooms"][0]


def test_http_edits_deletes_reacts_reads_and_searches(trio, client, papo):
    ana = {"Authorization": f"Bearer {papo.identity.issue_token('ana')['token']}"}
    bo = {"Authorization": f"Bearer {papo.identity.issue_token('bo')['token']}"}
    edited = client.patch("/api/rooms/lobby/messages/1", json={"text": "hello world"}, headers=ana)
    assert edited.status_code == 200 and edited.get_json()["message"]["rev"] == 1
    assert client.patch("/api/rooms/lobby/messages/1", json={"text": "x"}, headers=bo).status_code == 403
    assert client.patch("/api/rooms/lobby/messages/x", json={"text": "x"}, headers=ana).status_code == 400
    reacted = client.post("/api/rooms/lobby/messages/1/reactions", json={"emoji": "👀", "on": True}, headers=bo)
    assert reacted.get_json()["message"]["reactions"] == {"👀": ["bo"]}
    assert client.delete("/api/rooms/lobby/messages/2", headers=ana).get_json()["message"]["deleted"]
    assert client.post("/api/rooms/lobby/read", json={"seq": 3}, headers=bo).get_json()["last_read"] == 3
    found = client.get("/api/search?q=world", headers=bo).get_json()["results"]
    assert [m["seq"] for m in found] == [1] and "<mark>world</mark>" in found[0]["snippet"]
    assert client.get("/api/search?q=", headers=bo).status_code == 400
    assert client.get("/api/search?q=" + "x" * 201, headers=bo).status_code == 400
    assert client.get("/api/search?q=world").status_code == 401
    assert events(trio["cy"], "message_updated")[-1]["deleted"]


def test_search_never_shows_a_private_rooms_message_to_a_non_member(user, connect, client, papo):
    _, owner_token = user("olga")
    _, outsider_token = user("otto")
    owner = connect(owner_token)
    call(owner, "create_room", room="vault")
    call(owner, "join", room="vault")
    call(owner, "message", room="vault", text="the password is swordfish", client_id="s")
    outsider = {"Authorization": f"Bearer {outsider_token}"}
    assert client.get("/api/search?q=swordfish", headers=outsider).get_json() == {"results": []}
    assert client.get("/api/search?q=swordfish&room=vault", headers=outsider).status_code == 403
    mine = client.get("/api/search?q=swordfish", headers={"Authorization": f"Bearer {owner_token}"})
    assert mine.get_json()["results"][0]["room"] == "vault"


scalars = st.one_of(st.none(), st.booleans(), st.integers(-10, 10**20), st.text(max_size=8), st.sampled_from(REACTIONS),
                    st.lists(st.integers(), max_size=2), st.dictionaries(st.text(), st.none()))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(event=st.sampled_from(["edit", "delete", "react", "read", "join"]),
       payload=st.fixed_dictionaries({}, optional={"room": st.one_of(scalars, st.just("lobby")), "seq": scalars,
                                                   "text": scalars, "emoji": scalars, "on": scalars,
                                                   "since": scalars, "revs_since": scalars}))
def test_any_payload_gets_an_ack_never_an_error(trio, event, payload):
    ack = trio["cy"].emit(event, payload, callback=True)
    assert ack["ok"] or ack["error"]["code"] in {"invalid_payload", "invalid_room", "invalid_message", "not_found",
                                                 "forbidden", "rate_limited"}
    assert not ack["ok"] or event != "read" or 0 <= ack["last_read"] <= 3
