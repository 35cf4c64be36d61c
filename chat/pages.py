"""HTML pages: lobby, room, direct messages, register, login, logout.

The pages are shells: static/js/chat.js does the live part over Socket.IO and
/api. Data for the script travels in data- attributes, never inline script.
"""
import functools
import json

from flask import Blueprint, abort, redirect, render_template, request, session, url_for

from chat import audit, errors
from chat.auth import USERNAME, SessionRefused, current_session, current_user, is_admin
from chat.errors import ChatError
from chat.extension import papo
from chat.service import ROOM_NAME

bp = Blueprint("pages", __name__)
ERROR_TABLE = json.dumps(errors.table(), separators=(",", ":"), sort_keys=True)

STATUS = {"unauthorized": 401, "rate_limited": 429, "conflict": 409}
ENDED = {"token_expired": "your sign-in expired", "logged_out": "you logged out",
         "revoked": "this session was ended", "disconnected_by_admin": "an administrator disconnected you",
         "unauthorized": "this sign-in has expired or was ended"}


@bp.app_context_processor
def page_data():
    """Give every page the contract's error codes, which static/js/errors.js reads from <body>."""
    return {"error_table": ERROR_TABLE}


def login_required(view):
    """Redirect to the login page unless someone is logged in."""
    @functools.wraps(view)
    def wrapped(**kwargs):
        if current_user() is None:
            return redirect(url_for("pages.login", next=request.full_path.rstrip("?")))
        return view(**kwargs)
    return wrapped


@bp.errorhandler(SessionRefused)
def session_refused(error):
    """Forget a cookie session that has expired or was ended, and ask the user to log in again."""
    session.clear()
    if request.endpoint in ("pages.login", "pages.register"):  # keep the reason the page was sent here with
        return redirect(request.full_path.rstrip("?"))
    return redirect(url_for("pages.login", ended="unauthorized", next=request.full_path.rstrip("?")))


def safe_next(target):
    """Return target if it is a path on this site, else the lobby."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return url_for("pages.lobby")


def log_in(username):
    """Start a fresh session for username (a new id: no fixation) and go where the user was heading."""
    session.clear()
    session.update(papo().identity.open_cookie(username))
    audit.record("login", username, request.remote_addr, session["sid"], "page")
    return redirect(safe_next(request.args.get("next")))


@bp.get("/")
@login_required
def lobby():
    """Show the rooms and the direct conversations."""
    return render_template("lobby.html", user=current_user(), page="lobby")


@bp.get("/room/<name>")
@login_required
def room(name):
    """Show one room."""
    if not ROOM_NAME.fullmatch(name):
        abort(404)
    return render_template("room.html", user=current_user(), page="room", room=name)


@bp.get("/room/<name>/live")
@login_required
def stream(name):
    """Follow one room with the browser's EventSource (Server-Sent Events), without Socket.IO."""
    if not ROOM_NAME.fullmatch(name):
        abort(404)
    return render_template("stream.html", user=current_user(), page="stream", room=name)


@bp.get("/dm/<peer>")
@login_required
def direct(peer):
    """Show the direct conversation with peer."""
    if not USERNAME.fullmatch(peer):
        abort(404)
    return render_template("room.html", user=current_user(), page="direct", peer=peer)


@bp.get("/monitor")
@login_required
def monitor():
    """Show the live monitoring dashboard; admins only (ADMIN_USERS)."""
    if not is_admin(current_user()):
        abort(403)
    return render_template("monitor.html", user=current_user(), page="monitor")


@bp.get("/go")
@login_required
def go():
    """Open the room or conversation named in the lobby's forms (works without script)."""
    room_name = request.args.get("room", "").strip().lstrip("#").lower()
    if room_name:
        if ROOM_NAME.fullmatch(room_name):
            return redirect(url_for("pages.room", name=room_name))
        return redirect(url_for("pages.lobby"))
    peer = request.args.get("user", "").strip().lstrip("@")
    if USERNAME.fullmatch(peer):
        return redirect(url_for("pages.direct", peer=peer))
    return redirect(url_for("pages.lobby"))


@bp.route("/register", methods=("GET", "POST"))
def register():
    """Create an account and log in."""
    error, username = None, ""
    if request.method == "POST":
        username = request.form.get("username", "").strip()
        password = request.form.get("password", "")
        if password != request.form.get("confirm", password):
            error = "The two passwords differ."
        else:
            try:
                return log_in(papo().identity.register(username, password))
            except ChatError as e:
                error = "That username is taken." if e.code == "conflict" else e.message
    status = 400 if error else 200
    return render_template("register.html", error=error, username=username, page="register"), status


@bp.route("/login", methods=("GET", "POST"))
def login():
    """Log in with a username and password."""
    error, username, status, headers = None, "", 200, {}
    if request.method == "POST":
        username = request.form.get("username", "").strip()
        try:
            return log_in(papo().identity.authenticate(username, request.form.get("password", ""),
                                                       request.remote_addr))
        except ChatError as e:
            audit.record("login_failed", username[:32], request.remote_addr, reason=e.code)
            error = "Wrong username or password." if e.code == "unauthorized" else e.message
            status = STATUS.get(e.code, 400)
            if e.retry_after is not None:
                headers["Retry-After"] = str(e.retry_after)
    ended = ENDED.get(request.args.get("ended", ""))
    return render_template("login.html", error=error, username=username, page="login", ended=ended), status, headers


@bp.post("/logout")
def logout():
    """End the cookie session: refused from now on, and every connection that used it ends."""
    found = current_session()
    if found is not None and found.id == session.get("sid"):
        papo().identity.sessions.revoke(found.user, "logged_out", ids=[found.id])
        audit.record("logout", found.user, request.remote_addr, found.id, "page")
    session.clear()
    return redirect(url_for("pages.login"))
