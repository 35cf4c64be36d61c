"""Cross-site WebSocket hijacking: only the app's own origin may open a Socket.IO connection.

Engine.IO's cors_allowed_origins=None (the default, CORS_ALLOWED_ORIGINS unset) means the
origin must match the Host the request came to. Browsers always send Origin on WebSocket
handshakes and on cross-origin XHR, and page script cannot forge it.
"""
import json
import urllib.error
import urllib.request

import pytest
import websocket

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

FOREIGN = "http://evil.example"


def ws_url(server):
    return server.url.replace("http", "ws", 1) + "/socket.io/?EIO=4&transport=websocket"


def open_websocket(server, origin):
    """(opened, first packet or error) of a WebSocket handshake carrying `origin` (None: no Origin header)."""
    options = {"suppress_origin": True} if origin is None else {"origin": origin}
    try:
        ws = websocket.create_connection(ws_url(server), timeout=5, **options)
    except websocket.WebSocketBadStatusException as error:
        return False, error.status_code
    try:
        return True, ws.recv()
    finally:
        ws.close()


def polling_handshake(server, origin, method="GET"):
    headers = {"Origin": origin} if origin else {}
    request = urllib.request.Request(server.url + "/socket.io/?EIO=4&transport=polling", headers=headers,
                                     method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status, answer.read().decode(), dict(answer.headers)
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(), dict(error.headers)


def test_a_foreign_origin_cannot_open_a_websocket(server, token):
    opened, answer = open_websocket(server, FOREIGN)
    assert not opened and answer == 400
    for origin in (server.url.replace("127.0.0.1", "localhost"), server.url + ".evil.example", "null",
                   server.url.replace("http:", "https:")):
        assert open_websocket(server, origin) == (False, 400), origin


def test_the_own_origin_and_non_browser_clients_may(server, token):
    opened, packet = open_websocket(server, server.url)
    assert opened and packet.startswith("0{")
    opened, packet = open_websocket(server, None)
    assert opened and packet.startswith("0{")


def test_a_foreign_origin_cannot_poll_either(server):
    status, body, headers = polling_handshake(server, FOREIGN)
    assert status == 400 and "sid" not in body
    assert "Access-Control-Allow-Origin" not in headers
    status, _, headers = polling_handshake(server, FOREIGN, method="OPTIONS")
    assert status == 400 and "Access-Control-Allow-Origin" not in headers
    status, body, _ = polling_handshake(server, server.url)
    assert status == 200 and json.loads(body[1:])["sid"]


def test_cors_allowed_origins_lets_in_only_the_origins_it_names(tmp_path):
    from tests.servers import DEFAULT_MODE, ServerProcess
    with ServerProcess(DEFAULT_MODE, f"sqlite:///{tmp_path}/papo.db",
                       env={"CORS_ALLOWED_ORIGINS": "http://friend.example"}) as friendly:
        opened, packet = open_websocket(friendly, "http://friend.example")
        assert opened and packet.startswith("0{")
        assert open_websocket(friendly, FOREIGN) == (False, 400)
        status, _, headers = polling_handshake(friendly, "http://friend.example")
        assert status == 200 and headers["Access-Control-Allow-Origin"] == "http://friend.example"
