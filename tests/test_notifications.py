"""Notifications: POST /api/notify reaches exactly the right sockets; a user's are kept until read."""
import os
import subprocess
import sys
from http.client import HTTPMessage
from pathlib import Path

import pytest

from chat import create_app
from chat.service import ChatService
from tests.conftest import TEST_SECRET, events

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "notify-token-for-the-tests-0123"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def settings():
    return {"NOTIFY_TOKEN": TOKEN}


@pytest.fixture
def people(user, connect):
    """ana and bo in room `ops` (ana with a second connection that joined nothing), cy online elsewhere."""
    tokens = {name: user(name)[1] for name in ("ana", "bo", "cy")}
    sockets = {name: connect(token) for name, token in tokens.items()}
    sockets["ana2"] = connect(tokens["ana"])
    for name in ("ana", "bo"):
        assert sockets[name].emit("join", {"room": "ops"}, callback=True)["ok"]
    for socket in sockets.values():
        socket.get_received()
    return sockets


def notify(client, headers=AUTH, **body):
    return client.post("/api/notify", json=body, headers=headers)


def received(sockets):
    return {name: events(socket, "notification") for name, socket in sockets.items()}


def test_a_room_notification_reaches_its_members_and_no_one_else(client, people):
    answer = notify(client, room="ops", title="Deploy", body="v2 is out", level="success")
    assert answer.status_code == 202
    assert answer.json["recipients"] == 2 and answer.json["id"]
    got = received(people)
    assert got["cy"] == [] and got["ana2"] == []
    for name in ("ana", "bo"):
        assert len(got[name]) == 1
        note = got[name][0]
        assert note["id"] == answer.json["id"] and note["room"] == "ops"
        assert (note["title"], note["body"], note["level"]) == ("Deploy", "v2 is out", "success")
        assert isinstance(note["ts"], int)


def test_a_user_notification_reaches_every_connection_of_that_user_only(client, people):
    answer = notify(client, user="ANA", title="Your build failed", body="see CI", level="error")
    assert answer.status_code == 202 and answer.json["recipients"] == 1
    got = received(people)
    assert got["bo"] == [] and got["cy"] == []
    assert got["ana"] == got["ana2"] and len(got["ana"]) == 1
    note = got["ana"][0]
    assert note["id"] == answer.json["id"] and note["user"] == "ana" and note["read"] is False


def test_a_notification_for_everyone_reaches_every_connection(client, people):
    answer = notify(client, title="Maintenance at 22:00", body="")
    assert answer.status_code == 202 and answer.json["recipients"] == 4
    got = received(people)
    assert all(len(notes) == 1 and notes[0]["level"] == "info" for notes in got.values())
    assert "room" not in got["ana"][0] and "user" not in got["ana"][0]


@pytest.mark.parametrize("headers", [
    {}, {"Authorization": "Bearer wrong-token"}, {"Authorization": TOKEN}, {"Authorization": "Basic " + TOKEN},
    {"Authorization": f"Bearer {TOKEN}x"},
])
def test_notify_needs_the_notify_token(client, people, headers):
    answer = notify(client, headers=headers, room="ops", title="x", body="y")
    assert answer.status_code == 401 and answer.json["error"]["code"] == "unauthorized"
    assert all(notes == [] for notes in received(people).values())


def test_a_user_token_is_not_the_notify_token(client, user):
    _, token = user("ana")
    answer = notify(client, headers={"Authorization": f"Bearer {token}"}, title="x", body="y")
    assert answer.status_code == 401


def test_the_bearer_scheme_is_case_insensitive(client):
    assert notify(client, headers={"Authorization": f"bearer {TOKEN}"}, title="x", body="y").status_code == 202


def test_without_a_notify_token_setting_notify_is_always_refused(tmp_path):
    app = create_app({"DATABASE_URL": f"sqlite:///{tmp_path}/other.db", "SECRET_KEY": TEST_SECRET})
    client = app.test_client()
    for headers in ({}, {"Authorization": "Bearer "}, {"Authorization": "Bearer x"}):
        assert notify(client, headers=headers, title="x", body="y").status_code == 401
    assert client.post("/api/metrics/x", json={"value": 1}, headers={"Authorization": "Bearer "}).status_code == 401
    app.extensions["papo"].store.close()


