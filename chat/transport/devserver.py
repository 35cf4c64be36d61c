"""WebSockets under the threading development server: simple-websocket's edges, fixed where Engine.IO uses it.

An oversized frame is refused as it arrives instead of being buffered whole; a reader never sleeps
through its own connection's close; a client's close is answered before TCP ends, and never
before a message already on its way; and the TCP connection ends with the WebSocket, where the WSGI
server would otherwise read on for another HTTP request, without a reset that would drop what the
client has not yet read.
"""
import selectors
import socket
import struct
import time

from chat import internals

CLOSE_ANSWER_WAIT = 2.0  # seconds simple-websocket's reader gets to answer the client's close frame
HANG_UP_WAIT = 2.0  # seconds an ended connection reads what the client still sends, until it hangs up


def harden(eio, max_bytes: int):
    """Wrap Engine.IO's simple-websocket driver, if it is the one serving this server's WebSockets."""
    make_websocket = internals.simple_websocket_driver(eio)
    if make_websocket is None:
        return

    class HardenedWebSocket:
        def __init__(self, handler, server):
            def ordered(driver):  # Engine.IO's handler, called once the driver has made its connection
                internals.order_simple_websocket_sends(internals.simple_websocket_of(driver))
                return handler(driver)

            self.inner = make_websocket(ordered, server)
            internals.limit_simple_websocket_messages(self.inner, max_bytes)
            internals.replace_simple_websocket_wait(self.inner, self.wait)

        def __call__(self, environ, start_response):
            try:
                return self.inner(environ, start_response)
            finally:
                end_websocket(internals.simple_websocket_of(self.inner), environ, max_bytes)

        def wait(self):
            """The next message, or None once the connection is closed (checked every second)."""
            import simple_websocket

            ws = internals.simple_websocket_of(self.inner)
            while True:
                try:
                    data = ws.receive(timeout=1)
                except simple_websocket.ConnectionClosed:
                    return None
                if data is not None:
                    return data
                if not ws.connected:
                    return None

    internals.replace_websocket_driver(eio, HardenedWebSocket)


def end_websocket(ws, environ, max_bytes: int):
    """End the TCP connection under a simple-websocket connection (None: no handshake), reset if it overflowed."""
    overflowed = ws is not None and internals.simple_websocket_overflowed(ws, max_bytes)
    if ws is not None and not overflowed:
        # The reader thread marks the connection closed before it sends its answer to the client's
        # close frame: shutting TCP down now would drop the answer (RFC 6455 7.1.2).
        internals.join_simple_websocket_reader(ws, CLOSE_ANSWER_WAIT)
    end_connection(environ, abort=overflowed)


def end_connection(environ, abort=False):
    """Shut the client's TCP connection down, whichever WSGI server holds it.

    Our side is shut first and the client's last bytes read until it hangs up (or HANG_UP_WAIT
    passes): a socket closed with input unread, or closed before input arrives, makes the kernel
    reset the connection and throw away what the client has not yet received, such as a close frame
    queued behind a long message. `abort` resets it at once: a client still pushing an oversized
    frame at a closed window would otherwise wait for the window to open again until the kernel
    gives up on the orphan.
    """
    sock = environ.get("werkzeug.socket")
    if sock is None:
        stream = environ.get("wsgi.input")
        raw = getattr(getattr(stream, "rfile", stream), "raw", None)
        sock = getattr(raw, "_sock", None)
    try:
        if abort:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        else:
            sock.shutdown(socket.SHUT_WR)
            _read_until_hung_up(sock, HANG_UP_WAIT)
        sock.shutdown(socket.SHUT_RDWR)
    except (AttributeError, OSError):
        pass


def _read_until_hung_up(sock, seconds: float):
    """Read and drop what the client sends until it closes its side or `seconds` pass."""
    deadline = time.monotonic() + seconds
    with selectors.DefaultSelector() as selector:
        selector.register(sock, selectors.EVENT_READ)
        while (left := deadline - time.monotonic()) > 0 and selector.select(left):
            if not sock.recv(65536):
                return


def echo_app(max_bytes: int):
    """A WSGI app that echoes every WebSocket message through simple-websocket: for the conformance suite only."""

    def app(environ, start_response):
        import simple_websocket

        ws = simple_websocket.Server(environ, max_message_size=max_bytes)
        internals.order_simple_websocket_sends(ws)
        try:
            while True:
                data = ws.receive(timeout=1)
                if data is not None:
                    ws.send(data)
                elif not ws.connected:
                    break
        except simple_websocket.ConnectionClosed:
            pass
        finally:
            end_websocket(ws, environ, max_bytes)
        raise ConnectionError("the WebSocket is over")  # werkzeug then writes no HTTP response of its own

    return app
