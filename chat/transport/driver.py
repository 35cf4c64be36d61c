"""Engine.IO's websocket driver on Papo's connections: the handshake, the session's take-over, pings on hub timers.

Engine.IO's own transport holds three green threads per WebSocket (a reader deep in the WSGI stack,
a writer fed through a queue, a ping timer) and costs every recipient of a broadcast a queue
hand-off, a switch, its own framing and its own system call. Here a packet is framed once (the
recipients of a broadcast share the frame) and written straight into each connection's outbox.
Engine.IO's Socket keeps the session: its send, receive and close run as they are. Every touch of
Engine.IO's internals goes through chat.internals.
"""
import enum
import logging

from engineio import packet as eio_packet

from chat import internals

from . import protocol
from .connection import Connection, Flusher
from .protocol import BINARY, TEXT

log = logging.getLogger(__name__)


class Step(enum.Enum):
    """Where a WebSocket is in Engine.IO's upgrade from long-polling."""

    PROBE = "probe"  # waiting for the client's "2probe"
    UPGRADE = "upgrade"  # "3probe" sent, waiting for the client's "5"
    OPEN = "open"  # the session runs on this WebSocket


def packet_frame(pkt) -> bytes:
    """The frame of an Engine.IO packet, built once however many connections it goes to."""
    cached = getattr(pkt, "frame", None)
    if cached is None:
        data = pkt.encode()
        cached = pkt.frame = (protocol.frame(data, BINARY) if isinstance(data, bytes)
                              else protocol.frame(data.encode(), TEXT))
    return cached


class OutboxQueue:
    """Stands in for an upgraded Engine.IO session's packet queue: a packet put is a frame written."""

    def __init__(self, connection: Connection):
        self.connection = connection
        self.outbox = connection.outbox

    def put(self, pkt):
        if pkt is None:  # Engine.IO closing the session
            self.connection.hang_up()
        else:
            self.outbox.write(packet_frame(pkt))

    def get(self, *args, **kwargs):
        raise IndexError("an upgraded socket has no queue to poll")

    def task_done(self):
        pass

    def join(self):
        pass

    def empty(self):
        return True


class SessionEndpoint:
    """Runs one Engine.IO session on a Connection: the upgrade's probe, then every packet."""

    def __init__(self, session):
        self.session = session
        self.step = Step.PROBE if internals.was_polling(session) else Step.OPEN

    def started(self, connection):
        if self.step is Step.OPEN:
            self._take_over(connection)

    def handle(self, connection, data) -> bool:
        """One message in the upgrade's step; False fails the connection."""
        session = self.session
        if self.step is Step.OPEN:
            if session.closed:
                return True
            try:
                session.receive(eio_packet.Packet(encoded_packet=data))
            except Exception as error:
                log.info("closing a websocket after a bad packet: %s", error)
                return False
            return True
        if self.step is Step.PROBE and data == "2probe":
            internals.mark_upgrading(session, True)
            connection.send(protocol.frame(b"3probe", TEXT))
            internals.session_queue(session).put(eio_packet.Packet(eio_packet.NOOP))  # ends the pending poll
            self.step = Step.UPGRADE
            return True
        internals.mark_upgrading(session, False)
        if self.step is Step.UPGRADE and data == "5":
            self._take_over(connection)
            return True
        return False

    def ended(self, connection):
        internals.close_session(self.session)

    def _take_over(self, connection):
        """Send what the session queued before, then let every later packet go straight out."""
        session = self.session
        queue = internals.session_queue(session)
        internals.mark_upgraded(session)
        closing = False
        while not queue.empty():
            pkt = queue.get(block=False)
            queue.task_done()
            if pkt is None:
                closing = True
            elif pkt.packet_type != eio_packet.NOOP:
                connection.send(packet_frame(pkt))
        internals.replace_session_queue(session, OutboxQueue(connection))
        self.step = Step.OPEN
        if closing:
            connection.hang_up()


class EchoEndpoint:
    """Sends every message back as it came: the conformance suite's peer (a test setting enables it)."""

    def started(self, connection):
        pass

    def handle(self, connection, data) -> bool:
        if isinstance(data, str):
            connection.send(protocol.frame(data.encode(), TEXT))
        else:
            connection.send(protocol.frame(data, BINARY))
        return True

    def ended(self, connection):
        pass


class Transport:
    """The transport's process-wide parts: the hub, the flusher, the limits."""

    def __init__(self, hub, max_bytes: int, max_connections: int | None):
        self.hub = hub
        self.flusher = Flusher(hub)
        self.max_bytes = max_bytes
        self.max_connections = max_connections

    def accept(self, environ, start_response, endpoint):
        """Answer a WSGI request's opening handshake and hand the connection to the hub, or refuse it."""
        detach = environ.get("papo.detach")
        if detach is None:
            raise RuntimeError("Papo's WebSockets need Papo's own server: python app.py")
        refused = protocol.refusal(environ)
        if refused is None and self.max_connections and len(Connection.open) >= self.max_connections:
            refused = "503 Service Unavailable", [], b"the server holds as many connections as it may"
        if refused is not None:
            status, headers, body = refused
            start_response(status, [("Connection", "close"), ("Content-Type", "text/plain")] + headers)
            return [body]
        detach()
        connection = Connection(environ["papo.socket"], self.flusher, self.max_bytes, endpoint)
        connection.send(protocol.accept_response(environ["HTTP_SEC_WEBSOCKET_KEY"]))  # out with the first frames
        connection.start()
        self.hub.responded()
        return internals.answered_websocket()


def install(eio, hub, max_connections=None) -> Transport:
    """Serve Engine.IO's WebSockets on the hub, and ping every session from a hub timer."""
    transport = Transport(hub, int(eio.max_http_buffer_size), max_connections)

    class WebSocketDriver:
        """Engine.IO's `websocket` driver: answers the handshake and gives the connection to the hub."""

        def __init__(self, handler, server):
            self.session = internals.session_of_handler(handler)

        def __call__(self, environ, start_response):
            return transport.accept(environ, start_response, SessionEndpoint(self.session))

    internals.replace_websocket_driver(eio, WebSocketDriver)

    def fitted(on_open):
        def connect(sid, environ):
            session = internals.session(eio, sid)
            if session is not None:
                internals.replace_ping_schedule(session, hub.later)
            return on_open(sid, environ)

        return connect

    internals.wrap_connect_handler(eio, fitted)
    internals.send_packets_straight(eio, OutboxQueue, packet_frame)
    return transport


def echo_app(transport: Transport):
    """A WSGI app that echoes every WebSocket message: for the conformance suite only."""

    def app(environ, start_response):
        return transport.accept(environ, start_response, EchoEndpoint())

    return app

