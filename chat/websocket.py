"""Papo's WebSocket transport under eventlet: one green thread per connection, frames written straight out.

Engine.IO's own transport gives every WebSocket a writer green thread fed through a queue, and every
session a ping green thread; a broadcast then costs each recipient a queue hand-off, a switch and its
own framing, and each connection three stacks. Here a packet is framed once (the recipients of a
broadcast share the frame) and written by whoever sends it, without blocking: what the kernel does not
take at once waits in the connection's outbox, which the hub writes out when the socket can take more.
Pings are hub timers. The WSGI green thread of the connection reads and parses the client's frames,
and Engine.IO's Socket keeps the session: its send, receive and close run as they are.
"""
import errno
import logging
import socket
import struct
import time

from engineio import packet as eio_packet
from engineio.async_drivers.eventlet import WebSocketWSGI

log = logging.getLogger(__name__)

TEXT, BINARY, CLOSE, PING, PONG = 0x1, 0x2, 0x8, 0x9, 0xA
OUTBOX_LIMIT = 8 << 20  # bytes a client may leave unread before it is cut off as too slow
GONE = (errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN, errno.EBADF, errno.ESHUTDOWN)


def frame(payload, opcode):
    """One unmasked, final WebSocket frame, as a server sends it."""
    n = len(payload)
    if n < 126:
        header = struct.pack("!BB", 0x80 | opcode, n)
    elif n < 65536:
        header = struct.pack("!BBH", 0x80 | opcode, 126, n)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 127, n)
    return header + payload


def packet_frame(pkt):
    """The frame of an Engine.IO packet, built once however many connections it goes to."""
    cached = getattr(pkt, "frame", None)
    if cached is None:
        data = pkt.encode()
        cached = pkt.frame = frame(data, BINARY) if isinstance(data, bytes) else frame(data.encode(), TEXT)
    return cached


def unmask(payload, mask):
    """XOR a client frame's payload with its 4-byte mask, in one big-integer operation."""
    n = len(payload)
    if not n:
        return b""
    key = (mask * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(key, "little")).to_bytes(n, "little")


class ProtocolError(Exception):
    """The client broke RFC 6455; `code` is the close code it gets."""

    def __init__(self, code, reason):
        super().__init__(reason)
        self.code = code


class Outbox:
    """A connection's unsent frames, written without blocking once the running green threads yield.

    Frames written while the green threads run are sent together at the end of the hub's turn: a
    client that gets several messages in one turn gets them in one system call. What the kernel does
    not take then waits for the hub to find the socket writable.
    """

    def __init__(self, sock, flusher, limit=OUTBOX_LIMIT):
        self.sock = sock  # the OS socket under eventlet's GreenSocket, non-blocking
        self.flusher = flusher
        self.pending = []
        self.pending_bytes = 0
        self.listener = None
        self.queued = False
        self.limit = limit
        self.finishing = False
        self.closed = False

    def write(self, data):
        """Queue a frame for the end of this turn; never blocks."""
        if self.closed or self.finishing:
            return
        self.pending.append(data)
        self.pending_bytes += len(data)
        if self.pending_bytes > self.limit:
            log.info("a client left more than %d bytes unread: disconnecting it", self.limit)
            self.abandon()
            self._shut(socket.SHUT_RDWR)
        elif not self.queued and self.listener is None:
            self.queued = True
            self.flusher.add(self)

    def finish(self, close_frame):
        """Send the close frame after what is queued, then end the sending half of the connection."""
        if not (self.closed or self.finishing):
            self.write(close_frame)
            self.finishing = True

    def abandon(self):
        """Forget whatever is unsent: the connection is over."""
        self.closed = True
        self.pending.clear()
        self.pending_bytes = 0
        self._unlisten()

    def flush(self, _fileno=None):
        """Send what the socket takes; wait for the hub to find it writable if anything is left."""
        self.queued = False
        if self.closed or not self.pending:
            return
        data = self.pending[0] if len(self.pending) == 1 else b"".join(self.pending)
        try:
            sent = self.sock.send(data)
        except BlockingIOError:
            sent = 0
        except OSError as error:
            self._fail(error)
            return
        self.pending_bytes -= sent
        if sent < len(data):
            self.pending = [memoryview(data)[sent:]]
            if self.listener is None:
                hub = self.flusher.hub
                self.listener = hub.add(hub.WRITE, self.sock.fileno(), self.flush, self._obsolete, _ignore)
            return
        self.pending = []
        self._unlisten()
        if self.finishing:
            self._shut(socket.SHUT_WR)

    def _fail(self, error):
        if error.errno not in GONE:
            log.info("websocket write failed: %s", error)
        self.abandon()
        self._shut(socket.SHUT_RDWR)  # the reader sees the end and closes the session

    def _obsolete(self, *_):
        self.listener = None
        self.abandon()

    def _unlisten(self):
        if self.listener is not None:
            self.flusher.hub.remove(self.listener)
            self.listener = None

    def _shut(self, how):
        try:
            self.sock.shutdown(how)
        except OSError:
            pass


