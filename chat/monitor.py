"""The /monitor namespace: the live dashboard's feed of samples and pushed series, for admins only.

Sampling takes work (rates, quantiles, CPU), so it runs once a second and only while an admin watches.
"""
import collections
import logging
import math
import os
import re
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any, Protocol

import psutil
from flask import request
from flask_socketio import ConnectionRefusedError
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from .auth import is_admin, socket_session
from .errors import ChatError
from . import internals
from .extension import papo
from .metrics import Metrics, quantile
from .ports import Presence
from .sessions import SocketBinding, namespaced

log = logging.getLogger(__name__)

NAMESPACE = "/monitor"
SAMPLES = 300          # samples (one a second) and points per pushed series kept for a dashboard that connects
MAX_SERIES = 50        # pushed series kept; pushing a new name past this forgets the least recently pushed
BUSIEST = 5            # rooms listed in a sample
ROOM_WINDOW = 5        # seconds over which a room's messages per second are measured
LINGER = 60            # seconds the publisher keeps sampling after the last admin left
SERIES_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
MAX_VALUE = 1e300


class RoomLister(Protocol):
    """The one store method the monitor reads: every room with its last seq."""

    def rooms(self) -> Iterable[tuple[str, int]]: ...


class Monitor:
    """The /monitor namespace: admins only; a `metrics` sample a second while anyone watches.

    Shapes: samples = deque([sample]) oldest first; series = {name: deque([[ts, value]])}, least recently
    pushed first; watchers = {sid}; room_seqs = deque([(monotonic s, {room: last_seq})]).
    """

    def __init__(self, socketio: Any, metrics: Metrics, presence: Presence, store: RoomLister,
                 linger: float = LINGER) -> None:
        self.socketio = socketio
        self.metrics = metrics
        self.presence = presence
        self.store = store
        self.linger = linger
        self.samples: collections.deque[dict[str, Any]] = collections.deque(maxlen=SAMPLES)
        self.series: collections.OrderedDict[str, collections.deque[list[float]]] = collections.OrderedDict()
        self.watchers: set[str] = set()
        self.room_seqs: collections.deque[tuple[float, dict[str, int]]] = collections.deque(maxlen=ROOM_WINDOW + 1)
        self.server = f"{socket.gethostname()}:{os.getpid()}"
        self._lock = threading.Lock()
        self._running = False
        self._stopped = False
        self._process: psutil.Process | None = None
        self._last: tuple[float, dict[str, Any]] | None = None

    def register(self) -> None:
        """Open the /monitor namespace, and publish its gauges with the app's other metrics."""
        self.socketio.on_event("connect", self.on_connect, namespace=NAMESPACE)
        self.socketio.on_event("disconnect", self.on_disconnect, namespace=NAMESPACE)
        self.metrics.registry.register(_MonitorCollector(self))

    def on_connect(self, auth: Any = None) -> None:
        """Admit an admin, bound to its session like any connection: send the backlog, start the publisher."""
        session = socket_session(auth)
        user = session.user if session is not None else None
        if user is None:
            self.metrics.refused("unauthorized")
            raise ConnectionRefusedError("unauthorized", {"code": "unauthorized"})
        if not is_admin(user):
            self.metrics.refused("forbidden")
            raise ConnectionRefusedError("forbidden", {"code": "forbidden"})
        lifetimes = papo().identity.sessions.live
        if lifetimes is not None and session is not None:
            lifetimes.bind(namespaced(NAMESPACE, _sid()), session,
                           SocketBinding(self.socketio.server, _sid(), NAMESPACE))
        with self._lock:
            self.watchers.add(_sid())
            series = {name: list(points) for name, points in self.series.items()}
        self.socketio.emit("backlog", {"samples": list(self.samples), "series": series},
                           to=_sid(), namespace=NAMESPACE, ignore_queue=True)
        self._start()

    def on_disconnect(self, reason: Any = None) -> None:
        """Forget a dashboard that went away, and its session's hold on it."""
        lifetimes = papo().identity.sessions.live
        if lifetimes is not None:
            lifetimes.unbind(namespaced(NAMESPACE, _sid()))
        with self._lock:
            self.watchers.discard(_sid())

    def push(self, name: Any, value: Any) -> dict[str, Any]:
        """Keep a backend's value and send it to every dashboard at once; return the point."""
        if not isinstance(name, str) or not SERIES_NAME.fullmatch(name):
            raise ChatError("invalid_payload", "series names are 1-64 of a-z, 0-9 and _, starting with a letter")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not _finite(value):
            raise ChatError("invalid_payload", "value must be a finite number")
        ts = int(time.time() * 1000)
        point = {"name": name, "value": value, "ts": ts}
        with self._lock:
            points = self.series.pop(name, None) or collections.deque(maxlen=SAMPLES)
            points.append([ts, value])
            self.series[name] = points
            while len(self.series) > MAX_SERIES:
                self.series.popitem(last=False)
        self.metrics.pushed.inc()
        self.socketio.emit("series", point, namespace=NAMESPACE)
        return point

    def latest(self) -> dict[str, float]:
        """Return {name: latest value} of the pushed series."""
        with self._lock:
            return {name: points[-1][1] for name, points in self.series.items() if points}

    def stop(self) -> None:
        """End the publisher at its next tick (tests; a server simply exits)."""
        self._stopped = True

    def _start(self) -> None:
        with self._lock:
            if self._running or self._stopped:
                return
            self._running = True
        self.socketio.start_background_task(self._publish)

    def _publish(self) -> None:
        """Sample once a second and emit to this process's admins; end LINGER s after the last one left."""
        idle_since = None
        try:
            self.sample()  # the baseline the first rates are measured from
            deadline = time.monotonic()
            while not self._stopped:
                deadline += 1.0
                self.socketio.sleep(max(0.0, deadline - time.monotonic()))
                if deadline < time.monotonic() - 5:
                    deadline = time.monotonic()  # fell far behind (a stalled loop): do not burst to catch up
                sample = self.sample()
                self.samples.append(sample)
                self.socketio.emit("metrics", sample, namespace=NAMESPACE, ignore_queue=True)
                with self._lock:
                    if self.watchers:
                        idle_since = None
                    elif idle_since is None:
                        idle_since = time.monotonic()
                    elif time.monotonic() - idle_since > self.linger:
                        self._running = False
                        return
        except Exception:
            log.exception("the monitor's publisher failed")
        with self._lock:
            self._running = False

    def sample(self) -> dict[str, Any]:
        """Measure what the dashboard shows for this second: `{"ts", "connections", "rooms", ...}`."""
        now = time.monotonic()
        totals = self.metrics.totals()
        last, self._last = self._last, (now, totals)
        elapsed = now - last[0] if last else 0.0
        before = last[1] if last else totals

        def rate(key: str) -> float:
            return round((totals[key] - before[key]) / elapsed, 2) if elapsed > 0 else 0.0

        buckets = totals["buckets"]
        if last:
            buckets = [(bound, count - earlier)
                       for (bound, count), (_, earlier) in zip(buckets, before["buckets"], strict=True)]
        sizes = self.presence.room_sizes()
        process = self._process or psutil.Process()
        self._process = process
        memory = process.memory_info()
        return {
            "ts": int(time.time() * 1000),
            "server": self.server,
            "connections": self.presence.connection_count(),
            "transports": internals.transports(self.socketio.server.eio),
            "rooms": len(sizes),
            "members": sum(sizes.values()),
            "messages_per_s": rate("messages_in"),
            "deliveries_per_s": rate("messages_out"),
            "errors_per_s": rate("errors"),
            "latency_ms": {"p50": _ms(quantile(0.5, buckets)), "p99": _ms(quantile(0.99, buckets))},
            "busiest_rooms": self._busiest(now, sizes),
            "cpu_percent": process.cpu_percent(None),
            "system_cpu_percent": psutil.cpu_percent(None),
            "memory_rss_bytes": memory.rss,
            "memory_percent": round(psutil.virtual_memory().percent, 1),
            "watchers": len(self.watchers),
        }

    def _busiest(self, now: float, sizes: dict[str, int]) -> list[dict[str, Any]]:
        """Rank the rooms by messages per second over the last few seconds, then by members.

        The rates are every server's, from the database's last_seq.
        """
        seqs = dict(self.store.rooms())
        self.room_seqs.append((now, seqs))
        then, before = self.room_seqs[0]
        elapsed = now - then
        rates = {name: (seq - before.get(name, 0)) / elapsed for name, seq in seqs.items()} if elapsed > 0 else {}
        names = {name for name, r in rates.items() if r > 0} | set(sizes)
        ranked = sorted(names, key=lambda name: (-rates.get(name, 0), -sizes.get(name, 0), name))[:BUSIEST]
        return [{"room": name, "members": sizes.get(name, 0), "messages_per_s": round(rates.get(name, 0.0), 2)}
                for name in ranked]


class _MonitorCollector:
    """Gauges read when /metrics is scraped: admins watching, and the latest value of each pushed series."""

    def __init__(self, monitor: Monitor) -> None:
        self.monitor = monitor

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("papo_monitor_connections", "Admins watching /monitor",
                                value=len(self.monitor.watchers))
        series = GaugeMetricFamily("papo_series_value", "The latest value pushed to POST /api/metrics/<name>",
                                   labels=["name"])
        for name, value in self.monitor.latest().items():
            series.add_metric([name], value)
        yield series


def _sid() -> str:
    """Return the connection of the event being handled, which Flask-SocketIO puts on the request."""
    return request.sid  # type: ignore[attr-defined]


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)


def _finite(value: float) -> bool:
    try:
        return math.isfinite(value) and abs(value) <= MAX_VALUE
    except OverflowError:
        return False
