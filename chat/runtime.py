"""What differs between the async modes: running blocking work off the event loop, capping frames."""
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


def cap_websocket_frames(engineio_server, max_bytes):
    """Make simple-websocket refuse an oversized frame as it arrives instead of buffering it whole."""
    drivers = dict(engineio_server._async)
    make_websocket = drivers.get("websocket")
    if make_websocket is None:
        return

    def bounded(handler, server):
        websocket = make_websocket(handler, server)
        if isinstance(getattr(websocket, "server_args", None), dict):
            websocket.server_args["max_message_size"] = max_bytes
        return websocket

    drivers["websocket"] = bounded
    engineio_server._async = drivers
