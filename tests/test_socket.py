"""The chat namespace through Flask-SocketIO's test client: acks, fan-out, presence, typing, direct."""
import pytest

from chat.events import HANDSHAKE_JOINS
from tests.conftest import PASSWORD, events


@pytest.fixture
def trio(user, connect):
    """Three users, each with one connection, all in room `lobby`."""
    sockets = {}
    for name in ("ana", "bo", "cy"):
        _, token = user(name)
        sockets[name] = connect(token)
        assert sockets[name].emit("join", {"room": "lobby"}, callback=True)["ok"]
    for socket in sockets.values():
        socket.get_received()
    return sockets


def test_a_connection_without_identity_is_refused(app, papo):
    anonymous = papo.socketio.test_client(app)
    forged = papo.socketio.test_client(app, auth={"token": "forged.token.value"})
    assert not anonymous.is_connected() and not forged.is_connected()


def test_a_message_reaches_every_member_the_sender_included(trio):
    ack = trio["ana"].emit("message", {"room": "lobby", "text": "hello", "client_id": "c1"}, callback=True)
    assert ack["ok"] and ack["message"]["seq"] == 1 and ack["message"]["user"] == "ana"
    for socket in trio.values():
        assert events(socket, "message") == [ack["message"]]


def test_the_server_decides_the_author(trio):
    ack = trio["ana"].emit("message", {"room": "lobby", "text": "hi", "client_id": "c", "user": "bo"},
                           callback=True)
    assert ack["message"]["user"] == "ana"


def test_a_retried_client_id_is_acked_with_the_first_message_and_not_broadcast_again(trio):
    payload = {"room": "lobby", "text": "once", "client_id": "same"}
    first = trio["ana"].emit("message", payload, callback=True)
    again = trio["ana"].emit("message", payload, callback=True)
    assert first == again
    assert len(events(trio["bo"], "message")) == 1


def test_leave_stops_delivery(trio):
    assert trio["cy"].emit("leave", {"room": "lobby"}, callback=True) == {"ok": True}
    trio["ana"].emit("message", {"room": "lobby", "text": "after cy left", "client_id": "c2"}, callback=True)
    assert events(trio["cy"], "message") == []
    assert len(events(trio["bo"], "message")) == 1


def test_typing_reaches_the_others_only(trio):
    assert trio["ana"].emit("typing", {"room": "lobby", "typing": True}, callback=True) == {"ok": True}
    assert events(trio["ana"], "typing") == []
    assert events(trio["bo"], "typing") == [{"room": "lobby", "user": "ana", "typing": True}]


def test_a_direct_message_reaches_every_tab_of_its_two_users_only(user, connect):
    tokens = {name: user(name)[1] for name in ("ana", "bo", "cy")}
    ana, bo_tab1, bo_tab2, cy = (connect(tokens["ana"]), connect(tokens["bo"]), connect(tokens["bo"]),
                                 connect(tokens["cy"]))
    ack = ana.emit("direct", {"to": "bo", "text": "psst", "client_id": "d1"}, callback=True)
    assert ack["ok"] and ack["message"]["from"] == "ana" and ack["message"]["to"] == "bo"
    assert events(bo_tab1, "direct") == [ack["message"]]
    assert events(bo_tab2, "direct") == [ack["message"]]
    assert events(ana, "direct") == [ack["message"]]
    assert events(cy, "direct") == []


def test_direct_to_an_unknown_user_is_not_found(user, connect):
    ana = connect(user("ana")[1])
    ack = ana.emit("direct", {"to": "ghost", "text": "hi", "client_id": "d"}, callback=True)
    assert ack["error"]["code"] == "not_found"


def test_two_tabs_of_one_user_are_one_member(user, connect):
    _, ana_token = user("ana")
    bo = connect(user("bo")[1])
    bo.emit("join", {"room": "lobby"}, callback=True)
    bo.get_received()
    tab1, tab2 = connect(ana_token), connect(ana_token)
    tab1.emit("join", {"room": "lobby"}, callback=True)
    assert tab2.emit("join", {"room": "lobby"}, callback=True)["members"] == ["ana", "bo"]
    tab1.disconnect()
    tab2.emit("leave", {"room": "lobby"}, callback=True)
    actions = [(p["user"], p["action"]) for p in events(bo, "presence")]
    assert actions == [("ana", "join"), ("ana", "leave")]


def test_joining_twice_is_harmless(trio):
    again = trio["ana"].emit("join", {"room": "lobby"}, callback=True)
    assert again["ok"] and again["members"] == ["ana", "bo", "cy"]
    assert events(trio["bo"], "presence") == []


def test_rejoin_with_since_replays_what_was_missed(user, connect):
    ana, bo = connect(user("ana")[1]), connect(user("bo")[1])
    for socket in (ana, bo):
        socket.emit("join", {"room": "lobby"}, callback=True)
    bo.disconnect()
    for i in range(3):
        ana.emit("message", {"room": "lobby", "text": f"m{i}", "client_id": f"c{i}"}, callback=True)
    back = connect(user("bo2")[1])
    answer = back.emit("join", {"room": "lobby", "since": 1}, callback=True)
    assert [m["text"] for m in answer["messages"]] == ["m1", "m2"]


def test_history_event(trio):
    for i in range(3):
        trio["ana"].emit("message", {"room": "lobby", "text": f"m{i}", "client_id": f"h{i}"}, callback=True)
    answer = trio["bo"].emit("history", {"room": "lobby", "before": 3, "limit": 1}, callback=True)
    assert [m["text"] for m in answer["messages"]] == ["m1"] and answer["has_more"] is True


