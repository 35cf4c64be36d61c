"""A WebSocket connection on the hub: reads without a green thread, writes a turn's frames in one send.

Once the handshake is answered the WSGI green thread lets go of the socket and the hub reads it.
The bytes go through the sans-I/O Protocol; complete messages are handed to the connection's
endpoint (Engine.IO's session, or the test echo) on a short-lived green thread, in order. Frames
written during one turn of the green threads go out in one send, and what the kernel does not
take waits for the socket to be writable.
"""
import collections
import contextlib
import errno
import logging
import socket
import struct
import weakref

from .protocol import CloseCode, Protocol, State

log = logging.getLogger(__name__)

OUTBOX_LIMIT = 8 << 20  # bytes a client may leave unread before it is cut off as too slow
CLOSE_GRACE = 5.0  # seconds a closing connection is given to take its last frames and hang up
GONE = (errno.EPIPE, errno.ECONNRESET, errno.ENOTCONN, errno.EBADF, errno.ESHUTDOWN)


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
        self.on_finished = None  # called once the last frame is out

    def write(self, data: bytes):
        """Queue a frame for the end of this turn; never blocks."""
        if self.closed or self.finishing:
            return
        self.pending.append(data)
        self.pending_bytes += len(data)
        if self.pending_bytes > self.limit:
            log.info("a client left more than %d bytes unread: disconnecting it", self.limit)
            self.abandon()
            _shut(self.sock, socket.SHUT_RDWR)
        elif not self.queued and self.listener is None:
            self.queued = True
            self.flusher.add(self)

    def finish(self, last: bytes = b""):
        """Send `last` (a close frame) after what is queued, then end the sending half of the connection."""
        if not (self.closed or self.finishing):
            if last:
                self.write(last)
            self.finishing = True
            if not self.pending and not self.closed:
                self._finished()

    @property
    def finished(self) -> bool:
        """Whether the last frame is out and the sending half shut, or the connection is over."""
        return self.closed or (self.finishing and not self.pending)

    def abandon(self):
        """Forget whatever is unsent: the connection is over."""
        self.closed = True
        self.pending = []
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
                self.listener = self.flusher.hub.watch(self.sock.fileno(), True, self.flush, self._obsolete)
            return
        self.pending = []
        self._unlisten()
        if self.finishing:
            self._finished()

    def _finished(self):
        _shut(self.sock, socket.SHUT_WR)
        if self.on_finished is not None:
            self.on_finished()

    def _fail(self, error):
        if error.errno not in GONE:
            log.info("websocket write failed: %s", error)
        self.abandon()
        _shut(self.sock, socket.SHUT_RDWR)  # the reader sees the end and closes the session

    def _obsolete(self, *_):
        self.listener = None
        self.abandon()

    def _unlisten(self):
        if self.listener is not None:
            self.flusher.hub.unwatch(self.listener)
            self.listener = None


class Flusher:
    """Sends every outbox written during a turn of the green threads, from one callback of the hub."""

    def __init__(self, hub):
        self.hub = hub
        self.outboxes = []

    def add(self, outbox: Outbox):
        if not self.outboxes:
            self.hub.soon(self.flush)
        self.outboxes.append(outbox)

    def flush(self):
        outboxes, self.outboxes = self.outboxes, []
        for outbox in outboxes:
            try:
                outbox.flush()
            except Exception:
                log.exception("websocket flush failed")


class Last:
    """The inbox's last item: the client is gone or leaving; `answer` is what the protocol sends last."""

    __slots__ = ("answer",)

    def __init__(self, answer: bytes = b""):
        self.answer = answer


