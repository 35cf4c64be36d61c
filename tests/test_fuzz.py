"""Property tests: any payload gets an ack of the contract's shape and nothing stored is lost."""
import json
from urllib.parse import quote as urlquote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chat.errors import CODES

json_scalars = (st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False)
                | st.text(max_size=50))
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)
field_values = st.one_of(json_values, st.text(max_size=4100), st.sampled_from(["lobby", "a", "ana", "bo"]))
payloads = st.one_of(json_values, st.fixed_dictionaries({}, optional={
    key: field_values for key in ("room", "text", "client_id", "since", "before", "limit", "typing", "to")}))
event_names = st.sampled_from(["join", "leave", "message", "typing", "history", "direct"])


def assert_contract_ack(ack):
    assert isinstance(ack, dict) and isinstance(ack.get("ok"), bool)
    if not ack["ok"]:
        assert ack["error"]["code"] in CODES and isinstance(ack["error"]["message"], str)
        assert ack["error"]["code"] != "unavailable", ack  # a healthy server: only the payload may be refused


@pytest.fixture
def ana(user, connect, papo):
    papo.service.limiter.burst = papo.guard.connections.burst = papo.guard.users.burst = 10**9
    socket = connect(user("ana")[1])
    user("bo")
    socket.emit("join", {"room": "lobby"}, callback=True)
    socket.emit("message", {"room": "lobby", "text": "keep me", "client_id": "keep"}, callback=True)
    return socket


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(event=event_names, payload=payloads)
def test_any_event_payload_gets_a_contract_ack(ana, papo, event, payload):
    assert_contract_ack(ana.emit(event, payload, callback=True))
    kept = papo.store.messages_after("lobby", 0, 1)
    assert kept and kept[0]["client_id"] == "keep"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(joins=st.one_of(json_values, st.lists(payloads, max_size=5)))
def test_any_handshake_join_list_connects_with_contract_answers_or_is_refused(ana, app, papo, joins):
    socket = papo.socketio.test_client(app, auth={"token": papo.identity.issue_token("bo")["token"], "join": joins})
    if not isinstance(joins, list | None):
        assert not socket.is_connected()
        return
    assert socket.is_connected()
    answers = [e["args"][0] for e in socket.get_received() if e["name"] == "joined"]
    assert len(answers) == len(joins or [])
    for answer in answers:
        assert_contract_ack(answer)
    socket.disconnect()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=json_values, query=st.text(max_size=30))
def test_any_http_body_or_query_gets_json(client, user, body, query):
    _, token = user("ana") if not hasattr(client, "token") else (None, client.token)
    client.token = token
    headers = {"Authorization": f"Bearer {token}"}
    for response in (client.post("/api/rooms/lobby/messages", json=body, headers=headers),
                     client.post("/api/users", json=body),
                     client.post("/api/tokens", json=body),
                     client.get("/api/rooms/lobby/messages", query_string={"after": query, "limit": query},
                                headers=headers)):
        assert response.status_code < 500
        answer = response.get_json()
        assert isinstance(answer, dict)
        if response.status_code >= 400:
            assert answer["error"]["code"] in CODES


# Every event of the table and every route of the app, found by looking, so new ones are fuzzed too.

from chat.events import HANDLERS  # noqa: E402

unicode_text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=()), max_size=300)
nasty = st.sampled_from(["", " ", "\0", "\u202e", "\udcff", "../../etc/passwd", "%00",
                         "<script>alert(1)</script>", "lobby\n", "LOBBY", "a" * 65, "x" * 5000, "ana", "bo",
                         "secret", "d1", "n1", "-1", "1e308", "NaN", "9" * 30, "🙂" * 40])
deep = st.integers(1, 900).map(lambda depth: {"room": "lobby", "text": _nested(depth), "to": _nested(depth)})


def _nested(depth):
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


any_field = st.one_of(json_values, unicode_text, nasty, st.integers(), st.booleans(), st.none())
FIELDS = ("room", "text", "client_id", "since", "before", "limit", "typing", "to", "with", "user", "private",
          "name", "title", "body", "level", "ids", "up_to", "username", "password", "old", "new", "emoji", "on",
          "seq", "id", "value", "revoke")
any_payload = st.one_of(
    json_values, deep,
    st.fixed_dictionaries({}, optional={key: any_field for key in FIELDS}))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(event=st.sampled_from(sorted(HANDLERS)), payload=any_payload,
       extra=st.lists(json_values, max_size=2))
