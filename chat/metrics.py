"""Prometheus metrics, GET /metrics, and the /monitor namespace that feeds the live dashboard.

The chat path only increments counters (InstrumentedBroadcaster, the handler wrappers);
whatever takes work (gauges, rates, quantiles, CPU) is computed when /metrics is scraped
or once a second by the monitor's publisher, which runs only while an admin watches.
"""
import collections
import logging
import math
import os
import re
import socket
import threading
import time

import psutil
from flask import Response, request
from flask_socketio import ConnectionRefusedError
from prometheus_client import (CONTENT_TYPE_LATEST, CollectorRegistry, Counter, GCCollector, Histogram,
                               PlatformCollector, ProcessCollector, generate_latest)
from prometheus_client.core import GaugeMetricFamily

from .auth import is_admin, socket_user
from .errors import CODES, ChatError

log = logging.getLogger(__name__)

NAMESPACE = "/monitor"
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075,
                   0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0)
SERVER_EVENTS = ("message", "presence", "typing", "direct", "notification", "notifications_read")
SAMPLES = 300          # samples (one a second) and points per pushed series kept for a dashboard that connects
MAX_SERIES = 50        # pushed series kept; pushing a new name past this forgets the least recently pushed
BUSIEST = 5            # rooms listed in a sample
ROOM_WINDOW = 5        # seconds over which a room's messages per second are measured
LINGER = 60            # seconds the publisher keeps sampling after the last admin left
SERIES_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
MAX_VALUE = 1e300


class Metrics:
    """One app's metrics on a registry of its own (tests build many apps in one process)."""

    def __init__(self):
        self.registry = registry = CollectorRegistry()
        for collector in (ProcessCollector, PlatformCollector, GCCollector):
            collector(registry=registry)
        self.events_in = Counter("papo_events_received", "Socket.IO events received from clients in the chat "
                                 "namespace, by event", ["event"], registry=registry)
        self.events_out = Counter("papo_events_emitted", "Events the server emitted to a channel (one per "
                                  "broadcast, whatever its number of receivers), by event", ["event"],
                                  registry=registry)
        self.messages_in = Counter("papo_messages_received", "Chat messages stored and broadcast, from "
                                   "Socket.IO or HTTP", registry=registry)
        self.messages_out = Counter("papo_messages_delivered", "Chat messages handed to a connection of this "
                                    "process (one per receiving connection)", registry=registry)
        self.latency = Histogram("papo_delivery_latency_seconds", "From a message's server timestamp to the end "
                                 "of its broadcast to this process's connections", buckets=LATENCY_BUCKETS,
                                 registry=registry)
        self.errors = Counter("papo_errors", "Errors answered to clients, by contract code and transport",
                              ["code", "transport"], registry=registry)
        self.pushed = Counter("papo_series_pushed", "Values pushed to POST /api/metrics/<name>", registry=registry)
        # Children bound once, so that the hot path is a dict lookup and an increment.
        self._events_in = {}
        self._events_out = {name: self.events_out.labels(name) for name in SERVER_EVENTS + ("other",)}
        self._errors = {(code, transport): self.errors.labels(code, transport)
                        for code in (*CODES, "other") for transport in ("socket", "http")}
        self.monitor = None

    def instrument(self, broadcaster):
        """The broadcaster wrapped so that every emit is counted."""
        return InstrumentedBroadcaster(broadcaster, self)

    def install(self, app, socketio, service, store):
        """Serve /metrics, count the chat namespace's events and errors, and open the /monitor namespace."""
        registered = socketio.server.handlers.get("/", {})
        for event in registered:
            if event not in ("connect", "disconnect"):
                self._events_in[event] = self.events_in.labels("unknown" if event == "*" else event)
        for event, handler in list(registered.items()):
            registered[event] = self._counted(event, handler)
        app.add_url_rule("/metrics", "metrics", self.exposition)
        app.after_request(self._count_http_error)
        self.monitor = Monitor(socketio, self, service, store)
        self.monitor.register()
        self.registry.register(_LiveCollector(socketio, service.presence, self.monitor))

    def exposition(self):
        return Response(generate_latest(self.registry), content_type=CONTENT_TYPE_LATEST)

    def error(self, code, transport):
        self._errors.get((code, transport), self._errors[("other", transport)]).inc()

    def _counted(self, event, handler):
        received = self._events_in.get(event)

        def counted(*args):
            if received is not None:
                received.inc()
            try:
                answer = handler(*args)
            except ConnectionRefusedError as refusal:
                data = refusal.error_args.get("data") if isinstance(refusal.error_args, dict) else None
                self.error(data.get("code") if isinstance(data, dict) else "other", "socket")
                raise
            if type(answer) is dict and answer.get("ok") is False:
                self.error(answer.get("error", {}).get("code"), "socket")
            return answer

        return counted

    def _count_http_error(self, response):
        if response.status_code >= 400 and response.mimetype == "application/json":
            body = response.get_json(silent=True)
            error = body.get("error") if isinstance(body, dict) else None
            self.error(error.get("code") if isinstance(error, dict) else "other", "http")
        return response

    def totals(self):
        """The counters a monitor sample needs, and the latency histogram's cumulative buckets."""
        buckets = [(_bound(s.labels["le"]), s.value) for s in self.latency.collect()[0].samples
                   if s.name.endswith("_bucket")]
        return {"messages_in": _total(self.messages_in), "messages_out": _total(self.messages_out),
                "errors": _total(self.errors), "buckets": buckets}


