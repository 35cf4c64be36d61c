"""Sessions: identities with an id and an expiry, revocable, and the live connections bound to them.

A token or a cookie session names a stored session; the database is the source of truth. A process
that hears every revocation (it serves its SQLite file alone, or its Redis subscription answered within
the last TRUST_SECONDS) keeps what it read of a session until the session ends, and reads the database
only for a session it has never seen (or one that seems to have expired: a refresh moves the expiry);
any other process keeps a read for at most CACHE_SECONDS. Either way a revocation anywhere is refused
everywhere within a second. Ending live connections is pushed: the process that revokes ends its own
at once and, when scaled, tells the others on a Redis channel. One sweeper task per process warns and
ends connections at expiry, whatever kind they are (Socket.IO in any namespace, or an SSE stream: see
Lifetimes.bind and chat.ports.Binding).
"""
import heapq
import json
import logging
import math
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple
from urllib.parse import urlparse

from . import audit
from .ports import Binding

log = logging.getLogger(__name__)

CACHE_SECONDS = 1.0
CACHE_SIZE = 100_000
TRUST_SECONDS = 1.0  # a subscription silent for longer than this is not trusted to carry every revocation
PING_SECONDS = 0.3
TICK_SECONDS = 0.2
WARN_SECONDS = 60.0
FORGET_AFTER_SECONDS = 86400  # expired sessions stay a day in the database, for the audit trail
CHANNEL = "papo-sessions"
REPLY_SECONDS = 1
ENDINGS = {
    "token_expired": "your sign-in expired; sign in again",
    "logged_out": "you signed out",
    "revoked": "this session was ended; sign in again",
    "disconnected_by_admin": "an administrator disconnected you",
}


class Session(NamedTuple):
    id: str
    user: str
    expires_at: float  # seconds since the epoch

    def expires_in(self, now: float) -> int:
        return max(0, math.ceil(self.expires_at - now))


