"""Sessions through the test clients: 401 for a dead identity, cookie rotation, refresh, the sweeper, bad payloads."""
import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chat import auth
from chat.auth import Identity
from chat.sessions import CACHE_SECONDS, TRUST_SECONDS, Fanout, Lifetimes, Session, Sessions
from chat.store.queries import SessionRow
from chat.store.recent import RoomCounters
from tests.conftest import PASSWORD, bearer
from tests.needs import need_program


def cookie_of(client):
    with client.session_transaction() as session:
        return dict(session)


def log_in(client, name):
    return client.post("/login", data={"username": name, "password": PASSWORD})


@pytest.mark.parametrize("path", ["/api/rooms", "/api/notifications", "/api/rooms/lobby/messages"])
def test_a_refused_bearer_is_401_never_anonymous(client, user, path):
    name, token = user()
    assert client.get("/api/rooms", headers=bearer("forged.token.x")).status_code == 401
    assert client.post("/api/logout", headers=bearer(token)).status_code == 204
    answer = client.get(path, headers=bearer(token))
    assert answer.status_code == 401 and answer.get_json()["error"]["code"] == "unauthorized"
    assert client.get("/api/rooms").status_code == 200  # no identity at all: anonymous, as before


def test_the_cookie_is_rotated_at_login_and_refused_after_logout(client, user):
    name, _ = user()
    log_in(client, name)
    first = cookie_of(client)
    log_in(client, name)
    second = cookie_of(client)
    assert first["sid"] != second["sid"] and first["user"] == second["user"] == name
    assert client.get("/api/rooms").status_code == 200
    client.post("/logout")
    assert "user" not in cookie_of(client)
    with client.session_transaction() as session:  # a copy of the cookie taken before the logout
        session.update(second)
    assert client.get("/api/rooms").status_code == 401
    page = client.get("/room/general")
    assert page.status_code == 302 and page.headers["Location"] == "/login?ended=unauthorized&next=/room/general"
    assert "user" not in cookie_of(client)
    assert "You were signed out" in client.get(page.headers["Location"]).get_data(as_text=True)
    with client.session_transaction() as session:
        session.update(second)
    again = client.get("/login?ended=revoked")  # the page the browser goes to on session_ended
    assert again.status_code == 302 and again.headers["Location"] == "/login?ended=revoked"
    assert "this session was ended" in client.get(again.headers["Location"]).get_data(as_text=True)


def test_api_logout_clears_a_cookie_session(client, user):
    name, _ = user()
    log_in(client, name)
    assert client.post("/api/logout").status_code == 204
    assert "user" not in cookie_of(client)
    assert client.post("/api/logout").get_json()["error"]["code"] == "unauthorized"


def test_a_logout_ends_the_socket_of_that_session_only(app, papo, user, connect):
    name, token = user()
    other = papo.identity.issue_token(name)["token"]
    gone, kept = connect(token), connect(other)
    assert app.test_client().post("/api/logout", headers=bearer(token)).status_code == 204
    assert not gone.is_connected() and kept.is_connected()  # the codes: tests/integration/test_sessions.py


def test_a_refresh_rebinds_the_connection_to_the_new_token(app, papo, user, connect):
    name, token = user()
    _, stranger = user()
    socket = connect(token)
    refused = socket.emit("refresh", {"token": stranger}, callback=True)
    assert refused["ok"] is False and refused["error"]["code"] == "unauthorized"
    fresh = app.test_client().post("/api/tokens/refresh", headers=bearer(token)).get_json()
    assert set(fresh) == {"token", "expires_in"}
    assert socket.emit("refresh", {"token": fresh["token"]}, callback=True) == {"ok": True, "expires_in": 86400}
    # the refreshed token names the same session, moved on: ending it ends both tokens and the connection
    assert papo.identity.sessions.live.session_of(_sid(papo, name)) == papo.identity.session_for_token(token)
    assert app.test_client().post("/api/logout", headers=bearer(fresh["token"])).status_code == 204
    assert not socket.is_connected()
    assert app.test_client().get("/api/rooms", headers=bearer(token)).status_code == 401


def _sid(papo, name):
    return next(sid for sid, session in papo.identity.sessions.live.bound.items() if session.user == name)