@pytest.mark.parametrize("body, status, code", [
    ({"body": "no title"}, 400, "invalid_payload"),
    ({"title": "  ", "body": "blank title"}, 400, "invalid_payload"),
    ({"title": "x" * 201, "body": ""}, 400, "invalid_payload"),
    ({"title": 5, "body": ""}, 400, "invalid_payload"),
    ({"title": "t", "body": 5}, 400, "invalid_payload"),
    ({"title": "t", "body": "x" * 4001}, 400, "invalid_payload"),
    ({"title": "t", "body": "", "level": "panic"}, 400, "invalid_payload"),
    ({"title": "t", "body": "", "room": "ops", "user": "ana"}, 400, "invalid_payload"),
    ({"title": "t", "body": "", "room": "Bad Room"}, 400, "invalid_room"),
    ({"title": "t", "body": "", "user": "nobody"}, 404, "not_found"),
    ({"title": "t", "body": "", "user": ""}, 400, "invalid_payload"),
    ({"title": "t", "body": "", "user": "x" * 300}, 404, "not_found"),
])
def test_bad_notifications_get_the_contract_error(client, user, body, status, code):
    user("ana")
    answer = notify(client, **body)
    assert answer.status_code == status and answer.json["error"]["code"] == code


def test_a_body_that_is_not_a_json_object_is_invalid(client):
    answer = client.post("/api/notify", data="[1]", headers={**AUTH, "Content-Type": "application/json"})
    assert answer.status_code == 400 and answer.json["error"]["code"] == "invalid_payload"


def test_an_offline_user_gets_stored_notifications_on_the_next_connect(app, papo, client, user, connect):
    name, token = user("ana")
    first = connect(token)
    first.disconnect()
    ids = [notify(client, user=name, title=f"while away {i}", body="").json["id"] for i in range(3)]
    again = connect(token)
    got = events(again, "notification")
    assert [n["id"] for n in got] == ids and all(n["read"] is False for n in got)
    assert [n["title"] for n in got] == ["while away 0", "while away 1", "while away 2"]
    # Room and everyone notifications are live only: nothing more on the next connect.
    notify(client, title="live only", body="")
    again.disconnect()
    assert [n["id"] for n in events(connect(token), "notification")] == ids


def test_reading_stops_the_replay_and_tells_the_other_connections(client, user, connect):
    name, token = user("ana")
    headers = {"Authorization": f"Bearer {token}"}
    ids = [notify(client, user=name, title=f"n{i}", body="").json["id"] for i in range(3)]
    watcher = connect(token)
    watcher.get_received()
    listing = client.get("/api/notifications", headers=headers).json
    assert [n["id"] for n in listing["notifications"]] == ids and listing["unread"] == 3
    assert listing["has_more"] is False
    answer = client.post("/api/notifications/read", json={"up_to": ids[1]}, headers=headers)
    assert answer.status_code == 200 and answer.json == {"read": ids[:2], "unread": 1}
    assert events(watcher, "notifications_read") == [{"ids": ids[:2], "unread": 1}]
    assert [n["id"] for n in events(connect(token), "notification")] == ids[2:]
    answer = client.post("/api/notifications/read", json={"ids": [ids[2], ids[0]]}, headers=headers)
    assert answer.json == {"read": [ids[2]], "unread": 0}
    assert events(connect(token), "notification") == []
    listing = client.get("/api/notifications", headers=headers).json
    assert [n["read"] for n in listing["notifications"]] == [True, True, True] and listing["unread"] == 0
    # Reading again changes nothing and tells no one.
    watcher.get_received()
    assert client.post("/api/notifications/read", json={"up_to": ids[2]}, headers=headers).json["read"] == []
    assert events(watcher, "notifications_read") == []