class Sessions:
    """Opens, checks and revokes stored sessions; ends the connections bound to them on every process."""

    def __init__(self, store: Any, ttl: int, clock: Callable[[], float] = time.time):
        self.store = store
        self.ttl = ttl
        self.clock = clock
        self.live: Lifetimes | None = None
        self.fanout: Fanout | None = None
        self._cache: dict[str, tuple[float, Session | None]] = {}  # {session id: (monotonic read at, session)}
        self._generation = 0  # bumped by every forget: a read that started before one is not kept
        self._lock = threading.Lock()

    def open(self, user: str, kind: str) -> Session:
        """Store a new session of kind "token" or "cookie" for the user, living TOKEN_TTL seconds."""
        now = self.clock()
        session = Session(secrets.token_urlsafe(18), user, now + self.ttl)
        self.store.add_session(session.id, user, kind, int(now * 1000), int(session.expires_at * 1000))
        return session

    def extend(self, session: Session) -> Session | None:
        """Let a live session live TOKEN_TTL seconds from now (a refresh), with its connections here; None if it ended.

        The session keeps its id, so that a logout or a revocation of it ends every token refreshed from it.
        """
        extended = session._replace(expires_at=max(session.expires_at, self.clock() + self.ttl))
        generation = self._generation
        if not self.store.extend_session(session.id, int(extended.expires_at * 1000)):
            self.forget(session.user, [session.id])
            return None
        with self._lock:
            if generation == self._generation:  # else a revocation may have come in meanwhile: read it again
                self._cache[session.id] = (time.monotonic(), extended)
            else:
                self._cache.pop(session.id, None)
            self._generation += 1
        if self.live is not None:
            self.live.extend(extended)
        if self.fanout is not None:
            self.fanout.publish({"user": session.user, "extended": session.id})
        return extended

    def hears_everything(self) -> bool:
        """Whether every revocation reaches this process: it serves its store alone, or it is subscribed."""
        if self.fanout is not None:
            return self.fanout.listening()
        return getattr(self.store, "recent", None) is not None  # a claimed SQLite file: the only server

    def check(self, session_id: Any, fresh: bool = False) -> Session | None:
        """Return the session when it is live: stored, not revoked, not expired; None otherwise.

        fresh reads the database whatever this process remembers (a refresh elsewhere moved the expiry).
        """
        if not isinstance(session_id, str) or not 0 < len(session_id) <= 64:
            return None
        now, wall = time.monotonic(), self.clock()
        cached = None if fresh else self._cache.get(session_id)
        if cached is not None:
            read_at, session = cached
            alive = session is not None and session.expires_at > wall
            if now - read_at < CACHE_SECONDS or ((alive or session is None) and self.hears_everything()):
                return session if alive else None
        generation = self._generation
        row = self.store.find_session(session_id)
        session = None if row is None or row.revoked_at is not None else Session(
            session_id, row.username, row.expires_at / 1000)
        with self._lock:
            if generation == self._generation:  # no revocation came in while the row was read
                if len(self._cache) >= CACHE_SIZE:
                    self._cache.clear()
                self._cache[session_id] = (now, session)
        return session if session is not None and session.expires_at > wall else None

    def forget(self, user: str | None, ids: Iterable[str] | None = None) -> None:
        """Drop what this process remembers of the user's sessions (all, or those in ids; everyone's for None)."""
        key = user.lower() if user is not None else None
        with self._lock:
            self._generation += 1
            if key is None:
                self._cache.clear()
                return
            for session_id in list(ids) if ids is not None else list(self._cache):
                cached = self._cache.get(session_id)
                if cached is not None and (cached[1] is None or cached[1].user.lower() == key):
                    del self._cache[session_id]

    def revoke(self, user: str, code: str, ids: list[str] | None = None,
               keep: str | None = None) -> tuple[list[str], int]:
        """Refuse the user's sessions from now on (those in ids, or all but keep); end their connections.

        (the ids revoked, the number of connections ended here).
        """
        revoked = self.store.revoke_sessions(user, ids, keep, code=code)
        self.forget(user, ids)
        return revoked, self.end(user, code, ids, keep, revoked=True)

    def end(self, user: str, code: str, ids: list[str] | None = None, keep: str | None = None,
            revoked: bool = False) -> int:
        """End the user's connections (those of the sessions in ids, never keep's) on every process; how many.

        The other processes answer with their counts within REPLY_SECONDS (else theirs are not counted).
        """
        ended = self.live.end(user, code, ids, keep) if self.live else 0
        if self.fanout:
            ended += self.fanout.publish({"user": user, "code": code, "ids": ids, "keep": keep, "revoked": revoked})
        return ended

    def heard(self, message: dict[str, Any]) -> int:
        """Act on another process's revocation or ending; the number of connections ended here."""
        user, ids = message.get("user"), message.get("ids")
        if isinstance(message.get("extended"), str):  # a refresh elsewhere: move this process's connections too
            extended = self.check(message["extended"], fresh=True)
            if extended is not None and self.live is not None:
                self.live.extend(extended)
            return 0
        if not isinstance(user, str) or message.get("code") not in ENDINGS:
            return 0
        if message.get("revoked"):
            self.forget(user, ids)
        return self.live.end(user, message["code"], ids, message.get("keep")) if self.live else 0

    def catch_up(self) -> int:
        """Once subscribed (again): forget every session read before, and end the connections here whose
        sessions were revoked meanwhile, with the code each was revoked for; how many.

        A revocation is published once: a process that was not subscribed then (starting, or between
        two subscriptions) reads it here from the database.
        """
        self.forget(None)
        if self.live is None:
            return 0
        revoked = self.store.revoked_among(self.live.session_ids())
        return self.live.end_sessions({session_id: code if code in ENDINGS else "revoked"
                                       for session_id, code in revoked.items()})

    def sweep_store(self) -> None:
        """Delete the sessions that expired long ago."""
        self.store.forget_sessions(int((self.clock() - FORGET_AFTER_SECONDS) * 1000))