def test_the_password_change_keeps_this_session_and_ends_the_others(app, papo, user, connect):
    name, here = user()
    elsewhere = papo.identity.issue_token(name)["token"]
    kept, dropped = connect(here), connect(elsewhere)
    http = app.test_client()
    wrong = http.post("/api/users/me/password", json={"old": "wrong-one", "new": "another-pass"}, headers=bearer(here))
    assert wrong.status_code == 401
    short = http.post("/api/users/me/password", json={"old": PASSWORD, "new": "short"}, headers=bearer(here))
    assert short.status_code == 400
    assert http.post("/api/users/me/password", json={"old": PASSWORD, "new": "another-pass"},
                     headers=bearer(here)).status_code == 204
    assert kept.is_connected() and not dropped.is_connected()
    assert http.get("/api/rooms", headers=bearer(elsewhere)).status_code == 401
    assert http.get("/api/rooms", headers=bearer(here)).status_code == 200


@pytest.mark.parametrize("settings", [{"ADMIN_USERS": "boss", "NOTIFY_TOKEN": "n" * 20}])
def test_only_an_admin_or_a_backend_disconnects_a_user(app, papo, user, connect):
    name, token = user()
    _, boss = user("boss")
    socket = connect(token)
    http = app.test_client()
    assert http.post(f"/api/users/{name}/disconnect", headers=bearer(token)).status_code == 403
    assert http.post(f"/api/users/{name}/disconnect").status_code == 401
    answer = http.post(f"/api/users/{name}/disconnect", headers=bearer(boss))
    assert answer.get_json() == {"disconnected": 1} and not socket.is_connected()
    again = connect(token)
    answer = http.post(f"/api/users/{name}/disconnect", json={"revoke": True}, headers=bearer("n" * 20))
    assert answer.get_json() == {"disconnected": 1} and not again.is_connected()
    assert http.get("/api/rooms", headers=bearer(token)).status_code == 401
    deep = http.post(f"/api/users/{name}/disconnect", data="[" * 100_000, content_type="application/json",
                     headers=bearer(boss))  # nested deeper than the JSON decoder goes: no revoke asked for
    assert deep.status_code == 200 and deep.get_json() == {"disconnected": 0}


class FakeServer:
    def __init__(self):
        self.sent = []

    def emit(self, event, data, to, namespace, ignore_queue):
        self.sent.append((event, to, data))

    def disconnect(self, sid, namespace, ignore_queue):
        self.sent.append(("disconnect", sid, None))


def test_the_sweeper_warns_a_tenth_of_the_ttl_before_and_ends_at_expiry():
    now = [1000.0]
    server = FakeServer()
    lifetimes = Lifetimes(server, 5, spawn=lambda task: None, sleep=lambda s: None, clock=lambda: now[0])
    lifetimes.bind("a", Session("s1", "ana", 1005.0))
    lifetimes.bind("b", Session("s2", "bo", 1005.0))
    lifetimes.bind("b", Session("s3", "bo", 1010.0))  # b refreshed: its old deadlines do not count
    now[0] = 1004.6
    lifetimes.tick()
    assert server.sent == [("auth_expiring", "a", {"expires_in": 1})]
    now[0] = 1005.0
    lifetimes.tick()
    ended = {"code": "token_expired", "message": "your sign-in expired; sign in again"}
    assert server.sent[1:] == [("session_ended", "a", ended), ("disconnect", "a", None)]
    now[0] = 1010.0
    lifetimes.tick()
    assert [event for event, to, _ in server.sent[3:]] == ["auth_expiring", "session_ended", "disconnect"]
    assert lifetimes.bound == {}


def test_the_warning_comes_a_minute_before_a_long_expiry():
    lifetimes = Lifetimes(FakeServer(), 86400, spawn=lambda task: None, sleep=lambda s: None)
    assert lifetimes.warn == 60


anything = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=30),
                        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                                   max_size=3), max_leaves=8)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payload=anything | st.fixed_dictionaries({"token": anything}))
def test_refresh_refuses_any_bad_payload_and_keeps_the_connection(papo, user, connect, payload):
    if not hasattr(papo, "fuzz"):  # the fixtures live as long as the test, across its examples
        name, token = user()
        papo.fuzz = name, connect(token)
    name, socket = papo.fuzz
    ack = socket.emit("refresh", payload, callback=True)
    assert ack["ok"] is False and ack["error"]["code"] in ("unauthorized", "invalid_payload")
    assert socket.is_connected() and papo.identity.sessions.live.session_of(_sid(papo, name)).user == name


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(route=st.sampled_from(["/api/users/me/password", "/api/users/someone/disconnect", "/api/tokens/refresh"]),
       body=anything, raw=st.binary(max_size=40))
