"""The production server behind `python app.py --host H --port P`, in ASYNC_MODE (eventlet or gevent).

app.py opens the listening socket and monkey-patches for the mode before it imports this module.
"""
import contextlib
import gc
import logging
import os
import resource
import signal
import socket
import sys

from chat import async_modes, create_app, http_head, internals
from chat.config import Settings, SettingError, where
from chat.store import describe
from chat.transport import drain, hubs

log = logging.getLogger("papo.server")


def main(mode: str, listener: socket.socket) -> int:
    """Serve the app on the listening socket until SIGTERM; 2 when a setting is bad or the database unusable."""
    try:
        internals.check_versions()
    except internals.VersionMismatch as error:
        print(f"papo: {error}", file=sys.stderr)
        return 2
    try:
        app = create_app(async_mode=mode)
        app.extensions["papo"].store.claim()
    except SettingError as error:
        print(f"papo: {error}", file=sys.stderr)
        return 2
    papo = app.extensions["papo"]
    listener = _adopt(_socket_class(mode), listener)
    host, port = listener.getsockname()[:2]
    _allow_open_files(papo.settings.MAX_CONNECTIONS)
    _freeze_startup_objects()
    log.info("Papo serving on http://%s:%d (%s)", host, port, mode)
    log.info("%s", start_line(papo.settings, app.instance_path))
    serve = {"eventlet": _serve_eventlet, "gevent": _serve_gevent, "threading": _serve_threading}[mode]
    serve(app, listener, papo.settings.MAX_CONNECTIONS, papo)
    return 0


def start_line(settings: Settings, instance_path: str) -> str:
    """Say which features this server runs with and where its instance folder is; no secret, no password."""
    admins = ", ".join(settings.ADMIN_USERS) or "none (ADMIN_USERS unset)"
    redis = f"{where(settings.REDIS_URL)} (several processes)" if settings.REDIS_URL else "off (one process)"
    return (f"features: notify {'on' if settings.NOTIFY_TOKEN else 'off (NOTIFY_TOKEN unset)'}; "
            f"monitor admins: {admins}; Redis: {redis}; "
            f"database: {describe(settings.DATABASE_URL)}; instance folder: {instance_path}")


def _socket_class(mode):
    if mode == "eventlet":
        from eventlet.green import socket as green_socket
        return green_socket.socket
    if mode == "gevent":
        from gevent import socket as green_socket
        return green_socket.socket
    return socket.socket


def _adopt(make_socket, listener: socket.socket):
    """The listening socket app.py opened, as a socket of the mode (its options and queue stay)."""
    return make_socket(listener.family, listener.type, listener.proto, listener.detach())


def _allow_open_files(connections):
    """Raise the soft open-file limit to fit `connections` and some to spare, up to the hard limit."""
    wanted = connections + 256
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    if target < connections:
        log.warning("open files are capped at %d: fewer than MAX_CONNECTIONS (%d) connections will fit",
                    target, connections)


# The garbage collector's thresholds (CPython's are 700, 10, 10). Each connection holds a few hundred
# objects that live as long as it does; at the defaults 5,000 connections arriving at once set off
# 8 full collections of 70-110 ms each and about 1 s of collecting in all (gc.callbacks), a fifth of
# the server's time. A full pass comes once per 5,000 young collections here (10 x 500), as rare
# as with 50 x 100, but the middle generation is collected every 10, as CPython does: at 50 it
# gathered enough to take 10.7-17.3 ms a pass at 2,000 messages a second, the slowest deliveries of
# a window; at 10, 2.1-6.1 ms. The youngest generation's threshold stays CPython's.
GC_THRESHOLDS = (700, 10, 500)


def _freeze_startup_objects():
    """Keep the garbage collector's full passes off what start-up built and never frees, and rarer.

    Modules, the app and the database schema are most of the objects of a fresh process; a full
    collection walked them all, a 36 ms stall of every connection at 2,000 messages a second.
    No collection goes first: it took 30 ms of a restart, while the clients wait, to free about
    400 of 113,000 objects (the schema check's SQLAlchemy tables), which now stay.
    """
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def stop_on_sigterm(app):
    """Under `flask run`, make SIGTERM disconnect clients and release the database as the server does."""
    papo = app.extensions["papo"]
    signal.signal(signal.SIGTERM, lambda *_: _exit(papo))


def _drain(papo, hub, stop_accepting):
    """Stop accepting, close every connection in batches over a bounded window (chat.transport.drain), leave."""
    log.info("SIGTERM: draining")
    with contextlib.suppress(OSError):
        stop_accepting()
    drain.drain(hub, drain.closers(papo.socketio.server.eio), lambda: _exit(papo), papo.settings.DRAIN_SECONDS)


def _exit(papo):
    """Release the database and leave at once."""
    log.info("shutting down")
    try:
        papo.store.close()
    finally:
        logging.shutdown()
        os._exit(0)


