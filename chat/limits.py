"""Token buckets: how often one key (a user, a connection, an address) may act; the abuse guard."""
import contextlib
import math
import time

from .errors import ChatError
from .async_modes import short_lock


class RateLimiter:
    """A token bucket per key: `burst` at once, refilled at `rate` per second."""

    def __init__(self, burst, rate, clock=time.monotonic):
        self.burst = burst
        self.rate = rate
        self.clock = clock
        self._buckets = {}  # {key: (tokens, last refill time)}
        self._lock = short_lock()

    def take(self, key):
        """Spend one token; 0 when allowed, else the seconds until one is available."""
        with self._lock:
            now = self.clock()
            tokens, last = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens >= 1:
                self._buckets[key] = (tokens - 1, now)
                if len(self._buckets) > 100_000:
                    self._forget_full(now)
                return 0
            self._buckets[key] = (tokens, now)
            return (1 - tokens) / self.rate

    def give(self, key):
        """Return one token to a key's bucket (never above the burst)."""
        with self._lock:
            if key in self._buckets:
                tokens, last = self._buckets[key]
                self._buckets[key] = (min(self.burst, tokens + 1), last)

    def forget(self, key):
        """Drop a key's bucket, for a key that will not come back (a closed connection)."""
        with self._lock:
            self._buckets.pop(key, None)

    def _forget_full(self, now):
        """Drop buckets that have refilled completely: they hold nothing a new bucket would not."""
        full_after = self.burst / self.rate
        self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < full_after}


class Guard:
    """One process's defences against abuse: request rates, connection caps, password guessing.

    Every event and every HTTP request spends a token per connection (an anonymous HTTP caller's
    address counts as its connection) and per user: EVENT_BURST at once and EVENT_PER_SECOND for
    a connection, twice that for a user across all its connections and HTTP calls.
    Shapes: _connections = {user key: {sid}}, _sockets = {sid: user key}, _polls = {user key: waiting polls}.
    """

    def __init__(self, settings, clock=time.monotonic):
        self.connections = RateLimiter(settings.EVENT_BURST, settings.EVENT_PER_SECOND, clock)
        self.users = RateLimiter(2 * settings.EVENT_BURST, 2 * settings.EVENT_PER_SECOND, clock)
        self.logins = LoginThrottle(settings.LOGIN_BURST, settings.LOGIN_PER_SECOND, clock=clock)
        self.max_connections = settings.MAX_CONNECTIONS_PER_USER
        self.max_polls = settings.MAX_CONNECTIONS_PER_USER
        self._connections = {}
        self._sockets = {}
        self._polls = {}
        self._lock = short_lock()

    def spend(self, connection=None, user=None):
        """Spend a request token of the connection and of the user; rate_limited with retry_after when out."""
        wait = self.connections.take(connection) if connection is not None else 0
        if not wait and user is not None:
            wait = self.users.take(user.lower())
            if wait and connection is not None:
                self.connections.give(connection)
        if wait:
            raise ChatError("rate_limited", "too many requests; slow down", retry_after=max(1, math.ceil(wait)))

    def admit(self, sid, user):
        """Count a new connection of the user; rate_limited when the user has too many open."""
        key = user.lower()
        with self._lock:
            sids = self._connections.setdefault(key, set())
            if len(sids) >= self.max_connections:
                if not sids:
                    del self._connections[key]
                raise ChatError("rate_limited", f"too many connections for {user}: at most {self.max_connections}"
                                                " at once; close another tab first", retry_after=5)
            sids.add(sid)
            self._sockets[sid] = key

    def release(self, sid):
        """Forget a closed connection and its request bucket."""
        with self._lock:
            key = self._sockets.pop(sid, None)
            sids = self._connections.get(key)
            if sids is not None:
                sids.discard(sid)
                if not sids:
                    del self._connections[key]
        self.connections.forget(sid)

    @contextlib.contextmanager
    def polling(self, user):
        """Hold one of the user's long-poll places while the block runs; rate_limited when none is free."""
        key = user.lower()
        with self._lock:
            if self._polls.get(key, 0) >= self.max_polls:
                raise ChatError("rate_limited", f"at most {self.max_polls} long polls at once per user",
                                retry_after=1)
            self._polls[key] = self._polls.get(key, 0) + 1
        try:
            yield
        finally:
            with self._lock:
                self._polls[key] -= 1
                if not self._polls[key]:
                    del self._polls[key]


class LoginThrottle:
    """Password checks per (address, username), per address, and per username from unfamiliar addresses.

    Every attempt spends a token from its (address, username) bucket (`burst` at once, then `rate`
    per second) and one from the address's (`address_factor` times larger, for people behind one
    address). A username's own bucket (`user_factor` times larger, against guessing spread over many
    addresses) is spent only by addresses that have not logged in as that user within
    `trust_seconds`: failures from elsewhere can never lock the owner out where they usually log in.
    A success gives back what it spent, so only failures add up.
    """

    def __init__(self, burst, rate, address_factor=5, user_factor=10, trust_seconds=30 * 86400,
                 clock=time.monotonic):
        self.pairs = RateLimiter(burst, rate, clock)
        self.addresses = RateLimiter(burst * address_factor, rate * address_factor, clock)
        self.users = RateLimiter(burst * user_factor, rate * user_factor, clock)
        self.trust_seconds = trust_seconds
        self.clock = clock
        self._trusted = {}  # {(username key, address): time of the last successful login from there}
        self._lock = short_lock()

    def attempt(self, username, address):
        """Spend an attempt; rate_limited with retry_after (seconds) when a bucket it needs is empty."""
        key = username.lower()
        spent: list[tuple[RateLimiter, object]] = []
        steps = [(self.pairs, (address, key), "for this user from this address")]
        if address:
            steps.append((self.addresses, address, "from this address"))
        if not self.trusted(key, address):
            steps.append((self.users, key, "for this user from addresses it has not logged in from"))
        for bucket, bucket_key, which in steps:
            wait = bucket.take(bucket_key)
            if wait:
                for done, done_key in spent:
                    done.give(done_key)
                retry = max(1, math.ceil(wait))
                raise ChatError("rate_limited", f"too many failed logins {which}; try again in {wait_words(retry)}",
                                retry_after=retry)
            spent.append((bucket, bucket_key))

    def trusted(self, key, address):
        """Tell whether the user logged in from this address lately."""
        at = self._trusted.get((key, address))
        return at is not None and self.clock() - at < self.trust_seconds

    def succeeded(self, username, address):
        """Give back the attempt a successful login spent, and trust the address for this user."""
        key = username.lower()
        trusted = self.trusted(key, address)
        self.pairs.give((address, key))
        if address:
            self.addresses.give(address)
        if not trusted:
            self.users.give(key)
        with self._lock:
            if len(self._trusted) > 100_000:
                now = self.clock()
                self._trusted = {k: at for k, at in self._trusted.items() if now - at < self.trust_seconds}
            self._trusted[(key, address)] = self.clock()


def wait_words(seconds):
    """Say a wait in words, rounded up: "10 seconds", "1 minute", "4 minutes"."""
    if seconds < 60:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    minutes = math.ceil(seconds / 60)
    return f"{minutes} minute{'s' if minutes != 1 else ''}"