def test_no_one_reads_or_marks_another_users_notifications(client, user):
    ana, _ = user("ana")
    _, bo_token = user("bo")
    bo = {"Authorization": f"Bearer {bo_token}"}
    note = notify(client, user=ana, title="for ana", body="").json["id"]
    assert client.get("/api/notifications", headers=bo).json == {"notifications": [], "has_more": False, "unread": 0}
    assert client.post("/api/notifications/read", json={"ids": [note]}, headers=bo).json["read"] == []
    assert client.post("/api/notifications/read", json={"up_to": note}, headers=bo).json["read"] == []


def test_listing_pages_with_after_and_limit(client, user):
    name, token = user("ana")
    headers = {"Authorization": f"Bearer {token}"}
    ids = [notify(client, user=name, title=f"n{i}", body="").json["id"] for i in range(5)]
    latest = client.get("/api/notifications?limit=2", headers=headers).json
    assert [n["id"] for n in latest["notifications"]] == ids[3:] and latest["has_more"] is True
    after = client.get(f"/api/notifications?after={ids[1]}&limit=2", headers=headers).json
    assert [n["id"] for n in after["notifications"]] == ids[2:4] and after["has_more"] is True
    number = ids[3][1:]
    rest = client.get(f"/api/notifications?after={number}", headers=headers).json
    assert [n["id"] for n in rest["notifications"]] == ids[4:] and rest["has_more"] is False


@pytest.mark.parametrize("method, path, body", [
    ("get", "/api/notifications", None), ("post", "/api/notifications/read", {"up_to": "n1"}),
])
def test_notification_routes_need_a_user(client, method, path, body):
    answer = getattr(client, method)(path, json=body, headers=AUTH)  # the notify token is not a user
    assert answer.status_code == 401 and answer.json["error"]["code"] == "unauthorized"


