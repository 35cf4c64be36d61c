"""Fixtures: an app on a fresh SQLite file, its HTTP client, users and Socket.IO test clients."""
import itertools
import threading
import time

import pytest

from chat import create_app

TEST_SECRET = "test-secret-key-for-papo-tests"
PASSWORD = "correct-horse"
_names = itertools.count(1)


def bearer(token):
    """The Authorization header of a bearer token."""
    return {"Authorization": f"Bearer {token}"}


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self, now=1000.0):
        self.now = now

    def __call__(self):
        return self.now


@pytest.fixture(scope="session", autouse=True)
def no_client_left_reconnecting():
    """Fail the run when a test's python-socketio client is still reconnecting after every test ended.

    Such a client tries forever, in a thread of the test process, against a server that is gone or
    against the next test's server on the same port, drawing on the global `random` meanwhile (which
    hypothesis warns of when it happens during one of its draws).
    """
    yield
    deadline = time.monotonic() + 5
    while (left := [t.name for t in threading.enumerate() if "_handle_reconnect" in t.name]) and \
            time.monotonic() < deadline:
        time.sleep(0.1)
    assert not left, f"Socket.IO clients still reconnecting after the tests: {left}"


@pytest.fixture
def settings():
    """Settings the `app` fixture adds to the test defaults; a test module overrides it for its own."""
    return {}


@pytest.fixture
def app(tmp_path, settings):
    # Form posts need no CSRF token here; tests/test_security.py and the browser suite test it switched on.
    app = create_app({"DATABASE_URL": f"sqlite:///{tmp_path}/papo.db", "SECRET_KEY": TEST_SECRET,
                      "TESTING": True, "WTF_CSRF_ENABLED": False, **settings})
    yield app
    monitor = getattr(app.extensions["papo"], "monitor", None)
    if monitor is not None:
        monitor.stop()
    app.extensions["papo"].store.close()


@pytest.fixture
def make_app(tmp_path):
    """Build apps with settings of the test's choosing (CSRF on unless told otherwise); close them after."""
    made = []

    def make(**settings):
        db = tmp_path / f"papo{next(_names)}.db"
        app = create_app({"DATABASE_URL": f"sqlite:///{db}", "SECRET_KEY": TEST_SECRET, "TESTING": True, **settings})
        made.append(app)
        return app

    yield make
    for app in made:
        app.extensions["papo"].store.close()


@pytest.fixture
def papo(app):
    return app.extensions["papo"]


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def user(papo):
    """Register a user; returns (name, bearer token)."""

    def make(name=None):
        name = name or f"user{next(_names)}"
        papo.identity.register(name, PASSWORD)
        return name, papo.identity.issue_token(name)["token"]

    return make


@pytest.fixture
def connect(app, papo):
    """Open a Socket.IO test client for a user token."""
    clients = []

    def make(token):
        socket = papo.socketio.test_client(app, auth={"token": token})
        assert socket.is_connected()
        clients.append(socket)
        return socket

    yield make
    for socket in clients:
        if socket.is_connected():
            socket.disconnect()


def events(socket, name):
    """The payloads of the events called `name` a test client has received since the last call."""
    return [e["args"] if isinstance(e["args"], dict) else e["args"][0]
            for e in socket.get_received() if e["name"] == name]
