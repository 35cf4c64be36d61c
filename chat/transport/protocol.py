"""RFC 6455 without I/O: the opening handshake's checks, frames, the close handshake; bytes in, events and bytes out.

Nothing here touches a socket, a hub or Engine.IO. The server side only: client frames must be masked,
server frames never are; no extension and no subprotocol is ever negotiated.
"""
import base64
import binascii
import codecs
import enum
import hashlib
import struct


class Opcode(enum.IntEnum):
    """A frame's opcode (RFC 6455 5.2)."""

    CONTINUATION = 0x0
    TEXT = 0x1
    BINARY = 0x2
    CLOSE = 0x8
    PING = 0x9
    PONG = 0xA


class CloseCode(enum.IntEnum):
    """The close codes Papo sends (RFC 6455 7.4.1)."""

    NORMAL = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    INVALID_DATA = 1007
    POLICY_VIOLATION = 1008
    TOO_BIG = 1009
    INTERNAL_ERROR = 1011
    TRY_AGAIN_LATER = 1013


class State(enum.Enum):
    """Where a connection is in the close handshake (RFC 6455 7)."""

    OPEN = "open"  # frames flow both ways
    CLOSING = "closing"  # this side sent its close frame and reads only for the answer
    CLOSED = "closed"  # both close frames are through, or the connection failed: only TCP is left to close


TEXT, BINARY, CLOSE, PING, PONG = Opcode.TEXT, Opcode.BINARY, Opcode.CLOSE, Opcode.PING, Opcode.PONG
ACCEPT_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
VERSION = "13"
_DATA_OPCODES = frozenset(int(op) for op in (Opcode.CONTINUATION, Opcode.TEXT, Opcode.BINARY))
_CONTROL_OPCODES = frozenset(int(op) for op in (Opcode.CLOSE, Opcode.PING, Opcode.PONG))
_OPEN, _CLOSED = State.OPEN, State.CLOSED
# The opcodes as plain ints for the per-frame path: comparing an int with an IntEnum member costs more.
_BINARY, _FIRST_CONTROL, _PING = int(Opcode.BINARY), int(Opcode.CLOSE), int(Opcode.PING)


class ProtocolError(Exception):
    """The client broke RFC 6455; `code` is the close code it gets."""

    def __init__(self, code: int, reason: str):
        super().__init__(reason)
        self.code = code
        self.frames = []  # the frames complete before the error


# The opening handshake (RFC 6455 4.2)


def refusal(environ: dict) -> tuple[str, list, bytes] | None:
    """(status, headers, body) when a WSGI request is not an opening handshake to accept, else None.

    4.2.1 lists what the server must find; 4.2.2 says a bad request gets 400, and 4.4 that a version
    the server does not speak gets 426 with the versions it does speak in Sec-WebSocket-Version.
    """
    if environ.get("REQUEST_METHOD") != "GET":  # eventlet reports every request as HTTP/1.0: no version check
        return "400 Bad Request", [], b"a WebSocket handshake is a GET"
    tokens = {token.strip().lower() for token in environ.get("HTTP_CONNECTION", "").split(",")}
    upgrades = {token.strip().lower() for token in environ.get("HTTP_UPGRADE", "").split(",")}
    if "upgrade" not in tokens or "websocket" not in upgrades:
        return "400 Bad Request", [], b"not a WebSocket upgrade"
    if environ.get("HTTP_SEC_WEBSOCKET_VERSION", "").strip() != VERSION:
        return "426 Upgrade Required", [("Sec-WebSocket-Version", VERSION)], b"WebSocket version 13 only"
    if not valid_key(environ.get("HTTP_SEC_WEBSOCKET_KEY", "")):
        return "400 Bad Request", [], b"Sec-WebSocket-Key must be 16 bytes in base64"
    return None


def valid_key(key: str) -> bool:
    """Whether a Sec-WebSocket-Key is base64 of 16 bytes (RFC 6455 4.1, item 7)."""
    try:
        return len(base64.b64decode(key.strip(), validate=True)) == 16
    except (binascii.Error, ValueError):
        return False


def accept_response(key: str) -> bytes:
    """The 101 that accepts a handshake with this Sec-WebSocket-Key, as raw bytes."""
    accept = base64.b64encode(hashlib.sha1(key.strip().encode() + ACCEPT_GUID).digest())
    return (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n")


# Frames (RFC 6455 5)


def frame(payload: bytes, opcode: int) -> bytes:
    """One unmasked, final frame, as a server sends it."""
    n = len(payload)
    if n < 126:
        header = struct.pack("!BB", 0x80 | opcode, n)
    elif n < 65536:
        header = struct.pack("!BBH", 0x80 | opcode, 126, n)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 127, n)
    return header + payload


