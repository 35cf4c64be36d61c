"""Where the database's blocking calls run: OS threads that hand each result back to the event loop.

Under eventlet and gevent every connection shares one OS thread, so a call that waits on the disk
(a commit, a checkpoint, a read that misses the page cache) would stall all of them. A lane runs
such calls in order on OS threads of its own; the green thread that asked waits on a waiter, and
the finished results reach the event loop through one wake-up (a pipe under eventlet, an async
watcher under gevent), however many a batch finished. Nothing polls.
"""
import collections
import contextlib
import functools
import logging
import os
import sys
from collections.abc import Callable
from typing import Any

import greenlet as _greenlet

from ..async_modes import GREEN_MODES

log = logging.getLogger(__name__)

IDLE_SECONDS = 30.0  # an OS thread with nothing to do this long ends; the next job starts another
# How long the event loop may keep the GIL while a lane's thread waits for it. A lane's thread lets
# the GIL go at each step of a statement and waits for it after; at CPython's default of 5 ms a writer
# beside a busy loop committed a third as many batches as alone, at 0.5 ms 1.6 to 2 times the default's.
GIL_SWITCH_SECONDS = 0.0005

Outcome = tuple[bool, Any]  # (True, result) or (False, the exception raised)


class Lanes:
    """The async mode's threads, locks, waiters and hand-back, and `call` to run a function on a lane."""

    def __init__(self, async_mode: str = "threading"):
        self.green = async_mode in GREEN_MODES
        if self.green:
            sys.setswitchinterval(GIL_SWITCH_SECONDS)
        self.start_thread, self.os_lock = _os_threads(async_mode)
        self.waiter = _waiter_class(async_mode)
        self._handback = _handback(async_mode)

    def thread_lane(self, threads: int, on_exit: Callable[[], None] | None = None) -> "ThreadLane":
        return ThreadLane(self, threads, self._handback, on_exit)

    def call(self, lane: "ThreadLane", fn: Callable[..., Any], *args: Any) -> Any:
        """Run fn(*args) on the lane and wait for its result without stalling the event loop."""
        waiter = self.waiter()
        lane.submit(functools.partial(_run, lane, waiter, fn, args))
        ok, value = waiter.wait()
        if ok:
            return value
        raise value


def _run(lane, waiter, fn, args):
    try:
        outcome = (True, fn(*args))
    except BaseException as error:  # handed to the caller, who raises it
        outcome = (False, error)
    lane.deliver([(waiter, outcome)])


class ThreadLane:
    """Jobs run in order of submission on at most `threads` OS threads; idle threads end by themselves."""

    def __init__(self, lanes: Lanes, threads: int, handback: "Handback", on_exit: Callable[[], None] | None):
        self._lanes = lanes
        self._max = threads
        self._lock = lanes.os_lock()
        self._jobs: collections.deque[Callable[[], None]] = collections.deque()
        self._sleepers: list[Any] = []  # [OS lock held by a waiting thread; releasing it wakes that thread]
        self._threads = 0
        self._closing = False
        self.deliver = handback.post
        self._on_exit = on_exit

    def submit(self, job: Callable[[], None]) -> None:
        start = False
        with self._lock:
            self._jobs.append(job)
            wake = self._sleepers.pop() if self._sleepers else None
            if wake is None and self._threads < self._max:
                self._threads += 1
                start = True
        if wake is not None:
            wake.release()
        elif start:
            self._lanes.start_thread(self._work)

    def close(self) -> None:
        """Let every thread finish the jobs queued, then end."""
        with self._lock:
            self._closing = True
            sleepers, self._sleepers = self._sleepers, []
        for wake in sleepers:
            wake.release()

    def _work(self) -> None:
        wake = self._lanes.os_lock()
        wake.acquire()
        try:
            while self._next(wake):
                pass
        finally:
            if self._on_exit is not None:
                self._on_exit()

    def _next(self, wake) -> bool:
        """Run one job, or sleep until there is one; False when this thread should end."""
        with self._lock:
            job = self._jobs.popleft() if self._jobs else None
            if job is None:
                if self._closing:
                    self._threads -= 1
                    return False
                self._sleepers.append(wake)
        if job is not None:
            try:
                job()
            except Exception:
                log.exception("a database job failed outside its caller")
            return True
        if wake.acquire(timeout=IDLE_SECONDS):
            return True
        with self._lock:
            if wake in self._sleepers:
                self._sleepers.remove(wake)
                self._threads -= 1
                return False
        wake.acquire()  # woken just as the wait ran out: take the wake-up that is on its way
        return True