def test_the_session_routes_answer_any_body_without_a_server_error(app, route, body, raw):
    http = app.test_client()
    for data in (json.dumps(body), raw):
        answer = http.post(route, data=data, content_type="application/json", headers=bearer("forged.x.y"))
        assert answer.status_code == 401 and answer.get_json()["error"]["code"] == "unauthorized"


def test_the_audit_log_names_who_and_never_a_secret(client, user, caplog):
    name, token = user()
    with caplog.at_level(logging.INFO, logger="papo.audit"):
        client.post("/api/tokens", json={"username": name, "password": "a-wrong-password"})
        issued = client.post("/api/tokens", json={"username": name, "password": PASSWORD}).get_json()["token"]
        client.post("/api/tokens/refresh", headers=bearer(issued))
        client.post("/api/sessions/revoke", headers=bearer(issued))
    lines = [json.loads(record.getMessage()) for record in caplog.records if record.name == "papo.audit"]
    assert {"login_failed", "login", "refresh", "revoke"} <= {line["audit"] for line in lines}
    assert all(line["user"] == name and line["address"] for line in lines if line["audit"] != "session_ended")
    text = caplog.text
    for secret in (PASSWORD, "a-wrong-password", token, issued):
        assert secret not in text
    assert all(len(line["session"] or "") <= 8 for line in lines)


def audit_lines(caplog):
    return [json.loads(record.getMessage()) for record in caplog.records if record.name == "papo.audit"]


def test_a_refused_origin_is_audited(client, caplog):
    with caplog.at_level(logging.INFO, logger="papo.audit"):
        foreign = client.get("/socket.io/?EIO=4&transport=polling", headers={"Origin": "https://evil.example"})
        own = client.get("/socket.io/?EIO=4&transport=polling", headers={"Origin": "http://localhost"})
        none = client.get("/socket.io/?EIO=4&transport=polling")  # a client that is not a browser
    assert foreign.status_code == 400 and own.status_code == 200 and none.status_code == 200
    assert [(line["audit"], line["reason"]) for line in audit_lines(caplog)] == [
        ("origin_refused", "https://evil.example")]


@pytest.mark.parametrize("settings", [{"RATE_BURST": 1, "RATE_PER_SECOND": 0.001}])
def test_a_rate_limit_refusal_is_audited(client, caplog):
    with caplog.at_level(logging.INFO, logger="papo.audit"):
        answers = [client.get("/api/rooms").status_code for _ in range(6)]
    assert 429 in answers
    assert ("rate_limited", "GET /api/rooms") in [(line["audit"], line["reason"]) for line in audit_lines(caplog)]


@pytest.mark.parametrize("settings", [{"NOTIFY_TOKEN": "n" * 20}])
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(old=anything, new=anything, body=anything)
def test_signed_in_callers_get_a_contract_answer_for_any_body(app, papo, user, old, new, body):
    if not hasattr(papo, "caller"):
        papo.caller = user()
    name, token = papo.caller
    http = app.test_client()
    changed = http.post("/api/users/me/password", json={"old": old, "new": new}, headers=bearer(token))
    assert changed.get_json()["error"]["code"] in ("invalid_payload", "unauthorized", "rate_limited")
    kept = http.post(f"/api/users/{name}-other/disconnect", json=body, headers=bearer("n" * 20))
    assert kept.status_code == 200 and kept.get_json() == {"disconnected": 0}
    assert http.get("/api/rooms", headers=bearer(token)).status_code == 200


class FakeSessionStore:
    """The session rows Sessions reads, counting the reads; `during_read` runs inside the next one."""

    def __init__(self):
        self.rows = {}
        self.reads = 0
        self.during_read: Callable[[], None] | None = None
        self.recent = None  # not a claimed SQLite file: only a fan-out makes Sessions trust memory

    def find_session(self, session_id):
        self.reads += 1
        row = self.rows.get(session_id)
        during, self.during_read = self.during_read, None
        if during is not None:
            during()
        return row


class Listening:
    def __init__(self):
        self.now = True

    def listening(self):
        return self.now

    def publish(self, message):
        return 0