def test_every_event_in_the_table_answers_any_payload_with_a_contract_ack(ana, papo, event, payload, extra):
    assert_contract_ack(ana.emit(event, payload, *extra, callback=True))
    assert ana.emit("history", {"room": "lobby"}, callback=True)["ok"]  # the connection stays usable
    kept = papo.store.messages_after("lobby", 0, 1)
    assert kept and kept[0]["client_id"] == "keep"


def _routes(app):
    """(method, rule) of every route of the app but static files."""
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            yield method, rule


nasty_url = nasty.filter(lambda value: value != "\udcff")
path_value = st.one_of(nasty_url, st.text(alphabet=st.characters(codec="utf-8", exclude_characters="/?#"),
                                      min_size=1, max_size=40))
query = st.dictionaries(st.sampled_from(["after", "before", "limit", "timeout", "next", "room", "user"]),
                        st.one_of(nasty_url, st.text(max_size=20), st.integers(-10**20, 10**20).map(str)), max_size=4)
bodies = st.one_of(
    json_values.map(lambda v: ("application/json", json.dumps(v))),
    st.fixed_dictionaries({}, optional={key: any_field for key in FIELDS}).map(
        lambda v: ("application/json", json.dumps(v))),
    deep.map(lambda v: ("application/json", json.dumps(v))),
    st.binary(max_size=200).map(lambda b: ("application/json", b)),
    st.text(max_size=200).map(lambda t: ("application/x-www-form-urlencoded", t)),
    st.binary(max_size=200).map(lambda b: ("multipart/form-data; boundary=x", b)),
    st.just(("application/json", b"[" * 50_000)),
)
who = st.sampled_from(["anonymous", "bearer", "session", "forged", "notify"])


@pytest.fixture
def fuzz_app(tmp_path):
    from chat import create_app
    from tests.conftest import PASSWORD, TEST_SECRET
    app = create_app({"DATABASE_URL": f"sqlite:///{tmp_path}/fuzz.db", "SECRET_KEY": TEST_SECRET, "TESTING": True,
                      "NOTIFY_TOKEN": "fuzz-notify-token-0123456789", "ADMIN_USERS": "ana",
                      "RATE_BURST": 10**6, "EVENT_BURST": 10**6, "LOGIN_BURST": 10**6,
                      "PASSWORD_HASH": "pbkdf2:sha256:1000"})  # thousands of sign-ins: input is tested, not hashing
    papo = app.extensions["papo"]
    papo.identity.register("ana", PASSWORD)
    papo.identity.register("bo", PASSWORD)
    papo.service.post("ana", "lobby", "keep me", "keep")
    app.fuzz_token = papo.identity.issue_token("ana")["token"]
    yield app
    papo.store.close()


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(data=st.data(), caller=who, body=bodies, query_string=query)
def test_every_route_answers_any_request_without_a_server_error(fuzz_app, data, caller, body, query_string):
    routes = list(_routes(fuzz_app))
    method, rule = data.draw(st.sampled_from(routes), label="route")
    values = {name: data.draw(path_value, label=name) for name in rule.arguments}
    path = "".join(urlquote(part, safe="") if index % 2 else part
                   for index, part in enumerate(_split(rule.rule, values)))
    headers = {"Authorization": {"bearer": f"Bearer {fuzz_app.fuzz_token}", "forged": "Bearer forged.token.x",
                                 "notify": "Bearer fuzz-notify-token-0123456789"}.get(caller, "")}
    client = fuzz_app.test_client()
    if caller == "session":
        with client.session_transaction() as session:
            session.update(client.application.extensions["papo"].identity.open_cookie("ana"))
    content_type, payload = body
    if rule.rule.endswith("/poll") and _waits(query_string.get("timeout")):
        query_string = {**query_string, "timeout": "0"}  # a long poll of up to 30 s is the unit tests' business
    answer = client.open(path, method=method, query_string=query_string, headers=headers,
                         data=payload if method == "POST" else None,
                         content_type=content_type if method == "POST" else None)
    assert answer.status_code < 500 or answer.status_code == 503 and rule.rule == "/healthz", \
        (method, path, answer.status_code, answer.get_data()[:300])
    if path.startswith("/api/") and answer.status_code != 204:  # 204: logout and password change, no body
        reply = answer.get_json()
        assert isinstance(reply, dict), (method, path, answer.get_data()[:200])
        if answer.status_code >= 400:
            assert reply["error"]["code"] in CODES
    kept = fuzz_app.extensions["papo"].store.messages_after("lobby", 0, 1)
    assert kept and kept[0]["client_id"] == "keep"


