"""Papo's entry point.

`flask --app app run`        development server, threading mode, WebSockets through simple-websocket
`python app.py --port 5000`  production server in ASYNC_MODE (gevent by default, or eventlet)

The production server opens its port before it loads anything: during a restart, clients that
reconnect while it starts wait in the port's accept queue instead of being refused, and are
served as soon as it is ready (a refused client backs off and comes back seconds later).
"""
import argparse
import contextlib
import os
import socket
import sys

DEFAULT_MODE = "gevent"  # chat.config.DEFAULT_ASYNC_MODE: chat cannot be imported before patching
OPTIONAL_LIBRARIES = ("redis", "requests", "websocket")  # loaded only when used: _clients_and_redis_absent
BACKLOG = 4096  # connections the kernel queues while the server starts or is busy (capped by net.core.somaxconn)


def _arguments(argv):
    parser = argparse.ArgumentParser(prog="app.py", description="Run the Papo server.")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=port, default=5000, help="port to bind (default 5000)")
    return parser.parse_args(argv)


def port(text):
    """A TCP port number, 0 to 65535 (argparse names this function in its errors)."""
    number = int(text)
    if not 0 <= number <= 65535:
        raise argparse.ArgumentTypeError(f"{number} is not a port (0-65535)")
    return number


def _listen(host, port):
    """A listening socket with Nagle off (inherited by accepted sockets) and a deep accept queue."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, port))
        sock.listen(BACKLOG)
    except OSError:
        sock.close()
        raise
    return sock


@contextlib.contextmanager
def _entry_points_read_once():
    """Read the installed packages' entry points once while gevent patches, not once per patch event.

    gevent's patch_all looks for plugins by calling importlib.metadata.entry_points 25 times,
    each reading every installed package's metadata: patch_all took 130-194 ms, 79-82 ms with one
    reading (measured), while a restart's clients wait. Nothing is installed meanwhile, so one
    reading answers all 25.
    """
    from importlib import metadata
    every = metadata.entry_points()

    def read_once(**selection):
        return every.select(**selection) if selection else every

    read = metadata.entry_points
    metadata.entry_points = read_once
    try:
        yield
    finally:
        metadata.entry_points = read


class _Absent:
    """An import finder that has the named top-level packages look uninstalled."""

    def __init__(self, names):
        self.names = frozenset(names)

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in self.names:
            raise ModuleNotFoundError(f"{name} is left out while Papo loads", name=name)
        return None


@contextlib.contextmanager
def _clients_and_redis_absent():
    """Import as if the libraries of python-socketio's clients and of its Redis queue were not installed.

    python-socketio's package imports every client and message queue it has, and each tries the
    library it would use (in a try that takes ImportError for absence): requests and
    websocket-client for its clients, which a server never runs, and redis-py, which only a server
    with REDIS_URL set uses. Leaving them out took 0.11-0.17 s off a 0.27-0.53 s import of
    Flask-SocketIO (four alternated pairs on a slow machine), at every start, while a restart's
    clients wait. chat/scaleout.py loads redis-py when REDIS_URL asks for it and hands it over
    (chat/internals.py, give_socketio_redis).
    """
    absent = _Absent(OPTIONAL_LIBRARIES)
    sys.meta_path.insert(0, absent)
    try:
        yield
    finally:
        sys.meta_path.remove(absent)


def _monkey_patch():
    """Patch the standard library for ASYNC_MODE before anything else imports socket or threading."""
    mode = os.environ.get("ASYNC_MODE") or DEFAULT_MODE
    if mode == "eventlet":
        import warnings
        warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")  # chosen by a setting
        import eventlet
        eventlet.monkey_patch()
    elif mode == "gevent":
        from gevent import monkey
        with _entry_points_read_once():
            monkey.patch_all()
    elif mode != "threading":
        sys.exit(f"papo: ASYNC_MODE must be eventlet, gevent or threading, got {mode!r}")
    return mode


if __name__ == "__main__":
    ARGS = _arguments(sys.argv[1:])
    try:
        LISTENER = _listen(ARGS.host, ARGS.port)
    except OSError as error:
        print(f"papo: cannot listen on {ARGS.host}:{ARGS.port}: {error.strerror}", file=sys.stderr)
        sys.exit(2)
    ASYNC_MODE = _monkey_patch()
    with _clients_and_redis_absent():
        from chat.server import main

    sys.exit(main(ASYNC_MODE, LISTENER))

from chat import create_app, internals  # noqa: E402

try:
    internals.check_versions()
except internals.VersionMismatch as error:
    sys.exit(f"papo: {error}")
app = create_app()
if os.environ.get("FLASK_RUN_FROM_CLI") == "true":
    from chat.server import stop_on_sigterm

    stop_on_sigterm(app)
