"""HTTP JSON adapter under /api, the polling endpoints included, plus /healthz."""
import logging

from flask import Blueprint, current_app, jsonify, request, session
from werkzeug.exceptions import HTTPException

from . import audit
from .auth import current_session, current_user, is_admin, is_backend
from .errors import ChatError
from .extension import papo

log = logging.getLogger(__name__)
bp = Blueprint("api", __name__)

_HTTP_CODES = {400: "invalid_payload", 401: "unauthorized", 403: "forbidden", 404: "not_found",
               405: "not_found", 409: "conflict", 413: "too_large", 429: "rate_limited"}


def is_api_request():
    return request.path.startswith(("/api/", "/healthz", "/metrics"))


@bp.app_errorhandler(ChatError)
def chat_error(error):
    if error.code == "rate_limited":
        audit.record("rate_limited", address=request.remote_addr, reason=f"{request.method} {request.path}"[:200])
    response = jsonify(error=error.body())
    response.status_code = error.status
    if error.retry_after is not None:
        response.headers["Retry-After"] = str(error.retry_after)
    return response


@bp.app_errorhandler(HTTPException)
def http_error(error):
    if not is_api_request():
        return error
    code = _HTTP_CODES.get(error.code, "invalid_payload" if error.code < 500 else "unavailable")
    response = jsonify(error={"code": code, "message": error.description or error.name})
    response.status_code = error.code
    return response


@bp.app_errorhandler(Exception)
def unexpected_error(error):
    log.exception("request %s %s failed", request.method, request.path)
    if not is_api_request():
        return "Internal Server Error", 500
    return chat_error(ChatError("unavailable", "the server could not complete this; try again"))


def request_json():
    """The request's JSON body; None when it is not JSON, or nested deeper than the decoder goes."""
    try:
        return request.get_json(silent=True)
    except RecursionError:
        return None


def json_body():
    body = request_json()
    if not isinstance(body, dict):
        raise ChatError("invalid_payload", "the body must be a JSON object")
    return body


def signed_in_user():
    user = current_user()
    if user is None:
        raise ChatError("unauthorized", "sign in or send Authorization: Bearer <token>")
    return user


@bp.post("/api/users")
def register():
    body = json_body()
    username = papo().identity.register(body.get("username"), body.get("password"))
    return {"username": username}, 201


@bp.post("/api/tokens")
def issue_token():
    body = json_body()
    name = body.get("username") if isinstance(body.get("username"), str) else None
    try:
        username = papo().identity.authenticate(body.get("username"), body.get("password"), request.remote_addr)
    except ChatError as error:
        audit.record("login_failed", name and name[:32], request.remote_addr, reason=error.code)
        raise
    answer, opened = papo().identity.issue(username)
    audit.record("login", username, request.remote_addr, opened.id, "token")
    return answer


def signed_in_session():
    found = current_session()
    if found is None:
        raise ChatError("unauthorized", "sign in or send Authorization: Bearer <token>")
    return found


@bp.post("/api/tokens/refresh")
def refresh_token():
    """Extend the caller's session by a full lifetime and answer a new token of it (the cookie, if any, lives on).

    The session keeps its id: logging it out, or out everywhere, ends every token refreshed from it.
    """
    found = signed_in_session()
    refreshed = papo().identity.refresh(found)
    if refreshed is None:
        raise ChatError("unauthorized", "this session has ended; sign in again")
    answer, extended = refreshed
    audit.record("refresh", found.user, request.remote_addr, extended.id, "http")
    return answer


@bp.post("/api/logout")
def logout():
    """End the caller's token or cookie session and every connection that used it."""
    found = signed_in_session()
    papo().identity.sessions.revoke(found.user, "logged_out", ids=[found.id])
    if session.get("sid") == found.id:
        session.clear()
    audit.record("logout", found.user, request.remote_addr, found.id, "http")
    return "", 204


@bp.post("/api/sessions/revoke")
def revoke_sessions():
    """Log out everywhere: end every session of the caller and every connection of theirs."""
    found = signed_in_session()
    revoked, _ = papo().identity.sessions.revoke(found.user, "revoked")
    audit.record("revoke", found.user, request.remote_addr, found.id, "everywhere", revoked=len(revoked))
    return {"revoked": len(revoked)}


@bp.post("/api/users/me/password")
def change_password():
    """Change the caller's password; every other session of theirs ends."""
    found = signed_in_session()
    body = json_body()
    papo().identity.change_password(found.user, body.get("old"), body.get("new"), request.remote_addr)
    revoked, _ = papo().identity.sessions.revoke(found.user, "revoked", keep=found.id)
    audit.record("password_changed", found.user, request.remote_addr, found.id, "others revoked",
                 revoked=len(revoked))
    return "", 204