def close_frame(code: int | None = None, reason: str = "") -> bytes:
    """A close frame; without a code, an empty one (RFC 6455 5.5.1)."""
    if code is None:
        return frame(b"", CLOSE)
    return frame(struct.pack("!H", code) + reason.encode()[:123], CLOSE)


def unmask(payload: bytes, mask: bytes) -> bytes:
    """XOR a client frame's payload with its 4-byte mask, in one big-integer operation."""
    n = len(payload)
    if not n:
        return b""
    key = (mask * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(key, "little")).to_bytes(n, "little")


def sendable_close_code(code: int) -> bool:
    """Whether a close frame may carry this code (RFC 6455 7.4.1 and 7.4.2, the IANA registry)."""
    return 1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999


def parse_close(payload: bytes) -> tuple[int | None, str]:
    """(code, reason) of a client's close frame; ProtocolError when it may not be sent so.

    5.5.1: a body starts with a 2-byte code, and the rest is UTF-8; 7.4.1 and 7.4.2 name codes no
    endpoint may send.
    """
    if not payload:
        return None, ""
    if len(payload) == 1:
        raise ProtocolError(CloseCode.PROTOCOL_ERROR, "a close frame's body starts with a 2-byte code")
    code = int.from_bytes(payload[:2], "big")
    if not sendable_close_code(code):
        raise ProtocolError(CloseCode.PROTOCOL_ERROR, f"close code {code} may not be sent")
    try:
        reason = payload[2:].decode()
    except UnicodeDecodeError:
        raise ProtocolError(CloseCode.INVALID_DATA, "a close reason that is not UTF-8") from None
    return code, reason


class FrameParser:
    """Turns a client's bytes into messages and control frames: unmasks, reassembles, checks sizes and UTF-8.

    Only data frames count against `max_bytes`: a control frame (at most 125 bytes) between the
    fragments of a message is not part of it. A fragmented text message is decoded fragment by
    fragment, so invalid UTF-8 fails the connection as soon as its fragment is in.
    """

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.buffer = bytearray()
        self.parts = []
        self.opcode = None
        self.size = 0
        self.decoder = None

    def feed(self, data: bytes) -> list[tuple[Opcode, str | bytes]]:
        """Every complete (opcode, payload) in the bytes so far: TEXT as str, BINARY and control frames as bytes.

        A ProtocolError carries in `frames` what was complete before the broken frame.
        """
        self.buffer += data
        out = []
        try:
            while True:
                parsed = self._frame()
                if parsed is None:
                    return out
                fin, opcode, payload = parsed
                if opcode >= _FIRST_CONTROL:
                    out.append((opcode, payload))
                else:
                    message = self._assemble(fin, opcode, payload)
                    if message is not None:
                        out.append(message)
        except ProtocolError as error:
            error.frames = out
            raise

    def release(self):
        """Drop what is buffered: the connection is over."""
        self.buffer = bytearray()
        self.parts = []
        self.decoder = None
        self.size = 0

    def _frame(self):
        buf = self.buffer
        if len(buf) < 2:
            return None
        first, second = buf[0], buf[1]
        fin, opcode, length = first & 0x80, first & 0x0F, second & 0x7F
        control = opcode >= _FIRST_CONTROL
        if first & 0x70 or not second & 0x80 or opcode not in (_CONTROL_OPCODES if control else _DATA_OPCODES):
            _refuse_header(first, second, opcode)
        offset = 2
        if length >= 126:
            extended = _extended_length(buf, length)
            if extended is None:
                return None
            length, offset = extended
        if control:
            if length > 125 or not fin:
                raise ProtocolError(CloseCode.PROTOCOL_ERROR, "a control frame is short and never fragmented")
        elif self.size + length > self.max_bytes:
            raise ProtocolError(CloseCode.TOO_BIG, "message too big")
        end = offset + 4 + length
        if len(buf) < end:
            return None
        payload = unmask(bytes(buf[offset + 4:end]), bytes(buf[offset:offset + 4]))
        del buf[:end]
        return fin, opcode, payload

    def _assemble(self, fin, opcode, payload):
        """The message this data frame completes, or None while it is still fragmented."""
        if opcode:
            if self.opcode is not None:
                raise ProtocolError(CloseCode.PROTOCOL_ERROR, "a new message began inside a fragmented one")
            if fin:
                return self._message(opcode, payload)
            self.opcode = opcode
            if opcode == TEXT:
                self.decoder = codecs.getincrementaldecoder("utf-8")()
        elif self.opcode is None:
            raise ProtocolError(CloseCode.PROTOCOL_ERROR, "a continuation frame with no message to continue")
        if self.decoder is not None:
            try:
                self.parts.append(self.decoder.decode(payload, final=bool(fin)))
            except UnicodeDecodeError:
                raise ProtocolError(CloseCode.INVALID_DATA, "text that is not UTF-8") from None
        else:
            self.parts.append(payload)
        self.size += len(payload)
        if not fin:
            return None
        opcode, parts = self.opcode, self.parts
        self.parts, self.opcode, self.size, self.decoder = [], None, 0, None
        return opcode, ("" if opcode == TEXT else b"").join(parts)

    @staticmethod
    def _message(opcode, payload):
        if opcode == _BINARY:
            return BINARY, payload
        try:
            return TEXT, payload.decode()
        except UnicodeDecodeError:
            raise ProtocolError(CloseCode.INVALID_DATA, "text that is not UTF-8") from None


