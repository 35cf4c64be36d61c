"""Server-Sent Events adapter: GET /api/stream follows rooms and notifications as `text/event-stream`.

Thin over chat.feed (the cursor, the replay, exactly-once ordering). A stream hears the same
fan-out as Socket.IO's connections: every emit python-socketio delivers in this process, the Redis
queue's included, is handed to the streams subscribed to its channel (chat.internals.hear_emits).
Under eventlet and gevent the view answers and replays from its request's green thread, then hands
the socket to the hub (chat.transport.stream): no thread and no green thread per idle stream.
Under the threading development server a stream is a generator on its request's thread.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import threading
import uuid
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response, request

from . import feed as feeds
from . import internals
from .auth import current_session
from .errors import ChatError
from .extension import papo
from .transport.connection import Connection
from .transport.stream import DetachedResponses, Keepalive, Stream, chunk

log = logging.getLogger(__name__)
bp = Blueprint("sse", __name__)

PATH = "/api/stream"
RETRY_MS = 3000  # the browser's wait before it reconnects
KEEPALIVE_SECONDS = 15.0  # at most this long between two writes (a comment when nothing happens)
GAP_SECONDS = 1.0  # how long an event that came ahead of a missing one waits before the store is read
KEEPALIVE = b":\n\n"
HEADERS = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\n"
           b"Cache-Control: no-cache, no-store\r\nX-Accel-Buffering: no\r\nX-Content-Type-Options: nosniff\r\n"
           b"Connection: close\r\n")


# the wire, without I/O

def encode(data: Any) -> bytes:
    """The `data:` of an event: one line of JSON (JSON escapes every line break)."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()


def event(name: str, payload: bytes, cursor: str | None = None) -> bytes:
    """One event's bytes: its type, its id (a cursor) when it has one, its data."""
    head = b"event: " + name.encode() + b"\n"
    if cursor is not None:
        head += b"id: " + cursor.encode() + b"\n"
    return head + b"data: " + payload + b"\n\n"


def preamble(cursor: str, retry_ms: int = RETRY_MS) -> bytes:
    """What a stream starts with: the reconnection delay, and its place as the last event id (no event fires)."""
    return f"retry: {retry_ms}\nid: {cursor}\n\n".encode()


def ended(code: str, message: str) -> bytes:
    """The `session_ended` event, the last a stream gets when its identity ends."""
    return event("session_ended", encode({"code": code, "message": message}))


# the streams of this process

class Subscription:
    """One stream's feed and where its bytes go. Until live(), what it hears waits in `pending`."""

    def __init__(self, sid: str, feed: feeds.Feed):
        self.sid = sid
        self.feed = feed
        self.pending: list[tuple[str, Any]] | None = []

    def hear(self, name: str, data: Any, payload: bytes | None = None) -> None:
        """Take one event; payload is its data already encoded, shared by every stream it goes to."""
        raise NotImplementedError

    def end(self, last: bytes = b"") -> None:
        """Send `last`, then close the stream."""
        raise NotImplementedError


class StreamBinding:
    """A stream as chat.sessions.Lifetimes binds it (chat.ports.Binding): ended with its session."""

    def __init__(self, subscription: Subscription):
        self.subscription = subscription

    def warn(self, expires_in: int) -> None:
        """Say nothing: the stream has no `refresh`; a client reconnects with a fresh token when it ends."""

    def end(self, code: str, message: str) -> None:
        self.subscription.end(ended(code, message))


class HubSubscription(Subscription):
    """A stream on the hub (eventlet, gevent): what it hears is ordered by the feed and written at once."""

    def __init__(self, sid: str, feed: feeds.Feed, store: Any):
        super().__init__(sid, feed)
        self.store = store
        self.stream: Stream | None = None
        self.gap_timer: Any = None
        self.ending = b""

    def live(self, stream: Stream) -> None:
        """Write what waited, then every event as it comes (call it without yielding since the replay)."""
        self.stream = stream
        pending, self.pending = self.pending or [], None
        for name, data in pending:
            self.hear(name, data)
        if self.ending:
            stream.finish(self.ending)

    def hear(self, name: str, data: Any, payload: bytes | None = None) -> None:
        if self.pending is not None:
            self.pending.append((name, data))
            return
        self.write(self.feed.accept(name, data), data, payload)

    def write(self, events: list[feeds.Event], known: Any = None, payload: bytes | None = None) -> None:
        stream = self.stream
        if stream is None or stream.closed:
            return
        for name, data, cursor in events:
            stream.write(event(name, payload if data is known and payload is not None else encode(data), cursor))
        if self.feed.holding() and self.gap_timer is None:
            self.gap_timer = stream.hub.later(GAP_SECONDS, self._gap)

    def _gap(self) -> None:
        self.gap_timer = None
        if self.stream is not None and not self.stream.closed and self.feed.holding():
            self.stream.hub.spawn(self._fill)  # a short-lived green thread: the store's reads wait

    def _fill(self) -> None:
        try:
            for room in [room for room, held in self.feed.held.items() if held]:
                self.write(feeds.catch_up(self.feed, self.store, room))
        except Exception:
            log.exception("filling a stream's gap failed")

    def end(self, last: bytes = b"") -> None:
        if self.stream is None:
            self.ending = last or b"\n"
        else:
            self.stream.finish(last)


