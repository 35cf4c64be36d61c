"""The transport's connection on a fake hub over a socket pair: raw bytes in, what the client reads out."""
import contextlib
import socket
import struct
import time

import pytest

from chat.transport.connection import Connection, Flusher
from chat.transport.driver import EchoEndpoint, Transport
from chat.transport.hubs import FakeHub
from chat.transport.protocol import State, accept_response
from tests.test_websocket import client_frame

MAX = 1000


@pytest.fixture
def pair():
    """(hub, connection with an echo endpoint, the client's socket)."""
    server, client = socket.socketpair()
    server.setblocking(False)
    client.settimeout(2)
    hub = FakeHub()
    connection = Connection(server, Flusher(hub), MAX, EchoEndpoint())
    connection.start()
    yield hub, connection, client
    connection.close()
    client.close()


def exchange(hub, client, data):
    """Send raw bytes, let the hub read and answer; what the client can read now (b"" once closed)."""
    client.sendall(data)
    hub.fire()
    hub.run()
    client.settimeout(0.5)
    received = b""
    try:
        while True:
            chunk = client.recv(65536)
            if not chunk:
                break
            received += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return received


def test_messages_are_echoed_and_a_close_is_answered_then_tcp_ends(pair):
    hub, connection, client = pair
    assert exchange(hub, client, client_frame(b"hi")) == b"\x81\x02hi"
    assert exchange(hub, client, client_frame(struct.pack("!H", 1000), 0x8)) == b"\x88\x02\x03\xe8"
    assert not connection.closed  # our end is shut: the socket lingers until the client hangs up
    client.shutdown(socket.SHUT_WR)
    hub.fire()
    assert connection.closed


def test_a_client_that_never_hangs_up_is_closed_after_the_grace(pair):
    hub, connection, client = pair
    exchange(hub, client, client_frame(struct.pack("!H", 1000), 0x8) + client_frame(b"late", 0x9))
    hub.fire()
    assert not connection.closed
    hub.run(10)
    assert connection.closed


def test_the_close_behind_a_long_echo_reaches_a_client_that_sent_a_frame_after_its_close():
    """Closing with the client's last frame unread would reset TCP and drop the close frame still queued."""
    listener = socket.create_server(("127.0.0.1", 0))
    client = socket.socket()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # the echo waits in the server's send queue
    client.connect(listener.getsockname())
    server, _ = listener.accept()
    listener.close()
    server.setblocking(False)
    client.setblocking(False)
    hub = FakeHub()
    connection = Connection(server, Flusher(hub), 1 << 20, EchoEndpoint())
    connection.start()
    text = b"BAsd7&jh23" * 26214
    outgoing = memoryview(client_frame(text) + client_frame(struct.pack("!H", 1000), 0x8))
    deadline = time.monotonic() + 5
    while (outgoing or connection.protocol.state is not State.CLOSED) and time.monotonic() < deadline:
        with contextlib.suppress(BlockingIOError):
            outgoing = outgoing[client.send(outgoing):]
        hub.fire()
    assert connection.protocol.state is State.CLOSED
    hub.run()
    client.send(client_frame(b"x", 0x9))  # unread by a server that has stopped reading
    received = b""
    while time.monotonic() < deadline:
        hub.fire(writable=True)
        hub.fire()
        try:
            chunk = client.recv(65536)
        except BlockingIOError:
            continue
        if not chunk:
            break
        received += chunk
    connection.close()
    client.close()
    assert received == b"\x81\x7f" + len(text).to_bytes(8, "big") + text + b"\x88\x02\x03\xe8"


def test_an_oversized_frame_gets_its_1009_close_frame_before_the_connection_is_reset(pair):
    hub, connection, client = pair
    received = exchange(hub, client, b"\x81\xff" + (64 << 20).to_bytes(8, "big") + b"\0\0\0\0" + b"a" * 4096)
    assert received == b"\x88\x02" + struct.pack("!H", 1009)
    assert connection.closed


def test_a_failed_connection_releases_its_parser_buffer_at_once(pair):
    hub, connection, client = pair
    exchange(hub, client, client_frame(b"x" * 900, fin=False))
    assert connection.protocol.parser.size == 900
    received = exchange(hub, client, client_frame(b"y", opcode=0x3))
    assert received == b"\x88\x02" + struct.pack("!H", 1002)
    assert connection.protocol.state is State.CLOSED
    assert connection.protocol.parser.parts == [] and not connection.protocol.parser.buffer
    client.shutdown(socket.SHUT_WR)
    hub.fire()
    assert connection.closed


class CountedSocket:
    """A socket that records every send and sendall, for counting what reaches the kernel."""

    def __init__(self, sock):
        self.sock = sock
        self.sends: list[bytes] = []

    def send(self, data):
        self.sends.append(bytes(data))
        return self.sock.send(data)

    def sendall(self, data):
        self.sends.append(bytes(data))
        return self.sock.sendall(data)

    def __getattr__(self, name):
        return getattr(self.sock, name)


def test_frames_written_in_one_turn_go_out_in_one_send(pair, monkeypatch):
    hub, connection, client = pair
    counted = CountedSocket(connection.outbox.sock)
    monkeypatch.setattr(connection.outbox, "sock", counted)
    for n in range(3):
        connection.send(b"\x81\x01" + str(n).encode())
    hub.run()
    assert counted.sends == [b"\x81\x010\x81\x011\x81\x012"]


class Greeter(EchoEndpoint):
    """Sends a frame as soon as it starts, as Engine.IO's open packet is."""

    def started(self, connection):
        connection.send(b"\x81\x010")


def test_the_handshake_answer_goes_out_with_the_first_frames_in_one_send():
    server, client = socket.socketpair()
    server.setblocking(False)
    client.settimeout(2)
    counted = CountedSocket(server)
    hub = FakeHub()
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    environ = {"REQUEST_METHOD": "GET", "HTTP_CONNECTION": "Upgrade", "HTTP_UPGRADE": "websocket",
               "HTTP_SEC_WEBSOCKET_VERSION": "13", "HTTP_SEC_WEBSOCKET_KEY": key,
               "papo.detach": lambda: None, "papo.socket": counted}
    try:
        assert Transport(hub, MAX, None).accept(environ, None, Greeter()) == ()  # not a list: no 200 from Engine.IO
        hub.run()
        assert counted.sends == [accept_response(key) + b"\x81\x010"]
        assert client.recv(65536) == accept_response(key) + b"\x81\x010"
    finally:
        server.close()
        client.close()


def test_a_server_close_waits_for_the_clients_answer_within_a_grace(pair):
    hub, connection, client = pair
    connection.hang_up(1001)
    hub.run()
    assert client.recv(16) == b"\x88\x02\x03\xe9"
    assert not connection.closed
    hub.run(10)
    assert connection.closed


def test_a_closing_connection_is_finished_once_its_close_frame_is_out(pair):
    hub, connection, client = pair
    connection.hang_up(1001)
    assert not connection.outbox.finished  # queued for the end of the turn
    hub.run()
    assert connection.outbox.finished and not connection.closed  # sent, our half shut; the answer may follow
    assert client.recv(16) == b"\x88\x02\x03\xe9"