@pytest.mark.parametrize("query", ["after=x", "after=-1", "after=n", "limit=0", "limit=101", "after=n1.5"])
def test_bad_listing_queries_are_invalid(client, user, query):
    _, token = user("ana")
    answer = client.get(f"/api/notifications?{query}", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 400 and answer.json["error"]["code"] == "invalid_payload"


@pytest.mark.parametrize("body", [
    {}, {"ids": ["n1"], "up_to": "n1"}, {"ids": "n1"}, {"ids": [None]}, {"ids": ["x"]}, {"up_to": "nx"},
    {"ids": ["n1"] * 501}, {"up_to": True},
])
def test_bad_read_requests_are_invalid(client, user, body):
    _, token = user("ana")
    answer = client.post("/api/notifications/read", json=body, headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 400 and answer.json["error"]["code"] == "invalid_payload"


def test_notify_in_the_service_addresses_channels(tmp_path):
    """Against a recorder: the channel of each kind, and the stored notification's shape."""
    from chat.limits import RateLimiter
    from chat.presence import Presence
    from chat.store import Store
    from tests.test_service import Recorder

    store = Store(f"sqlite:///{tmp_path}/unit.db")
    store.migrate()
    store.add_user("Ana", "h", 1)
    recorder = Recorder()
    service = ChatService(store, Presence(), recorder, RateLimiter(burst=10, rate=1), clock=lambda: 1000.0)
    room_note, _ = service.notify("t", "b", None, room="ops")
    user_note, _ = service.notify("t", " b ", "warning", user="ana")
    everyone, _ = service.notify("t", None)
    assert [to for _, to, _ in recorder.named("notification")] == ["room:ops", "user:Ana", None]
    assert user_note == {"id": "n1", "title": "t", "body": "b", "level": "warning", "ts": 1_000_000,
                         "user": "Ana", "read": False}
    assert room_note["id"].startswith("b") and room_note["room"] == "ops" and everyone["body"] == ""
    service.connect("s1", "Ana")
    assert recorder.named("notification")[-1] == (user_note, "s1", ())
    store.close()


def test_the_cli_sends_through_the_server_with_the_notify_token(app, client, user, connect, monkeypatch):
    """`flask notify` posts to --url; here urlopen is pointed at the test client."""
    import urllib.error
    import urllib.request
    from io import BytesIO

    sent = []

    def urlopen(request, timeout):
        sent.append(request)
        answer = client.post(request.full_url.replace("http://papo.test", ""), data=request.data,
                             headers=dict(request.header_items()))
        if answer.status_code >= 400:
            raise urllib.error.HTTPError(request.full_url, answer.status_code, "refused", HTTPMessage(),
                                         BytesIO(answer.data))
        return BytesIO(answer.data)

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    _, token = user("ana")
    socket = connect(token)
    assert socket.emit("join", {"room": "ops"}, callback=True)["ok"]
    socket.get_received()
    runner = app.test_cli_runner()
    result = runner.invoke(args=["notify", "--room", "ops", "--title", "Backup done", "--body", "42 GB",
                                 "--level", "success", "--url", "http://papo.test/"])
    assert result.exit_code == 0, result.output
    assert "sent to 1 recipient" in result.output
    assert sent[0].full_url == "http://papo.test/api/notify"
    assert sent[0].get_header("Authorization") == f"Bearer {TOKEN}"
    [note] = events(socket, "notification")
    assert (note["title"], note["body"], note["level"], note["room"]) == ("Backup done", "42 GB", "success", "ops")
    refused = runner.invoke(args=["notify", "--user", "nobody", "--title", "x", "--url", "http://papo.test"])
    assert refused.exit_code == 1 and "not_found" in refused.output


def test_the_cli_explains_its_usage_errors(app):
    runner = app.test_cli_runner()
    for args in (["notify", "--title", "x"], ["notify", "--title", "x", "--room", "a", "--everyone"],
                 ["notify", "--room", "a"], ["notify", "--room", "a", "--title", "x", "--level", "panic"]):
        result = runner.invoke(args=args)
        assert result.exit_code == 2, (args, result.output)
    unreachable = runner.invoke(args=["notify", "--room", "a", "--title", "x", "--url", "http://127.0.0.1:9"])
    assert unreachable.exit_code == 1 and "cannot reach" in unreachable.output


def test_the_cli_direct_stores_for_a_user_and_emits_in_process(app, user, connect):
    name, token = user("ana")
    socket = connect(token)
    socket.get_received()
    result = app.test_cli_runner().invoke(args=["notify", "--direct", "--user", name, "--title", "Disk 91%"])
    assert result.exit_code == 0, result.output
    [note] = events(socket, "notification")
    assert note["title"] == "Disk 91%" and note["id"].startswith("n")


def test_flask_notify_is_a_real_command(tmp_path):
    """The entry point the issue names: `flask --app app notify ...`, here with --direct to a user."""
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path}/cli.db", "SECRET_KEY": TEST_SECRET,
           "NOTIFY_TOKEN": TOKEN}
    env.pop("REDIS_URL", None)
    app = create_app({"DATABASE_URL": env["DATABASE_URL"], "SECRET_KEY": TEST_SECRET})
    app.extensions["papo"].identity.register("ana", "correct-horse")
    flask = [sys.executable, "-m", "flask", "--app", "app", "notify"]
    done = subprocess.run(flask + ["--direct", "--user", "ana", "--title", "From cron", "--body", "nightly"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "sent to 1 recipient" in done.stdout
    stored = app.extensions["papo"].service.notifications("ana")["notifications"]
    assert [(n["title"], n["body"]) for n in stored] == [("From cron", "nightly")]
    down = subprocess.run(flask + ["--room", "ops", "--title", "x", "--url", "http://127.0.0.1:9"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert down.returncode == 1 and "cannot reach" in down.stderr
    helped = subprocess.run(flask + ["--help"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert "--everyone" in helped.stdout
    app.extensions["papo"].store.close()


def test_a_short_notify_token_stops_start_up(tmp_path):
    from chat.config import SettingError, load

    with pytest.raises(SettingError, match="NOTIFY_TOKEN must be at least 16"):
        load(str(tmp_path), environ={"NOTIFY_TOKEN": "guessable", "SECRET_KEY": TEST_SECRET})
    assert load(str(tmp_path), environ={"NOTIFY_TOKEN": TOKEN, "SECRET_KEY": TEST_SECRET}).NOTIFY_TOKEN == TOKEN