@pytest.mark.parametrize("event, payload, code", [
    ("join", None, "invalid_payload"),
    ("join", "lobby", "invalid_payload"),
    ("join", ["lobby"], "invalid_payload"),
    ("join", {}, "invalid_room"),
    ("join", {"room": "Not Valid"}, "invalid_room"),
    ("join", {"room": "lobby", "since": "x"}, "invalid_payload"),
    ("join", {"room": "lobby", "since": -1}, "invalid_payload"),
    ("leave", {"room": 5}, "invalid_room"),
    ("message", {"room": "elsewhere", "text": "hi", "client_id": "x"}, "not_in_room"),
    ("message", {"room": "lobby", "text": "", "client_id": "x"}, "invalid_message"),
    ("message", {"room": "lobby", "text": "x" * 4001, "client_id": "x"}, "invalid_message"),
    ("message", {"room": "lobby", "text": 42, "client_id": "x"}, "invalid_message"),
    ("message", {"room": "lobby", "text": "hi", "client_id": 42}, "invalid_payload"),
    ("typing", {"room": "lobby", "typing": "yes"}, "invalid_payload"),
    ("typing", {"room": "elsewhere", "typing": True}, "not_in_room"),
    ("history", {"room": "lobby", "limit": 1000}, "invalid_payload"),
    ("direct", {"to": 5, "text": "hi"}, "invalid_payload"),
    ("direct", {"to": "nobody", "text": "hi"}, "not_found"),
    ("no-such-event", {}, "invalid_payload"),
])
def test_bad_input_gets_the_contract_error_and_the_connection_stays_usable(trio, event, payload, code):
    args = () if payload is None else (payload,)
    ack = trio["ana"].emit(event, *args, callback=True)
    assert ack["ok"] is False and ack["error"]["code"] == code and ack["error"]["message"]
    assert trio["ana"].emit("message", {"room": "lobby", "text": "still here", "client_id": "ok"},
                            callback=True)["ok"]


def test_rate_limit_ack_carries_retry_after(app, papo, user, connect):
    papo.service.limiter.burst = 2
    papo.service.limiter.rate = 0.5
    ana = connect(user("ana")[1])
    ana.emit("join", {"room": "lobby"}, callback=True)
    acks = [ana.emit("message", {"room": "lobby", "text": f"m{i}", "client_id": f"r{i}"}, callback=True)
            for i in range(3)]
    assert [a["ok"] for a in acks] == [True, True, False]
    assert acks[2]["error"]["code"] == "rate_limited" and acks[2]["retry_after"] >= 1


def test_rooms_listed_in_the_handshake_are_joined_with_the_join_events_answer(app, papo, user, connect):
    ana = connect(user("ana")[1])
    for room in ("lobby", "kitchen"):
        ana.emit("join", {"room": room}, callback=True)
    for i in range(3):
        ana.emit("message", {"room": "lobby", "text": f"m{i}", "client_id": f"c{i}"}, callback=True)
    _, token = user("bo")
    bo = papo.socketio.test_client(app, auth={"token": token, "join": [
        {"room": "lobby", "since": 1}, {"room": "kitchen"}, {"room": "Bad Name"}, "lobby"]})
    assert bo.is_connected()
    answers = events(bo, "joined")
    assert [a["ok"] for a in answers] == [True, True, False, False]
    lobby, kitchen, bad, not_an_object = answers
    assert [m["text"] for m in lobby["messages"]] == ["m1", "m2"] and lobby["last_seq"] == 3
    assert lobby["members"] == ["ana", "bo"] and kitchen["room"] == "kitchen"
    assert bad["room"] == "Bad Name" and bad["error"]["code"] == "invalid_room"
    assert "room" not in not_an_object and not_an_object["error"]["code"] == "invalid_payload"
    plain = bo.emit("join", {"room": "lobby", "since": 1}, callback=True)
    assert {k: v for k, v in plain.items() if k != "members"} == {k: v for k, v in lobby.items() if k != "members"}
    ana.emit("message", {"room": "kitchen", "text": "live", "client_id": "c9"}, callback=True)
    assert [m["text"] for m in events(bo, "message")] == ["live"]


def test_a_handshake_join_list_that_is_no_list_or_too_long_refuses_the_connection(app, papo, user):
    _, token = user("ana")
    papo.service.limiter.burst = papo.guard.connections.burst = papo.guard.users.burst = 10**9
    too_long = [{"room": f"r{n}"} for n in range(HANDSHAKE_JOINS + 1)]
    for joins in ({"room": "lobby"}, "lobby", too_long):
        refused = papo.socketio.test_client(app, auth={"token": token, "join": joins})
        assert not refused.is_connected()
    fits = papo.socketio.test_client(app, auth={"token": token, "join": too_long[:-1]})
    assert len(events(fits, "joined")) == HANDSHAKE_JOINS


def test_handshake_joins_past_the_connections_room_limit_are_refused_one_by_one(app, papo, user):
    _, token = user("ana")
    papo.service.max_rooms = 2
    socket = papo.socketio.test_client(app, auth={"token": token, "join": [{"room": r} for r in "abc"]})
    answers = events(socket, "joined")
    assert socket.is_connected() and [a["ok"] for a in answers] == [True, True, False]
    assert answers[2]["error"]["code"] == "forbidden" and answers[2]["room"] == "c"


def test_handshake_joins_spend_the_event_budget_like_join_events(make_app):
    app = make_app(EVENT_BURST=2, EVENT_PER_SECOND=0.001)
    papo = app.extensions["papo"]
    papo.identity.register("ana", PASSWORD)
    token = papo.identity.issue_token("ana")["token"]
    socket = papo.socketio.test_client(app, auth={"token": token, "join": [{"room": r} for r in "abc"]})
    answers = events(socket, "joined")
    assert [a["ok"] for a in answers] == [True, True, False]
    assert answers[2]["error"]["code"] == "rate_limited" and answers[2]["room"] == "c"
