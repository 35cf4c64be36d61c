"""Socket.IO adapter: take a payload, call the service, answer with the contract's ack.

The handlers are python-socketio's own, called with the connection's sid: Flask-SocketIO's
wrapper would build a Flask request context, session included, for every event, which was a
third of a message's cost. Only connect, which reads the session cookie, gets a context.
"""
import functools
import json
import logging
from collections.abc import Callable
from typing import Any

import orjson
from flask import Flask
from socketio.exceptions import ConnectionRefusedError
from socketio.packet import Packet

from . import async_modes, audit, internals
from .auth import carries_token, socket_session
from .errors import ChatError
from .extension import Papo
from .ports import EventHook
from .service import ChatService
from .turns import Turns

HANDSHAKE_JOINS = 100  # join payloads a handshake may carry (auth.join)

Answer = dict[str, Any] | None
# a handler answers, or returns what waits for work it has queued (a message's commit) and then answers
Handler = Callable[[ChatService, str, str | None, dict[str, Any]], Answer | Callable[[], Answer]]

log = logging.getLogger(__name__)


class JsonPacket(Packet):
    """Papo's Socket.IO packets: JSON only, so python-socketio need not search each payload for bytes."""

    uses_binary_events = False


class CompactJson:
    """The json module python-socketio and python-engineio are given: their packets encoded by orjson.

    A message encodes two packets (its broadcast and its ack): 2.2 µs a packet by json with one encoder
    built once, 0.2 µs by orjson (measured). orjson writes non-ASCII as UTF-8 where json escapes it,
    which decodes to the same, and a float that is not finite as null (json wrote NaN, which JSON.parse
    refuses; Papo's own floats are finite). What orjson refuses to encode (a lone surrogate, a key that
    is not a string, an integer past 64 bits) json encodes, as before. Decoding stays json's: orjson
    reads an integer past 64 bits as a float, which would change what a client's payload means.
    """

    loads = staticmethod(json.loads)

    @staticmethod
    def dumps(obj: Any, **options: Any) -> str:
        """Encode as json.dumps(obj, **options) does, to the same value."""
        if options == _COMPACT:
            try:
                return orjson.dumps(obj).decode()
            except TypeError:  # orjson.JSONEncodeError is one
                pass
        return json.dumps(obj, **options)


_COMPACT = {"separators": (",", ":")}


class _Uncounted:
    """The hook of an app without instrumentation: counts nothing."""

    def counter(self, event: str) -> Callable[[], None]:
        return _nothing

    def refused(self, code: str | None) -> None:
        pass


def _nothing() -> None:
    pass


def register(socketio: Any, app: Flask, hook: EventHook | None = None) -> None:
    """Attach every chat event handler to the server: the one table of the `/` namespace.

    hook hears of each event received and of each refusal (chat.metrics counts them).
    """
    parts = app.extensions["papo"]
    hook = hook or _Uncounted()
    server = socketio.server
    turns = Turns(server.eio.create_event)
    green = server.async_mode in async_modes.GREEN_MODES
    internals.handle_events_in_turn(server, turns, async_modes.green_tasks(server.async_mode).start if green else None)
    answers = {name: acked(parts, turns, handler, hook.counter(name), hook.refused)
               for name, handler in HANDLERS.items()}
    handshake = HandshakeJoins(server, turns, answers["join"])
    internals.after_connect(server, handshake.run)
    server.on("connect", functools.partial(on_connect, app, hook, handshake), namespace="/")
    server.on("disconnect", functools.partial(on_disconnect, parts, handshake), namespace="/")
    for name, answer in answers.items():
        server.on(name, answer, namespace="/")
    refresh = functools.partial(on_refresh, parts.identity)
    server.on("refresh", acked(parts, turns, refresh, hook.counter("refresh"), hook.refused), namespace="/")
    server.on("*", functools.partial(on_unknown, parts, hook.counter("unknown"), hook.refused), namespace="/")


