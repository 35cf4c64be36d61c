"""Hardening through the test clients: limits, login throttling, CSRF, cookies, headers, private rooms, DMs.

docs/security.md names, for each promise, the test here (or in tests/integration/test_hardening.py,
tests/test_fuzz.py, tests/chaos/) that proves it.
"""
import itertools
import re
import threading
import time
from pathlib import Path

import pytest

from chat.security import CONTENT_SECURITY_POLICY
from tests.conftest import PASSWORD, Clock, bearer, events

ROOT = Path(__file__).resolve().parent.parent
_names = itertools.count(1)



def sign_up(app, name=None):
    """Register a user straight through the identity service; (name, token)."""
    name = name or f"u{next(_names)}"
    app.extensions["papo"].identity.register(name, PASSWORD)
    return name, app.extensions["papo"].identity.issue_token(name)["token"]


def socket_for(app, token):
    socket = app.extensions["papo"].socketio.test_client(app, auth={"token": token})
    assert socket.is_connected()
    return socket


def csrf_field(html):
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "no CSRF field on the page"
    return found.group(1)


# abuse: rate limits


def test_the_contract_defaults_allow_a_burst_of_100_then_10_per_second(make_app):
    app = make_app()
    papo = app.extensions["papo"]
    clock = Clock()
    papo.service.limiter.clock = papo.guard.connections.clock = papo.guard.users.clock = clock
    _, token = sign_up(app)
    ana = socket_for(app, token)
    assert ana.emit("join", {"room": "lobby"}, callback=True)["ok"]
    acks = [ana.emit("message", {"room": "lobby", "text": f"m{n}", "client_id": f"b{n}"}, callback=True)
            for n in range(100)]
    assert all(ack["ok"] for ack in acks)
    refused = ana.emit("message", {"room": "lobby", "text": "one too many", "client_id": "over"}, callback=True)
    assert refused["error"]["code"] == "rate_limited" and refused["retry_after"] >= 1
    for second in range(5):  # sustained: 10 a second keep going through
        clock.now += 1.0
        acks = [ana.emit("message", {"room": "lobby", "text": "x", "client_id": f"s{second}-{n}"}, callback=True)
                for n in range(10)]
        assert all(ack["ok"] for ack in acks), acks


def test_every_event_spends_from_its_connection_and_its_user(make_app):
    app = make_app(EVENT_BURST=5, EVENT_PER_SECOND=0.01)  # a user gets twice a connection's share
    _, token = sign_up(app)
    tab1, tab2 = socket_for(app, token), socket_for(app, token)

    def codes(socket, count):
        acks = [socket.emit(event, {"room": "lobby", "typing": True}, callback=True)
                for event in itertools.islice(itertools.cycle(("typing", "history", "no-such-event")), count)]
        assert all(ack["retry_after"] >= 1 for ack in acks if not ack["ok"] and ack["error"]["code"] == "rate_limited")
        return ["rate_limited" if not ack["ok"] and ack["error"]["code"] == "rate_limited" else "ok" for ack in acks]

    assert codes(tab1, 6) == ["ok"] * 5 + ["rate_limited"]  # the connection's share, unknown events included
    assert codes(tab2, 6) == ["ok"] * 5 + ["rate_limited"]
    assert codes(socket_for(app, token), 1) == ["rate_limited"]  # the user's share is spent too
    _, other = sign_up(app)
    assert codes(socket_for(app, other), 1) == ["ok"]  # nobody else is affected


def test_http_routes_answer_429_with_retry_after_per_user_and_per_address(make_app):
    app = make_app(EVENT_BURST=3, EVENT_PER_SECOND=0.01)
    client = app.test_client()
    _, token = sign_up(app)
    answers = [client.get("/api/rooms/lobby/messages", headers=bearer(token)) for _ in range(7)]
    assert [a.status_code for a in answers] == [200] * 6 + [429]
    assert answers[-1].get_json()["error"]["code"] == "rate_limited"
    assert int(answers[-1].headers["Retry-After"]) >= 1
    anonymous = [client.get("/api/rooms") for _ in range(4)]  # keyed by the caller's address
    assert [a.status_code for a in anonymous] == [200, 200, 200, 429]
    assert client.get("/healthz").status_code == 200  # monitors are never refused


