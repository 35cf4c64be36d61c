"""Slow or silent clients cannot hold server resources forever.

Engine.IO pings every PING_INTERVAL seconds and drops a client that has not answered within
PING_TIMEOUT, over WebSocket and long-polling alike; the production servers (eventlet, gevent)
also time out a socket that stays silent for SOCKET_TIMEOUT, such as a half-sent request.
Here the three are shortened (2 s, 2 s, 8 s) to keep the test short.
"""
import json
import socket
import time
import urllib.request

import pytest
import websocket

from tests.integration.client import ChatClient

from .conftest import assert_still_serving

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

SOCKET_TIMEOUT = 8
SERVER_ENV = {"PING_INTERVAL": "2", "PING_TIMEOUT": "2", "SOCKET_TIMEOUT": str(SOCKET_TIMEOUT)}
DROPPED_WITHIN = 2 + 2 + 3  # interval + timeout + slack


def observer_in(server, token, room):
    watcher = ChatClient(server.url, token).connect()
    watcher.join(room)
    return watcher


def left(watcher, room):
    return lambda c: any(name == "presence" and data["room"] == room and data["action"] == "leave"
                         for name, data in c.events)


def test_a_silent_websocket_client_is_dropped_and_leaves_its_rooms(server, token):
    from tests.servers import register
    watcher = observer_in(server, register(server.url, f"w{time.monotonic_ns()}"), "quiet-ws")
    try:
        ws = websocket.create_connection(server.url.replace("http", "ws", 1) + "/socket.io/?EIO=4&transport=websocket",
                                         timeout=5)
        handshake = json.loads(ws.recv()[1:])
        assert handshake["pingInterval"] == 2000 and handshake["pingTimeout"] == 2000
        ws.send("40" + json.dumps({"token": token}))
        connected = ws.recv()
        assert isinstance(connected, str) and connected.startswith("40")
        sock = ws.sock
        assert sock is not None
        ws.send("420" + json.dumps(["join", {"room": "quiet-ws"}]))
        began = time.monotonic()
        # from here on the client never answers a ping
        sock.settimeout(DROPPED_WITHIN + SOCKET_TIMEOUT + 5)
        closing = closed = None
        try:
            while closing is None:
                if ws.recv_frame().opcode == websocket.ABNF.OPCODE_CLOSE:
                    closing = time.monotonic() - began
            if server.mode != "threading":
                while sock.recv(65536):
                    pass
                closed = time.monotonic() - began
        except (OSError, websocket.WebSocketException):
            closed = time.monotonic() - began
            closing = closing or closed
        finally:
            sock.close()
        print(f"{server.mode}: silent WebSocket client dropped after {closing:.1f} s, TCP closed after {closed} s")
        assert closing < DROPPED_WITHIN, f"no close after {closing:.1f} s"
        if server.mode != "threading":  # the development server never times a socket out
            assert closed is not None and closed < DROPPED_WITHIN + SOCKET_TIMEOUT + 5
        assert watcher.wait_until(left(watcher, "quiet-ws"), timeout=3), "the dropped client never left the room"
    finally:
        watcher.close()
    assert_still_serving(server)


def polling(server, method, sid=None, body=None):
    url = server.url + "/socket.io/?EIO=4&transport=polling" + (f"&sid={sid}" if sid else "")
    request = urllib.request.Request(url, data=body.encode() if body else None, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_a_polling_client_that_stops_polling_is_dropped(server, token):
    from tests.servers import register
    watcher = observer_in(server, register(server.url, f"w{time.monotonic_ns()}"), "quiet-poll")
    try:
        status, body = polling(server, "GET")
        sid = json.loads(body[1:])["sid"]
        assert polling(server, "POST", sid, "40" + json.dumps({"token": token}))[0] == 200
        assert polling(server, "GET", sid)[1].startswith("40")
        assert polling(server, "POST", sid, "420" + json.dumps(["join", {"room": "quiet-poll"}]))[0] == 200
        began = time.monotonic()
        assert watcher.wait_until(left(watcher, "quiet-poll"), timeout=DROPPED_WITHIN + 3), \
            "the client that stopped polling never left the room"
        print(f"{server.mode}: silent polling client dropped after {time.monotonic() - began:.1f} s")
        assert polling(server, "GET", sid)[0] == 400  # its session is gone
    finally:
        watcher.close()
    assert_still_serving(server)


@pytest.mark.parametrize("opening", [b"", b"GET /healthz HTTP/1.1\r\nHost: x\r\n", b"POST /api/users HTTP/1.1\r\n"
                                     b"Host: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"],
                         ids=["nothing", "half-a-header", "half-a-body"])
def test_a_socket_that_goes_silent_is_closed(server, opening):
    if server.mode == "threading":
        pytest.skip("the development server (threading) has no socket timeout; production runs eventlet or gevent")
    sock = socket.create_connection((server.host, server.port), timeout=15)
    began = time.monotonic()
    try:
        sock.sendall(opening)
        assert_still_serving(server)  # others are served meanwhile
        try:
            while sock.recv(65536):
                pass
        except (TimeoutError, OSError):
            pass
        took = time.monotonic() - began
    finally:
        sock.close()
    print(f"{server.mode}: silent socket ({opening[:20]!r}) closed after {took:.1f} s")
    assert took < SOCKET_TIMEOUT + 3, f"the server held a silent socket for {took:.1f} s"
