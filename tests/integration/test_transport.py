"""Transport limits of a real server per async mode: oversized frames, many connections, clean closes."""
import http.client
import json
import socket
import struct
import time
from typing import Any

import pytest
import websocket

from tests.conformance.peer import TEXT, Peer, client_frame
from tests.servers import health, register

from .conftest import start_server
from .raw import (HUGE_FRAME, hold_connections, open_socketio, raise_open_file_limit, recv_ack, send_frame_header,
                  wait_closed)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

MAX_FRAME_BYTES = 1_000_000
MANY = 1100
CLOSES = 20


def close_code(data):
    """The code of the close frame at the end of what a client read, or None."""
    at = data.rfind(b"\x88")
    while at >= 0:
        length = data[at + 1] if at + 1 < len(data) else -1
        if 2 <= length <= 125 and at + 2 + length == len(data):
            return struct.unpack("!H", data[at + 2:at + 4])[0]
        at = data.rfind(b"\x88", 0, at)
    return None


def test_a_frame_over_the_limit_is_refused_without_buffering_it(server, user, room, clients):
    name, token = user()
    ws = open_socketio(server, token)
    rss_before = server.rss()

    send_frame_header(ws, HUGE_FRAME)
    ws.sock.settimeout(5)
    sent, chunk = 0, b"a" * 65536
    try:
        while sent < HUGE_FRAME:
            ws.sock.sendall(chunk)
            sent += len(chunk)
    except TimeoutError:
        pytest.fail(f"the server stopped reading after {sent} bytes but kept the connection open")
    except OSError:
        pass
    closed = wait_closed(ws.sock)
    growth = server.rss() - rss_before
    ws.sock.close()

    print(f"{server.mode}: refused after {sent / 1e6:.1f} MB sent; server RSS grew {growth / 1e6:.1f} MB")
    assert sent < HUGE_FRAME, "the server read the whole 64 MB frame"
    assert closed is not None, "the server did not close the connection"
    assert close_code(closed) == 1009, f"no 1009 close frame reached the client before the end: {closed[-40:]!r}"
    assert growth < 16 * 1024 * 1024, f"the server's memory grew by {growth} bytes: it buffered the frame"
    assert health(server.url) == 200
    socket_ = clients(server.url, token)
    socket_.join(room)
    assert socket_.send(room, "still here")["ok"]


def test_a_frame_under_the_limit_gets_an_error_ack_and_the_connection_stays(server, user, room):
    _, token = user()
    ws = open_socketio(server, token)
    ws.send("420" + json.dumps(["join", {"room": room}]))
    assert recv_ack(ws, 0)["ok"] is True
    text = "x" * (MAX_FRAME_BYTES - 1000)
    ws.send("421" + json.dumps(["message", {"room": room, "text": text, "client_id": "big"}]))
    ack = recv_ack(ws, 1)
    assert ack["ok"] is False and ack["error"]["code"] == "invalid_message"
    ws.send("422" + json.dumps(["message", {"room": room, "text": "small", "client_id": "small"}]))
    assert recv_ack(ws, 2)["message"]["seq"] == 1
    ws.sock.close()


def test_a_websocket_close_ends_the_tcp_connection(server, user):
    """After the close handshake the server closes TCP, as RFC 6455 asks, and reads no HTTP from it."""
    ws = open_socketio(server, user()[1])
    ws.send("41")
    ws.send("1")  # Engine.IO close: the server ends the WebSocket
    ws.sock.settimeout(5)
    frame = ws.recv_frame()
    assert frame.opcode == websocket.ABNF.OPCODE_CLOSE
    ws.send_close()
    assert wait_closed(ws.sock, timeout=2) is not None, f"{server.mode} kept the TCP connection open"
    ws.sock.close()
    time.sleep(0.1)
    assert "Expected GET method" not in server.log_tail(20)


