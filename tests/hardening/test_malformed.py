"""Malformed HTTP requests, Engine.IO packets and WebSocket frames do not crash or hang a real server.

Each case is sent on its own raw connection; afterwards the process must live and /healthz must
answer within 3 s (while the attacker's connection may still be open), and at the end of the
module an ordinary client must still chat.
"""
import json
import random
import socket
import struct
import time
import urllib.error
import urllib.request

import pytest
import websocket

from tests.integration.client import ChatClient

from .conftest import assert_still_serving, raw_exchange, status_of

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

SERVER_ENV = {"PING_INTERVAL": "4", "PING_TIMEOUT": "4"}  # a long poll is answered within 4 s

_random = random.Random(7)
H = b"Host: 127.0.0.1\r\n"


def post(path, body, content_type=b"application/json", extra=b""):
    return (b"POST " + path + b" HTTP/1.1\r\n" + H + b"Content-Type: " + content_type + b"\r\n" + extra
            + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


HTTP_CASES = {
    "random-bytes": _random.randbytes(8192),
    "nul-bytes": b"\0" * 10000,
    "only-blank-lines": b"\r\n" * 1000,
    "no-host-no-version": b"GET /healthz\r\n\r\n",
    "unknown-method": b"FROB /healthz HTTP/1.1\r\n" + H + b"\r\n",
    "http-9.9": b"GET /healthz HTTP/9.9\r\n" + H + b"\r\n",
    "url-of-100-kb": b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\n" + H + b"\r\n",
    "header-of-1-mb": b"GET /healthz HTTP/1.1\r\n" + H + b"X-Big: " + b"a" * 1_000_000 + b"\r\n\r\n",
    "20000-headers": b"GET /healthz HTTP/1.1\r\n" + H + b"".join(b"X-H%d: v\r\n" % i for i in range(20000)) + b"\r\n",
    "header-without-colon": b"GET /healthz HTTP/1.1\r\n" + H + b"nonsense\r\n\r\n",
    "truncated-headers-then-close": b"GET /api/rooms HTTP/1.1\r\nHo",
    "nul-in-path": b"GET /api/rooms/a\0b/messages HTTP/1.1\r\n" + H + b"\r\n",
    "bad-percent-escapes": b"GET /api/rooms/%ff%fe/messages?after=%zz&limit=%00 HTTP/1.1\r\n" + H + b"\r\n",
    "non-utf8-bearer": b"GET /api/rooms/lobby/messages HTTP/1.1\r\n" + H + b"Authorization: Bearer \xff\xfe\r\n\r\n",
    "huge-bearer": b"GET /api/rooms HTTP/1.1\r\n" + H + b"Authorization: Bearer " + b"x" * 60000 + b"\r\n\r\n",
    "non-utf8-cookie": b"GET / HTTP/1.1\r\n" + H + b"Cookie: session=\xff\xfe.\x00\r\n\r\n",
    "forged-session-cookie": b"GET / HTTP/1.1\r\n" + H + b"Cookie: session=eyJ1c2VyIjoiYWRtaW4ifQ.forged.sig\r\n\r\n",
    "negative-content-length": b"POST /api/users HTTP/1.1\r\n" + H + b"Content-Length: -5\r\n\r\n{}",
    "non-numeric-content-length": b"POST /api/users HTTP/1.1\r\n" + H + b"Content-Length: lots\r\n\r\n{}",
    "two-content-lengths": b"POST /api/users HTTP/1.1\r\n" + H + b"Content-Length: 2\r\nContent-Length: 90\r\n\r\n{}",
    "short-body-then-close": b"POST /api/users HTTP/1.1\r\n" + H + b"Content-Length: 1000\r\n\r\n{\"user",
    "bad-chunk-size": b"POST /api/users HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n",
    "chunk-of-2**64": b"POST /api/users HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\n{",
    "body-over-the-limit": b"POST /api/users HTTP/1.1\r\n" + H + b"Content-Length: 50000000\r\n\r\n" + b"{" * 65536,
    "not-utf8-json": post(b"/api/users", b"\xff\xfe{\"username\": 1}"),
    "json-nested-100000-deep": post(b"/api/tokens", b"[" * 100_000),
    "json-object-nested-deep": post(b"/api/rooms/lobby/messages", b'{"a":' * 50_000),
    "json-huge-number": post(b"/api/users", b'{"username": 1' + b"0" * 100_000 + b', "password": 1e999999}'),
    "json-lone-surrogates": post(b"/api/users", b'{"username": "\\ud800\\udfff\\ud800", '
                                                 b'"password": "\\udc00xxxxxxxx"}'),
    "form-instead-of-json": post(b"/api/users", b"username=a&password=b", b"application/x-www-form-urlencoded"),
    "form-post-without-csrf": post(b"/login", b"username=a&password=b", b"application/x-www-form-urlencoded"),
    "multipart-garbage": post(b"/register", b"--x\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n",
                              b"multipart/form-data; boundary=x"),
    "100-pipelined-requests": (b"GET /healthz HTTP/1.1\r\n" + H + b"\r\n") * 100,
    "expect-100-continue-no-body": b"POST /api/users HTTP/1.1\r\n" + H + b"Expect: 100-continue\r\n"
                                   b"Content-Length: 20\r\n\r\n",
    "upgrade-with-bad-key": b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\n" + H +
                            b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: !!\r\n"
                            b"Sec-WebSocket-Version: 8\r\n\r\n",
    "upgrade-without-key": b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\n" + H +
                           b"Upgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
    "engineio-bad-query": b"GET /socket.io/?EIO=zz&transport=%ff&sid=%00&t=" + b"9" * 5000 + b" HTTP/1.1\r\n" + H
                          + b"\r\n",
    "engineio-v3": b"GET /socket.io/?EIO=3&transport=polling HTTP/1.1\r\n" + H + b"\r\n",
    "engineio-unknown-transport": b"GET /socket.io/?EIO=4&transport=carrier-pigeon HTTP/1.1\r\n" + H + b"\r\n",
    "engineio-unknown-sid": b"GET /socket.io/?EIO=4&transport=polling&sid=nope HTTP/1.1\r\n" + H + b"\r\n",
    "engineio-post-unknown-sid": post(b"/socket.io/?EIO=4&transport=polling&sid=nope", b"40", b"text/plain"),
}


@pytest.mark.parametrize("case", HTTP_CASES, ids=list(HTTP_CASES))
def test_malformed_http(server, case):
    answer = raw_exchange(server, HTTP_CASES[case], timeout=1.5)
    status = status_of(answer)
    assert status is None or status < 500, \
        f"{case}: {answer[:300]!r}"
    assert_still_serving(server)


@pytest.mark.parametrize("line", [b"nonsense", b" folded: x", b"X-CR: a\rInjected: b"])
def test_a_header_line_that_is_no_field_is_refused_with_400(server, line):
    """The production servers read a head with chat.http_head, which refuses what the email package cut short."""
    if server.mode == "threading":
        pytest.skip("the development server reads heads with the standard library, which serves them")
    answer = raw_exchange(server, b"GET /healthz HTTP/1.1\r\n" + H + line + b"\r\n\r\n", timeout=1.5)
    assert status_of(answer) == 400, answer[:300]
    assert_still_serving(server)


def test_a_connection_stalled_mid_request_does_not_hang_the_others(server):
    stalled = [socket.create_connection((server.host, server.port)) for _ in range(20)]
    try:
        for n, sock in enumerate(stalled):
            sock.sendall(b"POST /api/users HTTP/1.1\r\n" + H + b"Content-Length: 100\r\n\r\n{" if n % 2
                         else b"GET /api/ro")
        assert_still_serving(server)
    finally:
        for sock in stalled:
            sock.close()


# Engine.IO over long-polling: payloads of packets, separated by \x1e


def polling(server, method, sid=None, body=None, content_type="text/plain;charset=UTF-8", timeout=5):
    url = server.url + "/socket.io/?EIO=4&transport=polling" + (f"&sid={sid}" if sid else "")
    data = body if isinstance(body, bytes) or body is None else body.encode("utf-8", "surrogatepass")
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except (OSError, urllib.error.URLError) as error:
        return None, repr(error).encode()


def polling_session(server, token=None):
    """An Engine.IO polling session's sid; connected to `/` when a token is given."""
    status, body = polling(server, "GET")
    assert status == 200, body
    sid = json.loads(body[1:])["sid"]
    if token:
        assert polling(server, "POST", sid, "40" + json.dumps({"token": token}))[0] == 200
        assert polling(server, "GET", sid)[1].startswith(b"40")
    return sid


DEEP = "[" * 100_000
PACKETS = {
    "unknown-packet-type": "9hello",
    "empty-payload": "",
    "only-separators": "\x1e" * 1000,
    "message-without-data": "4",
    "client-ping-probe": "2probe",
    "upgrade-while-polling": "5",
    "noop": "6",
    "close-then-garbage": "1\x1e42[\"join\",{\"room\":\"x\"}]",
    "10000-packets": "\x1e".join(["42[\"typing\",{\"room\":\"x\",\"typing\":true}]"] * 10000),
    "socketio-unknown-type": "49[\"x\"]",
    "connect-bad-json": "40{",
    "connect-list-auth": "40[1,2]",
    "connect-unknown-namespace": "40/nowhere,{}",
    "connect-monitor-without-rights": "40/monitor,{}",
    "event-truncated": "42[\"join\"",
    "event-nested-100000-deep": "42" + DEEP,
    "event-name-not-a-string": "42[1,2,3]",
    "event-no-name": "42[]",
    "event-to-unjoined-namespace": "42/monitor,[\"join\",{}]",
    "ack-id-huge": "4299999999999999999999999999[\"join\",{\"room\":\"x\"}]",
    "ack-id-negative": "42-1[\"join\",{\"room\":\"x\"}]",
    "ack-from-client-unknown": "43[\"x\"]",
    "binary-event-missing-attachment": "451-[\"join\",{\"_placeholder\":true,\"num\":0}]",
    "binary-event-999999-attachments": "45999999-[\"join\",{\"_placeholder\":true,\"num\":7}]",
    "binary-placeholder-out-of-range": "451-[\"join\",{\"_placeholder\":true,\"num\":5}]\x1ebAAAA",
    "bad-base64": "b!!!not base64",
    "lone-surrogates": "42[\"message\",{\"room\":\"x\",\"text\":\"\\ud800\",\"client_id\":\"\\udfff\"}]",
    "disconnect-then-event": "41\x1e42[\"join\",{\"room\":\"x\"}]",
}


@pytest.mark.parametrize("case", PACKETS, ids=list(PACKETS))
def test_malformed_engineio_packets_over_polling(server, token, case):
    sid = polling_session(server, token)
    status, answer = polling(server, "POST", sid, PACKETS[case])
    assert status is not None and status < 500, f"{case}: {status} {answer[:200]!r}"  # answered, not hung
    assert polling(server, "POST", sid, b"\xff\xfe\x00garbage", "application/octet-stream")[0] != 500
    assert_still_serving(server)


def test_a_post_after_the_clients_own_close_is_an_invalid_session_not_an_error(server, token):
    """python-engineio raised KeyError (500) for a POST to a session its client had closed a moment before."""
    sid = polling_session(server, token)
    assert polling(server, "POST", sid, "1")[0] == 200
    status, answer = polling(server, "POST", sid, '42["join",{"room":"x"}]')
    assert (status, answer) == (400, f'"Invalid session {sid}"'.encode())
    assert polling(server, "GET", sid)[0] == 400
    assert_still_serving(server)


def test_concurrent_polls_of_one_session_are_answered_not_hung(server, token):
    sid = polling_session(server, token)
    import threading
    results = []
    polls = [threading.Thread(target=lambda: results.append(polling(server, "GET", sid, timeout=15)[0]))
             for _ in range(5)]
    began = time.monotonic()
    for poll in polls:
        poll.start()
    for poll in polls:
        poll.join(15)
    took = time.monotonic() - began
    assert len(results) == 5 and None not in results and took < 4 + 4 + 3, (results, took)
    assert_still_serving(server)


# WebSocket frames written by hand


def frame(opcode, payload=b"", fin=True, rsv=0, masked=True, length=None):
    """One WebSocket frame; `length` overrides the length field (to lie about it)."""
    head = bytes([(0x80 if fin else 0) | (rsv << 4) | opcode])
    size = len(payload) if length is None else length
    mask_bit = 0x80 if masked else 0
    if size < 126:
        head += bytes([mask_bit | size])
    elif size < 65536:
        head += bytes([mask_bit | 126]) + struct.pack("!H", size)
    else:
        head += bytes([mask_bit | 127]) + struct.pack("!Q", size)
    if not masked:
        return head + payload
    key = b"\x01\x02\x03\x04"
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


FRAMES = {
    "reserved-opcode-3": frame(0x3, b"x"),
    "reserved-opcode-11": frame(0xB, b"x"),
    "rsv-bits-without-extension": frame(0x1, b"42[\"x\"]", rsv=7),
    "unmasked-client-frame": frame(0x1, b"42[\"join\",{\"room\":\"x\"}]", masked=False),
    "ping-over-125-bytes": frame(0x9, b"p" * 200),
    "fragmented-ping": frame(0x9, b"p", fin=False),
    "continuation-without-start": frame(0x0, b"orphan"),
    "new-text-inside-a-fragmented-message": frame(0x1, b"42[", fin=False) + frame(0x1, b"\"x\"]"),
    "invalid-utf8-text": frame(0x1, b"42[\"message\",{\"text\":\"\xff\xfe\"}]"),
    "close-code-999": frame(0x8, struct.pack("!H", 999)),
    "close-one-byte": frame(0x8, b"\x03"),
    "close-bad-utf8-reason": frame(0x8, struct.pack("!H", 1000) + b"\xff"),
    "length-says-more-then-close": frame(0x1, b"42[", length=5000),
    "binary-garbage": frame(0x2, _random.randbytes(2048)),
    "empty-text": frame(0x1, b""),
    "engineio-unknown-type": frame(0x1, b"9"),
    "engineio-upgrade-again": frame(0x1, b"5"),
    "engineio-client-close": frame(0x1, b"1"),
    "socketio-deep-nesting": frame(0x1, b"42" + b"[" * 100_000),
    "socketio-ack-id-huge": frame(0x1, b"42" + b"9" * 400 + b"[\"join\",{\"room\":\"x\"}]"),
    "socketio-binary-never-sent": frame(0x1, b"451-[\"join\",{\"_placeholder\":true,\"num\":0}]"),
    "many-tiny-frames": frame(0x1, b"6") * 20000,
}


@pytest.mark.parametrize("case", FRAMES, ids=list(FRAMES))
def test_malformed_websocket_frames(server, token, case):
    ws = websocket.create_connection(server.url.replace("http", "ws", 1) + "/socket.io/?EIO=4&transport=websocket",
                                     timeout=5)
    sock = ws.sock
    assert sock is not None
    try:
        opened = ws.recv()
        assert isinstance(opened, str) and opened.startswith("0{")
        ws.send("40" + json.dumps({"token": token}))
        connected = ws.recv()
        assert isinstance(connected, str) and connected.startswith("40")
        try:
            sock.sendall(FRAMES[case])
            sock.settimeout(1.0)
            while sock.recv(65536):
                pass
        except (TimeoutError, OSError):
            pass
        assert_still_serving(server)  # with the attacker's connection possibly still open
    finally:
        sock.close()
    assert_still_serving(server)


def test_after_all_that_people_still_chat(server, token):
    from tests.servers import register
    other = register(server.url, f"after{time.monotonic_ns()}")
    with ChatClient(server.url, token) as ana, ChatClient(server.url, other, transports=("polling",)) as bo:
        ana.join("after-the-storm")
        bo.join("after-the-storm")
        assert ana.send("after-the-storm", "still standing")["ok"]
        assert bo.wait_until(lambda c: c.received.get("after-the-storm"), timeout=5)