def _extended_length(buf, length):
    """(length, header size) of a 2- or 8-byte length, None until those bytes are in; it must need them (5.2)."""
    if length == 126:
        if len(buf) < 4:
            return None
        length, offset, least = int.from_bytes(buf[2:4], "big"), 4, 126
    else:
        if len(buf) < 10:
            return None
        length, offset, least = int.from_bytes(buf[2:10], "big"), 10, 65536
    if length < least or length >> 63:
        raise ProtocolError(CloseCode.PROTOCOL_ERROR, "a length must be sent in the fewest bytes")
    return length, offset


def _refuse_header(first, second, opcode):
    if first & 0x70:
        raise ProtocolError(CloseCode.PROTOCOL_ERROR, "no extension was negotiated")
    if not second & 0x80:
        raise ProtocolError(CloseCode.PROTOCOL_ERROR, "client frames must be masked")
    raise ProtocolError(CloseCode.PROTOCOL_ERROR, f"reserved opcode {opcode}")


class Protocol:
    """One server-side connection's RFC 6455 state: feed it bytes, get messages, and the bytes to answer with.

    receive() returns the complete messages (TEXT as str, BINARY as bytes), in order; whatever the
    protocol itself must send (pongs, the close handshake) waits in `outgoing` for data_to_send().
    Once `state` is CLOSED the caller closes TCP after sending what is left (RFC 6455 7.1.1): the
    close handshake is through, or the connection failed and `failure` holds the close code sent.
    """

    def __init__(self, max_bytes: int):
        self.parser = FrameParser(max_bytes)
        self.state = State.OPEN
        self.outgoing = []
        self.failure = None
        self.close_code = None  # the client's, once its close frame is in

    def receive(self, data: bytes) -> list:
        """The messages in these bytes; pongs and close frames to send are queued in `outgoing`."""
        if self.state is _CLOSED:
            return []
        failure = None
        try:
            frames = self.parser.feed(data)
        except ProtocolError as error:
            frames, failure = error.frames, error.code
        messages = self._take(frames)
        if failure is not None and self.state is not _CLOSED:
            self.fail(failure)
        return messages

    def _take(self, frames):
        messages = []
        for opcode, payload in frames:
            if opcode <= _BINARY:  # a message
                if self.state is _OPEN:
                    messages.append(payload)
            elif opcode == _PING:
                if self.state is _OPEN:
                    self.outgoing.append(frame(payload, PONG))
            elif opcode == CLOSE:
                self._closed_by_client(payload)
                return messages
        return messages

    def close(self, code: int | None = CloseCode.NORMAL, reason: str = "") -> bytes:
        """Start the close handshake from this side: the close frame to send (b"" if one was sent already)."""
        if self.state is not State.OPEN:
            return b""
        self.state = State.CLOSING
        return close_frame(code, reason)

    def fail(self, code: int):
        """Fail the connection (RFC 6455 7.1.7): queue a close frame with the code, drop what is buffered."""
        if self.state is State.OPEN:
            self.outgoing.append(close_frame(code))
        self.state = State.CLOSED
        self.failure = code
        self.parser.release()

    def lost(self):
        """The client closed TCP: nothing more is read or sent."""
        self.state = State.CLOSED
        self.outgoing = []
        self.parser.release()

    def data_to_send(self) -> bytes:
        """What the protocol has to send, then nothing until the next receive()."""
        if not self.outgoing:
            return b""
        data = b"".join(self.outgoing)
        self.outgoing = []
        return data

    def _closed_by_client(self, payload):
        try:
            code, _ = parse_close(payload)
        except ProtocolError as error:
            self.fail(error.code)
            return
        if self.state is State.OPEN:  # 5.5.1: answer with a close frame, typically echoing the code
            self.outgoing.append(close_frame(code))
        self.close_code = code
        self.state = State.CLOSED
        self.parser.release()