class QueueSubscription(Subscription):
    """A stream on its own thread (the threading development server): what it hears is queued for the thread."""

    def __init__(self, sid: str, feed: feeds.Feed):
        super().__init__(sid, feed)
        self.queue: queue.Queue[tuple[str, Any]] = queue.Queue()  # not SimpleQueue: C, never green

    def hear(self, name: str, data: Any, payload: bytes | None = None) -> None:
        self.queue.put((name, data))

    def end(self, last: bytes = b"") -> None:
        self.queue.put(("", last))


class Streams:
    """This process's subscriptions by channel. Shape: {channel: {Subscription}}, everyone = {Subscription}."""

    def __init__(self) -> None:
        self.channels: dict[str, set[Subscription]] = {}
        self.everyone: set[Subscription] = set()  # the ones that take notifications to all
        self.all: set[Subscription] = set()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.all)

    def add(self, subscription: Subscription) -> None:
        with self._lock:
            self.all.add(subscription)
            for channel in subscription.feed.channels():
                self.channels.setdefault(channel, set()).add(subscription)
            if subscription.feed.notifications:
                self.everyone.add(subscription)

    def remove(self, subscription: Subscription) -> None:
        with self._lock:
            self.all.discard(subscription)
            for channel in subscription.feed.channels():
                found = self.channels.get(channel)
                if found is not None:
                    found.discard(subscription)
                    if not found:
                        del self.channels[channel]
            self.everyone.discard(subscription)

    def hear(self, name: str, data: Any, to: Any, namespace: str) -> None:
        """Hand one delivered emit to the streams it is for (chat.internals.hear_emits calls this)."""
        if not self.all or namespace != "/" or name not in ("message", "message_updated", "notification"):
            return  # no stream in this process: the message path pays one truth test
        if to is not None and not isinstance(to, str):
            return
        with self._lock:  # the threading server's emits come from any thread
            if to is None:
                found = list(self.everyone) if name == "notification" else []
            else:
                found = list(self.channels.get(to, ()))
        payload = encode(data) if found else None  # once, however many streams it goes to
        for subscription in found:
            subscription.hear(name, data, payload)


class SSE:
    """The process-wide parts of the streams: the subscriptions, the hub and its keepalive timer, the limits."""

    def __init__(self, streams: Streams, transport: Any, keepalive: float, max_connections: int):
        self.streams = streams
        self.transport = transport  # chat.transport.driver.Transport under eventlet and gevent, else None
        self.keepalive_seconds = keepalive
        self.keepalive = Keepalive(transport.hub, keepalive, KEEPALIVE) if transport is not None else None
        self.max_connections = max_connections


def install(app: Any, socketio: Any, transport: Any, settings: Any) -> SSE:
    """Hear every emit of this process for the streams, let the view detach, register the blueprint."""
    streams = Streams()
    internals.hear_emits(socketio.server.manager, streams.hear)
    sse = SSE(streams, transport, keepalive_setting(settings), settings.MAX_CONNECTIONS)
    app.extensions["papo.sse"] = sse
    if transport is not None:
        app.wsgi_app = DetachedResponses(app.wsgi_app, (PATH,), transport.hub)
    app.register_blueprint(bp)
    return sse


def keepalive_setting(settings: Any) -> float:
    """SSE_KEEPALIVE (seconds between comments, at most 15; tests shorten it), from the test config or environment."""
    raw = settings.extra.get("SSE_KEEPALIVE", os.environ.get("SSE_KEEPALIVE", ""))
    try:
        seconds = float(raw) if raw != "" else KEEPALIVE_SECONDS
    except ValueError:
        seconds = KEEPALIVE_SECONDS
    return min(max(seconds, 0.05), KEEPALIVE_SECONDS)


# the view