def _waits(timeout):
    try:
        return timeout is None or float(timeout) > 0
    except ValueError:
        return False


def _split(rule, values):
    """The rule's text split around its <arguments>, with the drawn values in the odd places."""
    import re
    parts = re.split(r"<(?:[^:<>]+:)?([^<>]+)>", rule)
    return [values[part] if index % 2 else part for index, part in enumerate(parts)]


finite_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | unicode_text,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(unicode_text, inner, max_size=5), max_leaves=30)


@settings(max_examples=300, deadline=None)
@given(value=finite_json_values)
def test_the_packets_json_encodes_to_what_json_dumps_does(value):
    from chat.events import CompactJson

    packet = CompactJson.dumps(value, separators=(",", ":"))
    assert json.loads(packet) == json.loads(json.dumps(value, separators=(",", ":")))
    assert CompactJson.dumps(value) == json.dumps(value)


@pytest.mark.parametrize("value", [["\ud800 lone"], {1: "a key that is no string"}, [2 ** 70]])
def test_what_orjson_refuses_to_encode_is_encoded_by_json(value):
    from chat.events import CompactJson

    assert CompactJson.dumps(value, separators=(",", ":")) == json.dumps(value, separators=(",", ":"))


def test_a_float_that_is_not_finite_is_sent_as_null():
    from chat.events import CompactJson

    assert CompactJson.dumps([float("nan"), float("inf")], separators=(",", ":")) == "[null,null]"


# What a JSON packet or body can carry and no database can keep: an unpaired surrogate ("\udcff"), NUL.
unstorable = st.builds(lambda before, bad, after: before[:20] + bad + after[:20], unicode_text,
                       st.one_of(st.characters(categories=["Cs"]), st.just("\0")), unicode_text)
VALID = {"room": "lobby", "text": "hello", "client_id": "fuzzed", "to": "bo", "with": "bo", "user": "bo",
         "name": "fuzzed", "title": "title", "body": "body", "level": "info", "emoji": "👍", "on": True, "seq": 1,
         "since": 0}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(field=st.sampled_from(sorted(VALID)), bad=unstorable)
def test_every_event_refuses_text_no_database_can_keep_with_a_contract_ack(ana, papo, field, bad):
    for event in sorted(HANDLERS):
        assert_contract_ack(ana.emit(event, {**VALID, field: bad}, callback=True))
    kept = papo.store.messages_after("lobby", 0, 1)
    assert kept and kept[0]["client_id"] == "keep"


VALID_BODY = {**VALID, "username": "newcomer", "password": "a-long-password", "old": "wrong-password",
              "new": "another-password", "value": 1, "ids": ["n1"], "revoke": False}
PATH_VALUES = {"room": "lobby", "seq": "1", "user": "bo", "peer": "bo", "member": "bo", "name": "fuzzed"}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(field=st.sampled_from(sorted(VALID_BODY)), bad=unstorable)
def test_every_route_refuses_text_no_database_can_keep_without_a_server_error(fuzz_app, field, bad):
    client, identity = fuzz_app.test_client(), fuzz_app.extensions["papo"].identity
    for method, rule in _routes(fuzz_app):
        if method not in ("POST", "PATCH", "PUT"):
            continue
        path = "".join(_split(rule.rule, {name: PATH_VALUES[name] for name in rule.arguments}))
        backend = path in ("/api/notify", "/api/users/bo/disconnect") or path.startswith("/api/metrics/")
        # a session of its own for each: a logout or a revocation before must not turn the rest away unread
        token = "fuzz-notify-token-0123456789" if backend else identity.issue_token("ana")["token"]
        answer = client.open(path, method=method, data=json.dumps({**VALID_BODY, field: bad}),
                             content_type="application/json", headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code < 500, (method, path, field, answer.status_code, answer.get_data()[:300])
    kept = fuzz_app.extensions["papo"].store.messages_after("lobby", 0, 1)
    assert kept and kept[0]["client_id"] == "keep"
