"""Every HTTP route of the contract through Flask's test client."""
import threading
import time

import pytest

from tests.conftest import PASSWORD, bearer, events


def error_code(response):
    return response.get_json()["error"]["code"]


def test_register_then_take_a_token(client):
    created = client.post("/api/users", json={"username": "Ana", "password": PASSWORD})
    assert created.status_code == 201 and created.get_json() == {"username": "Ana"}
    token = client.post("/api/tokens", json={"username": "ana", "password": PASSWORD})
    assert token.status_code == 200
    assert set(token.get_json()) == {"token", "expires_in"} and isinstance(token.get_json()["expires_in"], int)


@pytest.mark.parametrize("body, status, code", [
    ({"username": "x", "password": "short"}, 400, "invalid_payload"),
    ({"username": "bad name", "password": PASSWORD}, 400, "invalid_payload"),
    ({"username": "x" * 33, "password": PASSWORD}, 400, "invalid_payload"),
    ({"username": "ok", "password": 12345678}, 400, "invalid_payload"),
    ({"password": PASSWORD}, 400, "invalid_payload"),
    ([1, 2], 400, "invalid_payload"),
])
def test_register_refuses_malformed_input(client, body, status, code):
    response = client.post("/api/users", json=body)
    assert response.status_code == status and error_code(response) == code


def test_a_taken_username_is_a_conflict_case_insensitively(client):
    client.post("/api/users", json={"username": "ana", "password": PASSWORD})
    response = client.post("/api/users", json={"username": "ANA", "password": PASSWORD})
    assert response.status_code == 409 and error_code(response) == "conflict"


def test_a_wrong_password_or_unknown_user_is_unauthorized(client, user):
    user("ana")
    for body in ({"username": "ana", "password": "wrong-password"}, {"username": "ghost", "password": PASSWORD}):
        response = client.post("/api/tokens", json=body)
        assert response.status_code == 401 and error_code(response) == "unauthorized"


def test_a_body_that_is_not_json_is_invalid(client):
    response = client.post("/api/users", data="not json", content_type="application/json")
    assert response.status_code == 400 and error_code(response) == "invalid_payload"


def test_a_body_over_the_size_limit_is_too_large(client, user):
    _, token = user()
    response = client.post("/api/rooms/lobby/messages", data="x" * 1_000_001,
                           content_type="application/json", headers=bearer(token))
    assert response.status_code == 413 and error_code(response) == "too_large"


def test_post_and_read_messages(client, user):
    _, token = user("ana")
    created = client.post("/api/rooms/lobby/messages", json={"text": "hi", "client_id": "c1"}, headers=bearer(token))
    assert created.status_code == 201 and created.get_json()["message"]["seq"] == 1
    again = client.post("/api/rooms/lobby/messages", json={"text": "hi", "client_id": "c1"}, headers=bearer(token))
    assert again.status_code == 200 and again.get_json() == created.get_json()
    listed = client.get("/api/rooms/lobby/messages?after=0", headers=bearer(token)).get_json()
    assert [m["text"] for m in listed["messages"]] == ["hi"] and listed["has_more"] is False


def test_http_post_is_broadcast_like_the_event(client, user, connect):
    _, token = user("ana")
    bo = connect(user("bo")[1])
    bo.emit("join", {"room": "lobby"}, callback=True)
    client.post("/api/rooms/lobby/messages", json={"text": "from curl", "client_id": "h"}, headers=bearer(token))
    assert [m["text"] for m in events(bo, "message")] == ["from curl"]


def test_message_paging(client, user):
    _, token = user()
    for i in range(5):
        client.post("/api/rooms/lobby/messages", json={"text": f"m{i}"}, headers=bearer(token))
    page = client.get("/api/rooms/lobby/messages?after=1&limit=2", headers=bearer(token)).get_json()
    assert [m["seq"] for m in page["messages"]] == [2, 3] and page["has_more"] is True
    page = client.get("/api/rooms/lobby/messages?before=3", headers=bearer(token)).get_json()
    assert [m["seq"] for m in page["messages"]] == [1, 2]
    page = client.get("/api/rooms/lobby/messages?after=1&before=4", headers=bearer(token)).get_json()
    assert [m["seq"] for m in page["messages"]] == [2, 3]


