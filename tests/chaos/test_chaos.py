"""The chaos test: 50 clients in 5 rooms chat while connections drop and the server is SIGKILLed and restarted.

CHAOS_SECONDS (default 60) sets how long the chaos lasts; CHAOS_KILL_EVERY (default 15) the mean
seconds between kills (0: never, for a soak). The same chaos runs against two processes sharing
Redis and PostgreSQL, for half as long and with kills twice as often (each kill takes one of them,
chosen at random). The 30-minute soak of docs/security.md:
    CHAOS_SECONDS=1800 CHAOS_KILL_EVERY=0 .venv/bin/python -m pytest tests/chaos -s
asserts in addition that the server's memory stays flat.
"""
import os

import pytest

from tests.services import RedisServer, fresh_database, need_redis

from .harness import memory_is_flat, run

SECONDS = float(os.environ.get("CHAOS_SECONDS", "60"))
KILL_EVERY = float(os.environ.get("CHAOS_KILL_EVERY", "15"))

pytestmark = [pytest.mark.chaos, pytest.mark.slow, pytest.mark.timeout(SECONDS + 240)]


def test_nothing_acked_is_lost_or_duplicated_through_drops_and_kills(tmp_path):
    report = run(f"sqlite:///{tmp_path}/papo.db", seconds=SECONDS, kill_every=KILL_EVERY)
    print(report.line())
    flat, growth = memory_is_flat(report.rss_mb)
    print(f"server RSS (MB), sampled: {report.rss_mb}; growth after warm-up: {growth} MB")
    assert_kept_everything(report)
    if KILL_EVERY:
        assert report.kills >= SECONDS // KILL_EVERY // 2
    else:
        assert flat, f"the server's memory grew by {growth} MB after warm-up: {report.rss_mb}"


def test_nothing_acked_is_lost_or_duplicated_across_two_processes_through_drops_and_kills():
    need_redis()
    with fresh_database("papo_chaos") as url:
        redis = RedisServer().start()
        try:
            report = run(url, seconds=SECONDS / 2, kill_every=KILL_EVERY / 2, processes=2,
                         env={"REDIS_URL": redis.url})
        finally:
            redis.stop()
    print(report.line())
    assert_kept_everything(report)
    if KILL_EVERY:
        assert report.kills >= SECONDS // KILL_EVERY // 2


def assert_kept_everything(report):
    assert report.lost == 0 and report.duplicated == 0
    assert report.gaps == 0, "a room's seq has a gap or last_seq disagrees with its messages"
    assert report.view_mismatches == 0, "a client's view of a room differs from the database"
    assert report.acked == report.generated == report.stored
    assert report.drops > 0 and report.reconnects > 0