def test_a_clients_close_is_always_answered_before_tcp_ends(server, user):
    """The client's close frame gets the server's (RFC 6455 5.5.1), every time: no bare TCP drop."""
    token = user()[1]
    for attempt in range(CLOSES):
        ws = open_socketio(server, token)
        ws.sock.sendall(bytes([0x88, 0x82]) + b"\0\0\0\0" + struct.pack("!H", 1000))
        answer = wait_closed(ws.sock, timeout=5)
        ws.sock.close()
        assert answer is not None, f"attempt {attempt + 1}: {server.mode} kept the TCP connection open"
        assert answer.endswith(b"\x88\x02\x03\xe8"), \
            f"attempt {attempt + 1}: {server.mode} ended TCP without answering the close: {answer[-20:]!r}"


def test_a_bad_handshake_gets_rfc_6455s_answer(server):
    """A key that is not 16 bytes gets 400; another version gets 426 naming version 13 (RFC 6455 4.2.2, 4.4)."""
    url = server.url.replace("http", "ws", 1) + "/socket.io/?EIO=4&transport=websocket"
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(url, timeout=5, header=["Sec-WebSocket-Key: " + "a2V5" * 4])
    assert refused.value.status_code == 400
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        websocket.create_connection(url, timeout=5, header=["Sec-WebSocket-Version: 8"])
    assert refused.value.status_code == 426
    headers = refused.value.resp_headers
    assert headers is not None
    assert headers.get("sec-websocket-version") == "13"


def test_a_polling_session_upgrades_to_websocket_and_is_answered_by_the_101_alone(server):
    """Engine.IO's upgrade of a polling session: under gevent a 200 went out before the 101, and no upgrade held."""
    handshake = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    handshake.request("GET", "/socket.io/?EIO=4&transport=polling")
    sid = json.loads(handshake.getresponse().read()[1:])["sid"]
    handshake.close()
    peer = Peer("127.0.0.1", server.port, f"/socket.io/?EIO=4&transport=websocket&sid={sid}")
    try:
        assert peer.accepted, (peer.status, peer.response_headers)
        peer.send(client_frame(b"2probe"))
        peer.read_until(lambda: any(kind == "frame" for _, kind, _ in peer.events), 5)
        assert [detail for _, kind, detail in peer.events if kind == "frame"][:1] == [(True, 0, TEXT, b"3probe")]
    finally:
        peer.close()


def test_a_client_that_starts_on_polling_moves_to_websocket(server, user, room, clients):
    client = clients(server.url, user()[1], transports=["polling", "websocket"])
    assert client.wait_until(lambda c: c.transport == "websocket", 5), client.transport
    client.join(room)
    assert client.send(room, "after the upgrade")["ok"]
    assert client.wait_until(lambda c: c.seqs(room) == [1], 5)


def test_connections_upgraded_from_polling_outlive_the_garbage_collector(server, user, room, clients):
    """The upgrade request's handler is garbage once it detached; collecting it must not close the socket.

    Under gevent the server closed each handler's socket after the request, and the descriptor stayed
    open only while the handler's file object lived: the collector's next pass over it cut the
    connection. Hundreds of messages give the server's collector passes over every handler.
    """
    upgraded = [clients(server.url, user()[1], transports=["polling", "websocket"]) for _ in range(10)]
    for client in upgraded:
        assert client.wait_until(lambda c: c.transport == "websocket", 5), client.transport
        client.join(room)
    sender = clients(server.url, user()[1])
    sender.join(room)
    for n in range(300):
        assert sender.send(room, f"message {n}")["ok"]
    for client in upgraded:
        assert client.wait_until(lambda c: c.seqs(room) == list(range(1, 301)), 10), len(client.seqs(room))
        assert client.sio.connected


def test_more_than_1024_connections_are_served_at_once(server):
    if server.mode == "threading":
        pytest.skip("a thread per connection under the development server; the cap is a production promise")
    hold_connections(server, MANY)


