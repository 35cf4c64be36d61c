"""Each way a session ends, on real servers and clients: exactly the right connections end, with the right code."""
import functools
import itertools
import threading
import time

import pytest
import socketio

from chat.sessions import ENDINGS
from tests.servers import DEFAULT_MODE, MODES, PASSWORD, ServerProcess, login, register, request

from .client import ChatClient

NOTIFY = "sessions-test-notify-token"
ADMIN = "boss"
WATCHER = "watcher"  # an admin of its own for the /monitor tests
TRANSPORTS = (("websocket",), ("polling",))
_names = itertools.count(1)


def start(tmp_path_factory, mode=DEFAULT_MODE, **env):
    db = tmp_path_factory.mktemp("db-sessions") / "papo.db"
    env = {"NOTIFY_TOKEN": NOTIFY, "ADMIN_USERS": f"{ADMIN},{WATCHER}", **env}
    server = ServerProcess(mode, f"sqlite:///{db}", env=env)
    try:
        return server.start()
    except BaseException:
        server.close()
        raise


class Secrets(list):
    """Every token and password the tests used; none may appear in the server's log."""


def assert_no_secret_logged(server, secrets):
    with open(server.log_path, encoding="utf-8", errors="replace") as handle:
        log = handle.read()
    assert '{"audit":' in log  # the audit log is there ...
    for secret in secrets:
        assert secret not in log  # ... and holds no token or password


@pytest.fixture(scope="module")
def secrets():
    return Secrets([PASSWORD, NOTIFY])


@pytest.fixture(scope="module")
def server(tmp_path_factory, secrets):
    server = start(tmp_path_factory)
    yield server
    try:
        assert_no_secret_logged(server, secrets)
    finally:
        server.close()


@pytest.fixture(scope="module", params=MODES)
def short_server(request, tmp_path_factory, secrets):
    """A server whose identities live 5 seconds, in each async mode: the sweeper is a task of each."""
    server = start(tmp_path_factory, request.param, TOKEN_TTL="5")
    yield server
    try:
        assert_no_secret_logged(server, secrets)
    finally:
        server.close()


@pytest.fixture
def people(server, secrets):
    """Register a user; (name, token). Another token of the same user is another session."""
    def make(prefix="s", name=None):
        name = name or f"{prefix}{next(_names)}"
        token = register(server.url, name)
        secrets.append(token)
        return name, token
    return make


def ended(client, code, timeout=5):
    """Wait until the server ended the client's connection with session_ended code; tell whether it did."""
    return client.wait_until(lambda c: ("session_ended", {"code": code, "message": _message(c)}) in c.events
                             and not c.sio.connected, timeout)


def _message(client):
    for name, payload in client.events:
        if name == "session_ended":
            return payload.get("message")
    return None


