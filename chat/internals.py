"""The one place where Papo touches other libraries' private internals, each hook checked against its version.

Every function here reaches past a library's documented interface: an attribute, a module or a
method body it may change in any release. WRITTEN_FOR names the exact versions each hook was read
against; check_versions() stops start-up when the installed ones differ, and a test fails when
requirements.txt pins another version without this table (and the hooks) being re-checked.
"""
import contextlib
import functools
import importlib.metadata
import logging
import sys
import threading
import time
import weakref
from collections.abc import Sequence
from typing import Any

from engineio import packet as engineio_packet

from .http_head import HeadError

# {distribution: the version whose source the hooks below were read against}
WRITTEN_FOR = {
    "python-engineio": "4.15.1",  # the websocket driver table, connect handler, send_packet, a session's queue
    "python-socketio": "5.18.1",  # event dispatch; the client manager's rooms, callbacks and pending tables
    "simple-websocket": "1.1.0",  # the development server's reader thread and message size
    "eventlet": "0.41.3",  # the WSGI server's connection state, a green socket's descriptor
    "gevent": "26.9.0",  # a green socket's OS socket, the WSGI handler's header class and fields, a pool's semaphore
    "psycopg": "3.3.9",  # the wait function its connections block in; an error from a libpq result
}


log = logging.getLogger(__name__)


class VersionMismatch(RuntimeError):
    """An installed library is not the version the hooks were written for."""


def check_versions(installed=None):
    """Raise VersionMismatch, in one line, when an installed library differs from WRITTEN_FOR."""
    installed = installed if installed is not None else _installed()
    wrong = [f"{name} {installed[name]} (hooks written for {version})"
             for name, version in WRITTEN_FOR.items() if installed.get(name) not in (None, version)]
    if wrong:
        raise VersionMismatch("chat/internals.py must be re-checked against " + ", ".join(wrong))


def _installed():
    found = {}
    for name in WRITTEN_FOR:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            found[name] = importlib.metadata.version(name)
    return found


# python-engineio: the server


def give_socketio_redis(redis_module) -> None:
    """Give python-socketio's Redis manager redis-py, where it was imported while redis-py looked absent (app.py)."""
    from socketio import redis_manager

    if redis_manager.redis is None:
        redis_manager.redis = redis_module
        redis_manager.RedisError = redis_module.exceptions.RedisError


def replace_websocket_driver(eio, driver):
    """Make Engine.IO build `driver(handler, server)` for every WebSocket; the driver it replaces."""
    drivers = dict(eio._async)
    previous = drivers.get("websocket")
    drivers["websocket"] = driver
    eio._async = drivers
    return previous


def answered_websocket() -> tuple:
    """What a websocket driver that wrote its own 101 returns, so that Engine.IO adds no answer of its own.

    Engine.IO's upgrade of a polling session (`Socket.handle_get_request` to `Server.handle_request`)
    takes a list from the driver for packets and answers them with 200 OK; anything else it passes
    on untouched as the WSGI response. gevent.pywsgi wrote that 200 before the 101 (eventlet.wsgi
    writes nothing once told the response was written): an empty tuple is an empty response either way.
    """
    return ()


def wrap_connect_handler(eio, wrap):
    """Replace Engine.IO's connect handler (python-socketio's) with wrap(handler)."""
    eio.handlers["connect"] = wrap(eio.handlers["connect"])


def send_packets_straight(eio, queue_type, frame_of):
    """Make Engine.IO's send_packet, the path of every emit, write frame_of(pkt) straight into a queue_type's outbox.

    Engine.IO's own checks the ping timeout and logs on every send; its service task checks
    timeouts anyway, and a broadcast would pay both once per recipient. Sessions whose queue is
    not a queue_type (long-polling ones) keep the original path.
    """
    sockets, queued_send = eio.sockets, eio.send_packet

    def send_packet(sid, pkt):
        session = sockets.get(sid)
        if session is not None and type(queue := session.queue) is queue_type and not session.closed:
            queue.outbox.write(frame_of(pkt))
        else:
            queued_send(sid, pkt)

    eio.send_packet = send_packet


def session(eio, sid):
    """The Engine.IO session (engineio.socket.Socket) of a sid, or None."""
    return eio.sockets.get(sid)


def sessions(eio):
    """Every Engine.IO session of the process, as a list."""
    return list(eio.sockets.values())


def session_of_handler(handler):
    """The session whose _websocket_handler Engine.IO passes to a websocket driver."""
    return handler.__self__


# python-engineio: one session's upgrade, queue and pings


