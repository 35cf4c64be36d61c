"""The Redis message queue against a Redis server of its own: batched publishing, the listener, the backlog."""
import json
import os
import subprocess
import sys
import threading
import time
import uuid

import pytest
import redis
import socketio

from chat import scaleout
from tests.services import RedisServer, need_redis
from tests.servers import ROOT


@pytest.fixture(scope="module")
def redis_server():
    need_redis()
    server = RedisServer().start()
    yield server
    server.stop()


class Recorded(scaleout.MessageQueue):
    """A queue that records every emit it hands to its own clients, and every remote emit it is told of."""

    def __init__(self, url):
        super().__init__(url)
        self.handled = []  # [message dict] in the order handled, this process's own emits included
        self.remote: list[tuple[str, object]] = []  # [(event, room)] for each emit from another process
        self.subscribed = threading.Event()
        self.on_remote_emit = lambda event, room: self.remote.append((event, room))
        self.on_subscribed = self.subscribed.set

    def _handle_emit(self, message):
        self.handled.append(message)
        super()._handle_emit(message)


@pytest.fixture
def processes(redis_server):
    """make(start=True, channel): a queue as one process has it, on a server of its own; closed at the end.

    The queues of one test share a channel of their own unless told otherwise, so no test hears another.
    """
    made = []
    name = f"papo-test-{uuid.uuid4().hex[:8]}"

    def make(start=True, channel=name):
        queue = Recorded(redis_server.url)
        queue.channel = channel
        server = socketio.Server(client_manager=queue, async_mode="threading")
        made.append(queue)
        if start:
            scaleout.listen_now(server)
            assert queue.subscribed.wait(5), "the listener did not subscribe"
        return queue

    yield make
    for queue in made:
        queue.close()