def test_a_process_that_hears_every_revocation_reads_a_session_once_and_forgets_it_when_revoked(monkeypatch):
    store, clock = FakeSessionStore(), [1000.0]
    sessions = Sessions(store, 60, clock=lambda: clock[0])
    fanout = Listening()
    sessions.fanout = fanout  # type: ignore[assignment]
    monotonic = [0.0]
    monkeypatch.setattr("chat.sessions.time.monotonic", lambda: monotonic[0])
    store.rows["s1"] = SessionRow("ana", 1_060_000, None)
    assert sessions.check("s1") == Session("s1", "ana", 1060.0)
    monotonic[0] += 100 * CACHE_SECONDS
    assert sessions.check("s1") is not None and store.reads == 1  # remembered: no read per connect
    store.rows["s1"] = SessionRow("ana", 1_060_000, 1)  # revoked by another process, which publishes it
    sessions.heard({"user": "ana", "code": "revoked", "ids": None, "keep": None, "revoked": True})
    assert sessions.check("s1") is None and store.reads == 2
    fanout.now = False  # not listening: what was read lives a second, as without a fan-out
    store.rows["s2"] = SessionRow("ana", 1_060_000, None)
    assert sessions.check("s2") is not None
    store.rows["s2"] = SessionRow("ana", 1_060_000, 1)
    assert sessions.check("s2") is not None  # within the second
    monotonic[0] += CACHE_SECONDS
    assert sessions.check("s2") is None


def test_a_read_overtaken_by_a_revocation_is_not_remembered():
    store = FakeSessionStore()
    sessions = Sessions(store, 60, clock=lambda: 1000.0)
    fanout = Listening()
    sessions.fanout = fanout  # type: ignore[assignment]
    store.rows["s1"] = SessionRow("ana", 1_060_000, None)

    def revoked_meanwhile():
        store.rows["s1"] = SessionRow("ana", 1_060_000, 1)
        sessions.forget("ana", ["s1"])

    store.during_read = revoked_meanwhile
    assert sessions.check("s1") is not None  # the row as it was read
    assert sessions.check("s1") is None  # not kept: read again


def test_a_session_that_seems_expired_is_read_again_a_refresh_may_have_moved_it(monkeypatch):
    store, clock = FakeSessionStore(), [1000.0]
    sessions = Sessions(store, 60, clock=lambda: clock[0])
    fanout = Listening()
    sessions.fanout = fanout  # type: ignore[assignment]
    monotonic = [0.0]
    monkeypatch.setattr("chat.sessions.time.monotonic", lambda: monotonic[0])
    store.rows["s1"] = SessionRow("ana", 1_060_000, None)
    assert sessions.check("s1") is not None
    store.rows["s1"] = SessionRow("ana", 1_120_000, None)  # refreshed on another process
    clock[0], monotonic[0] = 1061.0, 61.0
    assert sessions.check("s1") == Session("s1", "ana", 1120.0) and store.reads == 2


class CountingSerializer:
    """itsdangerous's serializer, counting the signatures it checks."""

    def __init__(self, inner):
        self.inner = inner
        self.checked = 0

    def dumps(self, obj):
        return self.inner.dumps(obj)

    def loads(self, token, **kwargs):
        self.checked += 1
        return self.inner.loads(token, **kwargs)


def token_identity(monkeypatch, now):
    """An Identity over the fake store, its tokens' TTL 60 s, its clock (and itsdangerous's) at now[0]."""
    monkeypatch.setattr("time.time", lambda: now[0])
    store = FakeSessionStore()

    def add_session(session_id, user, *_):
        store.rows[session_id] = SessionRow(user, int((now[0] + 60) * 1000), None)

    store.add_session = add_session  # type: ignore[attr-defined]
    identity = Identity(store, "k" * 32, 60, sessions=Sessions(store, 60, clock=lambda: now[0]))
    identity._tokens = CountingSerializer(identity._tokens)  # type: ignore[assignment]
    return identity, store