class InstrumentedBroadcaster:
    """Counts what the service broadcasts, then hands it on; a message also counts its receivers and latency."""

    def __init__(self, inner, metrics):
        self.inner = inner
        self.metrics = metrics
        self.enter = inner.enter
        self.exit = inner.exit
        socketio = getattr(inner, "socketio", None)
        self._manager = socketio.server.manager if socketio is not None else None

    def emit(self, event, data, to, skip=None):
        self.inner.emit(event, data, to, skip)
        metrics = self.metrics
        counted = metrics._events_out.get(event)
        (counted if counted is not None else metrics._events_out["other"]).inc()
        if event == "message":
            metrics.messages_in.inc()
            metrics.messages_out.inc(self._receivers(to))
            metrics.latency.observe(max(0.0, time.time() - data["ts"] / 1000))

    def _receivers(self, channel):
        """This process's connections in a channel: a size read from python-socketio's room table."""
        rooms = getattr(self._manager, "rooms", None)
        return len(rooms.get("/", {}).get(channel) or ()) if isinstance(rooms, dict) else 0


class Monitor:
    """The /monitor namespace: admins only; a `metrics` sample a second while anyone watches.

    Shapes: samples = deque([sample]) oldest first; series = {name: deque([[ts, value]])}, least recently
    pushed first; watchers = {sid}; room_seqs = deque([(monotonic s, {room: last_seq})]).
    """

    def __init__(self, socketio, metrics, service, store, linger=LINGER):
        self.socketio = socketio
        self.metrics = metrics
        self.presence = service.presence
        self.store = store
        self.linger = linger
        self.samples = collections.deque(maxlen=SAMPLES)
        self.series = collections.OrderedDict()
        self.watchers = set()
        self.room_seqs = collections.deque(maxlen=ROOM_WINDOW + 1)
        self.server = f"{socket.gethostname()}:{os.getpid()}"
        self._lock = threading.Lock()
        self._running = False
        self._stopped = False
        self._process = None
        self._last = None

    def register(self):
        self.socketio.on_event("connect", self.on_connect, namespace=NAMESPACE)
        self.socketio.on_event("disconnect", self.on_disconnect, namespace=NAMESPACE)

    def on_connect(self, auth=None):
        user = socket_user(auth)
        if user is None:
            self.metrics.error("unauthorized", "socket")
            raise ConnectionRefusedError("unauthorized", {"code": "unauthorized"})
        if not is_admin(user):
            self.metrics.error("forbidden", "socket")
            raise ConnectionRefusedError("forbidden", {"code": "forbidden"})
        with self._lock:
            self.watchers.add(request.sid)
            series = {name: list(points) for name, points in self.series.items()}
        self.socketio.emit("backlog", {"samples": list(self.samples), "series": series},
                           to=request.sid, namespace=NAMESPACE, ignore_queue=True)
        self._start()

    def on_disconnect(self, reason=None):
        with self._lock:
            self.watchers.discard(request.sid)

    def push(self, name, value):
        """Keep a backend's value and send it to every dashboard at once; the point."""
        if not isinstance(name, str) or not SERIES_NAME.fullmatch(name):
            raise ChatError("invalid_payload", "series names are 1-64 of a-z, 0-9 and _, starting with a letter")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not _finite(value):
            raise ChatError("invalid_payload", "value must be a finite number")
        point = {"name": name, "value": value, "ts": int(time.time() * 1000)}
        with self._lock:
            points = self.series.pop(name, None) or collections.deque(maxlen=SAMPLES)
            points.append([point["ts"], value])
            self.series[name] = points
            while len(self.series) > MAX_SERIES:
                self.series.popitem(last=False)
        self.metrics.pushed.inc()
        self.socketio.emit("series", point, namespace=NAMESPACE)
        return point

    def latest(self):
        """{name: latest value} of the pushed series."""
        with self._lock:
            return {name: points[-1][1] for name, points in self.series.items() if points}

    def stop(self):
        """End the publisher at its next tick (tests; a server simply exits)."""
        self._stopped = True

    def _start(self):
        with self._lock:
            if self._running or self._stopped:
                return
            self._running = True
        self.socketio.start_background_task(self._publish)

    def _publish(self):
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

    def sample(self):
        """What the dashboard shows for this second: `{"ts", "connections", "rooms", "messages_per_s", ...}`."""
        now = time.monotonic()
        totals = self.metrics.totals()
        last, self._last = self._last, (now, totals)
        elapsed = now - last[0] if last else 0.0
        rate = (lambda key: round((totals[key] - last[1][key]) / elapsed, 2)) if elapsed > 0 else (lambda key: 0.0)
        buckets = totals["buckets"]
        if last:
            buckets = [(bound, count - before) for (bound, count), (_, before) in zip(buckets, last[1]["buckets"])]
        sizes = self.presence.room_sizes()
        process = self._process or psutil.Process()
        self._process = process
        memory = process.memory_info()
        return {
            "ts": int(time.time() * 1000),
            "server": self.server,
            "connections": self.presence.connection_count(),
            "transports": transports(self.socketio),
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

    def _busiest(self, now, sizes):
        """The rooms with the most messages per second over the last few seconds (every server's, from the
        database's last_seq), then the most members."""
        seqs = dict(self.store.rooms())
        self.room_seqs.append((now, seqs))
        then, before = self.room_seqs[0]
        elapsed = now - then
        rates = {name: (seq - before.get(name, 0)) / elapsed for name, seq in seqs.items()} if elapsed > 0 else {}
        names = {name for name, r in rates.items() if r > 0} | set(sizes)
        ranked = sorted(names, key=lambda name: (-rates.get(name, 0), -sizes.get(name, 0), name))[:BUSIEST]
        return [{"room": name, "members": sizes.get(name, 0), "messages_per_s": round(rates.get(name, 0.0), 2)}
                for name in ranked]


class _LiveCollector:
    """Gauges read when /metrics is scraped: connections, rooms, members, watchers, pushed series."""

    def __init__(self, socketio, presence, monitor):
        self.socketio = socketio
        self.presence = presence
        self.monitor = monitor

    def describe(self):
        return []

    def collect(self):
        by_transport = GaugeMetricFamily("papo_connections", "Engine.IO connections to this process, by "
                                         "transport", labels=["transport"])
        for transport, count in transports(self.socketio).items():
            by_transport.add_metric([transport], count)
        yield by_transport
        sizes = self.presence.room_sizes()
        yield GaugeMetricFamily("papo_chat_connections", "Signed-in connections to the chat namespace",
                                value=self.presence.connection_count())
        yield GaugeMetricFamily("papo_rooms", "Rooms with at least one member online", value=len(sizes))
        yield GaugeMetricFamily("papo_room_members", "Users online in rooms, summed over the rooms",
                                value=sum(sizes.values()))
        yield GaugeMetricFamily("papo_monitor_connections", "Admins watching /monitor",
                                value=len(self.monitor.watchers))
        series = GaugeMetricFamily("papo_series_value", "The latest value pushed to POST /api/metrics/<name>",
                                   labels=["name"])
        for name, value in self.monitor.latest().items():
            series.add_metric([name], value)
        yield series


def transports(socketio):
    """{"websocket": n, "polling": n}: this process's Engine.IO connections."""
    counts = {"websocket": 0, "polling": 0}
    for eio_socket in list(socketio.server.eio.sockets.values()):
        if not eio_socket.closed:
            counts["websocket" if eio_socket.upgraded else "polling"] += 1
    return counts


def quantile(q, buckets):
    """The q-quantile of a histogram's [(upper bound, cumulative count)], interpolated within its bucket
    (as Prometheus' histogram_quantile does); None without observations."""
    total = buckets[-1][1] if buckets else 0
    if total <= 0:
        return None
    rank = q * total
    lower, below = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower
            share = (rank - below) / (count - below) if count > below else 1.0
            return lower + (bound - lower) * share
        lower, below = bound, count
    return lower


def _total(metric):
    return sum(s.value for s in metric.collect()[0].samples if s.name.endswith("_total"))


def _bound(le):
    return math.inf if le == "+Inf" else float(le)


def _ms(seconds):
    return None if seconds is None else round(seconds * 1000, 2)


def _finite(value):
    try:
        return math.isfinite(value) and abs(value) <= MAX_VALUE
    except OverflowError:
        return False
