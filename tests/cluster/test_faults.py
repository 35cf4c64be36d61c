"""Faults against the real cluster: a process killed, Redis restarted, PostgreSQL unreachable for a moment."""
import itertools
import os
import signal
import threading
import time

import pytest
import requests

from chat.config import CLUSTER_DRAIN_SECONDS  # SIGTERM's window with REDIS_URL
from chat.scaleout import LEASE_SECONDS  # a silent process's members are dropped after this
from chat.transport.drain import SEND_WAIT  # the last close frames' time to leave
from tests.servers import health, request

pytestmark = [pytest.mark.cluster, pytest.mark.xdist_group("cluster")]

_client_ids = itertools.count(1)


def presence(client, room, user):
    with client._lock:
        return [(p["action"], p["members"]) for e, p in client.events
                if e == "presence" and p["room"] == room and p["user"] == user]


def routed(cluster, value):
    """An HTTP session that sends the route cookie `value`, which nginx hashes to pick the process.

    A short request goes first. nginx gives a process it had to leave out (an earlier test's kill)
    one request to try it again, and takes it back only once that request completes: a WebSocket's
    does not while it lasts, so without this the next ones with the same cookie went elsewhere.
    """
    session = requests.Session()
    session.cookies.set("papo_route", value)
    session.get(cluster.url + "/healthz", timeout=10)
    return session


