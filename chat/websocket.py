"""Papo's WebSocket transport under eventlet and gevent: no green thread for a quiet connection, frames in batches.

Engine.IO's own transport holds three green threads per WebSocket (a reader deep in the WSGI stack,
a writer fed through a queue, a ping timer; under gevent simple-websocket's threads and a second
descriptor instead) and costs every recipient of a broadcast a queue hand-off, a switch, its own
framing and its own system call. Here, once the handshake is answered, the WSGI green thread lets go
of the connection (chat.server's protocols keep it open) and the hub reads it:
complete messages are handed to a short-lived green thread, in order. A packet is framed once (the
recipients of a broadcast share the frame); a connection's frames of one turn of the green threads
go out in one send, and what the kernel does not take waits for the socket to be writable. Pings are
hub timers. Engine.IO's Socket keeps the session: its send, receive and close run as they are.
"""
import base64
import collections
import errno
import hashlib
import logging
import socket
import struct
import time

from engineio import packet as eio_packet

log = logging.getLogger(__name__)

TEXT, BINARY, CLOSE, PING, PONG = 0x1, 0x2, 0x8, 0x9, 0xA
OUTBOX_LIMIT = 8 << 20  # bytes a client may leave unread before it is cut off as too slow
CLOSE_GRACE = 5.0  # seconds a closing connection is given to take its last frames and hang up
ACCEPT_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
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
        self.sock = sock  # the OS socket under the green one, non-blocking
        self.flusher = flusher
        self.pending = []
        self.pending_bytes = 0
        self.listener = None
        self.queued = False
        self.limit = limit
        self.finishing = False
        self.closed = False
        self.on_finished = None  # called once the close frame is out

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

    def flush(self):
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
                self.listener = self.flusher.loop.watch(self.sock.fileno(), True, self.flush, self._obsolete)
            return
        self.pending = []
        self._unlisten()
        if self.finishing:
            self._shut(socket.SHUT_WR)
            if self.on_finished is not None:
                self.on_finished()

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
            self.flusher.loop.unwatch(self.listener)
            self.listener = None

    def _shut(self, how):
        try:
            self.sock.shutdown(how)
        except OSError:
            pass


class Flusher:
    """Sends every outbox written during a turn of the green threads, from one callback of the hub."""

    def __init__(self, loop):
        self.loop = loop
        self.outboxes = []

    def add(self, outbox):
        if not self.outboxes:
            self.loop.soon(self.flush)
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


class FrameParser:
    """Turns a client's bytes into messages and control frames: unmasks, reassembles, checks sizes."""

    def __init__(self, max_bytes):
        self.max_bytes = max_bytes
        self.buffer = bytearray()
        self.parts = []
        self.opcode = None
        self.size = 0

    def feed(self, data):
        """Every complete (opcode, payload) in the bytes so far: TEXT as str, BINARY as bytes, control as bytes."""
        self.buffer += data
        out = []
        while True:
            parsed = self._frame()
            if parsed is None:
                return out
            fin, opcode, payload = parsed
            if opcode & 0x8:
                out.append((opcode, payload))
            else:
                message = self._assemble(fin, opcode, payload)
                if message is not None:
                    out.append(message)

    def _frame(self):
        buf = self.buffer
        if len(buf) < 2:
            return None
        fin, rsv, opcode = buf[0] & 0x80, buf[0] & 0x70, buf[0] & 0x0F
        masked, length = buf[1] & 0x80, buf[1] & 0x7F
        if rsv:
            raise ProtocolError(1002, "no extension was negotiated")
        if not masked:
            raise ProtocolError(1002, "client frames must be masked")
        offset = 2
        if length == 126:
            if len(buf) < 4:
                return None
            length, offset = int.from_bytes(buf[2:4], "big"), 4
        elif length == 127:
            if len(buf) < 10:
                return None
            length, offset = int.from_bytes(buf[2:10], "big"), 10
        if opcode & 0x8 and (length > 125 or not fin or opcode not in (CLOSE, PING, PONG)):
            raise ProtocolError(1002, "bad control frame")
        if length > self.max_bytes or self.size + length > self.max_bytes:
            raise ProtocolError(1009, "message too big")
        end = offset + 4 + length
        if len(buf) < end:
            return None
        payload = unmask(bytes(buf[offset + 4:end]), bytes(buf[offset:offset + 4]))
        del buf[:end]
        return fin, opcode, payload

    def _assemble(self, fin, opcode, payload):
        if opcode in (TEXT, BINARY):
            if self.opcode is not None:
                raise ProtocolError(1002, "a new message began inside a fragmented one")
            self.opcode = opcode
        elif opcode != 0 or self.opcode is None:
            raise ProtocolError(1002, f"unexpected opcode {opcode}")
        self.parts.append(payload)
        self.size += len(payload)
        if not fin:
            return None
        opcode, data = self.opcode, b"".join(self.parts)
        self.parts, self.opcode, self.size = [], None, 0
        if opcode == BINARY:
            return BINARY, data
        try:
            return TEXT, data.decode()
        except UnicodeDecodeError:
            raise ProtocolError(1007, "text that is not UTF-8") from None


