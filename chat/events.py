"""Socket.IO adapter: take a payload, call the service, answer with the contract's ack."""
import functools
import logging

from flask import request
from flask_socketio import ConnectionRefusedError

from .auth import socket_user
from .errors import ChatError
from .extension import papo

log = logging.getLogger(__name__)


def register(socketio):
    """Attach every chat event handler to the server: the one table of the `/` namespace."""
    socketio.on_event("connect", on_connect)
    socketio.on_event("disconnect", on_disconnect)
    for name, handler in HANDLERS.items():
        socketio.on_event(name, acked(handler))
    socketio.on_event("*", on_unknown)


def on_connect(auth=None):
    user = socket_user(auth)
    if user is None:
        raise ConnectionRefusedError("unauthorized", {"code": "unauthorized"})
    try:
        papo().guard.admit(request.sid, user)
    except ChatError as error:
        raise ConnectionRefusedError(error.code, error.body()) from None
    try:
        papo().service.connect(request.sid, user)
    except BaseException:
        papo().guard.release(request.sid)
        raise


def on_disconnect(reason=None):
    papo().guard.release(request.sid)
    papo().service.disconnect(request.sid)


def spend():
    """Count one event against this connection's and its user's request buckets."""
    user = papo().service.presence.user_of(request.sid)
    papo().guard.spend(request.sid, user)


def on_unknown(event, *args):
    try:
        spend()
    except ChatError as error:
        return error.ack()
    return ChatError("invalid_payload", f"there is no event named {str(event)[:64]!r}").ack()


def acked(handler):
    """Turn a handler's result into `{"ok": true, ...}` and any refusal into the contract's error ack."""

    @functools.wraps(handler)
    def answer(*args):
        payload = args[0] if args else None
        try:
            spend()
            if not isinstance(payload, dict):
                raise ChatError("invalid_payload", "the payload must be a JSON object")
            return {"ok": True, **(handler(payload) or {})}
        except ChatError as error:
            return error.ack()
        except Exception:
            log.exception("event %s failed", handler.__name__)
            return ChatError("unavailable", "the server could not complete this; try again").ack()

    return answer


def on_join(payload):
    return papo().service.join(request.sid, payload.get("room"), payload.get("since"))


def on_leave(payload):
    papo().service.leave(request.sid, payload.get("room"))


def on_message(payload):
    message, _ = papo().service.send(request.sid, payload.get("room"), payload.get("text"),
                                     payload.get("client_id"))
    return {"message": message}


def on_typing(payload):
    papo().service.typing(request.sid, payload.get("room"), payload.get("typing"))


def on_history(payload):
    return papo().service.history(payload.get("room"), payload.get("before"), payload.get("limit"), user())


def on_direct(payload):
    user = papo().service.presence.user_of(request.sid)
    message, _ = papo().service.direct(user, payload.get("to"), payload.get("text"), payload.get("client_id"))
    return {"message": message}


def on_direct_history(payload):
    return papo().service.direct_history(user(), payload.get("with"), payload.get("before"), payload.get("limit"))


def on_create_room(payload):
    return papo().service.create_room(user(), payload.get("room"), payload.get("private", True))


def on_invite(payload):
    return papo().service.invite(user(), payload.get("room"), payload.get("user"))


def user():
    """The user of this connection."""
    return papo().service.presence.user_of(request.sid)


HANDLERS = {
    "join": on_join,
    "leave": on_leave,
    "message": on_message,
    "typing": on_typing,
    "history": on_history,
    "direct": on_direct,
    "direct_history": on_direct_history,
    "create_room": on_create_room,
    "invite": on_invite,
}
