"""A detached HTTP response on the hub: Server-Sent Events written without a green thread per stream.

The view answers the request from its WSGI green thread, then lets go of the socket (`papo.detach`,
as a WebSocket's handshake does) and hands it to a Stream: writes go through the same Outbox and
Flusher as WebSocket frames, the hub watches the socket only to notice the client's end, and one
timer per process writes every stream's keepalive comment. Nothing runs for an idle stream.
"""
from __future__ import annotations

import contextlib
import logging
import weakref
from collections.abc import Callable
from typing import Any

from .connection import CLOSE_GRACE, Flusher, Outbox

log = logging.getLogger(__name__)


class Stream:
    """One detached response: write() queues bytes for the end of this turn; finish() ends it once they are out."""

    open: weakref.WeakSet[Stream] = weakref.WeakSet()  # every Stream not yet closed: what a drain finishes

    def __init__(self, conn: Any, flusher: Flusher, on_closed: Callable[[], None] | None = None,
                 chunked: bool = True):
        self.chunked = chunked  # HTTP/1.1's chunked body: clients hand each write over as it comes
        self.conn = conn  # the green socket: holds the OS socket open
        self.hub = hub = flusher.hub
        self.sock = hub.os_socket(conn)
        self.outbox = Outbox(self.sock, flusher)
        self.on_closed = on_closed
        self.closed = False
        self.grace: Any = None
        self.reader = hub.watch(self.sock.fileno(), False, self._readable, self._obsolete)
        Stream.open.add(self)

    def write(self, data: bytes) -> None:
        if data:
            self.outbox.write(chunk(data) if self.chunked else data)

    def finish(self, last: bytes = b"") -> None:
        """Send `last` after what is queued, then close; a client that stops reading is cut after a grace."""
        if self.closed or self.outbox.finishing:
            return
        self.outbox.on_finished = self.close
        if self.chunked:
            last = (chunk(last) if last else b"") + b"0\r\n\r\n"
        self.outbox.finish(last)
        if not self.closed and self.grace is None:
            self.grace = self.hub.later(CLOSE_GRACE, self.close)

    def close(self) -> None:
        """Release the socket; safe to call twice."""
        if self.closed:
            return
        self.closed = True
        Stream.open.discard(self)
        self.outbox.abandon()
        if self.reader is not None:
            self.hub.unwatch(self.reader)
            self.reader = None
        if self.grace is not None:
            self.hub.cancel(self.grace)
            self.grace = None
        with contextlib.suppress(OSError):
            self.conn.close()
        if self.on_closed is not None:
            try:
                self.on_closed()
            except Exception:
                log.exception("closing a stream failed")

    def _readable(self) -> None:
        try:
            data = self.sock.recv(4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:  # the client is gone (what it may send otherwise is ignored)
            self.close()

    def _obsolete(self, *_: Any) -> None:
        self.reader = None
        self.close()


def chunk(data: bytes) -> bytes:
    """One chunk of an HTTP/1.1 chunked body."""
    return b"%x\r\n" % len(data) + data + b"\r\n"


class Keepalive:
    """One hub timer per process that writes a comment to every open Stream every `seconds`."""

    def __init__(self, hub: Any, seconds: float, line: bytes = b":\n\n"):
        self.hub = hub
        self.seconds = seconds
        self.line = line
        self.timer: Any = None

    def ensure(self) -> None:
        """Run the timer (a stream just opened)."""
        if self.timer is None:
            self.timer = self.hub.later(self.seconds, self._tick)

    def _tick(self) -> None:
        self.timer = None
        streams = [stream for stream in list(Stream.open) if not stream.closed]
        for stream in streams:
            stream.write(self.line)
        if streams:
            self.ensure()


class DetachedResponses:
    """WSGI middleware for the paths whose view may take the socket: their start_response waits for the view.

    A view that detached (environ["papo.detached"] set, shared across Flask-SocketIO's copy of the
    environ) wrote its own response: the server is told so and gets nothing more to write.
    """

    def __init__(self, wsgi_app: Any, paths: tuple[str, ...], hub: Any):
        self.wsgi_app = wsgi_app
        self.paths = paths
        self.hub = hub

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("PATH_INFO") not in self.paths:
            return self.wsgi_app(environ, start_response)
        if "papo.detach" not in environ:  # another server: the view streams through WSGI
            environ["eventlet.minimum_write_chunk_size"] = 0  # eventlet.wsgi would hold back writes under 4 KB
            return self.wsgi_app(environ, start_response)
        marker: list[bool] = []
        environ["papo.detached"] = marker
        held: list[Any] = []

        def hold(status: str, headers: list, exc_info: Any = None) -> Callable[[bytes], None]:
            held[:] = [status, headers, exc_info]
            return _no_write

        result = self.wsgi_app(environ, hold)
        if marker:
            if hasattr(result, "close"):
                result.close()
            self.hub.responded()
            return []
        start_response(*held)
        return result


def _no_write(data: bytes) -> None:
    raise RuntimeError("write() is not offered on a path whose view may detach")