@bp.post("/api/users/<user>/disconnect")
def disconnect_user(user):
    """Disconnect every connection of a user (an admin's or a backend's call); with revoke, end their sessions."""
    actor = "backend" if is_backend() else signed_in_user()
    if actor != "backend" and not is_admin(actor):
        raise ChatError("forbidden", "only an administrator may disconnect users")
    body = request_json() if request.content_length else {}
    revoke = isinstance(body, dict) and body.get("revoke") is True
    sessions = papo().identity.sessions
    if revoke:
        _, disconnected = sessions.revoke(user, "disconnected_by_admin")
    else:
        disconnected = sessions.end(user, "disconnected_by_admin")
    audit.record("admin_disconnect", user, request.remote_addr, reason=f"by {actor}" + (", revoked" if revoke else ""),
                 disconnected=disconnected)
    return {"disconnected": disconnected}


@bp.get("/api/rooms")
def list_rooms():
    return {"rooms": papo().service.rooms(current_user())}


@bp.post("/api/rooms")
def create_room():
    user = signed_in_user()
    body = json_body()
    return papo().service.create_room(user, body.get("name"), body.get("private", True)), 201


@bp.get("/api/rooms/<room>/members")
def room_members(room):
    return papo().service.room_members(signed_in_user(), room)


@bp.post("/api/rooms/<room>/members")
def invite(room):
    user = signed_in_user()
    return papo().service.invite(user, room, json_body().get("user"))


@bp.post("/api/rooms/<room>/leave")
def leave_room(room):
    """End the caller's membership of a private room they do not own."""
    return papo().service.leave_room(signed_in_user(), room)


@bp.delete("/api/rooms/<room>/members/<member>")
def remove_member(room, member):
    """Take a member out of the caller's private room (the caller's own name: leave it)."""
    return papo().service.remove_member(signed_in_user(), room, member)


@bp.delete("/api/rooms/<room>")
def delete_room(room):
    """Delete the caller's private room; every member is told."""
    return papo().service.delete_room(signed_in_user(), room)


@bp.get("/api/directs/<peer>")
def direct_history(peer):
    user = signed_in_user()
    args = request.args
    return papo().service.direct_history(user, peer, args.get("before"), args.get("limit"), args.get("since"))


@bp.post("/api/directs/<peer>/read")
def read_direct(peer):
    user = signed_in_user()
    return papo().service.read_direct(user, peer, json_body().get("id"))


@bp.get("/api/conversations")
def conversations():
    return papo().service.conversations(signed_in_user(), request.args.get("limit"))


@bp.get("/api/rooms/<room>/messages")
def read_messages(room):
    user = signed_in_user()
    args = request.args
    return papo().service.messages_after(room, args.get("after"), args.get("before"), args.get("limit"), user)


@bp.post("/api/rooms/<room>/messages")
def post_message(room):
    user = signed_in_user()
    body = json_body()
    message, created = papo().service.post(user, room, body.get("text"), body.get("client_id"))
    return {"message": message}, 201 if created else 200


@bp.patch("/api/rooms/<room>/messages/<seq>")
def edit_message(room, seq):
    user = signed_in_user()
    return {"message": papo().service.edit(user, room, seq, json_body().get("text"))}


@bp.delete("/api/rooms/<room>/messages/<seq>")
def delete_message(room, seq):
    return {"message": papo().service.delete(signed_in_user(), room, seq)}


@bp.post("/api/rooms/<room>/messages/<seq>/reactions")
def react(room, seq):
    user = signed_in_user()
    body = json_body()
    return {"message": papo().service.react(user, room, seq, body.get("emoji"), body.get("on"))}


@bp.post("/api/rooms/<room>/read")
def read_room(room):
    user = signed_in_user()
    return papo().service.read(user, room, json_body().get("seq"))


@bp.get("/api/search")
def search():
    user = signed_in_user()
    args = request.args
    return papo().service.search(user, args.get("q"), args.get("room"), args.get("limit"), args.get("peer"))


@bp.get("/api/rooms/<room>/poll")
def poll(room):
    user = signed_in_user()
    with papo().guard.polling(user):
        return papo().service.wait_for_messages(room, request.args.get("after"), request.args.get("timeout"), user)


def backend():
    """Refuse unless the caller is a backend holding the server's NOTIFY_TOKEN."""
    if not is_backend():
        raise ChatError("unauthorized", "send Authorization: Bearer <NOTIFY_TOKEN>")


@bp.post("/api/notify")
def notify():
    backend()
    body = json_body()
    note, recipients = papo().service.notify(body.get("title"), body.get("body"), body.get("level"),
                                             body.get("room"), body.get("user"))
    return {"id": note["id"], "recipients": recipients}, 202


@bp.get("/api/notifications")
def list_notifications():
    user = signed_in_user()
    return papo().service.notifications(user, request.args.get("after"), request.args.get("limit"))


@bp.post("/api/notifications/read")
def read_notifications():
    user = signed_in_user()
    body = json_body()
    return papo().service.mark_read(user, body.get("ids"), body.get("up_to"))


@bp.post("/api/metrics/<name>")
def push_metric(name):
    backend()
    return papo().monitor.push(name, json_body().get("value")), 202


@bp.get("/healthz")
def health():
    try:
        papo().service.health()
    except Exception as error:
        return {"status": "unavailable", "error": {"code": "unavailable", "message": str(error)[:200]}}, 503
    sse = current_app.extensions.get("papo.sse")
    return {"status": "ok", "connections": papo().service.presence.connection_count(),
            "streams": len(sse.streams) if sse is not None else 0}