class OutboxQueue:
    """Stands in for an upgraded Engine.IO socket's packet queue: a packet put is a frame written."""

    def __init__(self, connection):
        self.connection = connection

    def put(self, pkt):
        if pkt is None:  # Engine.IO closing the session
            self.connection.hang_up(frame(b"", CLOSE))
        else:
            self.connection.outbox.write(packet_frame(pkt))

    def get(self, *args, **kwargs):
        raise IndexError("an upgraded socket has no queue to poll")

    def task_done(self):
        pass

    def join(self):
        pass

    def empty(self):
        return True


END = object()  # the inbox's last item: the client is gone


class Connection:
    """One WebSocket carrying one Engine.IO session; the hub reads it, a green thread runs its messages."""

    open_count = 0

    def __init__(self, session, conn, flusher, max_bytes):
        self.session = session
        self.conn = conn  # the green socket: holds the OS socket open
        self.loop = loop = flusher.loop
        self.sock = loop.os_socket(conn)
        self.outbox = Outbox(self.sock, flusher)
        self.parser = FrameParser(max_bytes)
        self.inbox = collections.deque()
        self.running = False
        self.state = "probe" if session.connected else "open"  # probe, upgrade: the polling upgrade's steps
        self.reader = None
        self.closed = False
        Connection.open_count += 1

    def start(self):
        """Hand the connection to the hub's reading."""
        if self.state == "open":
            self._take_over()
        self.reader = self.loop.watch(self.sock.fileno(), False, self._readable, self._obsolete)

    def hang_up(self, close_frame):
        """End the connection from this side: the last frames, then the close, then TCP after a grace."""
        self.outbox.finish(close_frame)
        self.grace = self.loop.later(CLOSE_GRACE, self.close)

    def close(self):
        """Release the socket; safe to call twice."""
        if self.closed:
            return
        self.closed = True
        Connection.open_count -= 1
        self.outbox.abandon()
        if self.reader is not None:
            self.loop.unwatch(self.reader)
            self.reader = None
        try:
            self.conn.close()
        except OSError:
            pass

    def _readable(self):
        try:
            data = self.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._stop_reading()
            self._queue(END)
            return
        try:
            frames = self.parser.feed(data)
        except ProtocolError as error:
            self._stop_reading()
            self.outbox.finish(frame(struct.pack("!H", error.code), CLOSE))
            if error.code == 1009:  # a client pushing an oversized frame need not be read to its end
                self._abort()
            self._queue(END)
            return
        for opcode, payload in frames:
            if opcode in (TEXT, BINARY):
                self._queue(payload)
            elif opcode == PING:
                self.outbox.write(frame(payload, PONG))
            elif opcode == CLOSE:
                self._stop_reading()
                self.outbox.finish(frame(payload[:2], CLOSE))
                self._queue(END)
                return

    def _queue(self, item):
        self.inbox.append(item)
        if not self.running:
            self.running = True
            self.loop.spawn(self._run)

    def _run(self):
        """Handle the inbox in order, then let the green thread go."""
        try:
            while self.inbox:
                item = self.inbox.popleft()
                if item is END:
                    self._end()
                    return
                if not self._handle(item):
                    self._stop_reading()
                    self.hang_up(frame(struct.pack("!H", 1002), CLOSE))
                    self._end()
                    return
        finally:
            self.running = False

    def _handle(self, data):
        """One message in the connection's state; False ends the connection."""
        session = self.session
        if self.state == "open":
            if session.closed:
                return True
            try:
                session.receive(eio_packet.Packet(encoded_packet=data))
            except Exception as error:
                log.info("closing a websocket after a bad packet: %s", error)
                return False
            return True
        if self.state == "probe" and data == "2probe":
            session.upgrading = True
            self.outbox.write(frame(b"3probe", TEXT))
            session.queue.put(eio_packet.Packet(eio_packet.NOOP))  # ends the client's pending poll
            self.state = "upgrade"
            return True
        session.upgrading = False
        if self.state == "upgrade" and data == "5":
            self._take_over()
            return True
        return False

    def _take_over(self):
        """Send what the session queued before, then let every later packet go straight out."""
        session, queue = self.session, self.session.queue
        session.connected = session.upgraded = True
        session.upgrading = False
        closing = False
        while not queue.empty():
            pkt = queue.get(block=False)
            queue.task_done()
            if pkt is None:
                closing = True
            elif pkt.packet_type != eio_packet.NOOP:
                self.outbox.write(packet_frame(pkt))
        session.queue = OutboxQueue(self)
        self.state = "open"
        if closing:
            session.queue.put(None)

    def _end(self):
        """The client is gone or leaving: close the session, then the socket once the last frames are out."""
        session = self.session
        session.upgrading = False
        session.close(wait=False, abort=True, reason=session.server.reason.TRANSPORT_CLOSE)
        if self.outbox.finishing and not self.outbox.closed:
            self.outbox.on_finished = self.close
            self.grace = self.loop.later(CLOSE_GRACE, self.close)  # for a client that stopped reading
        else:
            self.close()

    def _stop_reading(self):
        if self.reader is not None:
            self.loop.unwatch(self.reader)
            self.reader = None

    def _obsolete(self, *_):
        self.reader = None
        self.close()

    def _abort(self):
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class WebSocketDriver:
    """Engine.IO's `websocket` driver: answers the handshake and gives the connection to the hub."""

    loop = flusher = max_connections = None  # set by install() on a subclass of its own

    def __init__(self, handler, server):
        self.session = handler.__self__  # the engineio Socket whose _websocket_handler this replaces
        self.eio = server

    def __call__(self, environ, start_response):
        detach = environ.get("papo.detach")
        if detach is None:
            raise RuntimeError("Papo's WebSockets need Papo's own server: python app.py")
        refusal = _refusal(environ)
        if refusal is None and self.max_connections and Connection.open_count >= self.max_connections:
            refusal = "503 Service Unavailable", [], b"the server holds as many connections as it may"
        if refusal is not None:
            status, headers, body = refusal
            start_response(status, [("Connection", "close"), ("Content-Type", "text/plain")] + headers)
            return [body]
        conn = environ["papo.socket"]
        key = environ["HTTP_SEC_WEBSOCKET_KEY"].strip().encode()
        accept = base64.b64encode(hashlib.sha1(key + ACCEPT_GUID).digest())
        conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n")
        detach()
        Connection(self.session, conn, self.flusher, int(self.eio.max_http_buffer_size)).start()
        self.loop.responded()
        return []


