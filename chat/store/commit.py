"""The group commit: every message waiting when the writer comes round is stored in one transaction."""
import logging
from collections.abc import Callable
from typing import Any

from . import queries
from .lanes import Lanes, Outcome

log = logging.getLogger(__name__)

MAX_BATCH = 256


class _Slot:
    """One caller's message waiting for the next commit."""

    __slots__ = ("item", "waiter")

    def __init__(self, item, waiter):
        self.item = item
        self.waiter = waiter


class GroupCommit:
    """Queues messages and lets the writer lane store all that have gathered at once.

    A message joins the queue; if no commit is under way one is submitted to the writer lane. The
    writer takes everything queued (at most MAX_BATCH), stores it in one transaction, hands every
    outcome back in one go and, if more has queued meanwhile, goes round again. The caller's ack
    therefore always follows its commit, and a slow disk slows the writer, never the event loop.
    """

    def __init__(self, lanes: Lanes, lane: Any, connector: Any, now: Callable[[], int],
                 committed: Callable[[list[dict]], None] | None = None):
        self._lanes = lanes
        self._lane = lane
        self._connector = connector
        self._now = now
        self._committed = committed  # told of each batch's new messages, in the writer, before any ack
        self._lock = lanes.os_lock()
        self._queue: list[_Slot] = []
        self._scheduled = False

    def append(self, item: queries.Item) -> tuple[dict, bool]:
        """Store one message; (message, created). Returns once it is committed."""
        slot = _Slot(item, self._lanes.waiter())
        with self._lock:
            self._queue.append(slot)
            start, self._scheduled = not self._scheduled, True
        if start:
            self._lane.submit(self._commit)
        ok, value = slot.waiter.wait()
        if ok:
            return value
        raise value

    def _commit(self) -> None:
        """Store what is queued, on the writer lane."""
        with self._lock:
            batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
        try:
            outcomes = self._store([slot.item for slot in batch])
        except Exception as error:  # never leave a caller waiting
            log.exception("a group commit failed")
            outcomes = [(False, error)] * len(batch)
        finally:
            with self._lock:
                if self._queue:
                    self._lane.submit(self._commit)
                else:
                    self._scheduled = False
        self._lane.deliver([(slot.waiter, outcome) for slot, outcome in zip(batch, outcomes, strict=True)])

    def _store(self, items: list[queries.Item]) -> list[Outcome]:
        try:
            stored = self._connector.write(queries.insert_messages, items, self._now())
        except self._connector.integrity_errors:
            if len(items) == 1:
                return [self._known(items[0])]
            return [outcome for item in items for outcome in self._store([item])]
        except Exception as error:
            return [(False, error)] * len(items)
        if self._committed is not None:
            self._committed([message for message, created in stored if created])
        return [(True, outcome) for outcome in stored]

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