def wait_for(condition, timeout, step=0.05):
    """Poll condition() until true; the seconds it took, or None on timeout."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if condition():
            return time.monotonic() - started
        time.sleep(step)
    return None


class Sender:
    """Sends numbered messages to a room from a background thread, the way the browser's outbox does:
    a failed send is retried with the same client_id until acked.

    Shape: acked {client_id: Message}, refusals [(error code, seconds the ack took)].
    """

    def __init__(self, client, room, pause=0.05, retry_pause=0.2):
        self.client = client
        self.room = room
        self.pause = pause
        self.retry_pause = retry_pause
        self.acked = {}
        self.refusals = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self._thread.start()
        return self

    def stop(self, timeout=30):
        """Stop after the message in flight is acked; the acked messages by seq."""
        self._stop.set()
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the sender is stuck on an unacknowledged message"
        return sorted(self.acked.values(), key=lambda m: m["seq"])

    def _run(self):
        while not self._stop.is_set():
            client_id = f"s{next(_client_ids)}-{time.monotonic_ns()}"
            while True:
                started = time.monotonic()
                ack = self.client.call("message", {"room": self.room, "text": client_id, "client_id": client_id},
                                       timeout=20)
                if ack["ok"]:
                    self.acked[client_id] = ack["message"]
                    break
                self.refusals.append((ack["error"]["code"], time.monotonic() - started))
                time.sleep(self.retry_pause)
            time.sleep(self.pause)


def returned(travellers, sender, room):
    """Wait for every traveller to reconnect, stop the sender, and hold each traveller to every message
    the sender had acked meanwhile, its re-joins answered; the acked messages."""
    for client in travellers:
        assert client.wait_until(lambda c: c.connects >= 2, 10), "a client did not reconnect through nginx"
    time.sleep(0.5)
    sent = sender.stop()
    assert sent and not sender.refusals, sender.refusals[:5]
    seqs = {m["seq"] for m in sent}
    for client in travellers:
        assert client.wait_until(lambda c: set(c.seqs(room)) >= seqs, 10), \
            f"missing {sorted(seqs - set(client.seqs(room)))}"
        assert all(ack["ok"] for _, _, ack in client.joins)
    return sent


def test_a_killed_process_loses_nothing_its_clients_return_through_nginx(cluster, user, room, clients):
    """kill -9 one process: its clients reconnect through nginx to another and recover every message;
    its members who do not come back leave (once); those who came back never left."""
    names = [user("trav") for _ in range(2)]
    gone_name, gone_token = user("gone")
    before = cluster.settled_connections()
    route = f"kill-{time.monotonic_ns()}"  # one route cookie: nginx sends all three to one process
    travellers = [clients(cluster.url, token, reconnection=True, reconnection_delay=0.2, reconnection_delay_max=1,
                          randomization_factor=0, http_session=routed(cluster, route)) for _, token in names]
    gone = clients(cluster.url, gone_token, http_session=routed(cluster, route))
    after = cluster.settled_connections()
    victim = max(cluster.servers, key=lambda s: after[s] - before[s])
    assert after[victim] - before[victim] == 3
    others = [s for s in cluster.servers if s is not victim]
    watcher = clients(others[0].url, user("watch")[1])
    source = clients(others[1].url, user("src")[1])
    for client in travellers + [gone, watcher, source]:
        client.join(room)

    sender = Sender(source, room).start()
    time.sleep(0.5)
    victim.kill()
    killed = time.monotonic()
    sent = returned(travellers, sender, room)
    assert watcher.wait_until(lambda c: presence(c, room, gone_name), LEASE_SECONDS + 5), \
        "the dead process's member never left"
    left_after = time.monotonic() - killed
    print(f"kill -9: {len(sent)} messages sent meanwhile; the dead process's member left after {left_after:.1f} s")
    assert left_after < LEASE_SECONDS + 3, left_after
    time.sleep(0.5)
    assert presence(watcher, room, gone_name) == [("leave", presence(watcher, room, gone_name)[0][1])]
    members = presence(watcher, room, gone_name)[0][1]
    assert gone_name not in members and len(members) == 4  # watcher, source and both travellers
    for name, _ in names:
        assert name in members and presence(watcher, room, name) == [], "a member who came back was announced"
    cluster.restart(victim)


def test_a_drained_process_hands_its_clients_to_the_others_and_loses_nothing(cluster, user, room, clients):
    """SIGTERM one process: it closes its connections over its window and exits 0 within the window and
    SEND_WAIT; its clients reconnect through nginx to the others and recover every message sent meanwhile."""
    before = cluster.settled_connections()
    route = f"drain-{time.monotonic_ns()}"  # one route cookie: nginx sends all three to one process
    travellers = [clients(cluster.url, user("drained")[1], reconnection=True, reconnection_delay=0.2,
                          reconnection_delay_max=1, randomization_factor=0, http_session=routed(cluster, route))
                  for _ in range(3)]
    after = cluster.settled_connections()
    victim = max(cluster.servers, key=lambda s: after[s] - before[s])
    assert after[victim] - before[victim] == 3
    source = clients(next(s for s in cluster.servers if s is not victim).url, user("src")[1])
    for client in travellers + [source]:
        client.join(room)

    sender = Sender(source, room).start()
    time.sleep(0.5)
    signalled = time.monotonic()
    os.kill(victim.pid, signal.SIGTERM)
    status = victim.process.wait(CLUSTER_DRAIN_SECONDS + SEND_WAIT + 10)
    exited = time.monotonic() - signalled
    sent = returned(travellers, sender, room)
    print(f"SIGTERM: exited {status} after {exited:.2f} s; {len(sent)} messages sent meanwhile")
    assert status == 0 and exited < CLUSTER_DRAIN_SECONDS + SEND_WAIT + 1.0, (status, exited)
    cluster.restart(victim)


def test_redis_restarted_delivery_resumes_and_nothing_acked_is_lost(cluster, user, room, clients):
    """Redis goes away and comes back empty: /healthz says 503 then 200, acked messages are all
    stored and delivered, live delivery between processes resumes within seconds, presence returns."""
    sender_client = clients(cluster.servers[0].url, user("rs")[1])
    receiver_name, receiver_token = user("rr")
    receiver = clients(cluster.servers[1].url, receiver_token)
    for client in (sender_client, receiver):
        client.join(room)
    assert sender_client.send(room, "before")["ok"]
    assert receiver.wait_until(lambda c: c.seqs(room) == [1], 5)

    try:
        cluster.redis.stop()
        assert wait_for(lambda: health(cluster.servers[1].url) == 503, 10) is not None, "healthz stayed 200"
        during = [sender_client.send(room, f"during {i}") for i in range(5)]
        assert all(ack["ok"] for ack in during), during  # PostgreSQL is up: sends are stored and acked
    finally:
        cluster.redis.start()
    restarted = time.monotonic()
    healthy = wait_for(lambda: all(health(s.url) == 200 for s in cluster.servers), 15)
    assert healthy is not None, [health(s.url) for s in cluster.servers]

    probes: list[int] = []

    def delivered_live():
        ack = sender_client.send(room, f"probe {len(probes)}")
        assert ack["ok"], ack
        probes.append(ack["message"]["seq"])
        return receiver.wait_until(lambda c: probes[-1] in c.seqs(room), 0.3)

    assert wait_for(delivered_live, 15, step=0) is not None, "delivery between processes did not resume"
    resumed = time.monotonic() - restarted
    print(f"Redis restart: healthz 200 after {healthy:.1f} s, live delivery after {resumed:.1f} s")
    assert resumed < 8, resumed
    acked = {1} | {ack["message"]["seq"] for ack in during} | set(probes)
    assert acked == set(range(1, max(acked) + 1))
    assert receiver.wait_until(lambda c: set(c.seqs(room)) >= acked, 10), \
        f"missing {sorted(acked - set(receiver.seqs(room)))}"
    # Presence was lost with Redis and written back by each process: both members are there again.
    assert wait_for(lambda: room_sizes(cluster.servers[2].url).get(room) == 2, 5) is not None


def room_sizes(url):
    return {r["name"]: r["members"] for r in request(url, "GET", "/api/rooms")[1]["rooms"]}


def test_database_unreachable_sends_are_refused_then_work_again(cluster, user, room, clients):
    """PostgreSQL unreachable for a moment: sends get `unavailable` within seconds (no hang), and when
    it is back every send goes through; every acked message is stored once, seq without gaps."""
    source = clients(cluster.servers[2].url, user("db")[1])
    _, reader_token = user("dbr")
    reader = clients(cluster.servers[3].url, reader_token)
    for client in (source, reader):
        client.join(room)
    sender = Sender(source, room).start()
    assert wait_for(lambda: len(sender.acked) >= 3, 10) is not None

    cluster.proxy.cut()
    try:
        refused = wait_for(lambda: sender.refusals, 15)
        assert refused is not None, "no send was refused while the database was unreachable"
        assert health(cluster.servers[2].url, timeout=10) == 503
        time.sleep(1)
    finally:
        cluster.proxy.mend()
    mended = time.monotonic()
    before = len(sender.acked)
    assert wait_for(lambda: len(sender.acked) > before + 3, 20) is not None, "sending did not work again"
    recovered = time.monotonic() - mended
    sent = sender.stop()
    print(f"database cut: {len(sender.refusals)} refusals, slowest {max(t for _, t in sender.refusals):.1f} s; "
          f"sending again {recovered:.1f} s after the database returned; {len(sent)} messages acked")

    assert {code for code, _ in sender.refusals} == {"unavailable"}
    assert max(seconds for _, seconds in sender.refusals) < 8, sender.refusals
    assert recovered < 10, recovered
    seqs = [m["seq"] for m in sent]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    stored = reader.call("join", {"room": room, "since": 0})
    assert stored["ok"] and not stored["truncated"]
    assert [(m["seq"], m["client_id"]) for m in stored["messages"]] == [(m["seq"], m["client_id"]) for m in sent]
    cluster.wait_healthy()