def on_connect(app: Flask, hook: EventHook, handshake: "HandshakeJoins", sid: str, environ: dict[str, Any],
               auth: Any = None) -> None:
    """Admit a signed-in user within the connection limits; refuse anyone else with a contract code.

    The rooms listed in `auth.join` are joined once the connection is open (HandshakeJoins).
    """
    parts = app.extensions["papo"]
    if carries_token(auth):
        session = socket_session(auth, parts.identity)
    else:  # the session cookie: only this needs a request context, a tenth of a connection's cost
        with app.request_context(environ):
            session = socket_session(auth, parts.identity)
    if session is None:
        hook.refused("unauthorized")
        raise ConnectionRefusedError("unauthorized", {"code": "unauthorized"})
    try:
        joins = handshake_joins(auth)
    except ChatError as error:
        hook.refused(error.code)
        raise ConnectionRefusedError(error.code, error.body()) from None
    user = session.user
    try:
        parts.guard.admit(sid, user)
    except ChatError as error:
        hook.refused(error.code)
        audit.record("rate_limited", user, environ.get("REMOTE_ADDR"), session.id, f"connect: {error.code}")
        raise ConnectionRefusedError(error.code, error.body()) from None
    try:
        parts.service.connect(sid, user)
    except BaseException:
        parts.guard.release(sid)
        raise
    lifetimes = parts.identity.sessions.live
    if lifetimes is not None:
        lifetimes.bind(sid, session)
    if joins:
        handshake.ask(sid, joins)


def handshake_joins(auth: Any) -> list[Any]:
    """The join payloads a connection asks for in `auth.join`; invalid_payload when it is no list or too long.

    The bound is the protocol's, whatever MAX_ROOMS_PER_CONNECTION says: a join past that setting is
    answered `forbidden`, as the event would be, and a client holding more rooms joins the rest by events.
    """
    joins = auth.get("join") if isinstance(auth, dict) else None
    if joins is None:
        return []
    if not isinstance(joins, list):
        raise ChatError("invalid_payload", "auth.join must be a list of join payloads")
    if len(joins) > HANDSHAKE_JOINS:
        raise ChatError("invalid_payload", f"auth.join may list at most {HANDSHAKE_JOINS} rooms")
    return joins


class HandshakeJoins:
    """Joins a connection asked for in its handshake: each answered by a `joined` event right after CONNECT.

    A client coming back saves a round trip a room, and the server an event each: the answers go out
    in the same flush as CONNECT. They hold the connection's line (chat.turns) until the last one, so
    anything the client sends after CONNECT waits for them.
    """

    def __init__(self, server: Any, turns: Turns, join: Callable[..., dict[str, Any]]):
        self.server = server
        self.turns = turns
        self.join = join  # the `join` event's handler: answers as its ack would
        self.asked: dict[str, list[Any]] = {}

    def ask(self, sid: str, joins: list[Any]) -> None:
        self.asked[sid] = joins

    def forget(self, sid: str) -> None:
        self.asked.pop(sid, None)

    def run(self, sid: str) -> None:
        """Answer each join the connection asked for, in order, with a `joined` event."""
        joins = self.asked.pop(sid, None)
        if not joins:
            return
        turn = self.turns.message(sid)
        self.turns.start(turn)
        try:
            for payload in joins:
                answer = self.join(sid, payload)
                room = payload.get("room") if isinstance(payload, dict) else None
                if not answer["ok"] and isinstance(room, str):
                    answer["room"] = room  # which join this refuses
                self.server.emit("joined", answer, to=sid, ignore_queue=True)  # the connection is here
        finally:
            self.turns.end(turn)


def on_disconnect(parts: Papo, handshake: "HandshakeJoins", sid: str, reason: Any = None) -> None:
    """Release the connection's share of the limits and its presence, and its session's hold on it."""
    handshake.forget(sid)
    lifetimes = parts.identity.sessions.live
    if lifetimes is not None:
        lifetimes.unbind(sid)
    parts.guard.release(sid)
    parts.service.disconnect(sid)


def on_unknown(parts: Papo, received: Callable[[], None], refused: Callable[[str | None], None], event: Any,
               sid: str, *args: Any) -> dict[str, Any]:
    """Refuse an event the table does not list, spending the sender's event budget all the same."""
    received()
    try:
        parts.guard.spend(sid, parts.service.presence.user_of(sid))
        raise ChatError("invalid_payload", f"there is no event named {str(event)[:64]!r}")
    except ChatError as error:
        refused(error.code)
        return error.ack()