class Lifetimes:
    """The connections of this process bound to their sessions: warned before expiry, ended at the end.

    A connection of any kind binds itself with `bind(key, session, binding)`: key names it uniquely in
    this process (a Socket.IO sid of "/" as it is; `namespaced(namespace, sid)` for another namespace;
    an SSE stream picks its own, say "sse:" + a uuid), binding is how it is warned and ended (a
    chat.ports.Binding; SocketBinding for Socket.IO). It must `unbind(key)` when it goes away by itself.
    From then on every way its session ends reaches it, on every process: logout, revocation, a password
    change, an admin's disconnect (`Sessions.end` and its fan-out), and expiry (this sweeper).

    Shape: bound {key: Session}; bindings {key: Binding}; due, a heap of (time, key, session id, expiry,
    final): a warning (final False) or the end (final True) of a binding, skipped when the binding's
    session or expiry changed since.
    """

    def __init__(self, server: Any, ttl: int, spawn: Callable[..., Any], sleep: Callable[[float], Any],
                 sessions: Sessions | None = None, clock: Callable[[], float] = time.time):
        self.server = server
        self.warn = min(WARN_SECONDS, ttl / 10)
        self.spawn = spawn
        self.sleep = sleep
        self.sessions = sessions
        self.clock = clock
        self.bound: dict[str, Session] = {}
        self.bindings: dict[str, Binding] = {}
        self.due: list[tuple[float, str, str, float, bool]] = []
        self._lock = threading.Lock()
        self._running = False
        self._swept = 0.0  # time.monotonic() when long-expired sessions were last deleted

    def bind(self, key: str, session: Session, binding: Binding | None = None) -> None:
        """Let the connection live as long as the session: until its expiry, its end, or another bind.

        binding defaults to the Socket.IO connection of sid key in the "/" namespace.
        """
        binding = binding or SocketBinding(self.server, key)
        with self._lock:
            self.bound[key] = session
            self.bindings[key] = binding
            self._schedule(key, session)
            start, self._running = not self._running, True
        if start:
            self.spawn(self.run)

    def _schedule(self, key: str, session: Session) -> None:
        heapq.heappush(self.due, (session.expires_at - self.warn, key, session.id, session.expires_at, False))
        heapq.heappush(self.due, (session.expires_at, key, session.id, session.expires_at, True))

    def extend(self, session: Session) -> None:
        """Move every connection bound to this session (same id) to its new expiry."""
        with self._lock:
            for key, bound in self.bound.items():
                if bound.id == session.id and bound.expires_at != session.expires_at:
                    self.bound[key] = session
                    self._schedule(key, session)

    def unbind(self, key: str) -> None:
        with self._lock:
            self.bound.pop(key, None)
            self.bindings.pop(key, None)
            if len(self.due) > 4 * len(self.bound) + 1000:  # many connections came and went within a TTL
                self.due = [entry for entry in self.due if entry[1] in self.bound]
                heapq.heapify(self.due)

    def session_of(self, key: str) -> Session | None:
        return self.bound.get(key)

    def end(self, user: str, code: str, ids: list[str] | None = None, keep: str | None = None) -> int:
        """End this process's connections of the user (of the sessions in ids, never keep's); how many."""
        key = user.lower()
        wanted = set(ids) if ids is not None else None
        with self._lock:
            keys = [bound for bound, session in self.bound.items() if session.user.lower() == key
                    and session.id != keep and (wanted is None or session.id in wanted)]
        for bound in keys:
            self.close(bound, code)
        return len(keys)

    def session_ids(self) -> list[str]:
        """The ids of the sessions this process's connections are bound to."""
        with self._lock:
            return list({session.id for session in self.bound.values()})

    def end_sessions(self, codes: dict[str, str]) -> int:
        """End this process's connections of the sessions in codes, each with its session's code; how many."""
        with self._lock:
            keys = [(key, codes[session.id]) for key, session in self.bound.items() if session.id in codes]
        for key, code in keys:
            self.close(key, code)
        return len(keys)

    def close(self, key: str, code: str) -> None:
        """Tell the connection why (`session_ended` on a socket), then close it."""
        with self._lock:
            session = self.bound.pop(key, None)
            binding = self.bindings.pop(key, None)
        if session is None or binding is None:
            return
        audit.record("session_ended", session.user, session=session.id, reason=code)
        try:
            binding.end(code, ENDINGS[code])
        except Exception:  # a connection that went away meanwhile
            log.debug("ending %s failed", key, exc_info=True)

    def tick(self) -> None:
        """Send the warnings and end the connections that are due."""
        now = self.clock()
        warn: list[tuple[Binding, Session]] = []
        end: list[str] = []
        with self._lock:
            while self.due and self.due[0][0] <= now:
                _, key, session_id, expires_at, final = heapq.heappop(self.due)
                session = self.bound.get(key)
                if session is not None and session.id == session_id and session.expires_at == expires_at:
                    if final:
                        end.append(key)
                    else:
                        warn.append((self.bindings[key], session))
        for binding, session in warn:
            try:
                binding.warn(session.expires_in(now))
            except Exception:
                log.debug("warning a connection failed", exc_info=True)
        for key in end:
            self.close(key, "token_expired")

    def run(self) -> None:
        """Tick while any connection is bound (the server's background task, started by the first bind)."""
        while True:
            self.sleep(TICK_SECONDS)
            try:
                self.tick()
                self._sweep_store()
            except Exception:
                log.exception("the session sweeper failed a tick")
            with self._lock:
                if not self.bound:
                    self.due.clear()
                    self._running = False
                    return

    def _sweep_store(self) -> None:
        if self.sessions is not None and time.monotonic() - self._swept > 3600:
            self._swept = time.monotonic()
            self.sessions.sweep_store()


def namespaced(namespace: str, sid: str) -> str:
    """The Lifetimes key of a Socket.IO connection: its sid in "/", namespace and sid elsewhere."""
    return sid if namespace == "/" else f"{namespace} {sid}"