@pytest.mark.parametrize("mode", ["eventlet", "gevent"])
def test_websockets_past_max_connections_are_refused_until_one_closes(mode, tmp_path_factory):
    """The transport holds WebSockets without the WSGI server's pool, so it counts them itself."""
    server = start_server(mode, tmp_path_factory, MAX_CONNECTIONS="3")
    try:
        token = register(server.url, "capped")
        held = [open_socketio(server, token) for _ in range(3)]
        with pytest.raises(websocket.WebSocketBadStatusException) as refused:
            open_socketio(server, token)
        assert refused.value.status_code == 503
        held.pop().close()
        deadline = time.monotonic() + 5
        while True:
            try:
                held.append(open_socketio(server, token))
                break
            except websocket.WebSocketBadStatusException:
                assert time.monotonic() < deadline, "a closed WebSocket never gave its place back"
                time.sleep(0.1)
        for ws in held:
            ws.close()
    finally:
        server.close()


DRAINED = 300


def raw_websocket(server):
    """A WebSocket on Engine.IO's path, opened by hand; the socket, after the 101 and Engine.IO's open packet."""
    sock = socket.create_connection((server.host, server.port), timeout=10)
    sock.sendall(f"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: {server.host}\r\n"
                 "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                 "Sec-WebSocket-Version: 13\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data or not data.split(b"\r\n\r\n", 1)[1]:
        data += sock.recv(4096)
    assert data.startswith(b"HTTP/1.1 101"), data[:100]
    return sock


def watch_until_closed(sockets, began, timeout=20):
    """{socket: [bytes read, seconds after `began` when the server closed it (None if it did not)]}."""
    import selectors

    seen: dict[socket.socket, list[Any]] = {sock: [b"", None] for sock in sockets}
    selector = selectors.DefaultSelector()
    for sock in sockets:
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ)
    while selector.get_map() and time.monotonic() - began < timeout:
        for key, _ in selector.select(timeout=0.5):
            assert isinstance(key.fileobj, socket.socket)
            try:
                chunk = key.fileobj.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                chunk = b""
            seen[key.fileobj][0] += chunk
            if not chunk:
                seen[key.fileobj][1] = time.monotonic() - began
                selector.unregister(key.fileobj)
    selector.close()
    return seen


@pytest.mark.parametrize("mode", ["eventlet", "gevent"])
def test_sigterm_drains_connections_in_batches_and_exits(mode, tmp_path_factory):
    """SIGTERM: nothing new is accepted; every WebSocket gets a 1001 close, in batches over DRAIN_SECONDS; then exit."""
    import signal

    raise_open_file_limit(DRAINED + 200)
    server = start_server(mode, tmp_path_factory, DRAIN_SECONDS="1.5")
    sockets = []
    try:
        sockets = [raw_websocket(server) for _ in range(DRAINED)]
        began = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        seen = watch_until_closed(sockets, began)
        status = server.process.wait(timeout=20)
        took = time.monotonic() - began
        with pytest.raises(OSError):
            socket.create_connection((server.host, server.port), timeout=2).close()
    finally:
        for sock in sockets:
            sock.close()
        server.close()
    codes = [close_code(data) for data, _ in seen.values()]
    ends = sorted(at for _, at in seen.values() if at is not None)
    print(f"{mode}: {len(ends)} of {DRAINED} closed from {ends[0]:.2f} s to {ends[-1]:.2f} s; exit after {took:.2f} s")
    assert status == 0
    assert codes.count(1001) == DRAINED, f"close codes: {sorted(set(map(str, codes)))}"
    assert len(ends) == DRAINED, "some connections were still open when the process ended"
    assert len({int(at * 10) for at in ends}) >= 5, "the connections were closed all at once, not in batches"
    assert ends[-1] >= 1.2, "the batches did not reach the end of the window (DRAIN_SECONDS)"