def test_a_user_may_open_a_limited_number_of_connections(make_app):
    app = make_app(MAX_CONNECTIONS_PER_USER=2)
    socketio = app.extensions["papo"].socketio
    _, token = sign_up(app)
    first, second = socket_for(app, token), socket_for(app, token)
    third = socketio.test_client(app, auth={"token": token})
    assert not third.is_connected()
    _, other = sign_up(app)
    assert socket_for(app, other).is_connected()
    first.disconnect()
    assert socket_for(app, token).is_connected() and second.is_connected()


def test_a_connection_may_be_in_a_limited_number_of_rooms(make_app):
    app = make_app(MAX_ROOMS_PER_CONNECTION=3)
    _, token = sign_up(app)
    tab = socket_for(app, token)
    for room in ("r1", "r2", "r3"):
        assert tab.emit("join", {"room": room}, callback=True)["ok"]
    refused = tab.emit("join", {"room": "r4"}, callback=True)
    assert refused["error"]["code"] == "forbidden" and "at most 3 rooms" in refused["error"]["message"]
    assert tab.emit("join", {"room": "r2"}, callback=True)["ok"]  # joining again is no new room
    tab.emit("leave", {"room": "r1"}, callback=True)
    assert tab.emit("join", {"room": "r4"}, callback=True)["ok"]


def test_long_polls_are_capped_in_time_and_in_number(make_app):
    app = make_app(MAX_CONNECTIONS_PER_USER=2)
    _, token = sign_up(app)
    client = app.test_client()
    too_long = client.get("/api/rooms/lobby/poll?after=0&timeout=31", headers=bearer(token))
    assert too_long.status_code == 400 and too_long.get_json()["error"]["code"] == "invalid_payload"
    answers = []
    polls = [threading.Thread(target=lambda: answers.append(
        app.test_client().get("/api/rooms/lobby/poll?after=0&timeout=2", headers=bearer(token)).status_code))
        for _ in range(2)]
    for poll in polls:
        poll.start()
    time.sleep(0.5)
    third = client.get("/api/rooms/lobby/poll?after=0&timeout=2", headers=bearer(token))
    assert third.status_code == 429 and third.headers["Retry-After"] == "1"
    for poll in polls:
        poll.join(5)
    assert answers == [200, 200]
    assert client.get("/api/rooms/lobby/poll?after=0&timeout=0", headers=bearer(token)).status_code == 200


# abuse: password guessing


def test_failed_logins_are_throttled_per_user(make_app):
    app = make_app(LOGIN_BURST=3, LOGIN_PER_SECOND=0.01)
    client = app.test_client()
    name, _ = sign_up(app)
    wrong = [client.post("/api/tokens", json={"username": name, "password": "guess-guess"}) for _ in range(3)]
    assert [a.status_code for a in wrong] == [401, 401, 401]
    locked = client.post("/api/tokens", json={"username": name.upper(), "password": PASSWORD})
    assert locked.status_code == 429 and locked.get_json()["error"]["code"] == "rate_limited"
    assert int(locked.headers["Retry-After"]) >= 1
    other, _ = sign_up(app)
    assert client.post("/api/tokens", json={"username": other, "password": PASSWORD}).status_code == 200


def test_failed_logins_are_throttled_per_address_and_successes_cost_nothing(make_app):
    app = make_app(LOGIN_BURST=2, LOGIN_PER_SECOND=0.01)  # an address gets five times the user's burst
    client = app.test_client()
    name, _ = sign_up(app)
    for _ in range(20):
        assert client.post("/api/tokens", json={"username": name, "password": PASSWORD}).status_code == 200
    guesses = [client.post("/api/tokens", json={"username": f"ghost{n}", "password": "guess-guess"}).status_code
               for n in range(11)]
    assert guesses == [401] * 10 + [429]
    from_elsewhere = client.post("/api/tokens", json={"username": "ghost99", "password": "guess-guess"},
                                 environ_base={"REMOTE_ADDR": "10.1.2.3"})
    assert from_elsewhere.status_code == 401


def test_the_login_page_is_throttled_too(make_app):
    app = make_app(LOGIN_BURST=2, LOGIN_PER_SECOND=0.01, WTF_CSRF_ENABLED=False)
    client = app.test_client()
    name, _ = sign_up(app)
    for _ in range(2):
        assert client.post("/login", data={"username": name, "password": "nope-nope"}).status_code == 401
    page = client.post("/login", data={"username": name, "password": PASSWORD})
    assert page.status_code == 429 and int(page.headers["Retry-After"]) >= 1
    assert "too many failed logins" in page.get_data(as_text=True)


# access: private rooms


