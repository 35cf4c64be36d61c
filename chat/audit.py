"""The audit log: one JSON line per security event, never with a password, a token or a message body."""
import json
import logging
import time
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
