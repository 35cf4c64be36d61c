"""Token buckets: how often one key (a user, an address) may act."""
import threading
import time


class RateLimiter:
    """A token bucket per key: `burst` at once, refilled at `rate` per second."""

    def __init__(self, burst, rate, clock=time.monotonic):
        self.burst = burst
        self.rate = rate
        self.clock = clock
        self._buckets = {}  # {key: (tokens, last refill time)}
        self._lock = threading.Lock()

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

    def _forget_full(self, now):
        """Drop buckets that have refilled completely: they hold nothing a new bucket would not."""
        full_after = self.burst / self.rate
        self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < full_after}