@pytest.fixture
def world(make_app):
    """owner with a private room "secret", a member invited to it, and an outsider."""
    app = make_app()
    names = {role: sign_up(app, role) for role in ("owner", "member", "outsider")}
    sockets = {role: socket_for(app, token) for role, (_, token) in names.items()}
    assert sockets["owner"].emit("create_room", {"room": "secret"}, callback=True) == {
        "ok": True, "room": "secret", "private": True, "owner": "owner", "members": ["owner"]}
    invited = sockets["owner"].emit("invite", {"room": "secret", "user": "MEMBER"}, callback=True)
    assert invited == {"ok": True, "room": "secret", "members": ["owner", "member"]}
    assert events(sockets["member"], "invited") == [{"room": "secret", "by": "owner"}]
    assert sockets["owner"].emit("join", {"room": "secret"}, callback=True)["ok"]
    assert sockets["owner"].emit("message", {"room": "secret", "text": "psst", "client_id": "p1"}, callback=True)["ok"]
    return app, names, sockets


def test_outsiders_are_forbidden_everything_in_a_private_room(world):
    app, names, sockets = world
    outsider, client = sockets["outsider"], app.test_client()
    headers = bearer(names["outsider"][1])
    for event, payload in (("join", {"room": "secret"}), ("join", {"room": "secret", "since": 0}),
                           ("history", {"room": "secret"}),
                           ("message", {"room": "secret", "text": "let me in", "client_id": "x"})):
        ack = outsider.emit(event, payload, callback=True)
        assert ack["ok"] is False and ack["error"]["code"] in ("forbidden", "not_in_room"), (event, ack)
    assert outsider.emit("join", {"room": "secret"}, callback=True)["error"]["code"] == "forbidden"
    for method, path, body in (("get", "/api/rooms/secret/messages?after=0", None),
                               ("post", "/api/rooms/secret/messages", {"text": "hi", "client_id": "h"}),
                               ("get", "/api/rooms/secret/poll?after=0&timeout=0", None),
                               ("get", "/api/rooms/secret/members", None),
                               ("post", "/api/rooms/secret/members", {"user": "outsider"})):
        answer = getattr(client, method)(path, json=body, headers=headers)
        assert answer.status_code == 403 and answer.get_json()["error"]["code"] == "forbidden", path
    assert not events(outsider, "message")
    stored = app.extensions["papo"].store.messages_after("secret", 0, 10)
    assert [m["text"] for m in stored] == ["psst"]


def test_members_get_everything_and_only_members_see_the_room_listed(world):
    app, names, sockets = world
    member, client = sockets["member"], app.test_client()
    joined = member.emit("join", {"room": "secret", "since": 0}, callback=True)
    assert joined["ok"] and [m["text"] for m in joined["messages"]] == ["psst"]
    assert member.emit("message", {"room": "secret", "text": "hello", "client_id": "m1"}, callback=True)["ok"]
    headers = bearer(names["member"][1])
    assert [m["text"] for m in client.get("/api/rooms/secret/messages?after=0", headers=headers)
            .get_json()["messages"]] == ["psst", "hello"]
    assert client.get("/api/rooms/secret/poll?after=1&timeout=0", headers=headers).get_json()["messages"][0][
        "text"] == "hello"
    assert client.get("/api/rooms/secret/members", headers=headers).get_json() == {
        "room": "secret", "private": True, "owner": "owner", "members": ["owner", "member"]}
    listed = client.get("/api/rooms", headers=headers).get_json()["rooms"]
    [secret] = [room for room in listed if room["name"] == "secret"]
    assert {"members": 2, "last_seq": 2, "private": True}.items() <= secret.items()  # read state adds fields
    assert all(room["name"] != "secret" for room in client.get(
        "/api/rooms", headers=bearer(names["outsider"][1])).get_json()["rooms"])
    assert all(room["name"] != "secret" for room in client.get("/api/rooms").get_json()["rooms"])


