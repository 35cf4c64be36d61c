"""Shims over the async modes (eventlet, gevent, threading): blocking work off the loop, short locks, yielding,
green threads that run one task after another."""
import contextvars
import functools
import logging
import sys
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

IDLE_TASKS = 128  # finished green threads kept for the next task; more than this end
GREEN_MODES = ("eventlet", "gevent")

Task = Callable[[], None]


def offload(fn, *args):
    """Run a CPU-bound or blocking call in an OS thread when an event loop would otherwise stall."""
    if _patched("eventlet"):
        from eventlet import tpool
        return tpool.execute(fn, *args)
    if _patched("gevent"):
        import gevent
        return gevent.get_hub().threadpool.apply(fn, args)
    return fn(*args)


def short_lock():
    """A lock for a critical section that never blocks nor yields: the OS's own, even where threading is patched.

    Under eventlet or gevent, threading.Lock is a green lock written in Python, twenty times the cost;
    the chat path takes several per message. Holding this one across a green switch would stall the
    process, so it guards only a few lines of bookkeeping.
    """
    if _patched("eventlet"):
        from eventlet import patcher
        return patcher.original("threading").Lock()
    if _patched("gevent"):
        from gevent import monkey
        return monkey.get_original("threading", "Lock")()
    import threading
    return threading.Lock()


def os_select(rlist: list, wlist: list, xlist: list, timeout: float) -> tuple[list, list, list]:
    """select.select as the OS gives it, for an OS thread: there a green select has no loop to wait on."""
    return _os_select()(rlist, wlist, xlist, timeout)


@functools.cache
def _os_select():
    """The OS's select.select, found once: looking for it cost 5 µs of each call (the writer's every batch)."""
    if _patched("eventlet"):
        from eventlet import patcher
        return patcher.original("select").select
    if _patched("gevent"):
        from gevent import monkey
        return monkey.get_original("select", "select")
    import select
    return select.select


def cooperation(async_mode):
    """A call that lets every other ready green thread run once; None with OS threads."""
    if async_mode == "eventlet":
        import eventlet
        return functools.partial(eventlet.sleep, 0)
    if async_mode == "gevent":
        import gevent
        return functools.partial(gevent.sleep, 0)
    return None


@functools.cache
def green_tasks(async_mode: str) -> "GreenTasks":
    """The process's GreenTasks under eventlet or gevent (one hub, one set)."""
    if async_mode == "eventlet":
        import eventlet
        from eventlet.hubs import get_hub

        hub = get_hub()
        return GreenTasks(eventlet.spawn_n, Resumes(hub.schedule_call_global).resume, hub.switch)
    if async_mode == "gevent":
        import gevent

        hub = gevent.get_hub()
        return GreenTasks(gevent.spawn_raw, lambda glet, task: hub.loop.run_callback(glet.switch, task), hub.switch)
    raise ValueError(f"{async_mode} has no green threads")


class GreenTasks:
    """Runs each task on a green thread of its own, one that a finished task left idle when there is one.

    Under CPython 3.11 a new green thread's first call maps 16 KB for its frames and its end unmaps
    them: two system calls, and a TLB flush on every core the process runs on. A chat message took
    two such green threads (its connection's reader and its own task); a kept one costs neither.
    """

    def __init__(self, spawn: Callable[..., Any], resume: Callable[[Any, Task], None], park: Callable[[], Any]):
        self._spawn = spawn
        self._resume = resume  # resume(green thread, task): switch to the parked green thread with its next task
        self._park = park  # park(): yield to the hub until resumed; returns the task resumed with
        self._idle: list[Any] = []

    def start(self, task: Task) -> None:
        """Run task() once the running green thread yields, on a green thread of its own."""
        if self._idle:
            self._resume(self._idle.pop(), task)
        else:
            self._spawn(self._work, task)

    def _work(self, task: Task) -> None:
        import greenlet

        me = greenlet.getcurrent()
        while True:
            try:
                contextvars.Context().run(task)  # what a new green thread starts with: no context variables
            except Exception:
                log.exception("a green task failed")
            if len(self._idle) >= IDLE_TASKS:
                return
            self._idle.append(me)
            try:
                task = self._park()
            except BaseException:
                self._forget(me)
                raise
            if not callable(task):  # woken by anyone but start()
                self._forget(me)
                log.warning("an idle green thread was woken with %r; it ends", task)
                return

    def _forget(self, glet: Any) -> None:
        if glet in self._idle:
            self._idle.remove(glet)


class Resumes:
    """Switches to parked green threads from one eventlet timer a turn, however many were resumed in it.

    An eventlet timer is an object in a heap, about 4 µs from scheduling to firing; a chat message
    resumed two green threads (its connection's reader and its own task), each with a timer of its own.
    """

    def __init__(self, schedule: Callable[..., Any]):
        self._schedule = schedule  # schedule(seconds, fn): the hub's timer
        self._due: list[tuple[Any, Task]] = []

    def resume(self, glet: Any, task: Task) -> None:
        """Switch to glet with task once the running green thread yields."""
        if not self._due:
            self._schedule(0, self._run)
        self._due.append((glet, task))

    def _run(self) -> None:
        due, self._due = self._due, []  # what these tasks resume waits for the next turn
        for glet, task in due:
            try:
                glet.switch(task)
            except Exception:
                log.exception("a resumed green thread failed")


def _patched(name):
    if name not in sys.modules:
        return False
    if name == "eventlet":
        from eventlet import patcher
        return patcher.is_monkey_patched("socket")
    from gevent import monkey
    return monkey.is_module_patched("socket")