def _serve_eventlet(app, listener, max_connections, papo):
    import eventlet
    import eventlet.wsgi

    eventlet.spawn(_wait_for_sigterm, lambda: _drain(papo, hubs.EventletHub(), listener.close))
    timeout = app.extensions["papo"].settings.SOCKET_TIMEOUT  # a silent client lets go of its green thread
    eventlet.wsgi.server(listener, app, log_output=False, max_size=max_connections, keepalive=timeout,
                         socket_timeout=timeout, debug=False, protocol=_detachable_protocol())


def _detachable_protocol():
    """eventlet's HTTP protocol, letting the WebSocket transport keep a connection it takes over (chat.transport).

    The request's environ gets `papo.detach`: once called, the connection's green thread ends without
    shutting the socket down, and the transport owns it. Each request's head is read by chat.http_head.
    """
    import eventlet.wsgi

    class DetachableProtocol(eventlet.wsgi.HttpProtocol):
        detached = False

        def parse_request(self):
            return http_head.parse_request(self)

        def get_environ(self):
            environ = super().get_environ()
            environ["papo.detach"] = self.detach
            environ["papo.socket"] = self.connection
            return environ

        def detach(self):
            self.detached = True
            internals.eventlet_keep_socket(self, _Detached())

        def finish(self):
            if not self.detached:
                return super().finish()
            self.rfile.close()
            self.wfile.close()

    return DetachableProtocol


class _Detached:
    """Stands in for a socket the WebSocket transport took over: eventlet's clean-up leaves it alone."""

    def shutdown(self, *_):
        pass

    def close(self):
        pass


def _wait_for_sigterm(shut_down):
    """Shut down on SIGTERM, woken through a pipe: a handler alone waits for the idle hub's next tick."""
    from eventlet.green import os as green_os

    read_end, write_end = os.pipe()
    os.set_blocking(read_end, False)
    os.set_blocking(write_end, False)
    signal.set_wakeup_fd(write_end)
    signal.signal(signal.SIGTERM, lambda *_: None)
    while green_os.read(read_end, 1) != bytes([signal.SIGTERM]):
        pass
    shut_down()


def _serve_gevent(app, listener, max_connections, papo):
    import gevent
    from gevent.pywsgi import WSGIHandler, WSGIServer

    timeout = app.extensions["papo"].settings.SOCKET_TIMEOUT

    class Handler(WSGIHandler):
        """Reads time out, so that a silent client lets go of its greenlet; the WebSocket transport may keep one.

        The request's environ gets `papo.socket` and `papo.detach` (chat.transport): once detached, the
        connection's greenlet ends without closing the socket, and the transport owns it. The header
        fields are read by chat.http_head.
        """

        detached = False

        def __init__(self, sock, address, server, rfile=None):
            sock.settimeout(timeout)
            super().__init__(sock, address, server, rfile)

        def MessageClass(self, fp, *_):
            return internals.gevent_fields(fp, http_head.read_fields)

        def _headers(self):
            return internals.gevent_environ_fields(self.headers)

        def get_environ(self):
            environ = super().get_environ()
            environ["papo.detach"] = self.detach
            environ["papo.socket"] = self.socket
            return environ

        def detach(self):
            self.detached = self.close_connection = True
            detached.add(self.socket)

        def log_request(self):
            """Write no access log (the server has none): gevent formats each line for its no-op log."""

        def handle_one_request(self):
            result = super().handle_one_request()
            if self.detached:
                self.socket = None  # what handle() would close on its way out
                return None
            return result

    detached: set = set()  # the green sockets whose connections the transport took over

    class Server(WSGIServer):
        """Leaves a detached connection's socket to its new owner.

        gevent closes each handler's socket once the handler returns; the descriptor stayed open only
        while the handler's file object referred to it, so the garbage collector's pass over a
        detached handler cut its connection (a WebSocket upgraded from long-polling: the session
        holds the first request's handler, not the upgrade's).
        """

        def do_close(self, sock, *args):
            if sock in detached:
                detached.discard(sock)
                return
            super().do_close(sock, *args)

    pool = internals.gevent_pool_on_kept_threads(max_connections, async_modes.green_tasks("gevent").start)
    server = Server(listener, app, spawn=pool, log=None, handler_class=Handler)

    def stop_accepting():
        server.stop_accepting()  # not close(): serve_forever would return, and the process end, mid-drain
        listener.close()

    gevent.signal_handler(signal.SIGTERM, lambda: gevent.spawn(_drain, papo, hubs.GeventHub(), stop_accepting))
    server.serve_forever()


def _serve_threading(app, listener, max_connections, papo):
    from werkzeug.serving import make_server

    host, port = listener.getsockname()[:2]
    signal.signal(signal.SIGTERM, lambda *_: _exit(papo))
    make_server(host, port, app, threaded=True, fd=listener.fileno()).serve_forever()
