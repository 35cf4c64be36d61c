"""The event hub's services the transport uses, under eventlet, under gevent, and faked for tests.

A hub calls back when a descriptor is readable or writable, runs a callback once the running green
threads yield, runs timers and spawns green threads. Nothing else of eventlet or gevent is used.
"""
import heapq
import itertools

from chat import async_modes, internals


def _ignore(*_):
    pass


class EventletHub:
    """The hub's services under eventlet."""

    def __init__(self):
        from eventlet.hubs import get_hub

        self.hub = get_hub()
        self._tasks = async_modes.green_tasks("eventlet")

    def soon(self, fn):
        """Call fn once the running green threads have yielded."""
        self.hub.schedule_call_global(0, fn)

    def later(self, seconds, fn):
        """Call fn after `seconds`; the timer, for cancel()."""
        return self.hub.schedule_call_global(seconds, fn)

    @staticmethod
    def cancel(timer):
        timer.cancel()

    def watch(self, fileno, writable, fn, gone):
        """Call fn whenever the descriptor is readable (or writable); gone if eventlet finds it reused."""
        return self.hub.add(self.hub.WRITE if writable else self.hub.READ, fileno, lambda _: fn(), gone, _ignore)

    def unwatch(self, listener):
        self.hub.remove(listener)

    def spawn(self, fn):
        """Run fn on a green thread of its own once the running one yields."""
        self._tasks.start(fn)

    @staticmethod
    def os_socket(conn):
        return internals.eventlet_os_socket(conn)

    @staticmethod
    def responded():
        """Tell eventlet.wsgi the application wrote its own response (the 101)."""
        internals.eventlet_response_written()


class GeventHub:
    """The hub's services under gevent."""

    def __init__(self):
        import gevent

        self.loop = gevent.get_hub().loop
        self._tasks = async_modes.green_tasks("gevent")

    def soon(self, fn):
        self.loop.run_callback(fn)

    def later(self, seconds, fn):
        timer = self.loop.timer(seconds)
        timer.start(fn)
        return timer

    @staticmethod
    def cancel(timer):
        timer.close()

    def watch(self, fileno, writable, fn, gone):
        watcher = self.loop.io(fileno, 2 if writable else 1)
        watcher.start(fn)
        return watcher

    def unwatch(self, watcher):
        watcher.stop()

    def spawn(self, fn):
        """Run fn on a green thread of its own once the running one yields."""
        self._tasks.start(fn)

    @staticmethod
    def os_socket(conn):
        return internals.gevent_os_socket(conn)

    @staticmethod
    def responded():
        """gevent.pywsgi writes nothing for an application that never called start_response."""


class FakeTimer:
    def __init__(self, when, fn):
        self.when, self.fn, self.cancelled = when, fn, False

    def cancel(self):
        self.cancelled = True


class FakeHub:
    """A hub a test drives by hand: run() calls what is due, readable() what watches a descriptor.

    Shapes: callbacks = [fn] in order; timers = heap of (when, n, FakeTimer); watchers = {n: (fileno,
    writable, fn)}.
    """

    def __init__(self):
        self.now = 0.0
        self.callbacks = []
        self.timers = []
        self.watchers = {}
        self._ids = itertools.count()

    def soon(self, fn):
        self.callbacks.append(fn)

    def later(self, seconds, fn):
        timer = FakeTimer(self.now + seconds, fn)
        heapq.heappush(self.timers, (timer.when, next(self._ids), timer))
        return timer

    @staticmethod
    def cancel(timer):
        timer.cancel()

    def watch(self, fileno, writable, fn, gone):
        listener = next(self._ids)
        self.watchers[listener] = (fileno, writable, fn)
        return listener

    def unwatch(self, listener):
        self.watchers.pop(listener, None)

    def spawn(self, fn):
        self.callbacks.append(fn)

    @staticmethod
    def os_socket(conn):
        return conn

    @staticmethod
    def responded():
        pass

    def run(self, seconds=0.0):
        """Advance the clock by `seconds`, calling the callbacks and the timers that fall due, in order."""
        self._drain()
        end = self.now + seconds
        while self.timers and self.timers[0][0] <= end:
            when, _, timer = heapq.heappop(self.timers)
            self.now = when
            if not timer.cancelled:
                timer.fn()
            self._drain()
        self.now = end

    def fire(self, writable=False):
        """Call every watcher of readable (or writable) descriptors once, then what they scheduled."""
        for _, wants_write, fn in list(self.watchers.values()):
            if wants_write == writable:
                fn()
        self._drain()

    def watching(self, writable=False):
        return sum(1 for _, wants_write, _ in self.watchers.values() if wants_write == writable)

    def _drain(self):
        while self.callbacks:
            callbacks, self.callbacks = self.callbacks, []
            for fn in callbacks:
                fn()
