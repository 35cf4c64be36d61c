"""What several processes share through Redis: the Socket.IO queue, presence, and long-poll wake-ups.

create_app builds a Cluster when REDIS_URL is set; every process pointed at the same Redis
database is one cluster. Redis may go away and come back empty: each part here reconnects
by itself within about a second of its return and writes back what it holds.
"""
import collections
import logging
import threading
import time
import uuid
from urllib.parse import urlparse

import redis
import socketio
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from .manager import RoomIndex
from .presence import RedisPresence

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 1.0
LEASE_SECONDS = 5.0  # a process silent this long is taken for dead and its members leave
RECONNECT_SECONDS = 1.0
BACKLOG_SIZE = 10000
BACKLOG_SECONDS = 60.0
SETTLE_SECONDS = 1.5


def connect(url, timeout=1.0):
    """A Redis client that fails at once when Redis is down, within about 2 s when it does not answer.

    timeout bounds each reply; None for the connections that block waiting for pub/sub messages.
    """
    return redis.Redis.from_url(url, decode_responses=True, socket_connect_timeout=1.0, socket_timeout=timeout,
                                socket_keepalive=True, retry=Retry(ExponentialBackoff(cap=0.2, base=0.02), 1))


def channel(url, name):
    """A pub/sub channel name; channels are server-wide, so a database other than 0 gets its own."""
    db = (urlparse(url).path or "/0").strip("/") or "0"
    return name if db == "0" else f"{name}:{db}"


class Cluster:
    """The shared parts one process needs: hand queue, presence and wake to the app, then start()."""

    def __init__(self, url):
        self.url = url
        self.queue = MessageQueue(url)
        self.presence = RedisPresence(connect(url), lease=LEASE_SECONDS)
        self.wake = Wakeups(connect(url), connect(url, timeout=None), channel(url, "papo-wake"))

    def start(self, service, spawn):
        """Run the heartbeat and the wake-up listener as background tasks of the server."""
        spawn(beat_forever, service)
        spawn(self.wake.listen, service.signals)


class MessageQueue(RoomIndex, socketio.RedisManager):
    """Flask-SocketIO's Redis message queue, which carries every emit to every process.

    While Redis is away an emit still reaches this process's own clients at once, and waits in a
    backlog (the last BACKLOG_SIZE, for at most BACKLOG_SECONDS) for the other processes. The
    listener resubscribes every second instead of the base class's doubling wait, and sends the
    backlog in order once it has been subscribed for SETTLE_SECONDS, by when the other processes
    have resubscribed too and can hear it.
    """

    def __init__(self, url):
        super().__init__(url, channel=channel(url, "flask-socketio"), redis_options={
            "socket_connect_timeout": 1.0, "socket_keepalive": True,
            "retry": Retry(ExponentialBackoff(cap=0.2, base=0.02), 2)})
        self._backlog = collections.deque(maxlen=BACKLOG_SIZE)  # [(time.monotonic() when emitted, message)]
        self._backlog_lock = threading.Lock()
        self._down_since = None  # time.monotonic() of the first failed publish of an outage

    def _publish(self, data):
        with self._backlog_lock:
            self._backlog.append((time.monotonic(), data))
            if self._down_since is None:
                self._send_backlog()

    def _send_backlog(self):
        """Publish the backlog oldest first; stop at the first failure. Called with the lock held."""
        while self._backlog:
            emitted, data = self._backlog[0]
            if time.monotonic() - emitted <= BACKLOG_SECONDS:
                try:
                    if not self.connected:
                        self._redis_connect()
                    self.redis.publish(self.channel, self.json.dumps(data))
                except Exception as error:
                    self.connected = False
                    if self._down_since is None:
                        self._down_since = time.monotonic()
                        log.warning("message queue: cannot publish to Redis (%s); keeping emits for later", error)
                    return
            self._backlog.popleft()
        if self._down_since is not None:
            log.warning("message queue: sent what waited %.1f s for Redis", time.monotonic() - self._down_since)
            self._down_since = None

    def _redis_listen_with_retries(self):
        while True:
            try:
                self._redis_connect()
                self.pubsub.subscribe(self.channel)
                subscribed = time.monotonic()
                while True:
                    message = self.pubsub.get_message(timeout=0.5)
                    if message is not None:
                        yield message
                    if self._down_since is not None and time.monotonic() - subscribed >= SETTLE_SECONDS:
                        with self._backlog_lock:
                            self._send_backlog()
            except Exception as error:
                log.warning("message queue: cannot receive from Redis (%s); retrying", error)
                time.sleep(RECONNECT_SECONDS)


class Wakeups:
    """Wakes long polls in every process when any process stores a message in their room.

    Calling it publishes the room; listen() hands each room published elsewhere to the local
    RoomSignals, and wakes every poll after (re)subscribing, since wake-ups may have been missed.
    """

    def __init__(self, client, listener, name):
        self.client = client
        self.listener = listener
        self.channel = name
        self.origin = uuid.uuid4().hex

    def __call__(self, room):
        try:
            self.client.publish(self.channel, f"{self.origin} {room}")
        except redis.RedisError as error:
            log.warning("cannot publish a wake-up for %s: %s", room, error)

    def listen(self, signals, stop=None):
        """Pass wake-ups to signals until stop (a threading.Event) is set."""
        stop = stop or threading.Event()
        while not stop.is_set():
            pubsub = self.listener.pubsub()
            try:
                pubsub.subscribe(self.channel)
                while not stop.is_set():
                    item = pubsub.get_message(timeout=1.0)
                    if item is None:
                        continue
                    if item["type"] == "subscribe":
                        signals.notify_all()
                    elif item["type"] == "message":
                        origin, _, room = item["data"].partition(" ")
                        if origin != self.origin:
                            signals.notify(room)
            except Exception as error:
                log.warning("wake-ups: cannot receive from Redis (%s); retrying", error)
                stop.wait(RECONNECT_SECONDS)
            finally:
                pubsub.close()


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
