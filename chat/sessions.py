"""Sessions: identities with an id and an expiry, revocable, and the live connections bound to them.

A token or a cookie session names a stored session; the database is the source of truth and each
process keeps what it read for at most CACHE_SECONDS, so that a revocation anywhere is refused
everywhere within a second, at one read per session per second at most. Ending live connections
is pushed: the process that revokes ends its own connections at once and, when scaled, tells the
others on a Redis channel. One sweeper task per process warns and ends connections at expiry.
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

log = logging.getLogger(__name__)

CACHE_SECONDS = 1.0
CACHE_SIZE = 20000
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
        self._cache: dict[str, tuple[float, Session | None]] = {}  # {session id: (monotonic until, session)}
        self._lock = threading.Lock()

    def open(self, user: str, kind: str) -> Session:
        """Store a new session of kind "token" or "cookie" for the user, living TOKEN_TTL seconds."""
        now = self.clock()
        session = Session(secrets.token_urlsafe(18), user, now + self.ttl)
        self.store.add_session(session.id, user, kind, int(now * 1000), int(session.expires_at * 1000))
        return session

    def check(self, session_id: Any) -> Session | None:
        """Return the session when it is live: stored, not revoked, not expired; None otherwise."""
        if not isinstance(session_id, str) or not 0 < len(session_id) <= 64:
            return None
        now = time.monotonic()
        cached = self._cache.get(session_id)
        if cached is not None and cached[0] > now:
            session = cached[1]
        else:
            row = self.store.find_session(session_id)
            session = None if row is None or row.revoked_at is not None else Session(
                session_id, row.username, row.expires_at / 1000)
            with self._lock:
                if len(self._cache) >= CACHE_SIZE:
                    self._cache.clear()
                self._cache[session_id] = (now + CACHE_SECONDS, session)
        return session if session is not None and session.expires_at > self.clock() else None

    def forget(self, user: str, ids: Iterable[str] | None = None) -> None:
        """Drop what this process remembers of the user's sessions (all, or those in ids)."""
        key = user.lower()
        with self._lock:
            for session_id in list(ids) if ids is not None else list(self._cache):
                cached = self._cache.get(session_id)
                if cached is not None and (cached[1] is None or cached[1].user.lower() == key):
                    del self._cache[session_id]

    def revoke(self, user: str, code: str, ids: list[str] | None = None,
               keep: str | None = None) -> tuple[list[str], int]:
        """Refuse the user's sessions from now on (those in ids, or all but keep); end their connections.

        (the ids revoked, the number of connections ended here).
        """
        revoked = self.store.revoke_sessions(user, ids, keep)
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
        if not isinstance(user, str) or message.get("code") not in ENDINGS:
            return 0
        if message.get("revoked"):
            self.forget(user, ids)
        return self.live.end(user, message["code"], ids, message.get("keep")) if self.live else 0

    def sweep_store(self) -> None:
        """Delete the sessions that expired long ago."""
        self.store.forget_sessions(int((self.clock() - FORGET_AFTER_SECONDS) * 1000))


class Lifetimes:
    """The connections of this process bound to their sessions: warned before expiry, ended at the end.

    Shape: bound {sid: Session}; due, a heap of (time, sid, session id, final): a warning
    (final False) or the end (final True) of a binding, skipped when the binding changed since.
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
        self.due: list[tuple[float, str, str, bool]] = []
        self._lock = threading.Lock()
        self._running = False
        self._swept = 0.0  # time.monotonic() when long-expired sessions were last deleted

    def bind(self, sid: str, session: Session) -> None:
        """Let the connection live as long as the session: until its expiry, or a refresh binds another."""
        with self._lock:
            self.bound[sid] = session
            heapq.heappush(self.due, (session.expires_at - self.warn, sid, session.id, False))
            heapq.heappush(self.due, (session.expires_at, sid, session.id, True))
            start, self._running = not self._running, True
        if start:
            self.spawn(self.run)

    def unbind(self, sid: str) -> None:
        with self._lock:
            self.bound.pop(sid, None)
            if len(self.due) > 4 * len(self.bound) + 1000:  # many connections came and went within a TTL
                self.due = [entry for entry in self.due if entry[1] in self.bound]
                heapq.heapify(self.due)

    def session_of(self, sid: str) -> Session | None:
        return self.bound.get(sid)

    def end(self, user: str, code: str, ids: list[str] | None = None, keep: str | None = None) -> int:
        """End this process's connections of the user (of the sessions in ids, never keep's); how many."""
        key = user.lower()
        wanted = set(ids) if ids is not None else None
        with self._lock:
            sids = [sid for sid, session in self.bound.items() if session.user.lower() == key
                    and session.id != keep and (wanted is None or session.id in wanted)]
        for sid in sids:
            self.close(sid, code)
        return len(sids)

    def close(self, sid: str, code: str) -> None:
        """Tell the connection why with `session_ended`, then disconnect it."""
        with self._lock:
            session = self.bound.pop(sid, None)
        if session is None:
            return
        audit.record("session_ended", session.user, session=session.id, reason=code)
        try:
            self.server.emit("session_ended", {"code": code, "message": ENDINGS[code]}, to=sid, namespace="/",
                             ignore_queue=True)
            self.server.disconnect(sid, namespace="/", ignore_queue=True)
        except Exception:  # a connection that went away meanwhile
            log.debug("ending %s failed", sid, exc_info=True)

    def tick(self) -> None:
        """Send the warnings and end the connections that are due."""
        now = self.clock()
        warn: list[tuple[str, Session]] = []
        end: list[tuple[str, Session]] = []
        with self._lock:
            while self.due and self.due[0][0] <= now:
                _, sid, session_id, final = heapq.heappop(self.due)
                session = self.bound.get(sid)
                if session is not None and session.id == session_id:
                    (end if final else warn).append((sid, session))
        for sid, session in warn:
            try:
                self.server.emit("auth_expiring", {"expires_in": session.expires_in(now)}, to=sid, namespace="/",
                                 ignore_queue=True)
            except Exception:
                log.debug("warning %s failed", sid, exc_info=True)
        for sid, _ in end:
            self.close(sid, "token_expired")

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


class Fanout:
    """Carries revocations and endings between processes on a Redis channel."""

    def __init__(self, url: str, sessions: Sessions):
        import redis

        self.redis = redis
        self.url = url
        self.sessions = sessions
        self.origin = uuid.uuid4().hex
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

    def listen(self, sleep: Callable[[float], Any]) -> None:
        """Hear the other processes' endings forever, resubscribing a second after Redis goes away."""
        while True:
            try:
                listener = self.redis.Redis.from_url(self.url, decode_responses=True, socket_connect_timeout=1.0,
                                                     socket_keepalive=True)
                pubsub = listener.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(self.channel)
                for item in pubsub.listen():
                    self._hear(item.get("data"))
            except self.redis.RedisError as error:
                log.warning("session channel lost (%s); resubscribing", error)
            sleep(1.0)

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
