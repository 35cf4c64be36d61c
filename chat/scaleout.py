"""What several processes share through Redis: the Socket.IO message queue and presence.

create_app builds a Cluster when REDIS_URL is set; every process pointed at the same Redis
database is one cluster. Redis may go away and come back empty: each part here reconnects
by itself within about a second of its return and writes back what it holds.
"""
import atexit
import collections
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from urllib.parse import urlparse

import redis
import socketio
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from . import internals
from .manager import RoomIndex
from .presence import RedisPresence
from .service import ChatService, room_channel

log = logging.getLogger(__name__)
internals.give_socketio_redis(redis)  # app.py loads python-socketio without it

HEARTBEAT_SECONDS = 1.0
LEASE_SECONDS = 5.0  # a process silent this long is taken for dead and its members leave
RECONNECT_SECONDS = 1.0
BACKLOG_SIZE = 10000
BACKLOG_SECONDS = 60.0
SETTLE_SECONDS = 1.5
SHRINK_SECONDS = 3.0  # how long publishes may reach fewer processes than before until that is taken as a process gone
BATCH_SIZE = 500  # emits per publish
RETRY_SECONDS = 0.25  # how often a publisher that lost Redis looks whether it may send again
ROOM_PREFIX = room_channel("")
CONFIRM = "papo-subscribed"  # the PING payload whose PONG confirms the listener is subscribed now


def connect(url: str, timeout: float | None = 1.0) -> redis.Redis:
    """A Redis client that fails at once when Redis is down, within about 2 s when it does not answer.

    timeout bounds each reply; None for the connections that block waiting for pub/sub messages.
    """
    return redis.Redis.from_url(url, decode_responses=True, socket_connect_timeout=1.0, socket_timeout=timeout,
                                socket_keepalive=True, retry=Retry(ExponentialBackoff(cap=0.2, base=0.02), 1))


def channel(url: str, name: str) -> str:
    """A pub/sub channel name; channels are server-wide, so a database other than 0 gets its own."""
    db = (urlparse(url).path or "/0").strip("/") or "0"
    return name if db == "0" else f"{name}:{db}"


class Cluster:
    """The shared parts one process needs: hand queue and presence to the app, then start()."""

    def __init__(self, url: str):
        self.url = url
        self.queue = MessageQueue(url)
        self.presence = RedisPresence(connect(url), lease=LEASE_SECONDS)

    def start(self, service: ChatService, server: socketio.Server) -> None:
        """Wake long polls for messages from other processes; listen to the queue now; run the heartbeat."""
        signals = service.signals

        def wake(event, room):
            if event == "message" and isinstance(room, str) and room.startswith(ROOM_PREFIX):
                signals.notify(room[len(ROOM_PREFIX):])

        self.queue.on_remote_emit = wake
        self.queue.on_subscribed = signals.notify_all
        listen_now(server)
        server.start_background_task(beat_forever, service)


def listen_now(server: socketio.Server) -> None:
    """Start python-socketio's queue listener at once rather than on the first Socket.IO connection.

    A process that only serves HTTP (long polls) must hear the others too. This is the one place
    that touches python-socketio's lazy start-up (Server.manager_initialized).
    """
    if not server.manager_initialized:
        server.manager_initialized = True
        server.manager.initialize()


