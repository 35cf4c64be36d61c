"""Shims over the async modes (eventlet, gevent, threading): blocking work off the loop, short locks, yielding,
green threads that run one task after another."""
import collections
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
    import greenlet

    if async_mode == "eventlet":
        from eventlet.hubs import get_hub

        hub = get_hub()
        return GreenTasks(Resumes(hub.schedule_call_global).soon,
                          lambda run: greenlet.greenlet(run, parent=hub.greenlet), hub.switch)
    if async_mode == "gevent":
        import gevent

        hub = gevent.get_hub()
        return GreenTasks(hub.loop.run_callback, lambda run: greenlet.greenlet(run, parent=hub), hub.switch)
    raise ValueError(f"{async_mode} has no green threads")


class GreenTasks:
    """Runs each task on a green thread once the running one yields, in the order started; a green
    thread whose task has finished waits, idle, for the next.

    A task takes its green thread when its turn comes, not when it is started: a burst of tasks that
    do not wait (a storm's handshakes, the frames of a thousand sockets read in one turn) runs on the
    green thread each one leaves idle, where taking one at the start took a new one for all but the
    idle few and ended them again after (a restarted server made 24,813 green threads for 30,000
    tasks). Under CPython 3.11 a new green thread's first call maps 16 KB for its frames and its end
    unmaps them: two system calls, and a TLB flush on every core the process runs on.
    """

    def __init__(self, soon: Callable[[Task], Any], new_green: Callable[[Callable[[Task], None]], Any],
                 park: Callable[[], Any]):
        self._soon = soon  # soon(fn): call fn on the hub once the running green thread yields, in order
        self._new_green = new_green  # new_green(run): a green thread under the hub, calling run(task) when switched to
        self._park = park  # park(): yield to the hub until switched to again; returns the task switched with
        self._idle: list[Any] = []
        self._due: collections.deque[Task] = collections.deque()

    def start(self, task: Task) -> None:
        """Run task() once the running green thread yields, on a green thread of its own."""
        self._due.append(task)
        self._soon(self._run_next)

    def _run_next(self) -> None:
        task = self._due.popleft()
        glet = self._idle.pop() if self._idle else self._new_green(self._work)
        glet.switch(task)

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
            if not callable(task):  # woken by anyone but _run_next()
                self._forget(me)
                log.warning("an idle green thread was woken with %r; it ends", task)
                return

    def _forget(self, glet: Any) -> None:
        if glet in self._idle:
            self._idle.remove(glet)


class Resumes:
    """Calls, on the hub, every function asked for in a turn from one eventlet timer.

    An eventlet timer is an object in a heap, about 4 µs from scheduling to firing; a chat message
    started two green tasks (its connection's reader and its own), each with a timer of its own.
    """

    def __init__(self, schedule: Callable[..., Any]):
        self._schedule = schedule  # schedule(seconds, fn): the hub's timer
        self._due: list[Task] = []

    def soon(self, fn: Task) -> None:
        """Call fn once the running green thread yields."""
        if not self._due:
            self._schedule(0, self._run)
        self._due.append(fn)

    def _run(self) -> None:
        due, self._due = self._due, []  # what these calls ask for waits for the next turn
        for fn in due:
            try:
                fn()
            except Exception:
                log.exception("a green task could not be started")


def _patched(name):
    if name not in sys.modules:
        return False
    if name == "eventlet":
        from eventlet import patcher
        return patcher.is_monkey_patched("socket")
    from gevent import monkey
    return monkey.is_module_patched("socket")