def session_queue(session):
    """The queue Engine.IO puts a session's outgoing packets in."""
    return session.queue


def replace_session_queue(session, queue):
    """Give the session another packet queue (an object with put, get, empty, task_done, join)."""
    session.queue = queue


def was_polling(session) -> bool:
    """Whether the session began on long-polling (so a WebSocket upgrades it)."""
    return session.connected


def mark_upgrading(session, upgrading: bool):
    """Hold (True) or release (False) the session's polling answers during an upgrade."""
    session.upgrading = upgrading


def mark_upgraded(session):
    """Record that the session now runs on its WebSocket."""
    session.connected = session.upgraded = True
    session.upgrading = False


def session_ended(session) -> bool:
    """Whether the session is closing or closed."""
    return session.closing or session.closed


def replace_ping_schedule(session, every):
    """Make the session schedule each ping with every(seconds, ping) instead of a green thread of its own.

    Engine.IO calls schedule_ping() once the session opens and again after each pong; the ping
    sent is its own PING packet, with last_ping set as its timeout check expects.
    """
    interval = session.server.ping_interval

    def ping():
        if session.closing or session.closed:
            return
        try:
            session.last_ping = time.time()
            session.send(engineio_packet.Packet(engineio_packet.PING))
        except Exception:
            log.exception("ping failed")

    def schedule_ping():
        if session.last_ping:
            session.last_ping = None
            session.ping_timer = every(interval, ping)

    session.schedule_ping = schedule_ping


def close_session(session):
    """Close the session at once, as Engine.IO does when its transport ends."""
    session.upgrading = False
    session.close(wait=False, abort=True, reason=session.server.reason.TRANSPORT_CLOSE)


def is_polling(session) -> bool:
    """Whether the session runs on long-polling (not upgraded to a WebSocket)."""
    return not session.upgraded


def forget_closed_session(eio, sid: str) -> None:
    """Drop a session that has closed but is still listed, as Engine.IO's own lookup (_get_socket) does.

    Engine.IO forgets a closed session at the next request that looks it up, but a polling POST's
    lookup raises KeyError('Session is disconnected') for it instead of answering: a 500 and a
    traceback for a client that sent its close packet and one more request. Forgotten first, the
    request gets Engine.IO's answer to any unknown session, 400 "Invalid session".
    """
    session = eio.sockets.get(sid)
    if session is not None and session.closed:
        del eio.sockets[sid]


def close_polling_session(session):
    """Close a long-polling session so that its pending poll answers with Engine.IO's close packet."""
    session.close(wait=False, abort=False)


# python-engineio and simple-websocket: the development server's WebSockets


def simple_websocket_driver(eio):
    """Engine.IO's simple-websocket driver class if it serves this server's WebSockets, else None."""
    from engineio.async_drivers._websocket_wsgi import SimpleWebSocketWSGI

    driver = eio._async.get("websocket")
    return driver if isinstance(driver, type) and issubclass(driver, SimpleWebSocketWSGI) else None


def limit_simple_websocket_messages(driver_instance, max_bytes: int):
    """Make simple-websocket refuse a message over max_bytes as it arrives (its Server's max_message_size)."""
    driver_instance.server_args["max_message_size"] = max_bytes


def replace_simple_websocket_wait(driver_instance, wait):
    """Make Engine.IO's reader call wait() for the next message (None once the connection is over)."""
    driver_instance.wait = wait


def simple_websocket_of(driver_instance):
    """The simple_websocket.Server a driver made for its request, or None before the handshake."""
    return getattr(driver_instance, "ws", None)


def simple_websocket_overflowed(ws, max_bytes: int) -> bool:
    """Whether the connection ended on a message over max_bytes."""
    return getattr(ws, "incoming_message_len", 0) > max_bytes


def order_simple_websocket_sends(ws):
    """Make a simple_websocket connection's frames leave in the order wsproto makes them, from either thread.

    simple-websocket makes a frame with wsproto, then writes it: on the app's thread (send, close)
    and on its reader thread (_handle_events, which answers the client's pings and close at once).
    A close answered between the two steps of a send went out first, and the message the send had
    made after it, which RFC 6455 5.5.1 forbids. One lock per connection makes each step pair whole.
    """
    lock = threading.Lock()

    def ordered(method):
        @functools.wraps(method)
        def call(*args, **kwargs):
            with lock:
                return method(*args, **kwargs)
        return call

    for name in ("send", "close", "_handle_events"):
        setattr(ws, name, ordered(getattr(ws, name)))


