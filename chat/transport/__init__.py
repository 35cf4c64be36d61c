"""Papo's WebSocket transport: RFC 6455 on the event hub under eventlet and gevent, simple-websocket under threading.

protocol    the sans-I/O RFC 6455: handshake checks, frames, the close handshake, limits, UTF-8
connection  a connection on the hub: reading, the endpoint's green thread, batched writes
hubs        the hub's services under eventlet and gevent, and a fake one for tests
driver      Engine.IO's websocket driver, session take-over and pings; the test echo endpoint
devserver   simple-websocket's fixes for the threading development server
drain       SIGTERM: closing every connection in batches within a bounded window
"""
import os

from . import devserver, driver, hubs, protocol

ECHO_PATH = "/_test/websocket-echo"


def install(eio, async_mode: str, settings) -> "driver.Transport | None":
    """Serve Engine.IO's WebSockets with this transport (eventlet, gevent), or harden simple-websocket's."""
    if async_mode == "threading":
        devserver.harden(eio, settings.MAX_FRAME_BYTES)
        return None
    hub = hubs.EventletHub() if async_mode == "eventlet" else hubs.GeventHub()
    return driver.install(eio, hub, settings.MAX_CONNECTIONS)


def guard(app, transport, settings):
    """Check every opening handshake before anything else sees it; mount the echo endpoint if a test asks.

    Call it last, after every other WSGI middleware: RFC 6455 4.2.2 and 4.4 want a 400 for a bad
    request and a 426 naming version 13 for another version, whatever the layers behind would say.
    """
    echo = None
    if echo_enabled(settings):
        echo = driver.echo_app(transport) if transport is not None else devserver.echo_app(settings.MAX_FRAME_BYTES)
    app.wsgi_app = HandshakeGuard(app.wsgi_app, echo)


def echo_enabled(settings) -> bool:
    """Whether the test setting TEST_WEBSOCKET_ECHO turns the echo endpoint on (never in production)."""
    value = getattr(settings, "TEST_WEBSOCKET_ECHO", None)
    if value is None:
        value = settings.extra.get("TEST_WEBSOCKET_ECHO", os.environ.get("TEST_WEBSOCKET_ECHO", ""))
    return str(value).lower() in ("1", "true", "yes")


class HandshakeGuard:
    """WSGI middleware: refuses a malformed WebSocket handshake with RFC 6455's answer; routes the test echo."""

    def __init__(self, wsgi_app, echo=None):
        self.wsgi_app = wsgi_app
        self.echo = echo

    def __call__(self, environ, start_response):
        if "websocket" in environ.get("HTTP_UPGRADE", "").lower() or "HTTP_SEC_WEBSOCKET_KEY" in environ:
            refused = protocol.refusal(environ)
            if refused is not None:
                status, headers, body = refused
                start_response(status, [("Content-Type", "text/plain; charset=utf-8"),
                                        ("Content-Length", str(len(body)))] + headers)
                return [body]
        if self.echo is not None and environ.get("PATH_INFO") == ECHO_PATH:
            return self.echo(environ, start_response)
        return self.wsgi_app(environ, start_response)
