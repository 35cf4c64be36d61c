"""Private room administration (leave, remove a member, delete), the password page and the login lockout.

Through Flask's and Flask-SocketIO's test clients over a real SQLite store; the browser side is in
tests/browser/test_private_rooms.py and tests/browser/test_account.py.
"""
import itertools
import re

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from chat.errors import CODES, ChatError
from chat.limits import LoginThrottle, wait_words
from tests.conftest import PASSWORD, Clock, bearer, events

_names = itertools.count(1)



def sign_up(app, name):
    app.extensions["papo"].identity.register(name, PASSWORD)
    return app.extensions["papo"].identity.issue_token(name)["token"]


@pytest.fixture
def world(make_app):
    """owner's private room "secret" with a member in it, both joined over Socket.IO, and an outsider."""
    app = make_app()
    tokens = {role: sign_up(app, role) for role in ("owner", "member", "outsider")}
    socketio = app.extensions["papo"].socketio
    sockets = {role: socketio.test_client(app, auth={"token": token}) for role, token in tokens.items()}
    assert sockets["owner"].emit("create_room", {"room": "secret"}, callback=True)["ok"]
    assert sockets["owner"].emit("invite", {"room": "secret", "user": "member"}, callback=True)["ok"]
    for role in ("owner", "member"):
        assert sockets[role].emit("join", {"room": "secret"}, callback=True)["ok"]
    for socket in sockets.values():
        socket.get_received()
    return app, tokens, sockets


def said(sockets, role, text):
    return sockets[role].emit("message", {"room": "secret", "text": text, "client_id": text}, callback=True)


def test_the_owner_removes_a_member_whose_connections_leave_at_once_and_are_told(world):
    app, tokens, sockets = world
    client = app.test_client()
    answer = client.delete("/api/rooms/secret/members/MEMBER", headers=bearer(tokens["owner"]))
    assert answer.status_code == 200 and answer.get_json() == {"room": "secret", "members": ["owner"]}
    assert events(sockets["member"], "room_removed") == [{"room": "secret", "by": "owner", "reason": "removed"}]
    owner_saw = sockets["owner"].get_received()
    assert {"room": "secret", "owner": "owner", "members": ["owner"]} in [
        e["args"][0] for e in owner_saw if e["name"] == "room_members"]
    assert [e["args"][0]["user"] for e in owner_saw if e["name"] == "presence"] == ["member"]
    assert said(sockets, "owner", "after")["ok"]
    assert events(sockets["member"], "message") == []  # out of the room's channel, not only of its list
    for event, payload in (("join", {"room": "secret"}),
                           ("message", {"room": "secret", "text": "x", "client_id": "y"})):
        assert sockets["member"].emit(event, payload, callback=True)["error"]["code"] in ("forbidden", "not_in_room")
    assert client.get("/api/rooms/secret/messages", headers=bearer(tokens["member"])).status_code == 403
    again = client.delete("/api/rooms/secret/members/member", headers=bearer(tokens["owner"]))
    assert again.status_code == 404 and again.get_json()["error"]["code"] == "not_found"  # not a member any more


def test_a_member_removed_while_their_join_is_under_way_ends_up_outside(world, monkeypatch):
    app, _, sockets = world
    service = app.extensions["papo"].service
    assert sockets["member"].emit("leave", {"room": "secret"}, callback=True)["ok"]
    join = service.presence.join

    def removed_meanwhile(sid, room):  # the owner's removal lands between the check and the entry
        service.store.remove_room_member(room, "member")
        return join(sid, room)

    monkeypatch.setattr(service.presence, "join", removed_meanwhile)
    ack = sockets["member"].emit("join", {"room": "secret"}, callback=True)
    assert ack["ok"] is False and ack["error"]["code"] == "forbidden"
    assert service.presence.members("secret") == ["owner"]
    sockets["member"].get_received()
    assert said(sockets, "owner", "not for you")["ok"]
    assert events(sockets["member"], "message") == []


def test_only_the_owner_removes_and_nobody_removes_the_owner(world):
    app, tokens, _ = world
    client = app.test_client()
    for role, target, code in (("member", "owner", "forbidden"), ("outsider", "member", "forbidden"),
                               ("owner", "owner", "forbidden"), ("owner", "outsider", "not_found"),
                               ("owner", "nobody-at-all", "not_found"), ("owner", "bad name!", "not_found")):
        answer = client.delete(f"/api/rooms/secret/members/{target}", headers=bearer(tokens[role]))
        assert answer.get_json()["error"]["code"] == code, (role, target, answer.get_json())
    assert client.delete("/api/rooms/secret/members/member").status_code == 401
    assert client.get("/api/rooms/secret/members", headers=bearer(tokens["owner"])).get_json()["members"] == [
        "owner", "member"]


