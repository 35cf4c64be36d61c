"""Raw sockets for what a Socket.IO client library will not do: handshakes by hand, huge frames, idle connections."""
import json
import resource
import socket
import struct
import time

import pytest
import websocket

HUGE_FRAME = 64 * 1024 * 1024


def open_socketio(server, token, **auth):
    """A raw WebSocket that has done the Engine.IO and Socket.IO handshakes on `/` (auth: more of its fields)."""
    ws = websocket.create_connection(server.url.replace("http", "ws", 1) + "/socket.io/?EIO=4&transport=websocket",
                                     timeout=5)
    opened = ws.recv()
    assert isinstance(opened, str) and opened.startswith("0{")
    ws.send("40" + json.dumps({"token": token, **auth}))
    connected = ws.recv()
    assert isinstance(connected, str) and connected.startswith("40{")
    return ws


def recv_ack(ws, ack_id):
    """The payload of the ack with this id, skipping the events that come before it."""
    prefix = f"43{ack_id}["
    while True:
        packet = ws.recv()
        if packet.startswith(prefix):
            return json.loads(packet[len(prefix) - 1:])[0]


def send_frame_header(ws, length):
    """Start a masked text frame of `length` bytes (the mask key is zero, so the payload goes as is)."""
    ws.sock.sendall(bytes([0x81, 0x80 | 127]) + struct.pack("!Q", length) + b"\0\0\0\0")


def wait_closed(sock, timeout=5):
    """Read until the peer closes the TCP connection; what was read, or None if it stayed open."""
    sock.settimeout(0.2)
    deadline = time.monotonic() + timeout
    data = b""
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except OSError:  # reset: closed too
            return data
        if not chunk:
            return data
        data += chunk
    return None


def raise_open_file_limit(needed):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return
    if hard != resource.RLIM_INFINITY and hard < needed:
        pytest.skip(f"this test needs {needed} open files; the hard limit is {hard}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed, hard))


def healthz(sock, host):
    """One keep-alive GET /healthz on an open socket; the status code."""
    sock.sendall(f"GET /healthz HTTP/1.1\r\nHost: {host}\r\nConnection: keep-alive\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("closed by the server")
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length"))
    while len(body) < length:
        body += sock.recv(4096)
    return int(head.split()[1])


def hold_connections(server, count):
    """Open `count` keep-alive connections, each answered once; then check a new one is still served."""
    raise_open_file_limit(count + 200)
    host = f"{server.host}:{server.port}"
    held = []
    try:
        for n in range(count):
            sock = socket.create_connection((server.host, server.port), timeout=5)
            held.append(sock)
            try:
                assert healthz(sock, host) == 200
            except (OSError, AssertionError) as error:
                pytest.fail(f"connection {n + 1} was not served ({error!r})\n{server.log_tail(10)}")
        with socket.create_connection((server.host, server.port), timeout=5) as sock:
            assert healthz(sock, host) == 200
        assert healthz(held[0], host) == 200
    finally:
        for sock in held:
            sock.close()
