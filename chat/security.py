"""Wiring that keeps the web side safe: headers and CSP, CSRF on forms, cookies, proxies, HTTP rate limits.

create_app calls install() once; docs/security.md says what each part promises and which test proves it.
"""
import base64
import binascii
import functools
import io
from urllib.parse import parse_qs

from flask import request
from markupsafe import escape
from flask.sessions import SecureCookieSessionInterface
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.middleware.proxy_fix import ProxyFix

from . import internals
from .auth import current_user
from .extension import papo

# No inline script or style anywhere: pages carry data in data- attributes, and static/ holds the code.
CONTENT_SECURITY_POLICY = "; ".join((
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "font-src 'self'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
))
HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
}
HSTS = "max-age=31536000"
UNLIMITED_PATHS = ("/static/", "/healthz", "/metrics")  # cheap, and watched by monitors that must not be refused


class SessionCookies(SecureCookieSessionInterface):
    """The signed session cookie, HttpOnly and SameSite=Lax, Secure as SECURE_COOKIES says."""

    def get_cookie_secure(self, app):
        mode = app.config["PAPO_SECURE_COOKIES"]
        return mode == "always" or (mode == "auto" and request.is_secure)


def install(app, settings, api_blueprint):
    """Wire proxies, cookies, CSRF, the HTTP rate limit and the security headers into the app.

    Call it after Flask-SocketIO is set up, so that the Engine.IO filter sits in front of it.
    """
    eio = app.extensions["socketio"].server.eio
    app.wsgi_app = EngineIOFilter(app.wsgi_app, settings.MAX_FRAME_BYTES,
                                  functools.partial(internals.forget_closed_session, eio))
    if settings.PROXY_COUNT:
        count = settings.PROXY_COUNT
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=count, x_proto=count, x_host=count, x_port=count)
    app.config.update(SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax",
                      PAPO_SECURE_COOKIES=settings.SECURE_COOKIES, WTF_CSRF_TIME_LIMIT=None)
    app.session_interface = SessionCookies()
    csrf = CSRFProtect(app)
    csrf.exempt(api_blueprint)  # JSON only: a cross-site page can neither send it nor read the answer
    app.register_error_handler(CSRFError, refuse_forged_form)
    app.before_request(limit_requests)
    app.after_request(add_headers)


def limit_requests():
    """Spend a request token for the user (or the caller's address when anonymous); 429 when empty."""
    if request.path.startswith(UNLIMITED_PATHS):
        return
    user = current_user()
    if user:
        papo().guard.spend(user=user)
    else:
        papo().guard.spend(connection="address:" + (request.remote_addr or "unknown"))


def add_headers(response):
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    if request.is_secure:
        response.headers.setdefault("Strict-Transport-Security", HSTS)
    if request.path.startswith("/api/"):
        response.headers.setdefault("Cache-Control", "no-store")
    return response


def refuse_forged_form(error):
    """Refuse a form post without this site's CSRF token, with a way back to a fresh form."""
    page = (f'<!doctype html><meta charset="utf-8"><title>Form expired · Papo</title>'
            f'<p>This form has expired or did not come from this site. '
            f'<a href="{escape(request.path)}">Try again</a>.</p>')
    return page, 400, {"Content-Type": "text/html; charset=utf-8"}


class EngineIOFilter:
    """WSGI middleware in front of Engine.IO: refuses, with a plain 400 or 413, what Engine.IO mishandles.

    python-engineio answers an unknown packet type in a polling POST by closing the session and
    waiting for a GET that drains its queue: the POST, and its green thread, would wait forever.
    A non-UTF-8 body raises inside it, and eventlet's WebSocket handshake raises (500) without a
    Sec-WebSocket-Key; a POST to a session its client has just closed raises too (500), unless the
    closed session is forgotten first (`forget_closed(sid)`). Everything else passes untouched.
    """

    PACKET_TYPES = "1345b"  # close, pong, message, upgrade; b: a base64 binary message

    def __init__(self, wsgi_app, max_bytes, forget_closed, path="/socket.io/"):
        self.wsgi_app = wsgi_app
        self.max_bytes = max_bytes
        self.forget_closed = forget_closed
        self.path = path

    def __call__(self, environ, start_response):
        if not environ.get("PATH_INFO", "").startswith(self.path):
            return self.wsgi_app(environ, start_response)
        if environ.get("HTTP_UPGRADE", "").lower() == "websocket":
            if not environ.get("HTTP_SEC_WEBSOCKET_KEY") or environ.get("HTTP_SEC_WEBSOCKET_VERSION") != "13":
                return _plain(start_response, "400 BAD REQUEST", "a WebSocket handshake needs a key and version 13")
        elif environ.get("REQUEST_METHOD") == "POST":
            try:
                length = int(environ.get("CONTENT_LENGTH") or 0)
            except ValueError:
                return _plain(start_response, "400 BAD REQUEST", "bad Content-Length")
            if length < 0:
                return _plain(start_response, "400 BAD REQUEST", "bad Content-Length")
            if length > self.max_bytes:
                return _plain(start_response, "413 REQUEST ENTITY TOO LARGE", "payload over the size limit")
            body = environ["wsgi.input"].read(length)
            if not self.valid_payload(body):
                return _plain(start_response, "400 BAD REQUEST", "malformed Engine.IO payload")
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))
            sid = parse_qs(environ.get("QUERY_STRING", "")).get("sid")
            if sid:
                self.forget_closed(sid[0])  # the session may have closed while the body was read
        return self.wsgi_app(environ, start_response)

    @classmethod
    def valid_payload(cls, body):
        """Tell whether a polling POST body is UTF-8 packets, separated by \\x1e, of types a client may send."""
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            return False
        if not text:
            return True
        for packet in text.split("\x1e"):
            if not packet or packet[0] not in cls.PACKET_TYPES:
                return False
            if packet[0] == "b":
                try:
                    base64.b64decode(packet[1:], validate=True)
                except (binascii.Error, ValueError):
                    return False
        return True


def _plain(start_response, status, text):
    body = text.encode()
    start_response(status, [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))])
    return [body]
