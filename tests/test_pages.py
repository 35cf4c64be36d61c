"""The HTML pages through Flask's test client: forms, sessions, redirects, and what the script gets."""
import re

import pytest

from tests.conftest import PASSWORD


def form(client, path, data):
    """Post a page's form as a browser would: with the CSRF token the form carries, if any."""
    found = re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).get_data(as_text=True))
    return client.post(path, data={**data, **({"csrf_token": found.group(1)} if found else {})})


def register(client, name, password=PASSWORD, confirm=None, next_url=None):
    query = f"?next={next_url}" if next_url else ""
    return form(client, f"/register{query}", {"username": name, "password": password,
                                              "confirm": password if confirm is None else confirm})


def test_pages_need_a_login(client):
    for path in ("/", "/room/general", "/dm/someone"):
        answer = client.get(path)
        assert answer.status_code == 302
        assert answer.headers["Location"] == f"/login?next={path}"


def test_register_logs_in_and_the_pages_carry_the_user(client, user):
    user("bob")  # a DM page is for a user who exists
    answer = register(client, "ana")
    assert answer.status_code == 302 and answer.headers["Location"] == "/"
    page = client.get("/room/general")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'data-user="ana"' in html and 'data-room="general"' in html and 'data-page="room"' in html
    assert "<script>" not in html and "onclick" not in html  # all script lives in static files
    assert 'data-peer="bob"' in client.get("/dm/bob").get_data(as_text=True)


def test_register_refusals(client, user):
    user("taken")
    assert "taken" in register(client, "TAKEN").get_data(as_text=True)
    assert register(client, "ok", "short").status_code == 400
    assert "differ" in register(client, "ok", confirm="something-else").get_data(as_text=True)
    assert register(client, "bad name!").status_code == 400


def test_login_logout(client, user):
    name, _ = user()
    wrong = form(client, "/login", {"username": name, "password": "wrong-password"})
    assert wrong.status_code == 401 and "Wrong username or password." in wrong.get_data(as_text=True)
    answer = form(client, "/login?next=/room/x", {"username": name.upper(), "password": PASSWORD})
    assert answer.headers["Location"] == "/room/x"
    assert f'data-user="{name}"' in client.get("/").get_data(as_text=True)  # the stored spelling
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/").get_data(as_text=True))
    out = client.post("/logout", data={"csrf_token": token.group(1)} if token else {})
    assert out.headers["Location"] == "/login"
    assert client.get("/").status_code == 302


@pytest.mark.parametrize("target", ["//evil.example/", "https://evil.example/", "/\\evil.example", "javascript:x"])
def test_login_never_redirects_off_site(client, target):
    answer = register(client, "ana", next_url=target)
    assert answer.headers["Location"] == "/"


def test_bad_names_in_paths_are_not_found(client):
    register(client, "ana")
    assert client.get("/room/Not Lower").status_code == 404
    assert client.get("/room/" + "a" * 65).status_code == 404
    assert client.get("/dm/" + "b" * 33).status_code == 404


def test_go_opens_rooms_and_conversations(client):
    register(client, "ana")
    assert client.get("/go?room=%23General").headers["Location"] == "/room/general"
    assert client.get("/go?user=@bob").headers["Location"] == "/dm/bob"
    assert client.get("/go?room=no%20spaces").headers["Location"] == "/"


def test_a_room_name_in_capitals_moves_to_its_lowercase_spelling(client):
    register(client, "ana")
    answer = client.get("/room/General")
    assert answer.status_code == 308 and answer.headers["Location"] == "/room/general"
    assert client.get("/room/Not_Lower").headers["Location"] == "/room/not_lower"


def test_error_pages_are_pages_with_a_way_back_and_the_api_keeps_its_json(client, settings):
    register(client, "ana")
    for path, status, title in (("/monitor", 403, "Not allowed"), ("/nowhere", 404, "Not found"),
                                ("/dm/" + "b" * 33, 404, "Not found")):
        answer = client.get(path, headers={"Accept": "text/html"})
        html = answer.get_data(as_text=True)
        assert answer.status_code == status and answer.mimetype == "text/html", path
        assert f"<h1>{title}</h1>" in html and 'href="/">Back to the lobby</a>' in html, path
    for path, headers in (("/api/nowhere", {"Accept": "text/html"}), ("/nowhere", {"Accept": "application/json"}),
                          ("/monitor", {"Accept": "application/json"})):
        answer = client.get(path, headers=headers)
        assert answer.mimetype == "application/json", path
        assert answer.get_json()["error"]["code"] in ("not_found", "forbidden"), path


@pytest.mark.parametrize("settings", [{"ADMIN_USERS": "boss"}])
def test_only_admins_have_the_monitor_link(client, settings):
    register(client, "boss")
    assert 'href="/monitor"' in client.get("/").get_data(as_text=True)
    client.post("/logout")
    register(client, "ana")
    assert 'href="/monitor"' not in client.get("/").get_data(as_text=True)
