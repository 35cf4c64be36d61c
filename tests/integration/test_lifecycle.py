"""A server's life: killed with SIGKILL and started again on the same database, stopped with SIGTERM."""
import socket
import sqlite3
import time

import pytest

from chat.config import DEFAULT_ASYNC_MODE
from tests.servers import DEFAULT_MODE, MODES, ServerProcess, post_message, read_messages, register

from .raw import hold_connections

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

modes = pytest.mark.parametrize("fresh_server", MODES, indirect=True)


@pytest.mark.parametrize("fresh_server, transport",
                         [(mode, "websocket") for mode in MODES] + [(DEFAULT_MODE, "polling")],
                         indirect=["fresh_server"])
def test_a_reconnecting_client_gets_exactly_what_it_missed_after_kill_9(fresh_server, clients, transport):
    server, room = fresh_server, "recovery"
    reader = clients(server.url, register(server.url, "reader"), transports=[transport], reconnection=True,
                     reconnection_delay=0.2, reconnection_delay_max=0.5, randomization_factor=0)
    writer = register(server.url, "writer")
    reader.join(room)
    before = [post_message(server.url, writer, room, f"before {n}", client_id=f"b{n}") for n in range(3)]
    assert reader.wait_until(lambda c: len(c.received.get(room, [])) == 3)

    assert server.kill() == -9
    assert reader.wait_until(lambda c: not c.sio.connected, timeout=10), "the client did not notice the crash"
    # While the reader is away, the writer goes on through a server on another port and the same database.
    with ServerProcess(server.mode, server.db_url) as elsewhere:
        missed = [post_message(elsewhere.url, writer, room, f"missed {n}", client_id=f"m{n}") for n in range(3)]
        assert elsewhere.kill() == -9
    server.start()
    assert reader.wait_until(lambda c: len(c.joins) == 2, timeout=15), "the client did not re-join"
    after = [post_message(server.url, writer, room, f"after {n}", client_id=f"a{n}") for n in range(2)]
    assert reader.wait_until(lambda c: len(c.received.get(room, [])) >= 8, timeout=10)
    time.sleep(0.3)  # room for a duplicate to arrive

    everything = before + missed + after
    assert [m["seq"] for m in everything] == list(range(1, 9)), "seq must go on from the database after a crash"
    assert read_messages(server.url, writer, room) == everything
    assert reader.connects == 2
    _, since, ack = reader.joins[1]
    assert since == 3, "the client re-joins with the last seq it has"
    assert ack["ok"] and ack["truncated"] is False and ack["last_seq"] == 6
    assert ack["messages"] == missed, "the re-join replays exactly what came after since"
    assert reader.received[room] == everything, "a message was lost, repeated or out of order"


@modes
def test_sigterm_stops_the_server_cleanly(fresh_server, clients):
    server = fresh_server
    socket_ = clients(server.url, register(server.url, "stays"))
    socket_.join("lobby")
    began = time.monotonic()
    code = server.stop(timeout=5)
    took = time.monotonic() - began
    print(f"{server.mode}: SIGTERM -> exit {code} in {took:.2f} s")
    assert code == 0, f"exit status {code} after SIGTERM\n{server.log_tail(15)}"
    assert took < 5
    assert socket_.wait_until(lambda c: not c.sio.connected, timeout=5)


def test_a_server_given_no_mode_runs_the_default_one(tmp_path):
    with ServerProcess(DEFAULT_MODE, f"sqlite:///{tmp_path}/papo.db", env={"ASYNC_MODE": None}) as server:
        assert f"({DEFAULT_ASYNC_MODE})" in server.log_tail()
    assert DEFAULT_MODE == DEFAULT_ASYNC_MODE


@pytest.mark.parametrize("mode", ["eventlet", "gevent"])
def test_more_than_1024_connections_under_a_1024_open_file_limit(mode, tmp_path):
    """A fresh machine's shell often gives 1024 open files; the server raises its own limit to serve more."""
    with ServerProcess(mode, f"sqlite:///{tmp_path}/papo.db", nofile=1024) as server:
        hold_connections(server, 1100)


@pytest.mark.parametrize("mode", ["eventlet", "gevent"])
def test_a_request_made_while_the_server_starts_is_answered_once_it_is_ready(mode, tmp_path):
    """The production server opens its port before it loads: a client arriving meanwhile waits, is not refused."""
    database = tmp_path / "papo.db"
    holder = sqlite3.connect(database, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # the server's migrations wait for this lock: it is starting until we let go
    server = ServerProcess(mode, f"sqlite:///{database}")
    try:
        server.spawn()
        client = _connect(server.port, within=10)
        assert client is not None, f"the port refused connections while the server started\n{server.log_tail()}"
        client.sendall(b"GET /healthz HTTP/1.1\r\nHost: papo\r\nConnection: close\r\n\r\n")
        client.settimeout(0.5)
        with pytest.raises(TimeoutError):
            client.recv(1)  # not answered while the database is locked: the server is still starting
        holder.rollback()
        holder.close()
        client.settimeout(20)
        answer = b"".join(iter(lambda: client.recv(65536), b""))
        client.close()
        assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
        assert server.alive()
    finally:
        holder.close()
        server.close()


def _connect(port, within):
    """A TCP connection to the port, trying until `within` seconds have passed; None if it kept refusing."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            return socket.create_connection(("127.0.0.1", port), timeout=1)
        except ConnectionRefusedError:
            time.sleep(0.02)
    return None
