"""Shims over the async modes (eventlet, gevent, threading): blocking work off the loop, short locks, yielding."""
import functools
import sys


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


def cooperation(async_mode):
    """A call that lets every other ready green thread run once; None with OS threads."""
    if async_mode == "eventlet":
        import eventlet
        return functools.partial(eventlet.sleep, 0)
    if async_mode == "gevent":
        import gevent
        return functools.partial(gevent.sleep, 0)
    return None


def _patched(name):
    if name not in sys.modules:
        return False
    if name == "eventlet":
        from eventlet import patcher
        return patcher.is_monkey_patched("socket")
    from gevent import monkey
    return monkey.is_module_patched("socket")