def join_simple_websocket_reader(ws, timeout: float):
    """Wait for simple-websocket's reader thread, which sends the answer to a client's close frame, to end."""
    thread = getattr(ws, "thread", None)
    if thread is not None:
        thread.join(timeout)


# python-socketio: the server


def handle_events_in_turn(server, turns, spawn=None):
    """Run each connection's Socket.IO events in the order it sent them, its messages in tasks of their own.

    Replaces Server._handle_event, whose async_handlers would start a task per event in no kept
    order (and without them run each event in turn on the connection's reader). Here a `message`
    takes its place in the connection's line on the reader, and its task waits for its turn
    (chat.turns); any other event waits, on the reader, for the connection's messages before it to
    end, then runs there. spawn(fn) starts a message's task (by default server.start_background_task).
    """
    manager = server.manager
    spawn = spawn or server.start_background_task

    def handle_event(eio_sid, namespace, id, data):
        namespace = namespace or "/"
        sid = manager.sid_from_eio_sid(eio_sid, namespace)
        if not manager.is_connected(sid, namespace):
            return
        if data and data[0] == "message":
            turn = turns.message(sid)
            if server.async_handlers:
                spawn(functools.partial(_message_in_turn, server, turns, turn, sid, eio_sid, data, namespace, id))
            else:  # Flask-SocketIO's test client asks for every event to be handled before emit returns
                _message_in_turn(server, turns, turn, sid, eio_sid, data, namespace, id)
        else:
            turns.wait_until_drained(sid)
            server._handle_event_internal(server, sid, eio_sid, data, namespace, id)

    server._handle_event = handle_event


def after_connect(server, then) -> None:
    """Call then(sid) once a connection's CONNECT packet is written, before its next packet is read.

    python-socketio writes CONNECT after the connect handler returns; what then() sends follows it,
    in the same flush of the connection's frames.
    """
    handle_connect = server._handle_connect
    manager = server.manager

    def handle_connect_then(eio_sid, namespace, data):
        handle_connect(eio_sid, namespace, data)
        namespace = namespace or "/"
        sid = manager.sid_from_eio_sid(eio_sid, namespace)
        if sid is not None:  # None: refused
            then(sid)

    server._handle_connect = handle_connect_then


def _message_in_turn(server, turns, turn, sid, eio_sid, data, namespace, id):
    try:
        turns.start(turn)
        server._handle_event_internal(server, sid, eio_sid, data, namespace, id)
    finally:  # even a task killed while it waited lets the connection's next message go
        turns.end(turn)


# python-socketio: the client manager


def forget_connection(manager, sid, namespace):
    """Drop a disconnected sid's pending callbacks and pending connect/disconnect marks (basic_disconnect's tail)."""
    manager.callbacks.pop(sid, None)
    for pending in (manager.pending_connect, manager.pending_disconnect):
        sids = pending.get(namespace)
        if sids is not None and sid in sids:
            sids.remove(sid)
            if not sids:
                del pending[namespace]


def hear_emits(manager, hear):
    """Call hear(event, data, to, namespace) after each emit python-socketio delivers to this process's clients.

    Manager.emit is the delivery; a PubSubManager (the Redis queue) reaches it through _handle_emit,
    for its own emits and the other processes', and straight from emit(ignore_queue=True). A failing
    hear is logged and never stops the emit.
    """
    from socketio.pubsub_manager import PubSubManager

    def heard(event, data, to, namespace):
        try:
            hear(event, data, to, namespace or "/")
        except Exception:
            log.exception("a listener of emits failed")

    emit = manager.emit
    if isinstance(manager, PubSubManager):
        handle_emit = manager._handle_emit

        def _handle_emit(message):
            handle_emit(message)
            data = message.get("data")
            if isinstance(data, list) and len(data) == 1 and not message.get("binary"):
                data = data[0]
            heard(message.get("event"), data, message.get("room"), message.get("namespace"))

        def queued_emit(event, data, namespace=None, *args, **kwargs):
            result = emit(event, data, namespace, *args, **kwargs)
            if kwargs.get("ignore_queue"):
                heard(event, data, kwargs.get("to") or kwargs.get("room"), namespace)
            return result

        manager._handle_emit = _handle_emit
        manager.emit = queued_emit
    else:
        def local_emit(event, data, namespace=None, *args, **kwargs):
            result = emit(event, data, namespace, *args, **kwargs)
            heard(event, data, kwargs.get("to") or kwargs.get("room"), namespace)
            return result

        manager.emit = local_emit


