"""The audit log: one JSON line per security event, never with a password, a token or a message body."""
import json
import logging
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger("papo.audit")

EVENTS = ("login", "login_failed", "refresh", "refresh_refused", "logout", "revoke", "password_changed",
          "admin_disconnect", "session_ended", "rate_limited", "origin_refused")
PREFIX = 8  # characters of a session id the log shows: enough to follow one, too few to use it


def record(event: str, user: str | None = None, address: str | None = None, session: str | None = None,
           reason: str | None = None, **counts: int) -> None:
    """Write one audit line; session is a session id, of which only a prefix is kept."""
    line: dict[str, Any] = {"audit": event, "ts": round(time.time(), 3), "user": user, "address": address,
                            "session": session[:PREFIX] if session else None, "reason": reason}
    line.update({name: int(value) for name, value in counts.items()})
    log.info(json.dumps(line, separators=(",", ":")))


def checked_origins(allowed: tuple[str, ...]) -> Callable[[str, dict[str, Any]], bool]:
    """Engine.IO's origin check (the listed origins, else the server's own), writing each refusal to the log."""
    def allowed_origin(origin: str | None, environ: dict[str, Any]) -> bool:
        if origin is None:  # no Origin header: not a browser's cross-site request; Engine.IO asks for CORS headers
            return False
        if "*" in allowed or origin in (allowed or own_origins(environ)):
            return True
        record("origin_refused", address=environ.get("REMOTE_ADDR"), reason=str(origin)[:200])
        return False
    return allowed_origin


def own_origins(environ: dict[str, Any]) -> list[str]:
    """The origins of the server itself as this request reached it, directly or through a proxy."""
    if "wsgi.url_scheme" not in environ or "HTTP_HOST" not in environ:
        return []
    scheme, host = environ["wsgi.url_scheme"], environ["HTTP_HOST"]
    origins = [f"{scheme}://{host}"]
    if "HTTP_X_FORWARDED_PROTO" in environ or "HTTP_X_FORWARDED_HOST" in environ:
        forwarded_scheme = environ.get("HTTP_X_FORWARDED_PROTO", scheme).split(",")[0].strip()
        origins.append(f"{forwarded_scheme}://{environ.get('HTTP_X_FORWARDED_HOST', host).split(',')[0].strip()}")
    return origins