@bp.get(PATH)
def stream() -> Any:
    """Follow rooms and notifications as Server-Sent Events, resuming after Last-Event-ID."""
    parts = papo()
    sse = _sse()
    found = current_session()
    if found is None:
        raise ChatError("unauthorized", "sign in or send Authorization: Bearer <token>")
    rooms = feeds.parse_rooms(request.args.get("rooms"), parts.settings.MAX_ROOMS_PER_CONNECTION)
    notifications = feeds.parse_flag("notifications", request.args.get("notifications"))
    cursor = request.args.get("last_event_id") or request.headers.get("Last-Event-ID") or None
    if len(request.query_string) + len(cursor or "") > parts.settings.MAX_FRAME_BYTES:
        raise ChatError("too_large", "the query and Last-Event-ID are over the server's size limit")
    if cursor is not None:
        feeds.parse_cursor(cursor)
    feed = feeds.open_feed(parts.service, found.user, rooms, notifications)
    if len(Stream.open) + len(Connection.open) >= sse.max_connections:
        raise ChatError("unavailable", "the server holds as many connections as it may")
    sid = "sse-" + uuid.uuid4().hex
    parts.guard.admit(sid, found.user)
    lifetimes = parts.identity.sessions.live
    environ = request.environ
    detach = environ.get("papo.detach") if sse.transport is not None else None
    subscription: Subscription = (HubSubscription(sid, feed, parts.store) if detach is not None
                                  else QueueSubscription(sid, feed))

    def release() -> None:
        sse.streams.remove(subscription)
        if lifetimes is not None:
            lifetimes.unbind(sid)
        parts.guard.release(sid)

    sse.streams.add(subscription)  # subscribed first: what happens during the replay waits
    if lifetimes is not None:
        lifetimes.bind(sid, found, StreamBinding(subscription))
    try:
        initial, missed = feeds.start(feed, parts.store, cursor)
    except BaseException:
        release()
        raise
    if isinstance(subscription, HubSubscription) and detach is not None:
        return _detach(sse, subscription, environ, detach, initial, missed, release)
    assert isinstance(subscription, QueueSubscription)
    return Response(_generate(sse, subscription, parts.store, initial, missed, release),
                    mimetype="text/event-stream",
                    headers={"Cache-Control": "no-cache, no-store", "X-Accel-Buffering": "no"})


def _sse() -> SSE:
    from flask import current_app

    return current_app.extensions["papo.sse"]


def _detach(sse: SSE, subscription: HubSubscription, environ: dict[str, Any], detach: Any, initial: str,
            missed: list[feeds.Event], release: Any) -> Response:
    """Write the head and the replay from this green thread, then give the socket to the hub."""
    conn = environ["papo.socket"]
    chunked = internals.request_version(environ) == "HTTP/1.1"  # else the body ends with the connection
    head = HEADERS + (b"Transfer-Encoding: chunked\r\n\r\n" if chunked else b"\r\n")
    body = preamble(initial) + b"".join(event(name, encode(data), cursor) for name, data, cursor in missed)
    try:
        conn.sendall(head + (chunk(body) if chunked else body))
    except OSError:
        release()
        raise ChatError("unavailable", "the client went away") from None
    # The stream gets a descriptor of its own: gevent closes the request's socket once nothing
    # references the request's input any more, whatever the handler was told.
    own = conn.dup()
    detach()
    with contextlib.suppress(OSError):
        conn.close()
    environ["papo.detached"].append(True)
    assert sse.transport is not None and sse.keepalive is not None
    subscription.live(Stream(own, sse.transport.flusher, on_closed=release, chunked=chunked))
    sse.keepalive.ensure()
    return Response(status=200)  # never sent: the middleware tells the server the view answered


def _generate(sse: SSE, subscription: QueueSubscription, store: Any, initial: str, missed: list[feeds.Event],
              release: Any) -> Iterator[bytes]:
    """The threading server's stream: the replay, then what the subscription hears, comments between."""
    feed = subscription.feed
    try:
        yield preamble(initial) + b"".join(event(name, encode(data), cursor) for name, data, cursor in missed)
        while True:
            wait = GAP_SECONDS if feed.holding() else sse.keepalive_seconds
            try:
                name, data = subscription.queue.get(timeout=wait)
            except queue.Empty:
                out = [found for room in [r for r, held in feed.held.items() if held]
                       for found in feeds.catch_up(feed, store, room)]
                yield b"".join(event(n, encode(d), c) for n, d, c in out) + KEEPALIVE
                continue
            if name == "":
                yield data or b""
                return
            yield b"".join(event(n, encode(d), c) for n, d, c in feed.accept(name, data))
    finally:
        release()