class Connection:
    """One WebSocket on the hub; its endpoint handles the messages, one at a time, on a green thread.

    The endpoint has started(connection), handle(connection, message) -> bool (False fails the
    connection with 1002) and ended(connection), the last call it gets.
    """

    open: "weakref.WeakSet[Connection]" = weakref.WeakSet()  # every Connection not yet closed: what a drain closes

    def __init__(self, conn, flusher: Flusher, max_bytes: int, endpoint):
        self.conn = conn  # the green socket: holds the OS socket open
        self.hub = hub = flusher.hub
        self.sock = hub.os_socket(conn)
        self.outbox = Outbox(self.sock, flusher)
        self.protocol = Protocol(max_bytes)
        self.endpoint = endpoint
        self.inbox: collections.deque[str | bytes | Last] = collections.deque()
        self.running = False
        self.reader = None
        self.grace = None
        self.closed = False
        Connection.open.add(self)

    def start(self):
        """Hand the connection to the hub's reading."""
        self.endpoint.started(self)
        self.reader = self.hub.watch(self.sock.fileno(), False, self._readable, self._obsolete)

    def send(self, data: bytes):
        """Queue a frame (or frames) for the end of this turn."""
        self.outbox.write(data)

    def hang_up(self, code: int | None = None, reason: str = ""):
        """Start the close handshake from this side; TCP closes when the client answers, or after a grace."""
        self.outbox.finish(self.protocol.close(code, reason))
        if self.grace is None and not self.closed:
            self.grace = self.hub.later(CLOSE_GRACE, self.close)

    def close(self):
        """Release the socket and the protocol's buffers; safe to call twice."""
        if self.closed:
            return
        self.closed = True
        Connection.open.discard(self)
        self.outbox.abandon()
        self.protocol.parser.release()
        self._stop_reading()
        if self.grace is not None:
            self.hub.cancel(self.grace)
            self.grace = None
        with contextlib.suppress(OSError):
            self.conn.close()
        with contextlib.suppress(OSError):
            # Under gevent the green socket keeps its descriptor open while file objects of the WSGI
            # handler refer to it, until the garbage collector frees them: close the OS socket itself.
            self.sock.close()

    def _received(self) -> bytes | None:
        """What the socket has for us: None if nothing yet, b"" once the client is gone."""
        try:
            return self.sock.recv(65536)
        except BlockingIOError:
            return None
        except OSError:
            return b""

    def _readable(self):
        data = self._received()
        if data is None:
            return
        if not data:
            self._stop_reading()
            self.protocol.lost()
            self._queue(Last())
            return
        protocol = self.protocol
        messages = protocol.receive(data)
        answer = protocol.data_to_send()
        if protocol.state is not State.CLOSED:
            if answer:
                self.outbox.write(answer)
            for message in messages:
                self._queue(message)
            return
        self._stop_reading()
        if protocol.failure == CloseCode.TOO_BIG:
            self.outbox.write(answer)
            self._refuse_rest()
            answer = b""
        for message in messages:
            self._queue(message)
        self._queue(Last(answer))  # the close goes out after the answers to the messages before it

    def _refuse_rest(self):
        """Send the close frame now, then reset: a client pushing an oversized frame need not be read to its end."""
        self.outbox.flush()
        self.outbox.abandon()
        with contextlib.suppress(OSError):
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        _shut(self.sock, socket.SHUT_RDWR)  # ends it even where a green socket's close leaves the descriptor open
        self.close()

    def _queue(self, item):
        self.inbox.append(item)
        if not self.running:
            self.running = True
            self.hub.spawn(self._run)

    def _run(self):
        """Handle the inbox in order, then let the green thread go."""
        try:
            while self.inbox:
                item = self.inbox.popleft()
                if type(item) is Last:
                    self._end(item.answer)
                    return
                if not self.endpoint.handle(self, item):
                    self._stop_reading()
                    self.protocol.fail(CloseCode.PROTOCOL_ERROR)
                    self._end(self.protocol.data_to_send())
                    return
        finally:
            self.running = False

    def _end(self, answer: bytes):
        """The client is gone or leaving: send the protocol's answer, tell the endpoint, close once the rest is out."""
        self.inbox.clear()
        if answer:
            self.outbox.finish(answer)
        try:
            self.endpoint.ended(self)
        except Exception:
            log.exception("closing a websocket's session failed")
        if self.closed:
            return
        outbox = self.outbox
        if not outbox.finishing or outbox.closed:
            self.close()  # nothing more goes out: the client is gone
            return
        if self.grace is None:
            self.grace = self.hub.later(CLOSE_GRACE, self.close)  # for a client that stops reading or never hangs up
        if outbox.pending:
            outbox.on_finished = self._linger
        else:
            self._linger()

    def _linger(self):
        """Our last frame is out and our side shut: drop what the client still sends until it hangs up.

        Closing a socket with unread input makes the kernel reset the connection and throw away what
        the client has not yet received (under load, a close frame behind a long message): so read
        until the client's end, or the grace, before closing.
        """
        if self.closed:
            return
        self.protocol.parser.release()
        self._stop_reading()
        self.reader = self.hub.watch(self.sock.fileno(), False, self._discard, self._obsolete)

    def _discard(self):
        if self._received() == b"":
            self.close()

    def _stop_reading(self):
        if self.reader is not None:
            self.hub.unwatch(self.reader)
            self.reader = None

    def _obsolete(self, *_):
        self.reader = None
        self.close()


def _shut(sock, how):
    with contextlib.suppress(OSError):
        sock.shutdown(how)