@pytest.mark.parametrize("method, path", [
    ("get", "/api/rooms/lobby/messages"),
    ("post", "/api/rooms/lobby/messages"),
    ("get", "/api/rooms/lobby/poll?timeout=0"),
])
def test_routes_that_need_a_user_refuse_without_one(client, method, path):
    for headers in ({}, bearer("forged"), {"Authorization": "Basic abc"}):
        response = getattr(client, method)(path, json={"text": "x"}, headers=headers)
        assert response.status_code == 401 and error_code(response) == "unauthorized"


@pytest.mark.parametrize("path, code", [
    ("/api/rooms/Bad Room/messages", "invalid_room"),
    ("/api/rooms/lobby/messages?after=x", "invalid_payload"),
    ("/api/rooms/lobby/messages?limit=0", "invalid_payload"),
    ("/api/rooms/lobby/poll?timeout=31", "invalid_payload"),
    ("/api/rooms/lobby/poll?timeout=nan", "invalid_payload"),
    ("/api/nothing-here", "not_found"),
])
def test_bad_queries_get_the_contract_error(client, user, path, code):
    response = client.get(path, headers=bearer(user()[1]))
    assert response.status_code in (400, 404) and error_code(response) == code


def test_wrong_method_is_a_json_error(client):
    response = client.delete("/api/rooms")
    assert response.status_code == 405 and "error" in response.get_json()


def test_post_refuses_bad_text(client, user):
    response = client.post("/api/rooms/lobby/messages", json={"text": "   "}, headers=bearer(user()[1]))
    assert response.status_code == 400 and error_code(response) == "invalid_message"


def test_rooms_list_counts_users_and_last_seq(client, user, connect):
    name, token = user("ana")
    tab1, tab2 = connect(token), connect(token)
    tab1.emit("join", {"room": "lobby"}, callback=True)
    tab2.emit("join", {"room": "lobby"}, callback=True)
    client.post("/api/rooms/lobby/messages", json={"text": "hi"}, headers=bearer(token))
    assert client.get("/api/rooms").get_json() == {"rooms": [{"name": "lobby", "members": 1, "last_seq": 1}]}


def test_a_joined_room_is_listed_before_its_first_message(client, user, connect):
    connect(user("ana")[1]).emit("join", {"room": "quiet"}, callback=True)
    assert client.get("/api/rooms").get_json() == {"rooms": [{"name": "quiet", "members": 1, "last_seq": 0}]}


def test_long_poll_is_woken_by_a_message_not_by_its_timeout(client, app, user):
    _, token = user("ana")
    answers = []

    def poll():
        with app.test_client() as poller:
            answers.append((poller.get("/api/rooms/lobby/poll?after=0&timeout=10", headers=bearer(token)),
                            time.monotonic()))

    thread = threading.Thread(target=poll)
    thread.start()
    time.sleep(0.3)
    assert not answers
    client.post("/api/rooms/lobby/messages", json={"text": "wake"}, headers=bearer(token))
    posted = time.monotonic()
    thread.join(5)
    response, answered = answers[0]
    assert response.get_json()["messages"][0]["text"] == "wake"
    assert answered - posted < 1  # the poll's own timeout is 10 s: a bound on the wake-up, not on speed


def test_long_poll_times_out_with_no_messages(client, user):
    response = client.get("/api/rooms/lobby/poll?after=0&timeout=0.2", headers=bearer(user()[1]))
    assert response.status_code == 200 and response.get_json() == {"messages": []}


def test_rate_limited_http_post_is_429_with_retry_after(client, papo, user):
    papo.service.limiter.burst, papo.service.limiter.rate = 1, 0.5
    _, token = user()
    client.post("/api/rooms/lobby/messages", json={"text": "1"}, headers=bearer(token))
    response = client.post("/api/rooms/lobby/messages", json={"text": "2"}, headers=bearer(token))
    assert response.status_code == 429 and error_code(response) == "rate_limited"
    assert int(response.headers["Retry-After"]) >= 1


def test_healthz(client, papo, monkeypatch):
    assert client.get("/healthz").get_json()["status"] == "ok"

    def down():
        raise ConnectionError("database is gone")

    monkeypatch.setattr(papo.store, "ping", down)
    response = client.get("/healthz")
    assert response.status_code == 503 and response.get_json()["status"] == "unavailable"


def test_session_cookie_authenticates_http(client, app, user):
    user("ana")
    with client.session_transaction() as session:
        session.update(client.application.extensions["papo"].identity.open_cookie("ana"))
    response = client.post("/api/rooms/lobby/messages", json={"text": "via cookie"})
    assert response.status_code == 201 and response.get_json()["message"]["user"] == "ana"
