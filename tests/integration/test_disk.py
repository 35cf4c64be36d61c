"""The event loop never waits on the disk: a stalled write holds up only the messages it stores."""
import contextlib
import sqlite3
import threading
import time

import pytest

from tests.servers import DEFAULT_MODE, ServerError, ServerProcess, post_message, read_messages, register

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

PRODUCTION = ("eventlet", "gevent")


def _stall_writes(db_path):
    """Take SQLite's write lock from outside, as a disk that stops answering would hold the server's commit."""
    conn = sqlite3.connect(db_path, isolation_level=None, timeout=5)
    conn.execute("BEGIN IMMEDIATE")
    return conn


@pytest.mark.parametrize("fresh_server", PRODUCTION, indirect=True)
def test_a_stalled_commit_stalls_no_other_connection(fresh_server, clients):
    server = fresh_server
    db_path = server.db_url.split("///", 1)[1]
    writer = clients(server.url, register(server.url, "writer"))
    other = clients(server.url, register(server.url, "other"))
    writer.join("busy")
    other.join("quiet")
    first = writer.send("busy", "before the stall")["message"]

    stall = _stall_writes(db_path)
    acked = threading.Event()
    acks: list[dict] = []

    def on_ack(ack):
        acks.append(ack)
        acked.set()

    writer.sio.emit("message", {"room": "busy", "text": "during the stall", "client_id": "stalled-1"},
                    callback=on_ack)
    try:
        # While that commit waits, every other connection is served: events with no disk, and a rejoin
        # with `since` answered from the messages the server keeps in memory.
        assert other.call("typing", {"room": "quiet", "typing": True})["ok"]
        rejoin = other.call("join", {"room": "busy", "since": 0})
        assert rejoin["ok"] and [m["seq"] for m in rejoin["messages"]] == [first["seq"]]
        assert rejoin["last_seq"] == first["seq"]
        assert not acked.is_set(), "a message was acknowledged before its commit"
    finally:
        stall.execute("ROLLBACK")
        stall.close()
    assert acked.wait(10), "the stalled message was never acknowledged"
    assert acks[0]["ok"] and acks[0]["message"]["seq"] == first["seq"] + 1
    stored = read_messages(server.url, register(server.url, "auditor"), "busy")
    assert [m["text"] for m in stored] == ["before the stall", "during the stall"]


@pytest.mark.parametrize("fresh_server", PRODUCTION, indirect=True)
def test_every_acknowledged_message_survives_kill_9(fresh_server, clients):
    server = fresh_server
    senders = [clients(server.url, register(server.url, f"burst{n}")) for n in range(4)]
    for sender in senders:
        sender.join("burst")
    acked, lock = [], threading.Lock()

    def send(sender, n):
        for i in range(50):
            try:
                ack = sender.call("message", {"room": "burst", "text": f"{n}-{i}", "client_id": f"{n}-{i}"}, 5)
            except Exception:  # the server is gone
                return
            if not ack["ok"]:
                return
            with lock:
                acked.append(ack["message"])
            if n == 0 and i == 30:
                server.kill()  # mid-burst: the others' messages are in flight

    threads = [threading.Thread(target=send, args=(s, n)) for n, s in enumerate(senders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    server.start()
    stored = read_messages(server.url, register(server.url, "after"), "burst")
    assert [m["seq"] for m in stored] == list(range(1, len(stored) + 1)), "a gap in seq"
    assert {m["id"] for m in acked} <= {m["id"] for m in stored}, "an acknowledged message was lost"


def test_a_second_server_on_the_same_sqlite_file_is_refused(tmp_path):
    url = f"sqlite:///{tmp_path}/papo.db"
    with ServerProcess(DEFAULT_MODE, url) as first:
        second = ServerProcess(DEFAULT_MODE, url)
        try:
            with pytest.raises(ServerError, match="exited with 2"):
                second.start(timeout=15)
            log = second.log_tail()
        finally:
            second.close()
        assert "another Papo server serves" in log and "PostgreSQL" in log, log
        assert first.alive()


@pytest.mark.parametrize("fresh_server", PRODUCTION, indirect=True)
def test_a_rejoin_storm_cut_by_kill_9_loses_nothing_acked(fresh_server, clients):
    """Every client reconnects at once after a crash, the server crashes again in the middle of it, and
    messages are posted throughout: in the end every client holds every acked message of its room once.
    Half the crowd re-joins in its handshake (`auth.join`), half by `join` events."""
    server, rooms = fresh_server, [f"storm-{n}" for n in range(4)]
    token = register(server.url, "stormwriter")
    crowd = [clients(server.url, register(server.url, f"storm{n}"), reconnection=True, reconnection_delay=0.1,
                     reconnection_delay_max=0.5, randomization_factor=0.5, handshake_joins=n % 2 == 0)
             for n in range(40)]
    for n, client in enumerate(crowd):
        client.join(rooms[n % len(rooms)])
    acked: list[dict] = []
    stop = threading.Event()

    def write():
        n = 0
        while not stop.is_set():
            n += 1
            with contextlib.suppress(Exception):  # refused while the server is down: not acked
                acked.append(post_message(server.url, token, rooms[n % len(rooms)], f"m{n}", client_id=f"w{n}"))
            time.sleep(0.02)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        time.sleep(0.5)
        server.kill()
        server.start()
        time.sleep(0.3)  # the crowd is reconnecting and rejoining with since
        server.kill()
        server.start()
        time.sleep(1.0)
    finally:
        stop.set()
        writer.join(10)
    for n, client in enumerate(crowd):
        room = rooms[n % len(rooms)]
        mine = sorted(m["seq"] for m in acked if m["room"] == room)
        assert client.wait_until(lambda c, room=room, mine=mine: set(mine) <= set(c.seqs(room)), 20), \
            f"{client.token[:8]}: missing {sorted(set(mine) - set(client.seqs(room)))[:10]}"
    assert all(client.asked and client.connects > 1 for client in crowd[::2]), "a handshake join never asked"
    for room in rooms:
        stored = read_messages(server.url, token, room)
        assert [m["seq"] for m in stored] == list(range(1, len(stored) + 1)), "a gap in seq"
        assert {m["id"] for m in acked if m["room"] == room} <= {m["id"] for m in stored}
