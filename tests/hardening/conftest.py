"""Fixtures for hardening tests against real server processes: a server per async mode, raw sockets."""
import itertools
import socket
import time

import pytest

from tests.servers import MODES, ServerProcess, health, register

_names = itertools.count(1)


@pytest.fixture(scope="module", params=MODES)
def server(request, tmp_path_factory):
    """One server per async mode, shared by a module's tests; a module may set SERVER_ENV."""
    env = getattr(request.module, "SERVER_ENV", {})
    db = tmp_path_factory.mktemp(f"hardening-{request.param}") / "papo.db"
    with ServerProcess(request.param, f"sqlite:///{db}", env=env) as proc:
        yield proc


@pytest.fixture
def token(server):
    """A bearer token of a new user on the module's server."""
    return register(server.url, f"h{next(_names)}")


def raw_exchange(server, data, timeout=3.0, hold=0.0):
    """Send raw bytes on a fresh TCP connection, wait `hold` seconds, read what comes back until close or timeout."""
    sock = socket.create_connection((server.host, server.port), timeout=timeout)
    answer = b""
    try:
        if data:
            sock.sendall(data)
        time.sleep(hold)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if answer:
                sock.settimeout(0.3)  # an answer came; the rest follows at once or never (keep-alive)
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            except OSError:
                break
            if not chunk:
                break
            answer += chunk
    except OSError:
        pass
    finally:
        sock.close()
    return answer


def status_of(answer):
    """The status code at the start of a raw HTTP answer, or None."""
    try:
        return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/") else None
    except (IndexError, ValueError):
        return None


def assert_still_serving(server, within=3.0):
    """The process lives and GET /healthz answers 200 within `within` seconds."""
    assert server.alive(), f"the {server.mode} server died\n{server.log_tail(30)}"
    began = time.monotonic()
    status = health(server.url, timeout=within)
    took = time.monotonic() - began
    assert status == 200, f"/healthz answered {status} after {took:.1f} s\n{server.log_tail(30)}"