class MessageQueue(RoomIndex, socketio.RedisManager):
    """Flask-SocketIO's Redis message queue, which carries every emit to every process.

    An emit reaches this process's own clients at once and joins a backlog; a publisher task sends
    the backlog in batches, one PUBLISH for whatever accumulated while it was sending the previous
    one, so the emitting code never waits for Redis and holds no lock. A batch is one JSON object,
    {"host_id": <this process>, "method": "batch", "messages": [python-socketio queue messages]};
    the listener skips its own batches unread and hands the others' messages to python-socketio one
    by one, without yielding between them: every client's frames of one batch leave in one send.
    Plain python-socketio messages (a write-only RedisManager elsewhere) are handled as usual.

    While Redis is away the backlog keeps the last BACKLOG_SIZE emits for at most BACKLOG_SECONDS.
    The listener resubscribes every second instead of the base class's doubling wait, and the
    publisher sends the backlog in order once the listener's subscription, confirmed after the first
    failed publish, is SETTLE_SECONDS old, by when the other processes have resubscribed too and can
    hear it. A publish that reached no subscriber, not even this process's listener, counts as failed,
    and so does one that reached fewer listeners than the publish before it, until SHRINK_SECONDS say a
    process has left: after an outage one process may have resubscribed while another has not yet.
    """

    def __init__(self, url):
        super().__init__(url, channel=channel(url, "flask-socketio"), redis_options={
            "socket_connect_timeout": 1.0, "socket_keepalive": True,
            "retry": Retry(ExponentialBackoff(cap=0.2, base=0.02), 2)})
        self.publisher = redis.Redis.from_url(url, socket_connect_timeout=1.0, socket_timeout=2.0,
                                              socket_keepalive=True,
                                              retry=Retry(ExponentialBackoff(cap=0.2, base=0.02), 1))
        self.on_remote_emit: Callable[[str, object], None] | None = None  # (event, room) of another process's emit
        self.on_subscribed: Callable[[], None] | None = None  # each time the listener has (re)subscribed
        self._own = f'{{"host_id": "{self.host_id}", '.encode()
        # (time.monotonic() when emitted, message), oldest first
        self._backlog: collections.deque[tuple[float, dict]] = collections.deque()
        self._wanted = threading.Event()  # set when the backlog has something new for the publisher
        self._kicked = False
        self._closed = False
        self._down_since = None  # time.monotonic() of the first failed publish of an outage
        self._subscribed_since = None  # time.monotonic() the listener last confirmed its subscription
        self._confirming = None  # the _down_since the listener has sent its PING for
        self._listening = False  # whether this process runs a listener, which hears its own publishes
        self._receivers = 0  # the listeners (one per process) the last accepted publish reached
        self._short_since = None  # time.monotonic() since publishes reach fewer listeners than that
        self._sending = threading.Lock()

    def _publish(self, data):
        self._backlog.append((time.monotonic(), data))
        if len(self._backlog) > BACKLOG_SIZE:
            self._backlog.popleft()
        if not self._kicked:
            self._kicked = True
            self._wanted.set()

    def initialize(self):
        """Start the publisher beside python-socketio's listener; emits made before wait for it."""
        super().initialize()
        self.server.start_background_task(self._publish_forever)
        atexit.register(self.flush)

    def flush(self):
        """Publish what waits from the caller, at once: a process about to exit (`flask notify --direct`)."""
        if self._down_since is None:
            self.send_backlog()

    def close(self):
        """Stop listening, and publishing once what waits has been sent (or has failed to be)."""
        self._closed = True
        self._wanted.set()

    def _publish_forever(self):
        """Send the backlog whenever it grows; while Redis is away, try again once the listener has settled."""
        while not self._closed:
            self._wanted.wait(RETRY_SECONDS if self._down_since is not None else None)
            self._wanted.clear()
            self._kicked = False
            if self._down_since is None or self._settled():
                try:
                    self.send_backlog()
                except Exception:
                    log.exception("message queue: the publisher failed; going on")

    def _settled(self):
        """Whether the listener confirmed its subscription after the outage began, SETTLE_SECONDS ago.

        A confirmation from before the first failed publish says nothing: the listener may not have
        noticed the outage yet, and the other processes may not have resubscribed.
        """
        since, down = self._subscribed_since, self._down_since
        return since is not None and down is not None and since > down and time.monotonic() - since >= SETTLE_SECONDS

    def _unconfirmed(self):
        """Whether the publisher lost Redis after the listener's last confirmation, and nobody asked since."""
        down = self._down_since
        return down is not None and down != self._confirming and (self._subscribed_since or 0.0) < down

    def send_backlog(self):
        """Publish the backlog oldest first, BATCH_SIZE emits per publish; stop at the first failure.

        One sender at a time: a flush at exit waits for the batch the publisher task has in hand.
        """
        with self._sending:
            while self._backlog:
                batch = self._take_batch()
                if batch and not self._sent(batch):
                    return
            if self._down_since is not None:
                log.warning("message queue: sent what waited %.1f s for Redis", time.monotonic() - self._down_since)
                self._down_since = None

    def _sent(self, batch):
        """Publish one batch; on failure put it back in front and note the outage."""
        try:
            receivers = self.publisher.publish(self.channel, self._own + self._encode(batch))
            if receivers == 0 and self._listening:
                # Not even this process's listener heard it: Redis is back from an outage the publish
                # straddled (redis-py reconnected by itself), and nobody has resubscribed yet.
                raise redis.ConnectionError("published to no subscriber, this process's own included")
            if self._short_of(receivers):
                # Fewer listeners than the last publish reached: after an outage some processes have
                # resubscribed and others not yet; they would never hear this batch. Keep it until they
                # are back, or until SHRINK_SECONDS tell that a process has gone.
                raise redis.ConnectionError(f"published to {receivers} of {self._receivers} processes")
        except Exception as error:
            self._backlog.extendleft(reversed(batch))
            while len(self._backlog) > BACKLOG_SIZE:
                self._backlog.popleft()
            if self._down_since is None:
                self._down_since = time.monotonic()
                log.warning("message queue: cannot publish to Redis (%s); keeping emits for later", error)
            return False
        return True

    def _short_of(self, receivers):
        """Whether a publish that reached `receivers` listeners missed some that the earlier ones reached."""
        now = time.monotonic()
        if receivers >= self._receivers:
            self._receivers, self._short_since = receivers, None
            return False
        if self._short_since is None:
            self._short_since = now
        if now - self._short_since >= SHRINK_SECONDS:  # a process left the cluster: fewer from now on
            self._receivers, self._short_since = receivers, None
            return False
        return True

    def _take_batch(self):
        """Up to BATCH_SIZE of the oldest emits, dropping those older than BACKLOG_SECONDS."""
        oldest = time.monotonic() - BACKLOG_SECONDS
        batch: list[tuple[float, dict]] = []
        while self._backlog and len(batch) < BATCH_SIZE:
            emitted, data = self._backlog.popleft()
            if emitted >= oldest:
                batch.append((emitted, data))
        return batch

    def _encode(self, batch):
        return ('"method": "batch", "messages": ' + self.json.dumps([data for _, data in batch]) + "}").encode()

    def _redis_listen_with_retries(self):
        self._listening = True
        while not self._closed:
            try:
                self._redis_connect()
                self.pubsub = self.redis.pubsub()  # the subscribe confirmation included
                self.pubsub.subscribe(self.channel)
                while not self._closed:
                    if self._unconfirmed():
                        # A connection redis-py kept or remade by itself raises nothing: ask it.
                        self._confirming = self._down_since
                        self.pubsub.ping(CONFIRM)
                    # A read waits only when nothing has arrived: what Redis already sent is handed
                    # over without yielding, so a batch's frames are flushed together.
                    message = self.pubsub.get_message(timeout=0.5)
                    if message is None:
                        continue
                    if message["type"] == "message":
                        yield message["data"]
                    else:
                        self._confirm(message)
            except Exception as error:
                self._subscribed_since = None
                log.warning("message queue: cannot receive from Redis (%s); retrying", error)
                self._close_pubsub()
                time.sleep(RECONNECT_SECONDS)
        self._close_pubsub()

    def _confirm(self, message):
        """Note when the subscription was last confirmed: a subscribe reply, or the PONG to our PING."""
        if message["type"] == "subscribe":
            self._subscribed_since = time.monotonic()
            if self.on_subscribed is not None:
                self.on_subscribed()  # wake-ups may have been missed meanwhile
        elif message["type"] == "pong" and message["data"] in (CONFIRM, CONFIRM.encode()):
            self._subscribed_since = time.monotonic()

    def _close_pubsub(self):
        if self.pubsub is not None:
            with contextlib.suppress(redis.RedisError, OSError):
                self.pubsub.close()

    def _listen(self):
        for data in self._redis_listen_with_retries():
            if data.startswith(self._own):
                continue
            try:
                decoded = self.json.loads(data)
            except ValueError:
                continue
            if isinstance(decoded, dict) and decoded.get("method") == "batch":
                yield from (m for m in decoded.get("messages", ()) if isinstance(m, dict))
            else:
                yield decoded

    def _handle_emit(self, message):
        super()._handle_emit(message)
        if self.on_remote_emit is not None and message.get("host_id") != self.host_id:
            self.on_remote_emit(message.get("event"), message.get("room"))


def beat_forever(service, interval=HEARTBEAT_SECONDS, stop=None):
    """Renew this process's presence every interval and announce what changed; logs once per outage."""
    stop = stop or threading.Event()
    failing = False
    while not stop.is_set():
        try:
            service.heartbeat()
            if failing:
                log.warning("presence heartbeat: Redis is back")
            failing = False
        except Exception as error:
            if not failing:
                log.warning("presence heartbeat failed (%s); retrying every %.0f s", error, interval)
            failing = True
        stop.wait(interval)
