"""The store's moving parts on their own: lanes, the group commit, the recent messages kept in memory."""
import contextlib
import sys
import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chat.store import Store, queries
from chat.store.engine import SqliteConnector
from chat.store.lanes import Lanes
from chat.store.recent import RecentMessages
from chat.store.unread import NoneUnread


def _message(room, seq):
    return {"id": f"{room}-{seq}", "room": room, "seq": seq, "user": "ana", "text": str(seq), "ts": 1,
            "client_id": None}


def test_a_lane_runs_calls_in_order_and_returns_their_results_or_raises_their_errors():
    lanes = Lanes()
    lane = lanes.thread_lane(1)
    seen: list[int] = []

    def note(n):
        seen.append(n)
        return n * 2

    assert [lanes.call(lane, note, n) for n in range(5)] == [0, 2, 4, 6, 8]
    assert seen == [0, 1, 2, 3, 4]
    with pytest.raises(ZeroDivisionError):
        lanes.call(lane, lambda: 1 / 0)
    assert lanes.call(lane, threading.get_ident) != threading.get_ident()
    lane.close()


def test_an_idle_lane_thread_ends_and_the_next_call_starts_another(monkeypatch):
    from chat.store import lanes as lanes_module

    monkeypatch.setattr(lanes_module, "IDLE_SECONDS", 0.05)
    lanes = Lanes()
    ended = []
    lane = lanes.thread_lane(1, on_exit=lambda: ended.append(threading.get_ident()))
    first = lanes.call(lane, threading.get_ident)
    deadline = time.monotonic() + 5
    while not ended and time.monotonic() < deadline:
        time.sleep(0.01)
    assert ended == [first]
    assert lanes.call(lane, lambda: 42) == 42
    lane.close()


