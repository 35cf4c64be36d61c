"""What differs between the async modes: running blocking work off the event loop, capping frames."""
import functools
import socket
import struct
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


def harden_websockets(engineio_server, max_bytes):
    """Fix simple-websocket's edges where it serves WebSockets (the threading development server).

    An oversized frame is refused as it arrives instead of being buffered whole; a reader
    never sleeps through its own connection's close; and the TCP connection ends with the
    WebSocket, where the WSGI server would otherwise read on for another HTTP request.
    """
    from engineio.async_drivers._websocket_wsgi import SimpleWebSocketWSGI

    drivers = dict(engineio_server._async)
    make_websocket = drivers.get("websocket")
    if not (isinstance(make_websocket, type) and issubclass(make_websocket, SimpleWebSocketWSGI)):
        return

    class HardenedWebSocket:
        def __init__(self, handler, server):
            self.inner = make_websocket(handler, server)
            self.inner.server_args["max_message_size"] = max_bytes
            self.inner.wait = self.wait

        def __call__(self, environ, start_response):
            try:
                return self.inner(environ, start_response)
            finally:
                ws = getattr(self.inner, "ws", None)
                _end_connection(environ, abort=getattr(ws, "incoming_message_len", 0) > max_bytes)

        def wait(self):
            """The next message, or None once the connection is closed (checked every second)."""
            import simple_websocket

            ws = self.inner.ws
            while True:
                try:
                    data = ws.receive(timeout=1)
                except simple_websocket.ConnectionClosed:
                    return None
                if data is not None:
                    return data
                if not ws.connected:
                    return None

    drivers["websocket"] = HardenedWebSocket
    engineio_server._async = drivers


def _end_connection(environ, abort=False):
    """Shut the client's TCP connection down, whichever WSGI server holds it.

    `abort` resets it instead: a client still pushing an oversized frame at a closed window would
    otherwise wait for the window to open again until the kernel gives up on the orphan.
    """
    sock = environ.get("werkzeug.socket")
    if sock is None:
        stream = environ.get("wsgi.input")
        raw = getattr(getattr(stream, "rfile", stream), "raw", None)
        sock = getattr(raw, "_sock", None)
    try:
        if abort:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.shutdown(socket.SHUT_RDWR)
    except (AttributeError, OSError):
        pass
