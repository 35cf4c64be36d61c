"""A raw RFC 6455 client for the conformance suite: frames built by hand, every server frame recorded."""
import base64
import hashlib
import os
import socket
import struct
import time

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
TEXT, BINARY, CLOSE, PING, PONG, CONTINUATION = 0x1, 0x2, 0x8, 0x9, 0xA, 0x0


def client_frame(payload=b"", opcode=TEXT, fin=True, rsv=0, mask=None, length=None):
    """A client frame: masked with a random key unless `mask` is False; `length` may lie about the payload."""
    n = len(payload) if length is None else length
    first = (0x80 if fin else 0) | (rsv << 4) | opcode
    bit = 0 if mask is False else 0x80
    if n < 126:
        header = struct.pack("!BB", first, bit | n)
    elif n < 65536:
        header = struct.pack("!BBH", first, bit | 126, n)
    else:
        header = struct.pack("!BBQ", first, bit | 127, n)
    if mask is False:
        return header + payload
    key = os.urandom(4) if mask is None else mask
    return header + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def close_payload(code, reason=b""):
    return struct.pack("!H", code) + reason


class Peer:
    """One TCP connection to the server's echo endpoint; events = [(seconds since start, kind, detail)]."""

    def __init__(self, host, port, path, headers=None):
        self.sock = socket.create_connection((host, port), timeout=5)
        self.started = time.monotonic()
        self.events = []
        self.buffer = b""
        self.tcp_closed = False
        self.send_failed = False
        key = base64.b64encode(os.urandom(16))
        lines = [f"GET {path} HTTP/1.1", f"Host: {host}:{port}", "Upgrade: websocket", "Connection: Upgrade",
                 f"Sec-WebSocket-Key: {key.decode()}", "Sec-WebSocket-Version: 13"]
        lines += headers or []
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.status, self.response_headers = self._read_response()
        expected = base64.b64encode(hashlib.sha1(key + GUID).digest()).decode()
        self.accepted = self.status == 101 and self.response_headers.get("sec-websocket-accept") == expected

    def _read_response(self):
        while b"\r\n\r\n" not in self.buffer:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("closed during the handshake")
            self.buffer += chunk
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return int(lines[0].split()[1]), headers

    def send(self, data, chunk=None, delay=0.0):
        """Send bytes, all at once or in chunks of `chunk` bytes with `delay` seconds between them."""
        pieces = [data] if not chunk else [data[i:i + chunk] for i in range(0, len(data), chunk)]
        for n, piece in enumerate(pieces):
            if n and delay:
                self.pause(delay)
            try:
                self.sock.sendall(piece)
            except OSError:
                self.send_failed = True
                return

    def pause(self, seconds):
        """Wait, reading what the server sends meanwhile; marks the moment for fail-fast checks."""
        self.read(seconds)
        self.events.append((self._now(), "mark", None))

    def read(self, seconds):
        """Read frames for up to `seconds`, or until the server closes TCP."""
        deadline = time.monotonic() + seconds
        while not self.tcp_closed and time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                break
            except OSError:
                chunk = b""
            if not chunk:
                self.tcp_closed = True
                self.events.append((self._now(), "tcp-closed", None))
                break
            self.buffer += chunk
            self._frames()

    def read_until(self, done, seconds):
        """Read until done() is true, the server closes TCP, or `seconds` pass."""
        deadline = time.monotonic() + seconds
        while not done() and not self.tcp_closed and time.monotonic() < deadline:
            self.read(min(0.05, max(0.0, deadline - time.monotonic())))

    def _frames(self):
        while len(self.buffer) >= 2:
            first, second = self.buffer[0], self.buffer[1]
            length, offset = second & 0x7F, 2
            if length == 126:
                if len(self.buffer) < 4:
                    return
                length, offset = struct.unpack("!H", self.buffer[2:4])[0], 4
            elif length == 127:
                if len(self.buffer) < 10:
                    return
                length, offset = struct.unpack("!Q", self.buffer[2:10])[0], 10
            if second & 0x80:
                self.events.append((self._now(), "masked-server-frame", None))
                offset += 4
            if len(self.buffer) < offset + length:
                return
            payload, self.buffer = self.buffer[offset:offset + length], self.buffer[offset + length:]
            self.events.append((self._now(), "frame", (bool(first & 0x80), first & 0x70, first & 0x0F, payload)))

    def close(self):
        self.sock.close()

    def _now(self):
        return time.monotonic() - self.started