class Flusher:
    """Sends every outbox written during a turn of the green threads, from one hub timer."""

    def __init__(self):
        from eventlet.hubs import get_hub

        self.hub = get_hub()
        self.outboxes = []

    def add(self, outbox):
        if not self.outboxes:
            self.hub.schedule_call_global(0, self.flush)
        self.outboxes.append(outbox)

    def flush(self):
        outboxes, self.outboxes = self.outboxes, []
        for outbox in outboxes:
            try:
                outbox.flush()
            except Exception:
                log.exception("websocket flush failed")


def _ignore(*_):
    pass


class OutboxQueue:
    """Stands in for an upgraded Engine.IO socket's packet queue: a packet put is a frame written."""

    def __init__(self, outbox):
        self.outbox = outbox

    def put(self, pkt):
        if pkt is None:  # Engine.IO closing the session
            self.outbox.finish(frame(b"", CLOSE))
        else:
            self.outbox.write(packet_frame(pkt))

    def get(self, *args, **kwargs):
        raise IndexError("an upgraded socket has no queue to poll")

    def task_done(self):
        pass

    def join(self):
        pass

    def empty(self):
        return True


class FrameReader:
    """Reads a client's messages from a green socket: reassembles fragments, answers pings, unmasks."""

    def __init__(self, conn, outbox, max_bytes):
        self.conn = conn
        self.outbox = outbox
        self.max_bytes = max_bytes
        self.buffer = bytearray()

    def message(self):
        """The next text (str) or binary (bytes) message; None once the client closes."""
        parts, opcode, size = [], None, 0
        while True:
            fin, op, payload = self._frame()
            if op == CLOSE:
                self.outbox.finish(frame(payload[:2], CLOSE))
                return None
            if op == PING:
                self.outbox.write(frame(payload, PONG))
                continue
            if op == PONG:
                continue
            if op in (TEXT, BINARY):
                if opcode is not None:
                    raise ProtocolError(1002, "a new message began inside a fragmented one")
                opcode = op
            elif op != 0 or opcode is None:
                raise ProtocolError(1002, f"unexpected opcode {op}")
            size += len(payload)
            if size > self.max_bytes:
                raise ProtocolError(1009, "message too big")
            parts.append(payload)
            if fin:
                data = b"".join(parts) if len(parts) > 1 else parts[0]
                if opcode == BINARY:
                    return data
                try:
                    return data.decode()
                except UnicodeDecodeError:
                    raise ProtocolError(1007, "text that is not UTF-8") from None

    def _frame(self):
        """(fin, opcode, payload) of the next frame; its size is checked before any of it is read."""
        head = self._need(2)
        fin, rsv, opcode = head[0] & 0x80, head[0] & 0x70, head[0] & 0x0F
        masked, length = head[1] & 0x80, head[1] & 0x7F
        if rsv:
            raise ProtocolError(1002, "no extension was negotiated")
        if not masked:
            raise ProtocolError(1002, "client frames must be masked")
        offset = 2
        if length == 126:
            length = int.from_bytes(self._need(4)[2:4], "big")
            offset = 4
        elif length == 127:
            length = int.from_bytes(self._need(10)[2:10], "big")
            offset = 10
        if opcode & 0x8 and (length > 125 or not fin):
            raise ProtocolError(1002, "bad control frame")
        if length > self.max_bytes:
            raise ProtocolError(1009, "message too big")
        data = self._need(offset + 4 + length)
        mask = bytes(data[offset:offset + 4])
        payload = unmask(bytes(data[offset + 4:offset + 4 + length]), mask)
        del self.buffer[:offset + 4 + length]
        return fin, opcode, payload

    def _need(self, n):
        while len(self.buffer) < n:
            chunk = self.conn.recv(max(65536, n - len(self.buffer)))
            if not chunk:
                raise ConnectionResetError("the client closed the connection")
            self.buffer += chunk
        return self.buffer