class MonitorClient:
    """An admin's /monitor connection (the dashboard's): records its session events."""

    def __init__(self, url, token):
        self.sio = socketio.Client(reconnection=False)
        self.events = []
        for name in ("session_ended", "auth_expiring", "backlog"):
            self.sio.on(name, functools.partial(self._record, name), namespace="/monitor")
        self.sio.connect(url, auth={"token": token}, namespaces=["/monitor"], transports=["websocket"],
                         wait_timeout=10)

    def _record(self, name, payload):
        self.events.append((name, payload))

    def watching(self):
        return self.sio.connected and "/monitor" in self.sio.namespaces

    def ended(self, code, timeout=5):
        """Wait until the server ended the dashboard with session_ended code; tell whether it did."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ("session_ended", {"code": code, "message": ENDINGS[code]}) in self.events and not self.watching():
                return True
            time.sleep(0.05)
        return False

    def close(self):
        closing = threading.Thread(target=self.sio.disconnect, daemon=True)
        closing.start()
        closing.join(0.5)


@pytest.fixture
def open_monitor():
    """Open MonitorClients for (url, token); each is closed at the end."""
    opened = []

    def make(url, token):
        opened.append(MonitorClient(url, token))
        return opened[-1]

    yield make
    for monitor in opened:
        monitor.close()


def still_served(client):
    return client.sio.connected and client.call("join", {"room": "lobby"})["ok"]


def refused_everywhere(url, token):
    """Tell whether the token is refused over HTTP, polling and WebSocket."""
    status, body = request(url, "GET", "/api/rooms", token=token)
    if status != 401 or body["error"]["code"] != "unauthorized":
        return False
    for transports in TRANSPORTS:
        client = ChatClient(url, token, transports=transports)
        try:
            client.connect(timeout=5)
        except socketio.exceptions.ConnectionError:
            continue
        client.close()
        return False
    return True


@pytest.mark.parametrize("transports", TRANSPORTS, ids=["websocket", "polling"])
def test_logout_ends_that_session_only(server, people, open_client, secrets, transports):
    ana, first = people("ana")
    second = login(server.url, ana)
    bo, bo_token = people("bo")
    secrets.append(second)
    gone = open_client(server.url, first, transports)
    other_session = open_client(server.url, second, transports)
    other_user = open_client(server.url, bo_token, transports)
    assert request(server.url, "POST", "/api/logout", token=first)[0] == 204
    assert ended(gone, "logged_out")
    assert still_served(other_session) and still_served(other_user)
    assert refused_everywhere(server.url, first)
    assert request(server.url, "GET", "/api/rooms", token=second)[0] == 200


def test_log_out_everywhere_ends_every_session_of_the_user(server, people, open_client, secrets):
    ana, first = people("ana")
    second = login(server.url, ana)
    bo, bo_token = people("bo")
    secrets.append(second)
    phone, laptop = open_client(server.url, first), open_client(server.url, second, ("polling",))
    other_user = open_client(server.url, bo_token)
    status, body = request(server.url, "POST", "/api/sessions/revoke", token=second)
    assert status == 200 and body == {"revoked": 2}
    assert ended(phone, "revoked") and ended(laptop, "revoked")
    assert still_served(other_user)
    assert refused_everywhere(server.url, first) and refused_everywhere(server.url, second)


def test_log_out_everywhere_ends_the_tokens_obtained_by_refresh(server, people, open_client, secrets):
    ana, first = people("ana")
    refreshed = request(server.url, "POST", "/api/tokens/refresh", token=first)[1]["token"]
    again = request(server.url, "POST", "/api/tokens/refresh", token=refreshed)[1]["token"]
    second = login(server.url, ana)
    secrets.extend([refreshed, again, second])
    by_refresh = open_client(server.url, again)
    status, body = request(server.url, "POST", "/api/sessions/revoke", token=second)
    assert status == 200 and body == {"revoked": 2}  # a refresh extends its session: two sessions, not four
    assert ended(by_refresh, "revoked")
    assert all(refused_everywhere(server.url, token) for token in (first, refreshed, again, second))


def test_a_password_change_ends_every_other_session(server, people, open_client, secrets):
    ana, here = people("ana")
    elsewhere = login(server.url, ana)
    secrets.append(elsewhere)
    kept, dropped = open_client(server.url, here), open_client(server.url, elsewhere)
    wrong = request(server.url, "POST", "/api/users/me/password", {"old": "not-it-at-all", "new": "new-password-1"},
                    token=here)
    assert wrong[0] == 401 and still_served(dropped)
    secrets.append("new-password-1")
    changed = request(server.url, "POST", "/api/users/me/password", {"old": PASSWORD, "new": "new-password-1"},
                      token=here)
    assert changed[0] == 204
    assert ended(dropped, "revoked") and still_served(kept)
    assert refused_everywhere(server.url, elsewhere)
    assert request(server.url, "POST", "/api/tokens", {"username": ana, "password": PASSWORD})[0] == 401
    secrets.append(login(server.url, ana, "new-password-1"))


def test_an_admin_disconnects_a_user_and_may_revoke_their_sessions(server, people, open_client, secrets):
    abuser, token = people("abuser")
    bystander, bystander_token = people("by")
    boss = register(server.url, ADMIN)
    secrets.append(boss)
    first, second = open_client(server.url, token), open_client(server.url, token, ("polling",))
    watching = open_client(server.url, bystander_token)
    refused = request(server.url, "POST", f"/api/users/{abuser}/disconnect", {}, token=bystander_token)
    assert refused[0] == 403 and still_served(first)
    status, body = request(server.url, "POST", f"/api/users/{abuser}/disconnect", {}, token=boss)
    assert status == 200 and body == {"disconnected": 2}
    assert ended(first, "disconnected_by_admin") and ended(second, "disconnected_by_admin")
    assert still_served(watching)
    again = open_client(server.url, token)  # not revoked: the same identity may come back
    status, body = request(server.url, "POST", f"/api/users/{abuser}/disconnect", {"revoke": True},
                           token=NOTIFY)
    assert status == 200 and body == {"disconnected": 1}
    assert ended(again, "disconnected_by_admin")
    assert refused_everywhere(server.url, token)


def test_a_socket_refresh_needs_a_live_token_of_the_same_user(server, people, open_client, secrets):
    ana, token = people("ana")
    bo, bo_token = people("bo")
    client = open_client(server.url, token)
    assert client.call("refresh", {"token": bo_token}) == {"ok": False, "error": {
        "code": "unauthorized", "message": "refresh needs a live token of the same user"}}
    assert client.call("refresh", {"token": "forged"})["error"]["code"] == "unauthorized"
    fresh = request(server.url, "POST", "/api/tokens/refresh", token=token)[1]
    secrets.append(fresh["token"])
    assert fresh["expires_in"] == 86400
    assert client.call("refresh", {"token": fresh["token"]}) == {"ok": True, "expires_in": 86400}
    assert still_served(client)
    request(server.url, "POST", "/api/logout", token=token)  # the refreshed token names the same session
    assert ended(client, "logged_out")
    assert refused_everywhere(server.url, fresh["token"])


def test_a_connection_is_warned_then_ended_at_expiry(short_server, open_client, secrets):
    token = register(short_server.url, f"brief{next(_names)}")
    secrets.append(token)
    client = open_client(short_server.url, token)
    assert client.wait_until(lambda c: any(name == "auth_expiring" for name, _ in c.events), 10)
    warning = next(payload for name, payload in client.events if name == "auth_expiring")
    assert warning["expires_in"] in (0, 1)
    assert ended(client, "token_expired", 10)
    assert refused_everywhere(short_server.url, token)


@pytest.mark.parametrize("transports", TRANSPORTS, ids=["websocket", "polling"])
def test_refresh_keeps_a_connection_past_its_first_expiry_with_nothing_missed(short_server, open_client, secrets,
                                                                              transports):
    reader, writer = f"reader{next(_names)}", f"writer{next(_names)}"
    token, writer_token = register(short_server.url, reader), register(short_server.url, writer)
    secrets.extend([token, writer_token])
    client = open_client(short_server.url, token, transports)
    room = f"refresh-{next(_names)}"
    client.join(room)
    for expiry in range(2):  # lives through two expiries of the tokens it holds in turn
        fresh = request(short_server.url, "POST", "/api/tokens/refresh", token=token)[1]  # ahead: the warning
        secrets.append(fresh["token"])  # of a 5 s token leaves half a second, a busy machine's HTTP call may not
        assert client.wait_until(lambda c, n=expiry + 1: sum(e == "auth_expiring" for e, _ in c.events) >= n, 10)
        assert client.call("refresh", {"token": fresh["token"]})["ok"]
        token = fresh["token"]
        writer_token = login(short_server.url, writer)
        secrets.append(writer_token)
        status, _ = request(short_server.url, "POST", f"/api/rooms/{room}/messages",
                            {"text": f"m{expiry}", "client_id": f"w{expiry}"}, token=writer_token)
        assert status == 201
    assert client.sio.connected and not any(name == "session_ended" for name, _ in client.events)
    assert client.wait_until(lambda c: [m["text"] for m in c.received.get(room, [])] == ["m0", "m1"], 5)


@pytest.fixture(scope="module")
def watcher(server, secrets):
    """The /monitor tests' admin, registered once; each test signs it in anew (login) for sessions of its own."""
    secrets.append(register(server.url, WATCHER))
    return WATCHER


def test_a_monitor_connection_ends_with_its_session(server, watcher, open_client, open_monitor, secrets):
    first, second = login(server.url, watcher), login(server.url, watcher)
    secrets.extend([first, second])
    dashboard, chat = open_monitor(server.url, first), open_client(server.url, first)
    other_dashboard = open_monitor(server.url, second)
    assert dashboard.watching() and other_dashboard.watching()
    assert request(server.url, "POST", "/api/logout", token=first)[0] == 204
    assert dashboard.ended("logged_out") and ended(chat, "logged_out")
    assert other_dashboard.watching()
    status, body = request(server.url, "POST", f"/api/users/{watcher}/disconnect", token=NOTIFY)
    assert status == 200 and body == {"disconnected": 1}
    assert other_dashboard.ended("disconnected_by_admin")


def test_a_monitor_connection_is_warned_then_ended_at_expiry(short_server, open_monitor, secrets):
    token = register(short_server.url, WATCHER)
    secrets.append(token)
    dashboard = open_monitor(short_server.url, token)
    assert dashboard.ended("token_expired", 10)
    assert [name for name, _ in dashboard.events if name != "backlog"] == ["auth_expiring", "session_ended"]