def test_concurrent_messages_share_commits(tmp_path, monkeypatch):
    store = Store(f"sqlite:///{tmp_path}/batch.db")
    store.migrate()
    commits: list[int] = []
    write = store.connector.write

    def counted(work, *args):
        commits.append(len(args[0]))
        return write(work, *args)

    monkeypatch.setattr(store.connector, "write", counted)
    threads = [threading.Thread(target=lambda n=n: [store.append("r", f"u{n}", f"{i}", 1, f"{n}-{i}")
                                                    for i in range(20)]) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(commits) == 160 and len(commits) < 160, "no two messages were ever committed together"
    assert [m["seq"] for m in store.messages_after("r", 0, 500)] == list(range(1, 161))
    store.close()


def counted_reads(store, monkeypatch):
    """(the names of the reads the store's connector runs from now on, its read function itself)."""
    reads: list[str] = []
    read = store.connector.read

    def counted(work, *args):
        reads.append(work.__name__)
        return read(work, *args)

    monkeypatch.setattr(store.connector, "read", counted)
    return reads, read


def test_a_claimed_store_answers_rejoins_from_memory_exactly_as_the_database(tmp_path, monkeypatch):
    store = Store(f"sqlite:///{tmp_path}/claimed.db")
    store.migrate()
    store.claim()
    reads, read = counted_reads(store, monkeypatch)
    for i in range(30):
        store.append("a", "ana", f"m{i}", 1, f"c{i}")
    assert store.messages_after("a", 25, 10) == read(queries.messages_after, "a", 25, 10)
    assert [m["seq"] for m in store.messages_before("a", None, 3)] == [28, 29, 30]
    assert store.last_seq("a") == 30
    # the numbering looks the room up twice (missing: the first message's transaction creates it; then
    # its counter), the rejoins once; nothing after
    assert reads == ["room_counters", "room_counters", "latest"], "only a room's first look may read the database"
    store.close()


def test_a_second_claim_on_the_same_file_is_refused(tmp_path):
    from chat.store import DatabaseInUse

    url = f"sqlite:///{tmp_path}/one.db"
    first, second = Store(url), Store(url)
    first.migrate()
    first.claim()
    with pytest.raises(DatabaseInUse, match="PostgreSQL"):
        second.claim()
    first.close()
    second.claim()  # free again once the first lets go
    second.close()


def test_who_has_no_unread_notification_is_forgotten_when_one_is_stored_here_or_elsewhere():
    foreign = [0]
    known = NoneUnread(threading.Lock(), lambda: foreign[0])
    stamp = known.check("ana")
    assert stamp is not None
    known.learned("ana", stamp)
    assert known.check("ana") is None and known.check("bob") is not None
    known.stored()
    late = known.check("ana")
    assert late is not None
    known.stored()  # stored while a read that began before it ran: the read proves nothing
    known.learned("ana", late)
    assert known.check("ana") is not None
    again = known.check("ana")
    assert again is not None
    known.learned("ana", again)
    assert known.check("ana") is None
    foreign[0] += 1  # another process said it stored one
    assert known.check("ana") is not None


def test_a_claimed_store_reads_unread_notifications_until_it_knows_there_are_none(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path}/notes.db"
    store, other = Store(url), Store(url)  # other: a second process, as `flask notify --direct` is
    store.migrate()
    store.claim()
    reads, _ = counted_reads(store, monkeypatch)
    assert store.unread_notifications("ana", 10) == []
    assert store.unread_notifications("ana", 10) == []
    assert reads == ["notifications"], "a user known to have none was read again"
    note = other.add_notification("ana", "Disk 91%", "", "info", 1)
    assert store.unread_notifications("ana", 10) == [note]
    store.mark_read("ana", up_to=int(note["id"][1:]))
    assert store.unread_notifications("ana", 10) == []
    mine = store.add_notification("ana", "Disk 95%", "", "info", 2)
    assert store.unread_notifications("ana", 10) == [mine]
    assert len(reads) == 4
    store.close()
    other.close()


rooms = st.sampled_from(["a", "b", "c"])
operations = st.lists(st.one_of(
    st.tuples(st.just("add"), rooms, st.integers(1, 30)),
    st.tuples(st.just("after"), rooms, st.integers(0, 400), st.integers(1, 50)),
    st.tuples(st.just("before"), rooms, st.one_of(st.none(), st.integers(1, 400)), st.integers(1, 50)),
), max_size=40)


@settings(max_examples=200, deadline=None)
@given(operations)
def test_recent_messages_answer_like_the_database_or_not_at_all(ops):
    recent = RecentMessages(per_room=16, total=40)
    stored: dict[str, list[dict]] = {"a": [], "b": [], "c": []}  # the database
    for op in ops:
        room = op[1]
        if op[0] == "add":
            batch = [_message(room, len(stored[room]) + i + 1) for i in range(op[2])]
            stored[room] += batch
            if not recent.loaded(room):
                recent.install(room, stored[room][-16:], len(stored[room]))
            else:
                recent.add(batch)
        elif op[0] == "after":
            _, _, after, limit = op
            found = recent.after(room, after, limit)
            assert found is None or found == [m for m in stored[room] if m["seq"] > after][:limit]
        else:
            _, _, before, limit = op
            found = recent.before(room, before, limit)
            expected = [m for m in stored[room] if before is None or m["seq"] < before][-limit:]
            assert found is None or found == expected
        seq = recent.last_seq(room)
        assert seq is None or seq == len(stored[room])


def test_a_batcher_serves_what_gathered_in_one_run_and_answers_each_caller_with_its_own_outcome():
    from chat.store.batch import Batcher

    lanes = Lanes()
    lane = lanes.thread_lane(1)
    runs: list[list[int]] = []
    running, gate = threading.Event(), threading.Event()

    class Halves(Batcher):
        def run(self, items):
            running.set()
            gate.wait(5)
            runs.append(items)
            return [(True, n // 2) if n % 2 == 0 else (False, ValueError(n)) for n in items]

    batcher = Halves(lanes, lane)
    answers: dict[int, object] = {}

    def ask(n):
        try:
            answers[n] = batcher.call(n)
        except ValueError as error:
            answers[n] = error.args

    threads = [threading.Thread(target=ask, args=(n,)) for n in range(40)]
    threads[0].start()
    assert running.wait(5)  # the first run holds the lane, at the gate
    for thread in threads[1:]:
        thread.start()
    deadline = time.monotonic() + 10
    while len(batcher._queue) < 39 and time.monotonic() < deadline:  # every other caller queued behind it
        time.sleep(0.01)
    gate.set()
    for thread in threads:
        thread.join()
    assert answers == {n: n // 2 if n % 2 == 0 else (n,) for n in range(40)}
    assert sorted(n for run in runs for n in run) == list(range(40))
    assert len(runs) == 2, "the callers that queued during a run were not served together by the next"
    lane.close()


def test_a_batch_that_raises_fails_each_of_its_callers_and_the_next_batch_still_runs():
    from chat.store.batch import Batcher

    lanes = Lanes()
    lane = lanes.thread_lane(1)

    class Picky(Batcher):
        def run(self, items):
            if "bad" in items:
                raise RuntimeError("refused")
            return [(True, item.upper()) for item in items]

    batcher = Picky(lanes, lane)
    with pytest.raises(RuntimeError):
        batcher.call("bad")
    assert batcher.call("good") == "GOOD"
    lane.close()


def test_shared_reads_read_identical_queries_once_and_unhashable_ones_each():
    from chat.store.batch import SharedReads

    lanes = Lanes()
    lane = lanes.thread_lane(2)
    gate = threading.Event()
    calls: list[tuple] = []

    class Connector:
        @staticmethod
        def read(work, *args):
            gate.wait(5)
            calls.append(args)
            return work(*args)

    def echo(*args):
        return repr(args)

    reads = SharedReads(lanes, lane, Connector(), parallel=2)
    answers: dict[int, str] = {}
    asked = [("a",), ("a",), (["x"],), ("b", 1), ("a",), (["x"],), ("b", 1)] * 3
    threads = [threading.Thread(target=lambda n=n, args=args: answers.__setitem__(n, reads.call((echo, args))))
               for n, args in enumerate(asked)]
    for thread in threads:
        thread.start()
    time.sleep(0.2)
    gate.set()
    for thread in threads:
        thread.join()
    assert answers == {n: repr(args) for n, args in enumerate(asked)}
    assert calls.count(("a",)) < asked.count(("a",)), "identical reads that waited together were not shared"
    assert calls.count((["x"],)) == asked.count((["x"],))
    lane.close()


def test_checkpoints_run_beside_the_writer_not_inside_its_commits(tmp_path, monkeypatch):
    from chat.store import store as store_module

    monkeypatch.setattr(store_module, "CHECKPOINT_SECONDS", 0.0)
    store = Store(f"sqlite:///{tmp_path}/wal.db")
    store.migrate()
    assert isinstance(store.connector, SqliteConnector)
    threads: dict[str, set[int]] = {"writer": set(), "checkpoint": set()}
    write, checkpoint = store.connector.write, store.connector.checkpoint

    def writing(work, *args):
        threads["writer"].add(threading.get_ident())
        return write(work, *args)

    def checkpointing():
        threads["checkpoint"].add(threading.get_ident())
        checkpoint()

    monkeypatch.setattr(store.connector, "write", writing)
    monkeypatch.setattr(store.connector, "checkpoint", checkpointing)
    for n in range(50):
        store.append("r", "ana", "x" * 2000, 1, f"c{n}")
    deadline = time.monotonic() + 5
    while not threads["checkpoint"] and time.monotonic() < deadline:
        time.sleep(0.01)
    assert threads["checkpoint"], "no checkpoint ran after 50 commits"
    assert not threads["checkpoint"] & threads["writer"]
    autocheckpoint = store.connector.read(lambda tx: tx.value("PRAGMA wal_autocheckpoint"))
    assert autocheckpoint >= 16384, "commits would still checkpoint (and wait for the disk) every 1,000 pages"
    assert [m["seq"] for m in store.messages_after("r", 0, 100)] == list(range(1, 51))
    store.close()


def test_a_claimed_store_numbers_batches_from_its_counters_exactly_as_the_transaction_did(tmp_path, monkeypatch):
    """One INSERT per batch, numbered from counters in memory: seqs gap-free per room, ids as stored, last_seq
    moved by the trigger, a repeated client_id answered with the first message, a refused batch moving no
    counter, and a restarted server numbering on from the file."""
    url = f"sqlite:///{tmp_path}/counted.db"
    store = Store(url)
    store.migrate()
    store.claim()
    assert isinstance(store.connector, SqliteConnector)
    alone: list[int] = []
    write_alone = store.connector.write_alone

    def counted(work, items, *args):
        alone.append(len(items))
        return write_alone(work, items, *args)

    monkeypatch.setattr(store.connector, "write_alone", counted)
    rooms = ["a", "b", "c"]
    for room in rooms:
        store.ensure_room(room)
    first = [store.queue_append(rooms[i % 3], "ana", f"m{i}", 1, f"c{i}") for i in range(30)]
    stored = [pending.result()[0] for pending in first]
    assert alone, "no batch took the one-statement path"
    again, created = store.append("b", "ana", "m1", 1, "c1")
    assert not created and again == stored[1]
    # a batch with a known client_id fails as a whole, then goes one by one: no seq is lost meanwhile
    mixed = [store.queue_append("a", "ana", "new", 1, "n1"), store.queue_append("a", "ana", "m0", 1, "c0"),
             store.queue_append("a", "ana", "new2", 1, None)]
    outcomes = [pending.result() for pending in mixed]
    assert [created for _, created in outcomes] == [True, False, True]
    for room in rooms:
        messages = store.messages_after(room, 0, 100)
        assert [m["seq"] for m in messages] == list(range(1, len(messages) + 1))
        assert store.connector.read(queries.last_seq, room) == len(messages)
    by_id = {m["id"]: m for room in rooms for m in store.messages_after(room, 0, 100)}
    assert all(by_id[m["id"]] == m for m in stored), "a message answered with another one's id"
    in_a = len(store.messages_after("a", 0, 100))
    store.close()
    restarted = Store(url)
    restarted.claim()
    assert restarted.append("a", "bo", "after", 1, None)[0]["seq"] == in_a + 1
    restarted.close()


def test_a_claimed_store_keeps_counters_of_a_bounded_number_of_rooms_and_numbers_on_after_forgetting(tmp_path,
                                                                                                  monkeypatch):
    store = Store(f"sqlite:///{tmp_path}/bounded.db")
    store.migrate()
    store.claim()
    monkeypatch.setattr(store._commits, "max_counted_rooms", 2)
    rooms = [f"r{n}" for n in range(5)]
    for room in rooms:
        store.ensure_room(room)
    for turn in range(3):
        for room in rooms:
            assert store.append(room, "ana", "m", 1, None)[0]["seq"] == turn + 1
            assert store._commits.counters is not None and len(store._commits.counters) <= 2
    for room in rooms:
        assert store.connector.read(queries.last_seq, room) == 3
    store.close()


@pytest.fixture
def green_lanes():
    """Make Lanes of a green mode on this thread's real hub; CPython's switch interval put back after."""
    interval = sys.getswitchinterval()
    try:
        yield Lanes
    finally:
        sys.setswitchinterval(interval)


def test_green_threads_waiting_on_a_lane_each_get_their_own_result_from_the_hub(green_lanes):
    import eventlet

    lanes = green_lanes("eventlet")
    lane = lanes.thread_lane(2)
    workers = [eventlet.spawn(lanes.call, lane, lambda n=n: (n, threading.get_ident())) for n in range(20)]
    answers = [worker.wait() for worker in workers]
    assert [n for n, _ in answers] == list(range(20))
    assert threading.get_ident() not in {ident for _, ident in answers}
    with pytest.raises(ZeroDivisionError):
        lanes.call(lane, lambda: 1 / 0)
    lane.close()


def test_an_eventlet_waiter_set_by_a_green_thread_wakes_its_waiter_on_the_next_turn():
    import eventlet

    from chat.store.lanes import EventletWaiter

    waiter = EventletWaiter()
    got = []
    waiting = eventlet.spawn(lambda: got.append(waiter.wait()))
    eventlet.sleep(0)
    waiter.set((True, "late"))  # from the main green thread, not the hub: it must not be suspended here
    assert got == []
    waiting.wait()
    assert got == [(True, "late")]

    early = EventletWaiter()
    early.set((True, "early"))
    assert early.wait() == (True, "early")


def test_a_green_thread_that_stopped_waiting_is_not_woken_by_that_result_later():
    import eventlet

    from chat.store.lanes import EventletHandback, EventletWaiter

    handback = EventletHandback()
    abandoned, awaited = EventletWaiter(), EventletWaiter()
    got = []

    def waits():
        with contextlib.suppress(eventlet.Timeout), eventlet.Timeout(0.01):
            abandoned.wait()
        got.append(awaited.wait())  # the same green thread, as a reused one waits again

    waiting = eventlet.spawn(waits)
    eventlet.sleep(0.05)
    handback.post([(abandoned, (True, "stale"))])
    eventlet.sleep(0.05)
    assert got == []
    handback.post([(awaited, (True, "fresh"))])
    with eventlet.Timeout(5):
        waiting.wait()
    assert got == [(True, "fresh")]


def test_a_green_thread_that_fails_after_its_result_does_not_stop_the_drain_handing_back_the_next():
    import eventlet

    from chat.store.lanes import EventletHandback, EventletWaiter

    handback = EventletHandback()
    first, second = EventletWaiter(), EventletWaiter()

    def fails():
        first.wait()
        raise RuntimeError("after the result")

    failing = eventlet.spawn(fails)
    other = eventlet.spawn(second.wait)
    eventlet.sleep(0)
    handback.post([(first, (True, 1)), (second, (True, 2))])  # one wake-up, one drain, for both
    with eventlet.Timeout(5):
        assert other.wait() == (True, 2)
        with pytest.raises(RuntimeError):
            failing.wait()
        later = EventletWaiter()
        handback.post([(later, (True, 3))])  # the hand-back still listens
        assert later.wait() == (True, 3)


def test_gevent_green_threads_waiting_on_a_lane_each_get_their_own_result_and_a_failure_stops_none(green_lanes):
    import gevent

    lanes = green_lanes("gevent")
    lane = lanes.thread_lane(2)

    def fails():
        lanes.call(lane, lambda: 0)
        raise RuntimeError("after the result")

    failing = gevent.spawn(fails)
    workers = [gevent.spawn(lanes.call, lane, lambda n=n: (n, threading.get_ident())) for n in range(20)]
    with gevent.Timeout(5):
        answers = [worker.get() for worker in workers]
        failing.join()
        assert lanes.call(lane, lambda: "still served") == "still served"
    assert [n for n, _ in answers] == list(range(20))
    assert threading.get_ident() not in {ident for _, ident in answers}
    assert isinstance(failing.exception, RuntimeError)
    lane.close()