class EventletWebSocket(WebSocketWSGI):
    """Engine.IO's `websocket` driver under eventlet, serving one session on the connection's own green thread."""

    flusher = None  # one per process, made on first use: the hub must exist

    def __init__(self, handler, server):
        super().__init__(self._serve, server)
        self.session = handler.__self__  # the engineio Socket whose _websocket_handler this replaces
        self.eio = server
        if EventletWebSocket.flusher is None:
            EventletWebSocket.flusher = Flusher()

    def __call__(self, environ, start_response):
        self.environ = environ
        return super().__call__(environ, start_response)

    def _negotiate_permessage_deflate(self, extensions):
        return None  # as socket.io's default: chat frames are small, and a compressor costs ~300 KB a client

    def _serve(self, ws):
        session, conn = self.session, ws.socket
        conn.settimeout(self.eio.ping_interval + self.eio.ping_timeout)
        ws.websocket_closed = True  # the close frames are ours to send, through the outbox
        _release_http_buffers(self.environ)
        outbox = Outbox(conn.fd, self.flusher)
        reader = FrameReader(conn, outbox, int(self.eio.max_http_buffer_size))
        try:
            if session.connected and not self._upgrade(session, reader, outbox):
                return
            session.connected = session.upgraded = True
            _take_over(session, outbox)
            self._read(session, reader)
        except ProtocolError as error:
            outbox.finish(frame(struct.pack("!H", error.code), CLOSE))
            if error.code == 1009:
                _abort(conn)
        except OSError:
            pass
        finally:
            session.close(wait=False, abort=True, reason=self.eio.reason.TRANSPORT_CLOSE)
            outbox.abandon()

    def _upgrade(self, session, reader, outbox):
        """The polling-to-WebSocket upgrade: answer the probe, end the pending poll, await the upgrade."""
        session.upgrading = True
        try:
            if reader.message() != "2probe":
                return False
            outbox.write(frame(b"3probe", TEXT))
            session.queue.put(eio_packet.Packet(eio_packet.NOOP))  # ends the client's pending poll
            return reader.message() == "5"
        finally:
            session.upgrading = False

    def _read(self, session, reader):
        while True:
            data = reader.message()
            if data is None or session.closed:
                return
            try:
                session.receive(eio_packet.Packet(encoded_packet=data))
            except Exception as error:  # an unparseable packet ends this session, not the server
                log.info("closing a websocket after a bad packet: %s", error)
                return


def _take_over(session, outbox):
    """Send what the session queued before the upgrade, then let every later packet go straight out."""
    queue = session.queue
    closing = False
    while not queue.empty():
        pkt = queue.get(block=False)
        queue.task_done()
        if pkt is None:
            closing = True
        elif pkt.packet_type != eio_packet.NOOP:
            outbox.write(packet_frame(pkt))
    session.queue = OutboxQueue(outbox)
    if closing:
        session.queue.put(None)


def fit_session(session):
    """Give a new Engine.IO session a ping timer on the hub instead of a green thread per ping."""
    from eventlet.hubs import get_hub

    server = session.server

    def ping():
        if session.closing or session.closed:
            return
        try:
            session.last_ping = time.time()
            session.send(eio_packet.Packet(eio_packet.PING))
        except Exception:
            log.exception("ping failed")

    def schedule_ping():
        if session.last_ping:
            session.last_ping = None
            get_hub().schedule_call_global(server.ping_interval, ping)

    session.schedule_ping = schedule_ping


def install(engineio_server):
    """Serve Engine.IO's WebSockets with this module, and ping every session from a hub timer."""
    drivers = dict(engineio_server._async)
    drivers["websocket"] = EventletWebSocket
    engineio_server._async = drivers
    on_open = engineio_server.handlers["connect"]

    def connect(sid, environ):
        session = engineio_server.sockets.get(sid)
        if session is not None:
            fit_session(session)
        return on_open(sid, environ)

    engineio_server.handlers["connect"] = connect


def _release_http_buffers(environ):
    """Close the HTTP request's read buffer, which a WebSocket never uses again."""
    stream = environ.get("eventlet.input")
    rfile = getattr(stream, "rfile", None)
    if rfile is not None:
        try:
            rfile.close()
        except OSError:
            pass


def _abort(conn):
    """Reset the connection: a client pushing an oversized frame need not be read to its end."""
    try:
        conn.fd.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.fd.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