def test_a_token_s_signature_is_checked_once_and_its_age_every_time(monkeypatch):
    now = [1_000_000.0]
    identity, store = token_identity(monkeypatch, now)
    token = identity.issue_token("ana")["token"]
    assert identity.user_for_token(token) == "ana"
    assert identity.user_for_token(token) == "ana" and identity._tokens.checked == 1
    now[0] -= 1
    assert identity.user_for_token(token) is None  # signed in the future (a clock set back): refused
    now[0] += 1
    assert identity.user_for_token(token) == "ana" and identity._tokens.checked == 2
    store.rows = {sid: row._replace(expires_at=10**13) for sid, row in store.rows.items()}  # refreshed elsewhere
    identity.sessions.forget(None)
    now[0] += 60
    assert identity.user_for_token(token) == "ana"  # itsdangerous's bound: an age of max_age still holds
    now[0] += 1
    assert identity.user_for_token(token) is None  # the token is too old, remembered or not
    assert identity.user_for_token(token) is None and identity._tokens.checked == 3


def test_a_remembered_token_of_a_revoked_session_is_refused(monkeypatch):
    now = [1_000_000.0]
    identity, store = token_identity(monkeypatch, now)
    token = identity.issue_token("ana")["token"]
    assert identity.user_for_token(token) == "ana"
    (session_id,) = store.rows
    store.rows[session_id] = store.rows[session_id]._replace(revoked_at=1)
    identity.sessions.forget("ana")
    assert identity.user_for_token(token) is None and identity._tokens.checked == 1


def test_forged_tokens_are_never_remembered_and_the_memory_is_bounded(monkeypatch):
    now = [1_000_000.0]
    identity, _ = token_identity(monkeypatch, now)
    token = identity.issue_token("ana")["token"]
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    for _ in range(3):
        assert identity.user_for_token(forged) is None
    assert identity._tokens.checked == 3 and forged not in identity._verified
    monkeypatch.setattr(auth, "VERIFIED_TOKENS", 2)
    tokens = [identity.issue_token(name)["token"] for name in ("a", "b", "c")]
    assert [identity.user_for_token(t) for t in tokens] == ["a", "b", "c"]
    assert len(identity._verified) <= 2 and identity.user_for_token(tokens[0]) == "a"


def test_extending_a_session_moves_its_connections_and_their_old_deadlines_do_not_count():
    now = [1000.0]
    server = FakeServer()
    lifetimes = Lifetimes(server, 5, spawn=lambda task: None, sleep=lambda s: None, clock=lambda: now[0])
    lifetimes.bind("a", Session("s1", "ana", 1005.0))
    lifetimes.bind("/monitor a2", Session("s1", "ana", 1005.0))
    lifetimes.extend(Session("s1", "ana", 1010.0))
    now[0] = 1005.0
    lifetimes.tick()
    assert server.sent == [] and set(lifetimes.bound) == {"a", "/monitor a2"}
    now[0] = 1010.0
    lifetimes.tick()
    assert [event for event, _, _ in server.sent].count("session_ended") == 2 and lifetimes.bound == {}


def test_room_counters_loaded_whole_answer_0_for_the_missing_until_a_table_overflows():
    counters = RoomCounters(size=2)
    assert counters.last_rev("a") is None and counters.last_read("a", "ana") is None
    assert counters.load({"a": 3}, {("a", "ana"): 2})
    assert counters.last_rev("a") == 3 and counters.last_rev("new") == 0
    assert counters.last_read("a", "ANA") == 2 and counters.last_read("a", "bo") == 0
    counters.keep_rev("b", 1)
    counters.keep_rev("c", 1)  # overflows: cleared, so a missing room is unknown again
    assert counters.last_rev("c") == 1 and counters.last_rev("a") is None and counters.last_read("a", "bo") is None
    assert not RoomCounters(size=1).load({"a": 1, "b": 1}, {})  # too many: nothing held, reads as before


def test_room_counters_keep_the_larger_value_and_refuse_a_read_that_a_clear_overtook():
    counters = RoomCounters(size=2)
    generation = counters.generation
    counters.keep_rev("r", 5)  # the writer's
    counters.keep_rev("r", 4, generation)  # a read that started before the write
    assert counters.last_rev("r") == 5
    counters.keep_read("r", "Ana", 2)
    assert counters.last_read("r", "ana") == 2
    stale = counters.generation
    counters.keep_rev("a", 1)
    counters.keep_rev("b", 1)  # the table is full: cleared, a new generation
    counters.keep_rev("c", 7, stale)
    assert counters.last_rev("c") is None and counters.last_rev("b") == 1


def _until(condition, seconds=5.0):
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.02)
    return condition()


