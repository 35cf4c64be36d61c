"""RedisPresence against a real Redis: several processes' presence, leases, and a Redis that forgets."""
import time
import uuid

import pytest
import redis

from chat.scaleout import connect
from chat.presence import RedisPresence
from tests.cluster.proxy import TcpProxy
from tests.needs import listening, need

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
def prefix():
    need(listening(6379), "Redis is not listening on 127.0.0.1:6379")
    prefix = f"papotest-{uuid.uuid4().hex[:8]}"
    yield prefix
    client = connect(REDIS_URL)
    keys = list(client.scan_iter(f"{prefix}:*", count=1000))
    if keys:
        client.delete(*keys)


@pytest.fixture
def process(prefix):
    """A RedisPresence as one process of the cluster would have it; heartbeat() once, as at start."""

    def make(lease=5.0, url=REDIS_URL):
        presence = RedisPresence(connect(url), prefix=prefix, lease=lease)
        assert presence.heartbeat() == []
        return presence

    return make


def test_a_user_on_two_processes_joins_once_and_leaves_once(process):
    one, two = process(), process()
    one.connect("a1", "ana")
    two.connect("a2", "ana")
    two.connect("b2", "bo")
    assert one.join("a1", "lobby") is True
    assert two.join("a2", "lobby") is False
    assert one.join("a1", "lobby") is False  # joining again is harmless
    assert two.join("b2", "lobby") is True
    assert one.members("lobby") == two.members("lobby") == ["ana", "bo"]
    assert one.sids_of("ana", "lobby") == ["a1", "a2"]
    assert two.room_sizes() == {"lobby": 2}
    assert one.leave("a1", "lobby") is False
    assert two.disconnect("a2") == ["lobby"]
    assert one.members("lobby") == ["bo"]
    assert two.disconnect("b2") == ["lobby"]
    assert one.room_sizes() == {}


def test_the_local_view_stays_with_the_process(process):
    one, two = process(), process()
    one.connect("a1", "ana")
    two.connect("b2", "bo")
    one.join("a1", "lobby")
    two.join("b2", "lobby")
    assert one.is_member("a1", "lobby") and not one.is_member("b2", "lobby")
    assert one.user_of("b2") is None and one.connection_count() == 1
    assert one.rooms_of("a1") == ["lobby"]


def test_a_silent_process_is_reclaimed_once_and_only_its_users_leave(process):
    alive, dead, other = process(lease=0.3), process(lease=0.3), process(lease=0.3)
    alive.connect("a1", "ana")
    dead.connect("a2", "ana")
    dead.connect("c2", "cy")
    alive.join("a1", "lobby")
    dead.join("a2", "lobby")
    dead.join("c2", "lobby")
    dead.join("c2", "attic")
    time.sleep(0.4)  # `dead` stops beating; the others have not beaten either, so beat twice
    first = alive.heartbeat() + other.heartbeat()
    time.sleep(0.4)
    changes = sorted(first + alive.heartbeat() + other.heartbeat())
    assert changes == [("attic", "cy", "leave"), ("lobby", "cy", "leave")]
    assert alive.members("lobby") == ["ana"]
    assert alive.sids_of("ana", "lobby") == ["a1"]
    assert alive.room_sizes() == {"lobby": 1}


def test_a_process_reclaimed_while_alive_writes_itself_back(process):
    slow, peer = process(lease=0.3), process(lease=0.3)
    slow.connect("s1", "sam")
    slow.join("s1", "lobby")
    time.sleep(0.4)
    assert peer.heartbeat() == [("lobby", "sam", "leave")]
    assert slow.heartbeat() == [("lobby", "sam", "join")]
    assert peer.members("lobby") == ["sam"]


def test_a_redis_that_forgot_everything_is_refilled_with_net_changes_only(process, prefix):
    one, two = process(), process()
    one.connect("a1", "ana")
    two.connect("a2", "ana")
    one.join("a1", "lobby")
    two.join("a2", "lobby")
    client = connect(REDIS_URL)
    client.delete(*client.scan_iter(f"{prefix}:*"))  # as after a restart of a Redis that keeps nothing
    assert one.members("lobby") == []
    assert one.heartbeat() == [("lobby", "ana", "join")]
    assert two.heartbeat() == []  # ana was back already: announced once
    assert two.sids_of("ana", "lobby") == ["a1", "a2"]


def test_writes_while_redis_is_unreachable_are_reconciled_by_the_next_heartbeat(process):
    proxy = TcpProxy(("127.0.0.1", 6379))
    try:
        cut_off = process(url=f"redis://127.0.0.1:{proxy.port}/0")
        watcher = process()
        cut_off.connect("a1", "ana")
        cut_off.join("a1", "lobby")
        cut_off.connect("b1", "bo")
        proxy.cut(hold=False)
        with pytest.raises(redis.RedisError):
            cut_off.ping()
        assert cut_off.leave("a1", "lobby") is False  # cannot tell yet; not an error for the caller
        cut_off.disconnect("b1")
        with pytest.raises(redis.RedisError):
            cut_off.heartbeat()
        assert watcher.members("lobby") == ["ana"]
        proxy.mend()
        assert cut_off.heartbeat() == [("lobby", "ana", "leave")]
        assert watcher.members("lobby") == []
    finally:
        proxy.close()
