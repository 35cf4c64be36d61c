"""Property tests: any payload gets an ack of the contract's shape and nothing stored is lost."""
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chat.errors import CODES

json_scalars = st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False) | st.text(max_size=50)
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


@pytest.fixture
def ana(user, connect, papo):
    papo.service.limiter.burst = 10**9
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