class Handback:
    """Hands finished results to their waiters; from an OS thread, in the thread that waits."""

    def post(self, pairs: list[tuple[Any, Outcome]]) -> None:
        for waiter, outcome in pairs:
            waiter.set(outcome)


class EventletHandback(Handback):
    """Wakes eventlet's hub through a pipe, one byte for however many results wait."""

    def __init__(self):
        from eventlet import patcher
        from eventlet.hubs import get_hub

        real_os = patcher.original("os")
        read_end, write_end = real_os.pipe()
        os.set_blocking(read_end, False)
        self._read_end = read_end
        self._read = real_os.read
        self._write_byte = functools.partial(real_os.write, write_end, b".")
        self._pending: collections.deque = collections.deque()
        self._signalled = False
        hub = get_hub()
        hub.add(hub.READ, read_end, self._drain, _ignore, _ignore)

    def post(self, pairs):
        self._pending.extend(pairs)
        if not self._signalled:
            self._signalled = True
            self._write_byte()

    def _drain(self, _fileno):
        with contextlib.suppress(BlockingIOError):
            self._read(self._read_end, 4096)
        self._signalled = False  # before draining: a result posted from now on writes a byte again
        pending = self._pending
        while pending:
            waiter, outcome = pending.popleft()
            waiter.set(outcome)


class GeventHandback(Handback):
    """Wakes gevent's loop through an async watcher, which any thread may send."""

    def __init__(self):
        import gevent

        self._pending: collections.deque = collections.deque()
        self._watcher = gevent.get_hub().loop.async_()
        self._watcher.start(self._drain)
        self._watcher.ref = False  # a process with nothing else to do may still end

    def post(self, pairs):
        self._pending.extend(pairs)
        self._watcher.send()

    def _drain(self):
        pending = self._pending
        while pending:
            waiter, outcome = pending.popleft()
            waiter.set(outcome)


def _ignore(*_):
    pass


def _handback(async_mode):
    if async_mode == "eventlet":
        return EventletHandback()
    if async_mode == "gevent":
        return GeventHandback()
    return Handback()


def _os_threads(async_mode):
    """(start a daemon OS thread, make an OS lock), even where the mode patched threading."""
    if async_mode == "eventlet":
        from eventlet import patcher

        threading = patcher.original("threading")
    elif async_mode == "gevent":
        from gevent import monkey

        start, allocate = monkey.get_original("_thread", ["start_new_thread", "allocate_lock"])
        return (lambda fn: start(fn, ())), allocate
    else:
        import threading
    return (lambda fn: threading.Thread(target=fn, name="papo-disk", daemon=True).start()), threading.Lock


def _waiter_class(async_mode):
    if async_mode == "eventlet":
        return EventletWaiter
    if async_mode == "gevent":
        import gevent.hub

        class GeventWaiter(gevent.hub.Waiter):
            """gevent's own hub-to-green-thread hand-off: the drain runs in the hub and switches at once."""

            __slots__ = ()
            set = gevent.hub.Waiter.switch
            wait = gevent.hub.Waiter.get

        return GeventWaiter
    return ThreadWaiter


@functools.cache
def _eventlet_hubs():
    """eventlet.hubs, imported once: an import statement in a function costs a lookup on every call."""
    from eventlet import hubs

    return hubs


class EventletWaiter:
    """A result the hub hands straight to the green thread that waits for it.

    eventlet's Event schedules a timer per waiter and switches from it; a result set from the hub's
    own greenlet (the hand-back's drain) can switch at once, which saves a timer per database call.
    """

    __slots__ = ("_outcome", "_waiting")

    def __init__(self):
        self._outcome = None
        self._waiting = None

    def set(self, outcome):
        self._outcome = outcome
        waiting, self._waiting = self._waiting, None
        if waiting is None or waiting.dead:
            return
        hub = _eventlet_hubs().get_hub()
        if _greenlet.getcurrent() is hub.greenlet:
            try:
                waiting.switch()
            except Exception:  # the green thread died of it; the hand-back must go on to the next result
                log.exception("a green thread failed after its database call")
        else:  # set from another green thread: wake the waiter on the hub's next turn
            hub.schedule_call_global(0, waiting.switch)

    def wait(self):
        hubs = _eventlet_hubs()
        while self._outcome is None:
            self._waiting = _greenlet.getcurrent()
            try:
                hubs.get_hub().switch()
            finally:
                self._waiting = None
        return self._outcome


class ThreadWaiter:
    """A result one OS thread waits for and another sets."""

    __slots__ = ("_event", "value")

    def __init__(self):
        import threading

        self._event = threading.Event()
        self.value = None

    def set(self, value):
        self.value = value
        self._event.set()

    def wait(self):
        self._event.wait()
        return self.value
