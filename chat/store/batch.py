"""Batches: callers queue items, and one job on a lane serves every item that gathered meanwhile."""
import logging
from typing import Any

from .lanes import Lanes, Outcome

log = logging.getLogger(__name__)


class _Slot:
    """One caller's item waiting for the next batch."""

    __slots__ = ("item", "waiter")

    def __init__(self, item, waiter):
        self.item = item
        self.waiter = waiter


class Batcher:
    """Queues items and lets one job at a time on a lane run all that have gathered.

    An item joins the queue; if no batch is under way one is submitted to the lane. The job takes
    everything queued (at most max_batch), runs it at once, hands every outcome back in one go and,
    if more has queued meanwhile, goes round again. An item always waits for a batch that starts
    after it was queued, so what the batch reads or writes is as fresh as a call of its own.
    """

    max_batch = 256

    def __init__(self, lanes: Lanes, lane: Any):
        self._lanes = lanes
        self._lane = lane
        self._lock = lanes.os_lock()
        self._queue: list[_Slot] = []
        self._scheduled = False

    def call(self, item: Any) -> Any:
        """The item's outcome once its batch has run; its exception raised here."""
        slot = _Slot(item, self._lanes.waiter())
        with self._lock:
            self._queue.append(slot)
            start, self._scheduled = not self._scheduled, True
        if start:
            self._lane.submit(self._job)
        ok, value = slot.waiter.wait()
        if ok:
            return value
        raise value

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
                    self._scheduled = False
        self._lane.deliver([(slot.waiter, outcome) for slot, outcome in zip(batch, outcomes, strict=True)])
