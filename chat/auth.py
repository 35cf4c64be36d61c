"""Identity: password hashes, signed expiring tokens, and who is asking."""
import functools
import hmac
import re
import time

from flask import request, session
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from werkzeug.security import check_password_hash, generate_password_hash

from .errors import ChatError
from .extension import papo
from .async_modes import offload

USERNAME = re.compile(r"[A-Za-z0-9_.-]{1,32}")
MIN_PASSWORD = 8
MAX_PASSWORD = 1024
_TOKEN_SALT = "papo-token"


class Identity:
    """Registers users, checks passwords, issues and reads bearer tokens."""

    def __init__(self, store, secret_key, token_ttl, throttle=None, hash_method="scrypt"):
        self.store = store
        self.token_ttl = token_ttl
        self.hash_method = hash_method
        self.throttle = throttle  # a chat.limits.LoginThrottle, or None for no limit on guessing
        self._tokens = URLSafeTimedSerializer(secret_key, salt=_TOKEN_SALT)

    def register(self, username, password):
        """Create a user and return the stored name; conflict when taken, invalid_payload when malformed."""
        username, password = _credentials(username, password)
        if len(password) < MIN_PASSWORD:
            raise ChatError("invalid_payload", f"password must be at least {MIN_PASSWORD} characters")
        password_hash = offload(generate_password_hash, password, self.hash_method)
        if self.store.add_user(username, password_hash, int(time.time() * 1000)) is None:
            raise ChatError("conflict", f"the username {username} is taken")
        return username

    def authenticate(self, username, password, address=None):
        """Return the user's stored name when the password matches; unauthorized otherwise.

        rate_limited (before any password is checked) when the username or the caller's address
        has failed too often lately.
        """
        username, password = _credentials(username, password, refusal="unauthorized")
        if self.throttle:
            self.throttle.attempt(username, address)
        found = self.store.find_user(username)
        stored_hash = found.password_hash if found else _dummy_hash(self.hash_method)
        if not offload(check_password_hash, stored_hash, password) or not found:
            raise ChatError("unauthorized", "wrong username or password")
        if self.throttle:
            self.throttle.succeeded(username, address)
        return found.username

    def issue_token(self, username):
        return {"token": self._tokens.dumps({"u": username}), "expires_in": self.token_ttl}

    def user_for_token(self, token):
        """Return the user a token was issued to, or None when it is forged, malformed or expired."""
        if not isinstance(token, str) or not token or len(token) > 4096:
            return None
        try:
            claims = self._tokens.loads(token, max_age=self.token_ttl)
        except (BadSignature, SignatureExpired):
            return None
        return claims.get("u") if isinstance(claims, dict) else None


@functools.cache
def _dummy_hash(method):
    """Return a real hash to check unknown users against, so that both answers take as long."""
    return generate_password_hash("papo-timing-equaliser", method)


def _credentials(username, password, refusal="invalid_payload"):
    if not isinstance(username, str) or not USERNAME.fullmatch(username):
        raise ChatError(refusal, "usernames are 1-32 of A-Z, a-z, 0-9, _, . and -")
    if not isinstance(password, str) or len(password) > MAX_PASSWORD:
        raise ChatError(refusal, f"password must be a string of at most {MAX_PASSWORD} characters")
    return username, password


def current_user():
    """Return the user of this HTTP request or Socket.IO event: bearer token first, then the session cookie."""
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        return papo().identity.user_for_token(header[7:].strip())
    return session.get("user")


def is_admin(user):
    """Tell whether the user is named in the ADMIN_USERS setting (case-insensitively)."""
    return bool(user) and user.lower() in {name.lower() for name in papo().settings.ADMIN_USERS}


def is_backend():
    """Tell whether this request's bearer token is the server's NOTIFY_TOKEN (never when none is set)."""
    expected = papo().settings.NOTIFY_TOKEN
    header = request.headers.get("Authorization", "")
    given = header[7:].strip() if header[:7].lower() == "bearer " else ""
    return bool(expected) and hmac.compare_digest(given.encode(), expected.encode())


def socket_user(auth, identity=None):
    """Return the user opening a Socket.IO connection, from `auth: {"token"}` or the session cookie."""
    if carries_token(auth):
        return (identity or papo().identity).user_for_token(auth["token"])
    return session.get("user")


def carries_token(auth):
    """Tell whether a Socket.IO connection authenticates with a token, not the session cookie."""
    return isinstance(auth, dict) and "token" in auth
