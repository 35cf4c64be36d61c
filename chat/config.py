"""Settings: defaults, then the environment, validated once at start."""
import os
import secrets
import sys
from collections.abc import Mapping
from dataclasses import Field, dataclass, field, fields
from typing import Any, TypeVar
from urllib.parse import urlparse, urlsplit

ASYNC_MODES = ("gevent", "eventlet", "threading")
DEFAULT_ASYNC_MODE = "gevent"  # maintained; eventlet's maintainers discourage new use (docs/architecture.md)
SECURE_COOKIES = ("auto", "always", "never")
# A lone process's clients can come back only to its successor, which starts once it has exited: any
# window only keeps them closed longer, so it closes them all at once. Behind a proxy with several
# processes they come back to the others at once, and a window spreads that load (docs/operations.md).
CLUSTER_DRAIN_SECONDS = 3.0
Number = TypeVar("Number", int, float)


class SettingError(ValueError):
    """A setting that cannot work; start-up stops with its one-line message."""


def bounded(default: Number, low: Number, high: Number) -> Number:
    """Declare a number setting: its default and the inclusive bounds a value must keep."""
    return field(default=default, metadata={"bounds": (low, high)})


def one_of(default: str, choices: tuple[str, ...]) -> str:
    """Declare a setting that takes one of a few words."""
    return field(default=default, metadata={"choices": choices})


@dataclass(frozen=True)
class Settings:
    """Every setting the server reads: its type, default and bounds, each declared here once."""

    SECRET_KEY: str = ""
    DATABASE_URL: str = ""
    REDIS_URL: str = ""
    NOTIFY_TOKEN: str = ""
    CORS_ALLOWED_ORIGINS: tuple[str, ...] = ()
    ASYNC_MODE: str = one_of(DEFAULT_ASYNC_MODE, ASYNC_MODES)
    ADMIN_USERS: tuple[str, ...] = ()
    TOKEN_TTL: int = bounded(86400, 5, 10**8)
    RATE_BURST: int = bounded(100, 1, 10**9)
    RATE_PER_SECOND: float = bounded(10.0, 0.001, 10.0**9)
    MAX_FRAME_BYTES: int = bounded(1_000_000, 1024, 10**9)
    MAX_CONNECTIONS: int = bounded(20000, 1, 10**7)
    LOG_LEVEL: str = "INFO"
    # hardening (docs/security.md); EVENT_* default to three times RATE_*
    EVENT_BURST: int = bounded(300, 1, 10**9)
    EVENT_PER_SECOND: float = bounded(30.0, 0.001, 10.0**9)
    MAX_CONNECTIONS_PER_USER: int = bounded(20, 1, 10**7)
    MAX_ROOMS_PER_CONNECTION: int = bounded(100, 1, 10**7)
    LOGIN_BURST: int = bounded(10, 1, 10**9)
    LOGIN_PER_SECOND: float = bounded(0.1, 0.0001, 10.0**9)
    PING_INTERVAL: int = bounded(25, 1, 3600)
    PING_TIMEOUT: int = bounded(20, 1, 3600)
    SOCKET_TIMEOUT: int = bounded(75, 5, 86400)
    # seconds over which SIGTERM closes the connections; CLUSTER_DRAIN_SECONDS by default with REDIS_URL
    DRAIN_SECONDS: float = bounded(0.0, 0.0, 600.0)
    SECURE_COOKIES: str = one_of("auto", SECURE_COOKIES)
    PROXY_COUNT: int = bounded(0, 0, 10)
    PASSWORD_HASH: str = "scrypt"
    extra: dict[str, Any] = field(default_factory=dict)  # settings Papo does not read, handed to Flask


SETTINGS = tuple(f for f in fields(Settings) if f.name != "extra")
_DEFAULTS = Settings()


