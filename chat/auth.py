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
from .sessions import Session, Sessions

USERNAME = re.compile(r"[A-Za-z0-9_.-]{1,32}")
MIN_PASSWORD = 8
MAX_PASSWORD = 1024
_TOKEN_SALT = "papo-token"
VERIFIED_TOKENS = 100_000  # tokens whose signature this process remembers having checked, at most


class SessionRefused(ChatError):
    """A token or cookie session that was presented and is forged, expired or revoked."""

    def __init__(self):
        super().__init__("unauthorized", "this sign-in has expired or was ended; sign in again")


class Identity:
    """Registers users, checks passwords, issues and reads bearer tokens and cookie sessions."""

    def __init__(self, store, secret_key, token_ttl, throttle=None, hash_method="scrypt", sessions=None):
        self.store = store
        self.token_ttl = token_ttl
        self.hash_method = hash_method
        self.throttle = throttle  # a chat.limits.LoginThrottle, or None for no limit on guessing
        self.sessions: Sessions = sessions or Sessions(store, token_ttl)
        self._tokens = URLSafeTimedSerializer(secret_key, salt=_TOKEN_SALT)
        # {token: (user, session id, signed at)}: a token is checked by its signature once per process;
        # a reconnect, a second tab or an API call with it again costs a lookup (its age is still checked)
        self._verified: dict[str, tuple[object, object, int]] = {}

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

        rate_limited (before any password is checked) when this address, or this address for this
        username, has failed too often lately, or the username has from addresses it never logged in from.
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

    def change_password(self, username, old, new, address=None):
        """Replace the user's password after checking the old one; unauthorized when it does not match."""
        self.authenticate(username, old, address)
        _, new = _credentials(username, new)
        if len(new) < MIN_PASSWORD:
            raise ChatError("invalid_payload", f"password must be at least {MIN_PASSWORD} characters")
        self.store.set_password(username, offload(generate_password_hash, new, self.hash_method))

    def issue(self, username) -> tuple[dict, Session]:
        """Open a token session for the user; ({"token", "expires_in"}, the session)."""
        opened = self.sessions.open(username, "token")
        return {"token": self._tokens.dumps({"u": username, "s": opened.id}), "expires_in": self.token_ttl}, opened

    def refresh(self, found: Session) -> tuple[dict, Session] | None:
        """Extend a live session by TOKEN_TTL and sign a new token for it; None when it ended meanwhile.

        The token names the same session, so that ending it (a logout) ends every token refreshed from it.
        """
        extended = self.sessions.extend(found)
        if extended is None:
            return None
        token = self._tokens.dumps({"u": extended.user, "s": extended.id})
        return {"token": token, "expires_in": extended.expires_in(self.sessions.clock())}, extended

    def issue_token(self, username):
        """Open a token session for the user; {"token", "expires_in"}."""
        return self.issue(username)[0]

    def session_for_token(self, token, fresh=False) -> Session | None:
        """Return the live session a token names, or None when it is forged, malformed, expired or revoked.

        fresh reads the session from the database, not from what this process remembers of it.
        """
        claims = self._claims(token)
        if claims is None:
            return None
        user, session_id = claims
        session = self.sessions.check(session_id, fresh)
        return session if session is not None and session.user == user else None

    def _claims(self, token) -> tuple[object, object] | None:
        """The (user, session id) a token names when its signature holds and it is younger than TOKEN_TTL."""
        if not isinstance(token, str) or not token or len(token) > 4096:
            return None
        known = self._verified.get(token)
        if known is None:
            try:
                claims, signed = self._tokens.loads(token, max_age=self.token_ttl, return_timestamp=True)
            except (BadSignature, SignatureExpired):
                return None
            if not isinstance(claims, dict):
                return None
            known = (claims.get("u"), claims.get("s"), int(signed.timestamp()))
            if len(self._verified) >= VERIFIED_TOKENS:
                self._verified.clear()
            self._verified[token] = known
        user, session_id, signed_at = known
        if not 0 <= int(time.time()) - signed_at <= self.token_ttl:  # itsdangerous's own rule for max_age
            self._verified.pop(token, None)
            return None
        return user, session_id

    def user_for_token(self, token):
        """Return the user a token was issued to, or None when it is forged, malformed, expired or revoked."""
        session = self.session_for_token(token)
        return session.user if session else None

    def open_cookie(self, username) -> dict:
        """Open a cookie session for the user; what the session cookie holds."""
        return {"user": username, "sid": self.sessions.open(username, "cookie").id}

    def session_for_cookie(self, cookie) -> Session | None:
        """Return the live session a cookie names, or None."""
        session = self.sessions.check(cookie.get("sid"))
        return session if session is not None and session.user == cookie.get("user") else None


@functools.cache
def _dummy_hash(method):
    """Return a real hash to check unknown users against, so that both answers take as long."""
    return generate_password_hash("papo-timing-equaliser", method)


def _credentials(username, password, refusal="invalid_payload"):
    if not isinstance(username, str) or not USERNAME.fullmatch(username):
        raise ChatError(refusal, "usernames are 1-32 of A-Z, a-z, 0-9, _, . and -")
    if not isinstance(password, str) or len(password) > MAX_PASSWORD:
        raise ChatError(refusal, f"password must be a string of at most {MAX_PASSWORD} characters")
    try:
        password.encode("utf-8")  # what hashing does first: an unpaired surrogate from JSON cannot be hashed
    except UnicodeEncodeError:
        raise ChatError(refusal, "password must be Unicode without unpaired surrogates") from None
    return username, password


def current_session() -> Session | None:
    """Return the session of this HTTP request: bearer token first, then the session cookie; None for neither.

    SessionRefused when one is presented but is not live: a dead identity is never served as anonymous.
    A backend's NOTIFY_TOKEN is no user's: None.
    """
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        if is_backend():
            return None  # a backend's NOTIFY_TOKEN names no user
        found = papo().identity.session_for_token(header[7:].strip())
    elif "user" in session:
        found = papo().identity.session_for_cookie(session)
    else:
        return None
    if found is None:
        raise SessionRefused()
    return found


def current_user():
    """Return the user of this HTTP request, or None when it carries no identity (see current_session)."""
    found = current_session()
    return found.user if found else None


def is_admin(user):
    """Tell whether the user is named in the ADMIN_USERS setting (case-insensitively)."""
    return bool(user) and user.lower() in {name.lower() for name in papo().settings.ADMIN_USERS}


def is_backend():
    """Tell whether this request's bearer token is the server's NOTIFY_TOKEN (never when none is set)."""
    expected = papo().settings.NOTIFY_TOKEN
    header = request.headers.get("Authorization", "")
    given = header[7:].strip() if header[:7].lower() == "bearer " else ""
    return bool(expected) and hmac.compare_digest(given.encode(), expected.encode())


def socket_session(auth, identity=None) -> Session | None:
    """Return the live session opening a Socket.IO connection, from `auth: {"token"}` or the session cookie."""
    identity = identity or papo().identity
    if carries_token(auth):
        return identity.session_for_token(auth["token"])
    return identity.session_for_cookie(session) if "user" in session else None


def socket_user(auth, identity=None):
    """Return the user opening a Socket.IO connection, or None."""
    found = socket_session(auth, identity)
    return found.user if found else None


def carries_token(auth):
    """Tell whether a Socket.IO connection authenticates with a token, not the session cookie."""
    return isinstance(auth, dict) and "token" in auth