def test_a_member_leaves_and_the_owner_may_not(world):
    app, tokens, sockets = world
    client = app.test_client()
    owner_leaves = client.post("/api/rooms/secret/leave", headers=bearer(tokens["owner"]))
    assert owner_leaves.status_code == 403
    left = client.post("/api/rooms/secret/leave", headers=bearer(tokens["member"]))
    assert left.status_code == 200 and left.get_json() == {"room": "secret", "left": True}
    assert events(sockets["member"], "room_removed") == [{"room": "secret", "by": "member", "reason": "left"}]
    assert [e["members"] for e in events(sockets["owner"], "room_members")] == [["owner"]]
    names = [r["name"] for r in client.get("/api/rooms", headers=bearer(tokens["member"])).get_json()["rooms"]]
    assert "secret" not in names
    assert client.post("/api/rooms/secret/leave", headers=bearer(tokens["member"])).status_code == 403
    assert client.post("/api/rooms/general/leave", headers=bearer(tokens["member"])).status_code == 404
    sockets["owner"].emit("join", {"room": "general"}, callback=True)
    public = client.post("/api/rooms/general/leave", headers=bearer(tokens["member"]))
    assert public.status_code == 403 and "public" in public.get_json()["error"]["message"]


def test_the_socket_event_remove_member_with_ones_own_name_leaves(world):
    _, _, sockets = world
    ack = sockets["member"].emit("remove_member", {"room": "secret", "user": "member"}, callback=True)
    assert ack == {"ok": True, "room": "secret", "members": ["owner"]}
    assert events(sockets["member"], "room_removed")[0]["reason"] == "left"


def test_the_owner_deletes_the_room_and_every_member_is_told(world):
    app, tokens, sockets = world
    client = app.test_client()
    assert said(sockets, "member", "a secret")["ok"]
    assert sockets["member"].emit("delete_room", {"room": "secret"}, callback=True)["error"]["code"] == "forbidden"
    assert sockets["owner"].emit("delete_room", {"room": "secret"}, callback=True) == {
        "ok": True, "room": "secret", "deleted": True}
    for role in ("owner", "member"):
        assert events(sockets[role], "room_removed") == [{"room": "secret", "by": "owner", "reason": "deleted"}]
        names = [r["name"] for r in client.get("/api/rooms", headers=bearer(tokens[role])).get_json()["rooms"]]
        assert "secret" not in names
        assert sockets[role].emit("join", {"room": "secret"}, callback=True)["error"]["code"] == "not_found"
        assert client.get("/api/rooms/secret/members", headers=bearer(tokens[role])).status_code == 404
        assert client.get("/api/search?q=secret", headers=bearer(tokens[role])).get_json()["results"] == []
    taken = sockets["outsider"].emit("create_room", {"room": "secret"}, callback=True)
    assert taken["error"]["code"] == "conflict"  # a deleted room's name is never reused
    assert client.delete("/api/rooms/secret", headers=bearer(tokens["owner"])).status_code == 404


ROUTES = [("post", "/api/rooms/{room}/leave"), ("delete", "/api/rooms/{room}/members/{user}"),
          ("delete", "/api/rooms/{room}")]
names = st.one_of(st.sampled_from(["secret", "member", "owner", "general", "-x", "a" * 80, "%2F", "..", "é"]),
                  st.text(alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="/?#%"),
                          min_size=1, max_size=40))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(route=st.sampled_from(ROUTES), room=names, user=names, role=st.sampled_from(["owner", "member", "outsider"]))
def test_bad_input_to_the_new_routes_gets_a_contract_error_never_a_crash(world, route, room, user, role):
    app, tokens, _ = world
    method, path = route
    if room == "secret" and method == "delete" and "{user}" not in path and role == "owner":
        room = "secret2"  # keep the world for the next example
    answer = getattr(app.test_client(), method)(path.format(room=room, user=user), headers=bearer(tokens[role]))
    assert answer.status_code < 500, answer.get_data(as_text=True)
    if answer.status_code >= 400:
        assert answer.get_json()["error"]["code"] in CODES


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(event=st.sampled_from(["remove_member", "delete_room"]),
       payload=st.dictionaries(st.sampled_from(["room", "user"]),
                               st.one_of(st.none(), st.integers(), st.booleans(), names, st.lists(st.integers()))))
def test_bad_payloads_to_the_new_events_get_a_contract_error(world, event, payload):
    _, _, sockets = world
    if event == "delete_room" and payload.get("room") == "secret":
        payload["room"] = "secret2"
    ack = sockets["outsider"].emit(event, payload, callback=True)
    assert ack["ok"] is False and ack["error"]["code"] in CODES and ack["error"]["code"] != "unavailable"


# the password page


def csrf_field(html):
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found is not None
    return found.group(1)


