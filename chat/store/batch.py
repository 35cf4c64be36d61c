"""Batches: callers queue items, and one job on a lane serves every item that gathered meanwhile.

Under load, and above all when a restarted server's clients all come back at once, many green
threads ask for the same thing together: a commit each, the same room's privacy, the same user's
unread notifications. A batch turns those into one lane job, and identical reads into one read.
"""
import logging
from collections.abc import Callable, Sequence
from typing import Any

from . import queries
from .lanes import Lanes, Outcome

log = logging.getLogger(__name__)


class Pending:
    """One caller's item, queued for the next batch."""

    __slots__ = ("item", "waiter")

    def __init__(self, item, waiter):
        self.item = item
        self.waiter = waiter

    def result(self) -> Any:
        """The item's outcome once its batch has run; its exception raised here."""
        ok, value = self.waiter.wait()
        if ok:
            return value
        raise value


class Batcher:
    """Queues items and lets at most `parallel` jobs at a time on a lane run all that have gathered.

    An item joins the queue; if fewer batches are under way one is submitted to the lane. The job takes
    everything queued (at most max_batch), runs it at once, hands every outcome back in one go and,
    if more has queued meanwhile, goes round again. An item always waits for a batch that starts
    after it was queued, so what the batch reads or writes is as fresh as a call of its own.
    """

    max_batch = 256

    def __init__(self, lanes: Lanes, lane: Any, parallel: int = 1):
        self._lanes = lanes
        self._lane = lane
        self._parallel = parallel
        self._lock = lanes.os_lock()
        self._queue: list[Pending] = []
        self._running = 0

    def call(self, item: Any) -> Any:
        """The item's outcome once its batch has run; its exception raised here."""
        return self.queue(item).result()

    def queue(self, item: Any) -> Pending:
        """Queue the item without waiting: items queued one after another are served in that order."""
        slot = Pending(item, self._lanes.waiter())
        with self._lock:
            self._queue.append(slot)
            start = self._running < self._parallel
            self._running += start
        if start:
            self._lane.submit(self._job)
        return slot

    def run(self, items: list[Any]) -> list[Outcome]:
        """Serve a batch on the lane: (True, result) or (False, exception) for each item, in order."""
        raise NotImplementedError

    def _job(self) -> None:
        with self._lock:
            batch, self._queue = self._queue[:self.max_batch], self._queue[self.max_batch:]
        try:
            outcomes = self.run([slot.item for slot in batch])
        except Exception as error:  # never leave a caller waiting
            log.exception("a batch failed")
            outcomes = [(False, error)] * len(batch)
        finally:
            with self._lock:
                if self._queue:
                    self._lane.submit(self._job)
                else:
                    self._running -= 1
        self._lane.deliver([(slot.waiter, outcome) for slot, outcome in zip(batch, outcomes, strict=True)])