def test_only_the_owner_invites_and_names_in_use_are_refused(world):
    app, names, sockets = world
    assert sockets["member"].emit("invite", {"room": "secret", "user": "outsider"}, callback=True)[
        "error"]["code"] == "forbidden"
    assert sockets["owner"].emit("invite", {"room": "secret", "user": "nobody"}, callback=True)[
        "error"]["code"] == "not_found"
    assert sockets["owner"].emit("invite", {"room": "nowhere", "user": "member"}, callback=True)[
        "error"]["code"] == "not_found"
    assert sockets["outsider"].emit("create_room", {"room": "secret"}, callback=True)["error"]["code"] == "conflict"
    sockets["outsider"].emit("join", {"room": "busy"}, callback=True)  # present, though nothing is stored yet
    assert sockets["owner"].emit("create_room", {"room": "busy"}, callback=True)["error"]["code"] == "conflict"
    client = app.test_client()
    sockets["outsider"].emit("message", {"room": "busy", "text": "public now", "client_id": "b"}, callback=True)
    answer = client.post("/api/rooms", json={"name": "busy"}, headers=bearer(names["owner"][1]))
    assert answer.status_code == 409
    answer = client.post("/api/rooms", json={"name": "quiet", "private": True}, headers=bearer(names["owner"][1]))
    assert answer.status_code == 201 and answer.get_json()["owner"] == "owner"
    answer = client.post("/api/rooms/quiet/members", json={"user": "member"}, headers=bearer(names["owner"][1]))
    assert answer.status_code == 200 and answer.get_json()["members"] == ["owner", "member"]
    assert client.post("/api/rooms", json={"name": "x"}).status_code == 401


# access: direct messages


def test_direct_messages_and_their_history_reach_only_their_two_users(make_app):
    app = make_app()
    (ana, ana_token), (bo, bo_token), (cy, cy_token) = (sign_up(app, n) for n in ("ana", "bo", "cy"))
    sockets = {name: socket_for(app, token) for name, token in (("ana", ana_token), ("bo", bo_token),
                                                                 ("cy", cy_token))}
    for n in range(3):
        assert sockets["ana"].emit("direct", {"to": "BO", "text": f"to bo {n}", "client_id": f"d{n}"},
                                   callback=True)["ok"]
    assert sockets["cy"].emit("direct", {"to": "ana", "text": "to ana", "client_id": "c"}, callback=True)["ok"]
    assert len(events(sockets["bo"], "direct")) == 3
    assert [m["text"] for m in events(sockets["cy"], "direct")] == ["to ana"]
    history = sockets["bo"].emit("direct_history", {"with": "ana"}, callback=True)
    assert [m["text"] for m in history["messages"]] == ["to bo 0", "to bo 1", "to bo 2"]
    assert history["has_more"] is False
    older = sockets["ana"].emit("direct_history", {"with": "bo", "before": history["messages"][2]["id"],
                                                   "limit": 1}, callback=True)
    assert [m["text"] for m in older["messages"]] == ["to bo 1"] and older["has_more"] is True
    assert [m["text"] for m in sockets["cy"].emit("direct_history", {"with": "bo"}, callback=True)["messages"]] == []
    assert [m["text"] for m in sockets["cy"].emit("direct_history", {"with": "ana"}, callback=True)["messages"]] == [
        "to ana"]
    assert sockets["cy"].emit("direct_history", {"with": "nobody"}, callback=True)["error"]["code"] == "not_found"
    client = app.test_client()
    assert len(client.get("/api/directs/ana", headers=bearer(bo_token)).get_json()["messages"]) == 3
    assert client.get("/api/directs/bo", headers=bearer(cy_token)).get_json() | {"with": None} == {
        "with": None, "messages": [], "has_more": False, "last_read": 0, "unread": 0, "peer_last_read": 0}
    assert client.get("/api/directs/bo").status_code == 401


# access: CSRF, cookies and headers


def test_forms_need_the_csrf_token_of_the_session(make_app):
    app = make_app()
    name, _ = sign_up(app)
    client = app.test_client()
    forged = client.post("/login", data={"username": name, "password": PASSWORD})
    assert forged.status_code == 400 and "session" not in _cookie_names(client)
    token = csrf_field(client.get("/login").get_data(as_text=True))
    assert client.post("/login", data={"username": name, "password": PASSWORD, "csrf_token": "x" + token}
                       ).status_code == 400
    logged_in = client.post("/login", data={"username": name, "password": PASSWORD, "csrf_token": token})
    assert logged_in.status_code == 302
    lobby = client.get("/").get_data(as_text=True)
    assert client.post("/logout").status_code == 400  # a forged logout does nothing
    assert client.get("/").status_code == 200
    assert client.post("/logout", data={"csrf_token": csrf_field(lobby)}).status_code == 302
    assert client.get("/").status_code == 302
    register = client.post("/register", data={"username": "newbie", "password": PASSWORD, "confirm": PASSWORD})
    assert register.status_code == 400 and app.extensions["papo"].store.find_user("newbie") is None