def acked(parts: Papo, turns: Turns, handler: Handler, received: Callable[[], None],
          refused: Callable[[str | None], None]) -> Callable[..., dict[str, Any]]:
    """Turn a handler's result into `{"ok": true, ...}` and any refusal into the contract's error ack.

    A handler that has queued its work returns what waits for it: the connection's next message may
    start meanwhile (chat.turns).
    """
    service, guard = parts.service, parts.guard

    def answer(sid: str, *args: Any) -> dict[str, Any]:
        received()
        payload = args[0] if args else None
        try:
            user = service.presence.user_of(sid)
            guard.spend(sid, user)
            if not isinstance(payload, dict):
                raise ChatError("invalid_payload", "the payload must be a JSON object")
            result = handler(service, sid, user, payload)
            if callable(result):
                turns.queued(sid)
                result = result()
            return {"ok": True, **(result or {})}
        except ChatError as error:
            refused(error.code)
            if error.code == "rate_limited":
                audit.record("rate_limited", service.presence.user_of(sid), reason=f"event {handler.__name__}")
            return error.ack()
        except Exception:
            log.exception("event %s failed", handler.__name__)
            refused("unavailable")
            return ChatError("unavailable", "the server could not complete this; try again").ack()

    return answer


def on_join(service, sid, user, payload):
    return service.join(sid, payload.get("room"), payload.get("since"), payload.get("revs_since"),
                        payload.get("receipts"))


def on_leave(service, sid, user, payload):
    service.leave(sid, payload.get("room"))


def on_message(service, sid, user, payload):
    committed = service.queue_send(sid, payload.get("room"), payload.get("text"), payload.get("client_id"))
    return lambda: {"message": committed()[0]}


def on_typing(service, sid, user, payload):
    service.typing(sid, payload.get("room"), payload.get("typing"))


def on_history(service, sid, user, payload):
    return service.history(payload.get("room"), payload.get("before"), payload.get("limit"), user)


def on_direct(service, sid, user, payload):
    message, _ = service.direct(user, payload.get("to"), payload.get("text"), payload.get("client_id"))
    return {"message": message}


def on_direct_history(service, sid, user, payload):
    return service.direct_history(user, payload.get("with"), payload.get("before"), payload.get("limit"),
                                  payload.get("since"))


def on_direct_read(service, sid, user, payload):
    return service.read_direct(user, payload.get("with"), payload.get("id"))


def on_conversations(service, sid, user, payload):
    return service.conversations(user, payload.get("limit"))


def on_create_room(service, sid, user, payload):
    return service.create_room(user, payload.get("room"), payload.get("private", True))


def on_invite(service, sid, user, payload):
    return service.invite(user, payload.get("room"), payload.get("user"))


def on_remove_member(service, sid, user, payload):
    return service.remove_member(user, payload.get("room"), payload.get("user"))


def on_delete_room(service, sid, user, payload):
    return service.delete_room(user, payload.get("room"))


def on_refresh(identity, service, sid, user, payload):
    """Let the connection live by a new token of the same user; unauthorized leaves it as it was."""
    session = identity.session_for_token(payload.get("token"), fresh=True)  # its expiry as the refresh moved it
    if session is None or session.user != user or identity.sessions.live is None:
        audit.record("refresh_refused", user, reason="not a live token of this user")
        raise ChatError("unauthorized", "refresh needs a live token of the same user")
    identity.sessions.live.bind(sid, session)
    audit.record("refresh", user, session=session.id, reason="socket")
    return {"expires_in": session.expires_in(identity.sessions.clock())}


def on_edit(service, sid, user, payload):
    return {"message": service.edit(user, payload.get("room"), payload.get("seq"), payload.get("text"))}


def on_delete(service, sid, user, payload):
    return {"message": service.delete(user, payload.get("room"), payload.get("seq"))}


def on_react(service, sid, user, payload):
    return {"message": service.react(user, payload.get("room"), payload.get("seq"), payload.get("emoji"),
                                     payload.get("on"))}


def on_read(service, sid, user, payload):
    return service.read(user, payload.get("room"), payload.get("seq"))


HANDLERS: dict[str, Handler] = {
    "join": on_join,
    "leave": on_leave,
    "message": on_message,
    "typing": on_typing,
    "history": on_history,
    "direct": on_direct,
    "direct_history": on_direct_history,
    "direct_read": on_direct_read,
    "conversations": on_conversations,
    "create_room": on_create_room,
    "invite": on_invite,
    "remove_member": on_remove_member,
    "delete_room": on_delete_room,
    "edit": on_edit,
    "delete": on_delete,
    "react": on_react,
    "read": on_read,
}