class GroupCommit(Batcher):
    """Stores the messages that gathered while the writer was busy, in one transaction.

    The caller's ack therefore always follows its commit, and a slow disk slows the writer, never
    the event loop.
    """

    max_counted_rooms = 100_000  # rooms whose counters the writer keeps at most (a few MB)

    def __init__(self, lanes: Lanes, lane: Any, connector: Any, now: Callable[[], int],
                 committed: Callable[[list[dict]], None] | None = None):
        super().__init__(lanes, lane)
        self._connector = connector
        self._now = now
        self._committed = committed  # told of each batch's new messages, in the writer, before any ack
        # {room: [id, last seq]} while this process is the SQLite file's only server (Store.claim); in the writer
        self.counters: queries.Counters | None = None

    def append(self, item: queries.Item) -> Pending:
        """Queue one message for the next commit; its result() is (message, created) once committed."""
        return self.queue(item)

    def run(self, items: list[queries.Item]) -> list[Outcome]:
        outcomes = self._outcomes(items, self._store)
        if self._committed is not None:
            self._committed([value[0] for ok, value in outcomes if ok and value[1]])
        return outcomes

    def _outcomes(self, items: list[queries.Item], store: Callable[[list[queries.Item]], Sequence]) -> list[Outcome]:
        """Store the items; those of rooms that store found missing go to a transaction that creates them.

        An item that breaks a unique constraint, or whose values the database refuses, fails the batch's
        statement: the items are then stored one by one, so that it fails alone.
        """
        connector = self._connector
        try:
            stored = store(items)
        except (*connector.integrity_errors, *connector.data_errors) as error:
            if len(items) > 1:
                return [outcome for item in items for outcome in self._outcomes([item], store)]
            if isinstance(error, connector.integrity_errors):
                return [self._known(items[0])]
            log.warning("a message of %s in %s could not be stored: %s", items[0][1], items[0][0], error)
            return [(False, error)]
        except Exception as error:
            return [(False, error)] * len(items)
        outcomes: list[Outcome] = [(True, outcome) for outcome in stored]
        missing = [i for i, outcome in enumerate(stored) if outcome is None]
        if missing:
            created = self._outcomes([items[i] for i in missing], self._store_creating_rooms)
            for i, outcome in zip(missing, created, strict=True):
                outcomes[i] = outcome
        return outcomes

    def _store(self, items: list[queries.Item]) -> Sequence[tuple[dict, bool] | None]:
        """Store the batch in one statement where its rooms exist: None for an item whose room does not.

        The writer waits for the GIL after each step of a statement while the event loop is busy, and
        on PostgreSQL a transaction's every statement is a round trip with the rooms' rows locked: a
        transaction of four statements made a batch wait six times, one statement once. SQLite's batch
        is numbered from the counters when this process is the file's only server and they know its rooms.
        """
        if self._connector.postgres:
            return self._connector.write_alone(queries.insert_into_rooms, items)
        counters = self.counters
        if counters is None:
            return self._store_creating_rooms(items)
        if len(counters) >= self.max_counted_rooms:
            counters.clear()  # a room forgotten is read again on its next message
        unknown = [room for room in {item[0] for item in items} if room not in counters]
        if unknown:
            counters.update(self._connector.read(queries.room_counters, unknown))
            if any(room not in counters for room in unknown):
                return [None] * len(items)
        return self._connector.write_alone(queries.insert_messages, items, self._now(), counters)

    def _store_creating_rooms(self, items: list[queries.Item]) -> list[tuple[dict, bool]]:
        """Store the batch in a transaction that creates its missing rooms."""
        if self.counters is not None:
            for room in {item[0] for item in items}:
                self.counters.pop(room, None)  # the transaction moves their last seq: read again on the next message
        return self._connector.write(queries.insert_messages, items, self._now())

    def _known(self, item: queries.Item) -> Outcome:
        """The stored message of an item whose client_id was taken, or the error that refused it."""
        room, author, _, _, client_id = item
        try:
            known = client_id is not None and self._connector.read(queries.message_by_client_id, room, author,
                                                                   client_id)
        except Exception as error:
            return False, error
        if not known:
            return False, RuntimeError(f"a message of {author} in {room} broke a unique constraint")
        return True, (known, False)


class UnreadReads(Batcher):
    """Reads the unread notifications of every user whose connection asked while the readers were busy.

    A reconnect storm brings thousands of connections of few users at once; one query serves them.
    """

    def __init__(self, lanes: Lanes, lane: Any, connector: Any):
        super().__init__(lanes, lane)
        self._connector = connector

    def run(self, items: list[tuple[str, int]]) -> list[Outcome]:
        """Items are (user, limit): each gets the latest `limit` of its user's unread, oldest first."""
        found = self._connector.read(queries.unread_of_users, sorted({user for user, _ in items}),
                                     max(limit for _, limit in items))
        return [(True, found.get(user, [])[-limit:]) for user, limit in items]


class SharedReads(Batcher):
    """Runs the reads that gathered while the readers were busy; identical ones once, for all who asked."""

    def __init__(self, lanes: Lanes, lane: Any, connector: Any, parallel: int):
        super().__init__(lanes, lane, parallel)
        self._connector = connector

    def run(self, items: list[tuple[Callable[..., Any], tuple]]) -> list[Outcome]:
        return _once_each(items, lambda work, args: self._connector.read(work, *args))


class WriterJobs(Batcher):
    """Runs idempotent jobs on the writer that gathered meanwhile; identical ones once, for all who asked.

    For what a burst of joins needs once per room: the room created, its recent messages loaded.
    """

    def run(self, items: list[tuple[Callable[..., Any], tuple]]) -> list[Outcome]:
        return _once_each(items, lambda work, args: work(*args))


def _once_each(items: list[tuple[Callable[..., Any], tuple]], call: Callable[[Any, tuple], Any]) -> list[Outcome]:
    """The outcome of call(work, args) for each (work, args); equal items share one call.

    An item whose arguments cannot be a key (a list) gets a call of its own.
    """
    done: dict[Any, Outcome] = {}
    outcomes = []
    for item in items:
        try:
            outcome = done.get(item)
            shared = True
        except TypeError:
            outcome, shared = None, False
        if outcome is None:
            try:
                outcome = (True, call(*item))
            except Exception as error:
                outcome = (False, error)
            if shared:
                done[item] = outcome
        outcomes.append(outcome)
    return outcomes