def room_sizes(manager, namespace: str = "/") -> dict:
    """{room: connections in it} of a namespace, the connections' own rooms and None excluded."""
    rooms = getattr(manager, "rooms", None)
    if not isinstance(rooms, dict):
        return {}
    return {room: len(members) for room, members in rooms.get(namespace, {}).items()
            if room is not None and not manager.is_sid_room(namespace, room)}


def room_size(manager, namespace: str, room) -> int:
    """The number of this process's connections in a room (python-socketio's room table), 0 when unknown."""
    rooms = getattr(manager, "rooms", None)
    return len(rooms.get(namespace, {}).get(room) or ()) if isinstance(rooms, dict) else 0


def transports(eio) -> dict:
    """{"websocket": n, "polling": n}: this process's open Engine.IO sessions by transport."""
    counts = {"websocket": 0, "polling": 0}
    for eio_session in list(eio.sockets.values()):
        if not eio_session.closed:
            counts["websocket" if eio_session.upgraded else "polling"] += 1
    return counts


# eventlet and gevent: green sockets and the WSGI servers


def eventlet_os_socket(conn):
    """The OS socket under an eventlet green socket."""
    return conn.fd


def gevent_os_socket(conn):
    """The OS socket under a gevent green socket."""
    return conn._sock


def eventlet_response_written():
    """Tell eventlet.wsgi that the application wrote its own response, so it writes none."""
    import eventlet.wsgi

    eventlet.wsgi.WSGI_LOCAL.already_handled = True


def request_version(environ) -> str:
    """The HTTP version of the request line ("HTTP/1.1"), from the server's handler behind `papo.detach`.

    eventlet.wsgi puts "HTTP/1.0" in SERVER_PROTOCOL whatever the client sent; its handler (http.server's)
    and gevent.pywsgi's both keep the request's own as request_version.
    """
    handler = getattr(environ.get("papo.detach"), "__self__", None)
    version = getattr(handler, "request_version", None)
    return version if isinstance(version, str) else environ.get("SERVER_PROTOCOL", "HTTP/1.0")


def gevent_pool_on_kept_threads(size: int, start):
    """A gevent Pool bounding the WSGI server's handlers at `size`, each run by start(task), not a new Greenlet.

    start is GreenTasks.start: a finished green thread is kept for the next task, so a connection's
    handler neither builds a Greenlet nor maps and unmaps its 16 KB of frames (two system calls and a
    TLB flush on every core; 6% of a connection's CPU, measured). gevent's server watches the pool's
    semaphore (full(), and a link to accept again once a slot frees), so each task holds one slot.
    """
    from gevent.pool import Pool

    class KeptPool(Pool):
        def spawn(self, func, *args, **kwargs):
            semaphore = self._semaphore
            semaphore.acquire()  # never waits: the server asks full() before it accepts

            def task():
                try:
                    func(*args, **kwargs)
                finally:
                    semaphore.release()

            start(task)

        def free_count(self):
            return self._semaphore.counter  # the Pool counts its Greenlets, and here there are none

    return KeptPool(size)


def gevent_fields(fp, read_fields):
    """gevent.pywsgi's header object (its OldMessage) filled by `read_fields(readline, message_class)`.

    A head that read_fields refuses (http_head.HeadError) comes back empty with the `status` that
    gevent's WSGIHandler answers with 400, as it does for a line too long.
    """
    message_class = _gevent_message_class()
    try:
        return read_fields(fp.readline, message_class)
    except HeadError as error:
        refused = message_class()
        refused.status = error.reason
        return refused


def gevent_environ_fields(fields):
    """(HTTP_NAME, value) of each field, as gevent's WSGIHandler._headers gives them for get_environ.

    gevent formats every field into a header line and splits it again (its fields may be folded over
    lines; read_fields refuses those). A field whose name has an underscore is left out, as gevent does.
    """
    for name, value in fields._headers:
        if "_" not in name:
            key = name.replace("-", "_").upper()
            if key != "CONTENT_TYPE" and key != "CONTENT_LENGTH":
                yield "HTTP_" + key, value.strip()


@functools.cache
def _gevent_message_class():
    """gevent.pywsgi's OldMessage, without the email package's policy on each field stored and read.

    read_fields stores only what it has checked (a token, then latin-1 text without CR or NUL), which
    the policy (compat32) would return unchanged; gevent reads six fields of a request by name.
    """
    from gevent.pywsgi import OldMessage

    class Fields(OldMessage):
        def __setitem__(self, name, value):
            self._headers.append((name, value))

        def get(self, name, failobj=None):
            name = name.lower()
            for key, value in self._headers:
                if key.lower() == name:
                    return value
            return failobj

    return Fields