def wait_for(condition, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def texts(queue, host_id=None):
    return [m["data"][0] for m in queue.handled if host_id is None or m["host_id"] == host_id]


def test_emits_made_together_go_out_in_one_publish_in_order(redis_server, processes):
    spy = redis.Redis.from_url(redis_server.url).pubsub(ignore_subscribe_messages=True)
    receiver = processes()
    spy.subscribe(receiver.channel)
    sender = processes(start=False)
    for i in range(scaleout.BATCH_SIZE + 3):
        sender.emit("message", f"m{i}", room="room:lobby")
    assert texts(sender) == [f"m{i}" for i in range(scaleout.BATCH_SIZE + 3)]  # its own clients at once
    scaleout.listen_now(sender.server)

    expected = [f"m{i}" for i in range(scaleout.BATCH_SIZE + 3)]
    assert wait_for(lambda: texts(receiver) == expected), texts(receiver)[:5]
    published = []
    deadline = time.monotonic() + 1.0  # every publish has been received by now: gather them
    while time.monotonic() < deadline:
        item = spy.get_message(timeout=0.1)
        if item is not None:
            published.append(item["data"])
    assert len(published) == 2  # BATCH_SIZE, then the 3 left
    first = json.loads(published[0])
    assert first["host_id"] == sender.host_id and first["method"] == "batch"
    assert [m["data"] for m in first["messages"]] == [[text] for text in expected[:scaleout.BATCH_SIZE]]
    assert published[0].startswith(f'{{"host_id": "{sender.host_id}"'.encode())
    spy.close()


def test_every_process_handles_another_process_emit_exactly_once_and_is_told_of_it(processes):
    one, two, three = processes(), processes(), processes()
    for i in range(20):
        (one if i % 2 else two).emit("message", f"m{i}", room="room:lobby")
    three.emit("presence", "ana came", room="room:lobby")

    assert wait_for(lambda: all(len(queue.handled) == 21 for queue in (one, two, three)))
    time.sleep(0.2)  # a repeat would have come by now
    for queue in (one, two, three):
        assert sorted(texts(queue)) == sorted([f"m{i}" for i in range(20)] + ["ana came"])
        assert texts(queue, one.host_id) == [f"m{i}" for i in range(1, 20, 2)]  # in the order sent
        assert texts(queue, two.host_id) == [f"m{i}" for i in range(0, 20, 2)]
    assert three.remote == [("message", "room:lobby")] * 20
    assert sorted(one.remote) == [("message", "room:lobby")] * 10 + [("presence", "room:lobby")]


def test_a_plain_python_socketio_message_is_handled_too(redis_server, processes):
    queue = processes()
    outside = socketio.RedisManager(redis_server.url, channel=queue.channel, write_only=True)
    outside.emit("notification", {"title": "deploy"}, room="user:ana", namespace="/")
    assert wait_for(lambda: queue.handled)
    assert queue.handled[0]["event"] == "notification" and queue.remote == [("notification", "user:ana")]


def test_garbage_on_the_channel_is_ignored(redis_server, processes):
    queue = processes()
    client = redis.Redis.from_url(redis_server.url)
    for junk in (b"not json", b"[1, 2]", b'{"method": "batch", "messages": [1, "x"]}', b"\xff\xfe"):
        client.publish(queue.channel, junk)
    other = processes()
    other.emit("message", "after", room="room:lobby")
    assert wait_for(lambda: texts(queue) == ["after"])


def test_a_resubscribe_is_announced(redis_server, processes):
    queue = processes()
    queue.subscribed.clear()
    redis.Redis.from_url(redis_server.url).client_kill_filter(_type="pubsub")
    assert queue.subscribed.wait(5), "the listener did not announce its new subscription"


def test_emits_wait_while_redis_is_away_and_go_out_in_order_once_it_is_back(redis_server, processes):
    sender, receiver = processes(), processes()
    sender.emit("message", "before", room="room:lobby")
    assert wait_for(lambda: texts(receiver) == ["before"])

    redis_server.stop()
    try:
        for i in range(5):
            sender.emit("message", f"during {i}", room="room:lobby")
        assert texts(sender)[-5:] == [f"during {i}" for i in range(5)]  # its own clients got them at once
        assert wait_for(lambda: sender._down_since is not None)
    finally:
        redis_server.start()
    sender.emit("message", "after", room="room:lobby")
    expected = ["before"] + [f"during {i}" for i in range(5)] + ["after"]
    assert wait_for(lambda: texts(receiver) == expected, 10), texts(receiver)


def test_a_process_that_exits_at_once_still_publishes_what_it_emitted(redis_server, processes, tmp_path):
    """`flask notify --direct` emits and exits: the publisher has had no turn, the exit sends it."""
    receiver = processes(channel="flask-socketio")
    env = {**os.environ, "REDIS_URL": redis_server.url, "DATABASE_URL": f"sqlite:///{tmp_path}/cli.db",
           "SECRET_KEY": "a-test-secret-of-some-length", "NOTIFY_TOKEN": "a-notify-token-of-some-length",
           "LOG_LEVEL": "WARNING"}
    done = subprocess.run([sys.executable, "-m", "flask", "--app", "app", "notify", "--direct", "--room", "ops",
                           "--title", "from cron"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert wait_for(lambda: receiver.handled), "the notification never reached the queue"
    assert receiver.handled[0]["event"] == "notification" and receiver.remote == [("notification", "room:ops")]


def test_a_publish_that_reaches_fewer_processes_is_kept_until_they_are_back_or_shown_gone(monkeypatch):
    """After an outage one process may have resubscribed and another not: that publish is not a success."""
    from chat import scaleout

    now = [100.0]
    monkeypatch.setattr(scaleout.time, "monotonic", lambda: now[0])
    queue = scaleout.MessageQueue("redis://127.0.0.1:1/0")  # nothing connects until it publishes or listens
    assert not queue._short_of(3)  # three listeners heard it
    assert queue._short_of(2)  # one of them has not resubscribed yet
    now[0] += scaleout.SHRINK_SECONDS / 2
    assert queue._short_of(2)
    assert not queue._short_of(3)  # it is back: the batch goes, and three stay the expectation
    assert queue._short_of(2)
    now[0] += scaleout.SHRINK_SECONDS
    assert not queue._short_of(2)  # a process that stays away has left: two from now on
    assert not queue._short_of(2)