def test_the_json_api_cannot_be_posted_from_a_foreign_form(make_app):
    app = make_app(WTF_CSRF_ENABLED=False)
    name, _ = sign_up(app)
    client = app.test_client()
    with client.session_transaction() as session:
        session.update(client.application.extensions["papo"].identity.open_cookie(name))
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data"):
        answer = client.post("/api/rooms/lobby/messages", data='{"text": "forged", "client_id": "f"}',
                             content_type=content_type)
        assert answer.status_code == 400, content_type
    assert app.extensions["papo"].store.messages_after("lobby", 0, 10) == []


def _cookie_names(client):
    return {cookie.key for cookie in client._cookies.values()}


def _session_cookie(response):
    return next(value for value in response.headers.getlist("Set-Cookie") if value.startswith("session="))


@pytest.mark.parametrize("mode, base_url, secure", [
    ("auto", "http://localhost", False), ("auto", "https://localhost", True),
    ("always", "http://localhost", True), ("never", "https://localhost", False)])
def test_the_session_cookie_is_httponly_samesite_and_secure_over_https(make_app, mode, base_url, secure):
    app = make_app(SECURE_COOKIES=mode, WTF_CSRF_ENABLED=False)
    name, _ = sign_up(app)
    client = app.test_client()
    answer = client.post("/login", data={"username": name, "password": PASSWORD}, base_url=base_url)
    cookie = _session_cookie(answer)
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert ("Secure" in cookie) is secure
    assert ("Strict-Transport-Security" in answer.headers) is base_url.startswith("https")


def test_behind_a_trusted_proxy_its_forwarded_scheme_and_address_count(make_app):
    app = make_app(PROXY_COUNT=1, LOGIN_BURST=1, LOGIN_PER_SECOND=0.01, WTF_CSRF_ENABLED=False)
    name, _ = sign_up(app)
    client = app.test_client()
    answer = client.post("/login", data={"username": name, "password": PASSWORD},
                         headers={"X-Forwarded-Proto": "https", "X-Forwarded-For": "10.0.0.1"})
    assert "Secure" in _session_cookie(answer)
    throttled = [client.post("/api/tokens", json={"username": f"ghost{n}", "password": "guess-guess"},
                             headers={"X-Forwarded-For": "10.0.0.2"}).status_code for n in range(6)]
    assert throttled == [401] * 5 + [429]
    assert client.post("/api/tokens", json={"username": "ghost", "password": "guess-guess"},
                       headers={"X-Forwarded-For": "10.0.0.3"}).status_code == 401


@pytest.mark.parametrize("path", ["/login", "/register", "/", "/room/general", "/dm/bo", "/api/rooms",
                                  "/api/nothing-here", "/healthz"])
def test_every_answer_carries_the_security_headers(make_app, path):
    app = make_app()
    name, _ = sign_up(app)
    client = app.test_client()
    with client.session_transaction() as session:
        session.update(client.application.extensions["papo"].identity.open_cookie(name))
    answer = client.get(path)
    assert answer.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert "script-src 'self'" in CONTENT_SECURITY_POLICY and "unsafe-inline" not in CONTENT_SECURITY_POLICY
    assert "frame-ancestors 'none'" in CONTENT_SECURITY_POLICY
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert answer.headers["X-Frame-Options"] == "DENY"
    assert answer.headers["Referrer-Policy"] == "same-origin"


INLINE = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>|<style\b|\sstyle=|\son[a-z]+=|javascript:", re.I)


def test_no_page_needs_inline_script_or_style(make_app):
    app = make_app()
    name, _ = sign_up(app)
    sign_up(app, "bo")  # a DM page is for a user who exists
    client = app.test_client()
    pages = [client.get("/login"), client.get("/register")]
    with client.session_transaction() as session:
        session.update(client.application.extensions["papo"].identity.open_cookie(name))
    pages += [client.get(path) for path in ("/", "/room/general", "/dm/bo")]
    for template in sorted((ROOT / "templates").glob("*.html")):
        assert not INLINE.search(template.read_text()), template.name
    for page in pages:
        assert page.status_code == 200
        assert not INLINE.search(page.get_data(as_text=True))
    for script in (ROOT / "static" / "js").glob("*.js"):
        source = script.read_text()
        assert "eval(" not in source and "new Function" not in source and "setAttribute(\"style\"" not in source
        assert ".innerHTML" not in source and "insertAdjacentHTML" not in source, script.name