def eventlet_keep_socket(protocol, stand_in):
    """Make eventlet.wsgi close `stand_in` instead of the connection's socket when its green thread ends."""
    protocol.conn_state[1] = stand_in


# psycopg


def psycopg_waits_cooperatively():
    """Under eventlet or gevent, make psycopg wait through the event loop on its thread, and block elsewhere.

    psycopg's C wait calls poll() itself, unseen by eventlet, so every query of a green thread would
    stall every other (psycopg notices gevent's patching by itself, not eventlet's). The store's
    PostgreSQL writer is an OS thread of its own, where a green wait has no loop to wait on: it
    blocks in psycopg's own wait, the GIL let go.
    """
    from psycopg import waiting

    if getattr(waiting.wait, "__qualname__", "").startswith("psycopg_waits_cooperatively"):
        return  # installed already
    eventlet_patcher = sys.modules.get("eventlet.patcher")
    gevent_monkey = sys.modules.get("gevent.monkey")
    if eventlet_patcher and eventlet_patcher.is_monkey_patched("select"):
        green, thread_ident = waiting.wait_select, eventlet_patcher.original("_thread").get_ident
    elif gevent_monkey and gevent_monkey.is_module_patched("select"):
        green, thread_ident = waiting.wait, gevent_monkey.get_original("_thread", "get_ident")
    else:
        return
    blocking = getattr(waiting, "wait_c", None) or waiting.wait_selector
    loop_thread = thread_ident()

    def wait(gen, fileno, *args, **kwargs):
        return (green if thread_ident() == loop_thread else blocking)(gen, fileno, *args, **kwargs)

    waiting.wait = wait


_PG_INTEGERS = {20, 21, 23}  # the type OIDs of int8, int2, int4
_pg_prepared: "weakref.WeakKeyDictionary[Any, set[str]]" = weakref.WeakKeyDictionary()  # connection -> names


def pg_prepared_rows(conn, name: str, sql: str, params: Sequence[str]) -> list[tuple]:
    """Run sql ($1, $2... placeholders; prepared once per connection as `name`) in one blocking libpq call.

    psycopg's execute sends, waits and reads in steps, and lets the GIL go at each: on an OS thread beside
    a busy event loop every step then waits up to the switch interval to have it back. PQexecPrepared
    lets it go once. Only for a connection in autocommit mode on an OS thread of its own (the PostgreSQL
    writer): it blocks that thread. Parameters are text; integer columns come back as int, the others
    as str. Errors are psycopg's own, made from the result as psycopg makes them (errors.error_from_result).
    """
    from psycopg import pq

    encoding = conn.info.encoding
    values = [value.encode(encoding) for value in params]
    result = _pg_run_prepared(conn, name, sql, values, encoding)
    if (result.status == pq.ExecStatus.FATAL_ERROR
            and result.error_field(pq.DiagnosticField.SQLSTATE) == b"26000"):
        _pg_prepared[conn].discard(name)  # the server forgot it (DEALLOCATE ALL, a pooler): prepare it again
        result = _pg_run_prepared(conn, name, sql, values, encoding)
    _pg_check(conn.pgconn, result, encoding)
    columns = range(result.nfields)
    integers = [result.ftype(column) in _PG_INTEGERS for column in columns]
    rows = ([result.get_value(index, column) for column in columns] for index in range(result.ntuples))
    return [tuple(None if field is None else int(field) if integer else field.decode(encoding)
                  for field, integer in zip(row, integers, strict=True)) for row in rows]


def _pg_run_prepared(conn, name: str, sql: str, values: list[bytes], encoding: str):
    """The result of running the statement prepared as `name` on conn, preparing it first if conn has not."""
    pgconn = conn.pgconn
    names = _pg_prepared.setdefault(conn, set())
    if name not in names:
        _pg_check(pgconn, pgconn.prepare(name.encode(), sql.encode(encoding)), encoding)
        names.add(name)
    return pgconn.exec_prepared(name.encode(), values)


def _pg_check(pgconn, result, encoding: str) -> None:
    """Raise what psycopg would for a failed result: OperationalError once the connection is lost."""
    from psycopg import OperationalError, errors, pq

    if result.status in (pq.ExecStatus.COMMAND_OK, pq.ExecStatus.TUPLES_OK):
        return
    if pgconn.status != pq.ConnStatus.OK:
        raise OperationalError(result.get_error_message(encoding) or "the connection to PostgreSQL was lost")
    raise errors.error_from_result(result, encoding=encoding)