def load(instance_path: str, environ: Mapping[str, str] | None = None,
         overrides: Mapping[str, Any] | None = None) -> Settings:
    """Read settings from the environment (and test overrides); raise SettingError on a bad one."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {f.name: environ[f.name] for f in SETTINGS if environ.get(f.name, "") != ""}
    values.update(overrides or {})
    names = {f.name for f in SETTINGS}
    extra = {k: values.pop(k) for k in list(values) if k not in names}
    for setting in SETTINGS:
        if setting.name in values:
            values[setting.name] = _parse(setting, values[setting.name])
    for name, scale in (("EVENT_BURST", "RATE_BURST"), ("EVENT_PER_SECOND", "RATE_PER_SECOND")):
        values.setdefault(name, 3 * values.get(scale, getattr(_DEFAULTS, scale)))
    values.setdefault("SOCKET_TIMEOUT", 30 + sum(values.get(name, getattr(_DEFAULTS, name))
                                                 for name in ("PING_INTERVAL", "PING_TIMEOUT")))
    if values.get("REDIS_URL"):
        values.setdefault("DRAIN_SECONDS", CLUSTER_DRAIN_SECONDS)
    values.setdefault("DATABASE_URL", "sqlite:///" + os.path.join(instance_path, "papo.db"))
    if not values.get("SECRET_KEY"):
        values["SECRET_KEY"] = _instance_secret(instance_path)
    settings = Settings(**values, extra=extra)
    _check(settings)
    return settings


def where(url: str) -> str:
    """Return url's host, port and path with any user and password left out."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    return f"{host}{f':{parts.port}' if parts.port else ''}{parts.path}"


def _parse(setting: Field[Any], raw: Any) -> Any:
    """Turn one raw value into the setting's declared type, within its declared bounds or choices."""
    if "bounds" in setting.metadata:
        low, high = setting.metadata["bounds"]
        return _number(setting.name, raw, type(setting.default), low, high)
    if setting.type == tuple[str, ...] and isinstance(raw, str):
        return tuple(v.strip() for v in raw.split(",") if v.strip())
    choices = setting.metadata.get("choices")
    if choices and raw not in choices:
        raise SettingError(f"{setting.name} must be one of {', '.join(choices)}, got {raw!r}")
    return raw


def _number(name: str, raw: Any, kind: type[Number], low: Number, high: Number) -> Number:
    try:
        value = kind(raw)
    except (TypeError, ValueError):
        raise SettingError(f"{name} must be a number, got {raw!r}") from None
    if not low <= value <= high:
        raise SettingError(f"{name} must be between {low} and {high}, got {value}")
    return value


def _check(settings: Settings) -> None:
    """Raise SettingError for a setting that is well-formed alone but cannot work."""
    if not settings.PASSWORD_HASH.startswith(("scrypt", "pbkdf2:")):
        raise SettingError(f"PASSWORD_HASH must be a werkzeug scrypt or pbkdf2 method, got {settings.PASSWORD_HASH!r}")
    scheme = urlparse(settings.DATABASE_URL).scheme.split("+")[0]
    if scheme not in ("sqlite", "postgresql", "postgres"):
        raise SettingError(f"DATABASE_URL must be sqlite:/// or postgresql://, got {settings.DATABASE_URL!r}")
    if settings.NOTIFY_TOKEN and len(settings.NOTIFY_TOKEN) < 16:
        raise SettingError("NOTIFY_TOKEN must be at least 16 characters (or unset: notifications off)")
    if settings.REDIS_URL and urlparse(settings.REDIS_URL).scheme not in ("redis", "rediss", "unix"):
        raise SettingError(f"REDIS_URL must start with redis://, got {settings.REDIS_URL!r}")
    if settings.SOCKET_TIMEOUT <= settings.PING_INTERVAL + settings.PING_TIMEOUT:
        raise SettingError("SOCKET_TIMEOUT must be longer than PING_INTERVAL + PING_TIMEOUT")
    if len(settings.SECRET_KEY) < 16:
        raise SettingError("SECRET_KEY must be at least 16 characters")
    for origin in settings.CORS_ALLOWED_ORIGINS:
        if origin != "*" and urlparse(origin).scheme not in ("http", "https"):
            raise SettingError(f"CORS_ALLOWED_ORIGINS entries must be http(s) origins, got {origin!r}")


def _instance_secret(instance_path: str) -> str:
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
