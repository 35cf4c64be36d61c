"""Settings: defaults, then the environment, validated once at start."""
import os
import secrets
import sys
from dataclasses import dataclass, field
from urllib.parse import urlparse

ASYNC_MODES = ("eventlet", "gevent", "threading")


class SettingError(ValueError):
    """A setting that cannot work; start-up stops with its one-line message."""


@dataclass(frozen=True)
class Settings:
    """Every setting the server reads, with its default."""

    SECRET_KEY: str = ""
    DATABASE_URL: str = ""
    REDIS_URL: str = ""
    NOTIFY_TOKEN: str = ""
    CORS_ALLOWED_ORIGINS: tuple = ()
    ASYNC_MODE: str = "eventlet"
    ADMIN_USERS: tuple = ()
    TOKEN_TTL: int = 86400
    RATE_BURST: int = 100
    RATE_PER_SECOND: float = 10.0
    MAX_FRAME_BYTES: int = 1_000_000
    MAX_CONNECTIONS: int = 20000
    LOG_LEVEL: str = "INFO"
    # hardening (docs/security.md); EVENT_* default to three times RATE_*
    EVENT_BURST: int = 300
    EVENT_PER_SECOND: float = 30.0
    MAX_CONNECTIONS_PER_USER: int = 20
    MAX_ROOMS_PER_CONNECTION: int = 100
    LOGIN_BURST: int = 10
    LOGIN_PER_SECOND: float = 0.1
    PING_INTERVAL: int = 25
    PING_TIMEOUT: int = 20
    SOCKET_TIMEOUT: int = 75
    SECURE_COOKIES: str = "auto"
    PROXY_COUNT: int = 0
    PASSWORD_HASH: str = "scrypt"
    extra: dict = field(default_factory=dict)


_INTS = {"TOKEN_TTL": (60, 10**8), "RATE_BURST": (1, 10**9), "MAX_FRAME_BYTES": (1024, 10**9),
         "MAX_CONNECTIONS": (1, 10**7), "EVENT_BURST": (1, 10**9), "MAX_CONNECTIONS_PER_USER": (1, 10**7),
         "MAX_ROOMS_PER_CONNECTION": (1, 10**7), "LOGIN_BURST": (1, 10**9), "PING_INTERVAL": (1, 3600),
         "PING_TIMEOUT": (1, 3600), "SOCKET_TIMEOUT": (5, 86400), "PROXY_COUNT": (0, 10)}
_FLOATS = {"RATE_PER_SECOND": (0.001, 10.0**9), "EVENT_PER_SECOND": (0.001, 10.0**9),
           "LOGIN_PER_SECOND": (0.0001, 10.0**9)}
SECURE_COOKIES = ("auto", "always", "never")
_LISTS = ("CORS_ALLOWED_ORIGINS", "ADMIN_USERS")


def load(instance_path, environ=None, overrides=None):
    """Read settings from the environment (and test overrides); raise SettingError on a bad one."""
    environ = os.environ if environ is None else environ
    values = {}
    for name in Settings.__dataclass_fields__:
        if name != "extra" and environ.get(name, "") != "":
            values[name] = environ[name]
    values.update(overrides or {})
    extra = {k: values.pop(k) for k in list(values) if k not in Settings.__dataclass_fields__}
    for name, (low, high) in _INTS.items():
        if name in values:
            values[name] = _number(name, values[name], int, low, high)
    for name, (low, high) in _FLOATS.items():
        if name in values:
            values[name] = _number(name, values[name], float, low, high)
    for name, scale in (("EVENT_BURST", "RATE_BURST"), ("EVENT_PER_SECOND", "RATE_PER_SECOND")):
        values.setdefault(name, 3 * values.get(scale, getattr(Settings, scale)))
    values.setdefault("SOCKET_TIMEOUT", 30 + sum(values.get(name, getattr(Settings, name))
                                                 for name in ("PING_INTERVAL", "PING_TIMEOUT")))
    for name in _LISTS:
        if isinstance(values.get(name), str):
            values[name] = tuple(v.strip() for v in values[name].split(",") if v.strip())
    values.setdefault("DATABASE_URL", "sqlite:///" + os.path.join(instance_path, "papo.db"))
    if not values.get("SECRET_KEY"):
        values["SECRET_KEY"] = _instance_secret(instance_path)
    settings = Settings(**values, extra=extra)
    _check(settings)
    return settings


def _number(name, raw, kind, low, high):
    try:
        value = kind(raw)
    except (TypeError, ValueError):
        raise SettingError(f"{name} must be a number, got {raw!r}") from None
    if not low <= value <= high:
        raise SettingError(f"{name} must be between {low} and {high}, got {value}")
    return value


def _check(settings):
    if not settings.PASSWORD_HASH.startswith(("scrypt", "pbkdf2:")):
        raise SettingError(f"PASSWORD_HASH must be a werkzeug scrypt or pbkdf2 method, got {settings.PASSWORD_HASH!r}")
    if settings.ASYNC_MODE not in ASYNC_MODES:
        raise SettingError(f"ASYNC_MODE must be one of {', '.join(ASYNC_MODES)}, got {settings.ASYNC_MODE!r}")
    scheme = urlparse(settings.DATABASE_URL).scheme.split("+")[0]
    if scheme not in ("sqlite", "postgresql", "postgres"):
        raise SettingError(f"DATABASE_URL must be sqlite:/// or postgresql://, got {settings.DATABASE_URL!r}")
    if settings.NOTIFY_TOKEN and len(settings.NOTIFY_TOKEN) < 16:
        raise SettingError("NOTIFY_TOKEN must be at least 16 characters (or unset: notifications off)")
    if settings.REDIS_URL and urlparse(settings.REDIS_URL).scheme not in ("redis", "rediss", "unix"):
        raise SettingError(f"REDIS_URL must start with redis://, got {settings.REDIS_URL!r}")
    if settings.SECURE_COOKIES not in SECURE_COOKIES:
        raise SettingError(f"SECURE_COOKIES must be one of {', '.join(SECURE_COOKIES)}, "
                           f"got {settings.SECURE_COOKIES!r}")
    if settings.SOCKET_TIMEOUT <= settings.PING_INTERVAL + settings.PING_TIMEOUT:
        raise SettingError("SOCKET_TIMEOUT must be longer than PING_INTERVAL + PING_TIMEOUT")
    if len(settings.SECRET_KEY) < 16:
        raise SettingError("SECRET_KEY must be at least 16 characters")
    for origin in settings.CORS_ALLOWED_ORIGINS:
        if origin != "*" and urlparse(origin).scheme not in ("http", "https"):
            raise SettingError(f"CORS_ALLOWED_ORIGINS entries must be http(s) origins, got {origin!r}")


def _instance_secret(instance_path):
    """Read the generated secret key under instance/, creating it once."""
    path = os.path.join(instance_path, "secret_key")
    os.makedirs(instance_path, exist_ok=True)
    try:
        with open(path) as handle:
            return handle.read().strip()
    except FileNotFoundError:
        pass
    key = secrets.token_hex(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key)
    print(f"papo: no SECRET_KEY set; generated one into {path}", file=sys.stderr)
    return key
