from chat.limits import RateLimiter


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_a_burst_then_the_sustained_rate():
    clock = Clock()
    limiter = RateLimiter(burst=100, rate=10, clock=clock)
    assert all(limiter.take("ana") == 0 for _ in range(100))
    wait = limiter.take("ana")
    assert 0 < wait <= 0.1
    clock.now += 1.0
    assert sum(limiter.take("ana") == 0 for _ in range(20)) == 10


def test_keys_have_their_own_buckets():
    limiter = RateLimiter(burst=1, rate=1, clock=Clock())
    assert limiter.take("ana") == 0
    assert limiter.take("bo") == 0
    assert limiter.take("ana") > 0