class SocketBinding:
    """A Socket.IO connection as Lifetimes binds it: `auth_expiring`, then `session_ended` and a disconnect.

    Only the process holding the connection acts (ignore_queue): each process ends its own.
    """

    def __init__(self, server: Any, sid: str, namespace: str = "/"):
        self.server = server
        self.sid = sid
        self.namespace = namespace

    def warn(self, expires_in: int) -> None:
        self.server.emit("auth_expiring", {"expires_in": expires_in}, to=self.sid, namespace=self.namespace,
                         ignore_queue=True)

    def end(self, code: str, message: str) -> None:
        self.server.emit("session_ended", {"code": code, "message": message}, to=self.sid,
                         namespace=self.namespace, ignore_queue=True)
        self.server.disconnect(self.sid, namespace=self.namespace, ignore_queue=True)


class Fanout:
    """Carries revocations and endings between processes on a Redis channel."""

    def __init__(self, url: str, sessions: Sessions):
        import redis

        self.redis = redis
        self.url = url
        self.sessions = sessions
        self.origin = uuid.uuid4().hex
        self._answered = 0.0  # time.monotonic() of the subscription's last sign of life
        db = (urlparse(url).path or "/0").strip("/") or "0"
        self.channel = CHANNEL if db == "0" else f"{CHANNEL}:{db}"
        self.client = redis.Redis.from_url(url, decode_responses=True, socket_connect_timeout=1.0,
                                           socket_timeout=REPLY_SECONDS + 2)

    def publish(self, message: dict[str, Any]) -> int:
        """Tell the other processes; the number of connections they say they ended."""
        reply = f"{self.channel}:reply:{uuid.uuid4().hex}"
        ended = 0
        try:
            listeners = self.client.publish(self.channel, json.dumps({**message, "origin": self.origin,
                                                                      "reply": reply}))
            for _ in range(listeners - 1):  # this process hears itself and does not answer
                answer = self.client.blpop([reply], timeout=REPLY_SECONDS)
                if answer is None:
                    break
                ended += int(answer[1])
            self.client.delete(reply)
        except (self.redis.RedisError, ValueError) as error:
            log.warning("could not tell the other processes of a session's end: %s", error)
        return ended

    def listening(self) -> bool:
        """Whether the subscription answered within TRUST_SECONDS: then every revocation published reaches here."""
        return time.monotonic() - self._answered < TRUST_SECONDS

    def listen(self, sleep: Callable[[float], Any]) -> None:
        """Hear the other processes' endings forever, resubscribing a second after Redis goes away.

        The subscription is pinged every PING_SECONDS; its answers (and every message) keep it trusted.
        Each new subscription starts by catching up (Sessions.catch_up): a revocation published while
        this process was not listening is read from the database, for new checks and bound connections.
        """
        while True:
            try:
                listener = self.redis.Redis.from_url(self.url, decode_responses=True, socket_connect_timeout=1.0,
                                                     socket_keepalive=True, socket_timeout=PING_SECONDS * 10)
                pubsub = listener.pubsub()
                pubsub.subscribe(self.channel)
                pinged = 0.0
                while True:
                    if time.monotonic() - pinged >= PING_SECONDS:
                        pubsub.ping()
                        pinged = time.monotonic()
                    item = pubsub.get_message(timeout=PING_SECONDS)
                    if item is None:
                        continue
                    if item.get("type") == "subscribe":
                        self._caught_up()
                    self._answered = time.monotonic()  # any answer (a pong comes in shapes that vary by version)
                    if item.get("type") == "message":
                        self._hear(item.get("data"))
            except self.redis.RedisError as error:
                self._answered = 0.0
                self.sessions.forget(None)
                log.warning("session channel lost (%s); resubscribing", error)
            sleep(1.0)

    def _caught_up(self) -> None:
        try:
            ended = self.sessions.catch_up()
        except Exception:  # the database: what was not read now is read by the next check of each session
            log.exception("could not read which sessions were revoked while unsubscribed")
            return
        if ended:
            log.info("ended %d connections of sessions revoked while this process was not subscribed", ended)

    def _hear(self, data: Any) -> None:
        try:
            message = json.loads(data)
        except (TypeError, ValueError):
            return
        if not isinstance(message, dict) or message.get("origin") == self.origin:
            return
        ended = self.sessions.heard(message)
        reply = message.get("reply")
        if isinstance(reply, str) and reply.startswith(f"{self.channel}:reply:"):
            try:
                self.client.rpush(reply, ended)
                self.client.expire(reply, 10)
            except self.redis.RedisError as error:
                log.warning("could not answer a session's end: %s", error)
