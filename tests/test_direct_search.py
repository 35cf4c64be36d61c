"""Search over direct conversations through HTTP, with messages sent over Socket.IO: a pair's messages are found
by those two alone, right after sending; bad queries get the contract's error, never a crash."""
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


def call(socket, event, **payload):
    return socket.emit(event, payload, callback=True)


@pytest.fixture
def trio(user, connect, papo):
    """ana, bo and cy signed in (headers for HTTP); ana has sent bo a DM; everyone can read room lobby."""
    headers = {}
    for name in ("ana", "bo", "cy"):
        _, token = user(name)
        headers[name] = {"Authorization": f"Bearer {token}"}
    ana = connect(papo.identity.issue_token("ana")["token"])
    assert call(ana, "join", room="lobby")["ok"]
    assert call(ana, "message", room="lobby", text="lunch plans in the lobby", client_id="r1")["ok"]
    assert call(ana, "direct", to="bo", text="secret <b>lunch</b> at noon", client_id="d1")["ok"]
    return headers


def search(client, headers, query):
    response = client.get(f"/api/search?{query}", headers=headers)
    return response.status_code, response.get_json()


def test_the_sender_and_the_recipient_find_the_dm_right_after_sending_and_no_one_else(trio, client):
    for name, peer in (("ana", "bo"), ("bo", "ana")):
        status, body = search(client, trio[name], "q=lunch")
        assert status == 200
        kinds = {(m["kind"], m.get("peer"), m.get("room")) for m in body["results"]}
        assert kinds == {("direct", peer, None), ("room", None, "lobby")}
        assert [m["ts"] for m in body["results"]] == sorted((m["ts"] for m in body["results"]), reverse=True)
        direct = next(m for m in body["results"] if m["kind"] == "direct")
        assert (direct["from"], direct["to"], direct["text"]) == ("ana", "bo", "secret <b>lunch</b> at noon")
        assert direct["id"].startswith("d") and isinstance(direct["ts"], int)
        assert "<mark>lunch</mark>" in direct["snippet"] and "&lt;b&gt;" in direct["snippet"]
        assert "<b>" not in direct["snippet"]
    status, body = search(client, trio["cy"], "q=lunch")
    assert status == 200 and [m["kind"] for m in body["results"]] == ["room"]
    assert search(client, trio["cy"], "q=secret") == (200, {"results": []})
    assert search(client, trio["cy"], "q=secret&peer=ana") == (200, {"results": []})


def test_peer_limits_search_to_one_conversation_and_room_to_rooms(trio, client, user, connect):
    dee = connect(user("dee")[1])
    time.sleep(0.005)  # ts is in ms: dee's message is newer than the fixture's, not tied with them
    assert call(dee, "direct", to="bo", text="lunch with dee", client_id="x")["ok"]
    _, everything = search(client, trio["bo"], "q=lunch")
    peers = [m.get("peer") for m in everything["results"]]  # newest first; the room's and ana's may share a ms
    assert peers[0] == "dee" and set(peers[1:]) == {None, "ana"}
    _, with_ana = search(client, trio["bo"], "q=lunch&peer=ANA")
    assert [m["text"] for m in with_ana["results"]] == ["secret <b>lunch</b> at noon"]
    _, in_lobby = search(client, trio["bo"], "q=lunch&room=lobby")
    assert [m["kind"] for m in in_lobby["results"]] == ["room"]
    _, one = search(client, trio["bo"], "q=lunch&limit=1")
    assert [m.get("peer") for m in one["results"]] == ["dee"]
    status, body = search(client, trio["bo"], "q=lunch&peer=nobody")
    assert status == 404 and body["error"]["code"] == "not_found"
    status, body = search(client, trio["bo"], "q=lunch&peer=ana&room=lobby")
    assert status == 400 and body["error"]["code"] == "invalid_payload"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(q=st.text(max_size=210), peer=st.sampled_from(["", "ana", "bo", "x" * 40, "nobody"]))
def test_any_query_gets_results_or_the_contracts_error(trio, client, q, peer):
    response = client.get("/api/search", query_string={"q": q, "peer": peer}, headers=trio["cy"])
    body = response.get_json()
    if response.status_code == 200:
        assert 1 <= len(q) <= 200
        assert all(m["kind"] == "room" or "cy" in (m["from"], m["to"]) for m in body["results"])
    else:
        assert (response.status_code, body["error"]["code"]) in ((400, "invalid_payload"), (404, "not_found"))
