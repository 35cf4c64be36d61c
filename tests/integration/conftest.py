"""Fixtures: a real server process per async mode, users on it, and python-socketio clients."""
import contextlib
import itertools
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.servers import MODES, ServerProcess, check_no_secret_logged, register

from .client import ChatClient

_names = itertools.count(1)


@pytest.fixture(scope="session", autouse=True)
def no_secret_in_server_logs():
    """After the run, no server log holds a password, token or key the tests used (tests/servers.SECRETS)."""
    yield
    check_no_secret_logged()


def start_server(mode, tmp_path_factory, **env):
    """A started ServerProcess on a fresh SQLite file; the caller closes it."""
    db = tmp_path_factory.mktemp(f"db-{mode}") / "papo.db"
    server = ServerProcess(mode, f"sqlite:///{db}", env=env)
    try:
        return server.start()
    except BaseException:
        server.close()
        raise


@pytest.fixture(scope="module", params=MODES)
def server(request, tmp_path_factory):
    """One server per mode, shared by a module's tests (each uses its own users and rooms)."""
    server = start_server(request.param, tmp_path_factory)
    yield server
    server.close()


@pytest.fixture
def fresh_server(request, tmp_path_factory):
    """A server of the mode given by indirect parametrisation, for a test that kills or stops it."""
    server = start_server(request.param, tmp_path_factory)
    yield server
    server.close()


@pytest.fixture
def user(server):
    """Register a new user on the module's server; (name, token)."""

    def make(prefix="u"):
        name = f"{prefix}{next(_names)}"
        return name, register(server.url, name)

    return make


@pytest.fixture
def room():
    """A room name no other test uses."""
    return f"room-{next(_names)}"


@pytest.fixture
def clients():
    """Open ChatClients for (url, token, ...); every one is disconnected at the end, side by side."""
    opened = []

    def make(url, token, **options):
        client = ChatClient(url, token, **options)
        opened.append(client)
        return client.connect()

    yield make
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(_close_quietly, opened))


@pytest.fixture
def open_client(clients):
    """Open a ChatClient for (url, token, transports), closed with the others at the end."""
    return lambda url, token, transports=("websocket",): clients(url, token, transports=transports)


def _close_quietly(client):
    with contextlib.suppress(Exception):
        client.close()