def test_the_password_page_changes_it_ends_other_sessions_and_keeps_this_one(make_app):
    app = make_app()
    other = sign_up(app, "ana")
    browser = app.test_client()
    page = browser.get("/login").get_data(as_text=True)
    assert browser.post("/login", data={"username": "ana", "password": PASSWORD,
                                        "csrf_token": csrf_field(page)}).status_code == 302
    form = browser.get("/password")
    assert form.status_code == 200
    token = csrf_field(form.get_data(as_text=True))
    assert browser.post("/password", data={"current": PASSWORD, "new": "new-pass-123", "confirm": "new"
                                           "-pass-123"}).status_code == 400  # no CSRF token: refused
    wrong = browser.post("/password", data={"current": "not-it-at-all", "new": "new-pass-123",
                                            "confirm": "new-pass-123", "csrf_token": token})
    assert wrong.status_code == 401 and "current password is not right" in wrong.get_data(as_text=True)
    differ = browser.post("/password", data={"current": PASSWORD, "new": "new-pass-123", "confirm": "other-pass",
                                             "csrf_token": token})
    assert differ.status_code == 400 and "differ" in differ.get_data(as_text=True)
    short = browser.post("/password", data={"current": PASSWORD, "new": "short", "confirm": "short",
                                            "csrf_token": token})
    assert short.status_code == 400 and "at least 8" in short.get_data(as_text=True)
    assert app.test_client().get("/api/rooms", headers=bearer(other)).status_code == 200
    done = browser.post("/password", data={"current": PASSWORD, "new": "new-pass-123", "confirm": "new-pass-123",
                                           "csrf_token": token})
    assert done.status_code == 200 and 'id="password-changed"' in done.get_data(as_text=True)
    assert app.test_client().get("/api/rooms", headers=bearer(other)).status_code == 401
    assert browser.get("/api/rooms").status_code == 200 and browser.get("/").status_code == 200
    identity = app.extensions["papo"].identity
    assert identity.authenticate("ana", "new-pass-123") == "ana"


def test_the_password_page_needs_a_login(make_app):
    answer = make_app().test_client().get("/password")
    assert answer.status_code == 302 and "/login" in answer.headers["Location"]


# the login lockout


def test_a_lockout_from_one_address_does_not_lock_the_user_out_from_another():
    clock = Clock()
    throttle = LoginThrottle(3, 0.01, clock=clock)
    throttle.attempt("ana", "10.0.0.1")
    throttle.succeeded("ana", "10.0.0.1")  # ana's usual address
    for _ in range(3):
        throttle.attempt("ana", "203.0.113.9")  # the attacker's three wrong guesses
    with pytest.raises(ChatError) as locked:
        throttle.attempt("ANA", "203.0.113.9")
    assert locked.value.code == "rate_limited" and locked.value.retry_after == 100
    assert "try again in 2 minutes" in locked.value.message
    throttle.attempt("ana", "10.0.0.1")  # ana, at home, is not locked out
    throttle.attempt("ana", "198.51.100.7")  # nor from a third address


def test_guessing_spread_over_many_addresses_never_locks_the_owner_where_they_log_in():
    clock = Clock()
    throttle = LoginThrottle(2, 0.01, user_factor=3, clock=clock)  # a username's own bucket: 6 attempts
    throttle.attempt("ana", "10.0.0.1")
    throttle.succeeded("ana", "10.0.0.1")
    for n in range(6):
        throttle.attempt("ana", f"203.0.113.{n}")
    with pytest.raises(ChatError) as locked:
        throttle.attempt("ana", "203.0.113.99")  # a fresh address: the username's bucket is empty
    assert "addresses it has not logged in from" in locked.value.message
    for _ in range(2):
        throttle.attempt("ana", "10.0.0.1")  # the owner's known address only meets its own bucket
    clock.now += 31 * 86400  # trust ends a month after the last success
    assert not throttle.trusted("ana", "10.0.0.1")


def test_an_address_is_limited_across_usernames_and_a_success_costs_nothing():
    throttle = LoginThrottle(1, 0.01, address_factor=2, clock=Clock())
    for name in ("a", "b"):
        throttle.attempt(name, "10.0.0.1")
    with pytest.raises(ChatError):
        throttle.attempt("c", "10.0.0.1")
    throttle.attempt("c", "10.0.0.2")
    throttle.succeeded("c", "10.0.0.2")
    throttle.attempt("c", "10.0.0.2")


@pytest.mark.parametrize(("seconds", "words"), [(1, "1 second"), (10, "10 seconds"), (59, "59 seconds"),
                                                (60, "1 minute"), (61, "2 minutes"), (240, "4 minutes")])
def test_a_wait_is_said_in_words(seconds, words):
    assert wait_words(seconds) == words


def test_the_login_page_says_when_to_try_again_and_focuses_the_password(make_app):
    app = make_app(LOGIN_BURST=2, LOGIN_PER_SECOND=0.01, WTF_CSRF_ENABLED=False)
    sign_up(app, "ana")
    client = app.test_client()
    first = client.post("/login", data={"username": "ana", "password": "nope-nope"})
    assert first.status_code == 401
    html = first.get_data(as_text=True)
    assert re.search(r'id="password"[^>]*autofocus', html) and not re.search(r'id="username"[^>]*autofocus', html)
    client.post("/login", data={"username": "ana", "password": "nope-nope"})
    locked = client.post("/login", data={"username": "ana", "password": PASSWORD})
    assert locked.status_code == 429 and 61 <= int(locked.headers["Retry-After"]) <= 100  # 100 s less the refill
    assert "There were too many failed logins. Try again in 2 minutes." in locked.get_data(as_text=True)
    elsewhere = client.post("/login", data={"username": "ana", "password": PASSWORD},
                            environ_base={"REMOTE_ADDR": "10.9.9.9"})
    assert elsewhere.status_code == 302