def _refusal(environ):
    """(status, headers, body) when the request is not a WebSocket handshake Papo answers, else None."""
    tokens = {token.strip().lower() for token in environ.get("HTTP_CONNECTION", "").split(",")}
    if "upgrade" not in tokens or environ.get("HTTP_UPGRADE", "").lower() != "websocket":
        return "400 Bad Request", [], b"not a WebSocket upgrade"
    if environ.get("HTTP_SEC_WEBSOCKET_VERSION") not in ("8", "13"):
        return "426 Upgrade Required", [("Sec-WebSocket-Version", "13")], b"WebSocket version 13 only"
    if not environ.get("HTTP_SEC_WEBSOCKET_KEY", "").strip():
        return "400 Bad Request", [], b"Sec-WebSocket-Key is missing"
    return None


def fit_session(session, loop):
    """Give a new Engine.IO session a ping timer on the hub instead of a green thread per ping."""
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
            session.ping_timer = loop.later(server.ping_interval, ping)

    session.schedule_ping = schedule_ping


def install(engineio_server, async_mode, max_connections=None):
    """Serve Engine.IO's WebSockets with this module, and ping every session from a hub timer."""
    loop = {"eventlet": EventletLoop, "gevent": GeventLoop}[async_mode]()
    driver = type("WebSocketDriver", (WebSocketDriver,),
                  {"loop": loop, "flusher": Flusher(loop), "max_connections": max_connections})
    drivers = dict(engineio_server._async)
    drivers["websocket"] = driver
    engineio_server._async = drivers
    on_open = engineio_server.handlers["connect"]

    def connect(sid, environ):
        session = engineio_server.sockets.get(sid)
        if session is not None:
            fit_session(session, loop)
        return on_open(sid, environ)

    engineio_server.handlers["connect"] = connect
    engineio_server.send_packet = _direct_send(engineio_server)