@contextlib.contextmanager
def _listening(sessions, redis):
    """Run sessions.fanout's listener in a thread on a real Redis; stop both after."""

    class Stopped(Exception):
        pass

    stopping = threading.Event()

    def pause(seconds):
        if stopping.is_set():
            raise Stopped
        time.sleep(seconds)

    def listen():
        with contextlib.suppress(Stopped):
            sessions.fanout.listen(pause)

    sessions.fanout = Fanout(redis.url, sessions)
    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    try:
        yield redis
    finally:
        redis.stop()
        stopping.set()  # the listener's next pause after losing Redis ends it
        listener.join(5)


def test_a_subscription_is_trusted_while_redis_answers_and_forgets_every_session_when_it_subscribes_again():
    need_program("redis-server")
    from tests.cluster.conftest import RedisServer

    store = FakeSessionStore()
    sessions = Sessions(store, 60, clock=lambda: 1000.0)
    with _listening(sessions, RedisServer().start()) as redis:
        assert _until(sessions.hears_everything)
        time.sleep(3 * TRUST_SECONDS)
        assert sessions.hears_everything()  # the pings' answers keep it trusted
        store.rows["s1"] = SessionRow("ana", 1_060_000, None)
        assert sessions.check("s1") is not None and store.reads == 1
        redis.process.kill()
        redis.process.wait()
        assert _until(lambda: not sessions.hears_everything(), 2 * TRUST_SECONDS + 1)
        redis.start()  # subscribed again: what was read before is read again
        assert _until(sessions.hears_everything)
        assert sessions.check("s1") is not None and store.reads == 2


def test_a_process_subscribed_again_ends_its_connections_of_sessions_revoked_meanwhile_with_their_codes(tmp_path):
    need_program("redis-server")
    from chat.store import Store
    from tests.cluster.conftest import RedisServer

    store = Store(f"sqlite:///{tmp_path}/sessions.db")
    store.migrate()
    sessions = Sessions(store, 60, clock=lambda: 1000.0)
    server = FakeServer()
    sessions.live = Lifetimes(server, 60, spawn=lambda task: None, sleep=lambda s: None, sessions=sessions,
                              clock=lambda: 1000.0)
    for key, session_id in (("a", "s1"), ("b", "s2"), ("c", "s3")):
        store.add_session(session_id, "ana", "token", int(time.time() * 1000), int(time.time() * 1000) + 60_000)
        sessions.live.bind(key, Session(session_id, "ana", 1060.0))
    try:
        with _listening(sessions, RedisServer().start()) as redis:
            assert _until(sessions.hears_everything)
            redis.process.kill()
            redis.process.wait()
            assert _until(lambda: not sessions.hears_everything(), 2 * TRUST_SECONDS + 1)
            # meanwhile another process logs s1 out and revokes s2 (as a server before 0008 did: no code
            # kept); what it publishes reaches no one here
            store.revoke_sessions("ana", ["s1"], code="logged_out")
            store.revoke_sessions("ana", ["s2"])
            assert server.sent == []
            redis.start()
            assert _until(lambda: len(sessions.live.bound) == 1)
    finally:
        store.close()
    ended = [(to, data["code"]) for event, to, data in server.sent if event == "session_ended"]
    assert sorted(ended) == [("a", "logged_out"), ("b", "revoked")]
    assert set(sessions.live.bound) == {"c"}


def test_a_refresh_heard_from_another_process_moves_this_ones_connections_of_that_session():
    store, now = FakeSessionStore(), [1000.0]
    sessions = Sessions(store, 60, clock=lambda: now[0])
    server = FakeServer()
    sessions.live = Lifetimes(server, 60, spawn=lambda task: None, sleep=lambda s: None, clock=lambda: now[0])
    store.rows["s1"] = SessionRow("ana", 1_060_000, None)
    found = sessions.check("s1")
    assert found is not None
    sessions.live.bind("/monitor m1", found)
    store.rows["s1"] = SessionRow("ana", 1_120_000, None)  # extended by a refresh on another process
    assert sessions.heard({"user": "ana", "extended": "s1"}) == 0
    now[0] = 1060.0
    sessions.live.tick()
    assert sessions.live.session_of("/monitor m1") == Session("s1", "ana", 1120.0)
    assert [event for event, _, _ in server.sent] == []
