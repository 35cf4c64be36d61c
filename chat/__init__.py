"""Papo: a real-time chat, notification and monitoring server on Flask-SocketIO."""
import logging
import os

from flask import Flask
from flask_socketio import SocketIO

from . import api, audit, cli, config, events, pages, security, sse, transport
from .auth import Identity
from .extension import Papo
from .limits import Guard, RateLimiter
from .manager import LocalManager
from .metrics import Metrics
from .monitor import Monitor
from .presence import Presence
from .service import ChatService
from .sessions import Fanout, Lifetimes, Sessions
from .store import Store

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class SocketIOBroadcaster:
    """Hands the service's outgoing events to Flask-SocketIO (and so to every process when scaled)."""

    def __init__(self, socketio):
        self.socketio = socketio

    def emit(self, event, data, to, skip=None):
        self.socketio.server.emit(event, data, to=to, skip_sid=skip or None, namespace="/")

    def enter(self, sid, channel):
        self.socketio.server.enter_room(sid, channel, namespace="/")

    def exit(self, sid, channel):
        self.socketio.server.leave_room(sid, channel, namespace="/")


def create_app(test_config=None, async_mode="threading"):
    """Build the app: settings, storage, services, the Socket.IO server and the blueprints."""
    app = Flask(__name__, instance_path=os.path.join(ROOT, "instance"),
                template_folder=os.path.join(ROOT, "templates"), static_folder=os.path.join(ROOT, "static"))
    settings = config.load(app.instance_path, overrides=test_config)
    logging.basicConfig(level=settings.LOG_LEVEL, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    app.config.update(SECRET_KEY=settings.SECRET_KEY, MAX_CONTENT_LENGTH=settings.MAX_FRAME_BYTES,
                      SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax", **settings.extra)

    store = Store(settings.DATABASE_URL, async_mode=async_mode)
    store.migrate()
    scaled = None
    if settings.REDIS_URL:
        from . import scaleout  # loads redis-py, which a server of one process never needs

        scaled = scaleout.Cluster(settings.REDIS_URL)
    socketio = SocketIO(app, async_mode=async_mode, client_manager=scaled.queue if scaled else LocalManager(),
                        cors_allowed_origins=audit.checked_origins(settings.CORS_ALLOWED_ORIGINS),
                        max_http_buffer_size=settings.MAX_FRAME_BYTES, manage_session=False, json=events.CompactJson,
                        ping_interval=settings.PING_INTERVAL, ping_timeout=settings.PING_TIMEOUT,
                        serializer=events.JsonPacket)
    websockets = transport.install(socketio.server.eio, async_mode, settings)
    limiter = RateLimiter(settings.RATE_BURST, settings.RATE_PER_SECOND)
    metrics = Metrics()
    broadcaster = metrics.instrument(SocketIOBroadcaster(socketio), socketio.server.manager)
    service = ChatService(store, scaled.presence if scaled else Presence(), broadcaster, limiter)
    guard = Guard(settings)
    service.max_rooms = settings.MAX_ROOMS_PER_CONNECTION
    sessions = Sessions(store, settings.TOKEN_TTL)
    sessions.live = Lifetimes(socketio.server, settings.TOKEN_TTL, socketio.start_background_task, socketio.sleep,
                              sessions)
    identity = Identity(store, settings.SECRET_KEY, settings.TOKEN_TTL, throttle=guard.logins,
                        hash_method=settings.PASSWORD_HASH, sessions=sessions)
    monitor = Monitor(socketio, metrics, service.presence, store)
    app.extensions["papo"] = Papo(settings, store, service, identity, socketio, guard=guard, metrics=metrics,
                                  monitor=monitor)

    events.register(socketio, app, hook=metrics)
    metrics.install(app, socketio, service.presence)
    monitor.register()
    app.register_blueprint(api.bp)
    app.register_blueprint(pages.bp)
    security.install(app, settings, api.bp)
    sse.install(app, socketio, websockets, settings)  # GET /api/stream: Server-Sent Events
    transport.guard(app, websockets, settings)  # last: in front of every other layer
    app.cli.add_command(cli.notify)
    if scaled:
        scaled.start(service, socketio.server)
    if settings.REDIS_URL:
        sessions.fanout = Fanout(settings.REDIS_URL, sessions)
        socketio.start_background_task(sessions.fanout.listen, socketio.sleep)
    return app