def _direct_send(server):
    """Engine.IO's send_packet, writing straight into an upgraded connection's outbox.

    Engine.IO's own checks the ping timeout and logs on every send; its service task checks
    timeouts anyway, and a broadcast would pay both once per recipient.
    """
    queued_send = server.send_packet

    def send_packet(sid, pkt):
        session = server.sockets.get(sid)
        queue = getattr(session, "queue", None)
        if type(queue) is OutboxQueue and not session.closed:
            queue.connection.outbox.write(packet_frame(pkt))
        else:
            queued_send(sid, pkt)

    return send_packet


class EventletLoop:
    """The hub's services the transport uses, under eventlet."""

    def __init__(self):
        from eventlet.hubs import get_hub

        self.hub = get_hub()

    def soon(self, fn):
        """Call fn once the running green threads have yielded."""
        self.hub.schedule_call_global(0, fn)

    def later(self, seconds, fn):
        return self.hub.schedule_call_global(seconds, fn)

    def watch(self, fileno, writable, fn, gone):
        """Call fn whenever the descriptor is readable (or writable); gone if eventlet finds it reused."""
        return self.hub.add(self.hub.WRITE if writable else self.hub.READ, fileno, lambda _: fn(), gone, _ignore)

    def unwatch(self, listener):
        self.hub.remove(listener)

    def spawn(self, fn):
        import eventlet

        eventlet.spawn_n(fn)

    @staticmethod
    def os_socket(conn):
        return conn.fd

    @staticmethod
    def responded():
        """Tell eventlet.wsgi the application wrote its own response (the 101)."""
        import eventlet.wsgi

        eventlet.wsgi.WSGI_LOCAL.already_handled = True


class GeventLoop:
    """The hub's services the transport uses, under gevent."""

    def __init__(self):
        import gevent

        self.loop = gevent.get_hub().loop

    def soon(self, fn):
        self.loop.run_callback(fn)

    def later(self, seconds, fn):
        timer = self.loop.timer(seconds)
        timer.start(fn)
        return timer

    def watch(self, fileno, writable, fn, gone):
        watcher = self.loop.io(fileno, 2 if writable else 1)
        watcher.start(fn)
        return watcher

    def unwatch(self, watcher):
        watcher.stop()

    def spawn(self, fn):
        import gevent

        gevent.spawn_raw(fn)

    @staticmethod
    def os_socket(conn):
        return conn._sock

    @staticmethod
    def responded():
        """gevent.pywsgi writes nothing for an application that never called start_response."""
