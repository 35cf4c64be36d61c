"""Prometheus instrumentation: the counters the chat path moves, the gauges read at scrape time, GET /metrics.

The chat path only increments counters, through two seams: the broadcaster wrapper (what the service
emits) and the hook the events table calls (what clients send, what they are refused). Whatever takes
work (gauges, rates, quantiles) is computed when /metrics is scraped.
"""
import math
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from flask import Flask, Response
from prometheus_client import (CONTENT_TYPE_LATEST, CollectorRegistry, Counter, GCCollector, Histogram,
                               PlatformCollector, ProcessCollector, generate_latest)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from . import internals
from .errors import CODES
from .ports import Broadcaster, Presence

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075,
                   0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0)
SERVER_EVENTS = ("message", "presence", "typing", "direct", "notification", "notifications_read")
Buckets = Sequence[tuple[float, float]]  # a histogram's [(upper bound, cumulative count)]


class Metrics:
    """One app's metrics on a registry of its own (tests build many apps in one process)."""

    def __init__(self) -> None:
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
        self._events_out = {name: self.events_out.labels(name) for name in (*SERVER_EVENTS, "other")}
        self._errors = {(code, transport): self.errors.labels(code, transport)
                        for code in (*CODES, "other") for transport in ("socket", "http")}

    def instrument(self, broadcaster: Broadcaster, manager: Any = None) -> Broadcaster:
        """Wrap the broadcaster so that every emit is counted; manager: python-socketio's, for room sizes."""
        return InstrumentedBroadcaster(broadcaster, self, manager)

    def install(self, app: Flask, socketio: Any, presence: Presence) -> None:
        """Serve /metrics with the live gauges, and count the errors HTTP answers."""
        app.add_url_rule("/metrics", "metrics", self.exposition)
        app.after_request(self._count_http_error)
        self.registry.register(_LiveCollector(socketio, presence))

    def exposition(self) -> Response:
        """Answer a scrape in Prometheus' text format."""
        return Response(generate_latest(self.registry), content_type=CONTENT_TYPE_LATEST)

    # the hook the chat events table calls (chat.ports.EventHook)

    def counter(self, event: str) -> Callable[[], None]:
        """Return what to call each time a client sends `event`."""
        return self.events_in.labels(event).inc

    def refused(self, code: str | None) -> None:
        """Count a Socket.IO refusal (an error ack or a refused connection) by its contract code."""
        self.error(code, "socket")

    def error(self, code: str | None, transport: str) -> None:
        """Count an error answered over a transport ("socket" or "http")."""
        self._errors.get((code or "other", transport), self._errors[("other", transport)]).inc()

    def _count_http_error(self, response: Response) -> Response:
        if response.status_code >= 400 and response.mimetype == "application/json":
            body = response.get_json(silent=True)
            error = body.get("error") if isinstance(body, dict) else None
            self.error(error.get("code") if isinstance(error, dict) else "other", "http")
        return response

    def totals(self) -> dict[str, Any]:
        """Return the counters a monitor sample needs, and the latency histogram's cumulative buckets."""
        buckets = [(_bound(s.labels["le"]), s.value) for s in _samples(self.latency) if s.name.endswith("_bucket")]
        return {"messages_in": _total(self.messages_in), "messages_out": _total(self.messages_out),
                "errors": _total(self.errors), "buckets": buckets}


class InstrumentedBroadcaster:
    """Count what the service broadcasts, then hand it on; a message also counts its receivers and latency."""

    def __init__(self, inner: Broadcaster, metrics: Metrics, manager: Any = None) -> None:
        self.inner = inner
        self.metrics = metrics
        self.enter = inner.enter
        self.exit = inner.exit
        self._manager = manager

    def emit(self, event: str, data: Any, to: str | None, skip: Any = None) -> None:
        """Emit through the wrapped broadcaster and count it."""
        self.inner.emit(event, data, to, skip)
        metrics = self.metrics
        counted = metrics._events_out.get(event)
        (counted if counted is not None else metrics._events_out["other"]).inc()
        if event == "message":
            metrics.messages_in.inc()
            metrics.messages_out.inc(internals.room_size(self._manager, "/", to))
            metrics.latency.observe(max(0.0, time.time() - data["ts"] / 1000))


class _LiveCollector:
    """Gauges read when /metrics is scraped: connections by transport, chat connections, rooms, members."""

    def __init__(self, socketio: Any, presence: Presence) -> None:
        self.socketio = socketio
        self.presence = presence

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        by_transport = GaugeMetricFamily("papo_connections", "Engine.IO connections to this process, by "
                                         "transport", labels=["transport"])
        for transport, count in internals.transports(self.socketio.server.eio).items():
            by_transport.add_metric([transport], count)
        yield by_transport
        sizes = self.presence.room_sizes()
        yield GaugeMetricFamily("papo_chat_connections", "Signed-in connections to the chat namespace",
                                value=self.presence.connection_count())
        yield GaugeMetricFamily("papo_rooms", "Rooms with at least one member online", value=len(sizes))
        yield GaugeMetricFamily("papo_room_members", "Users online in rooms, summed over the rooms",
                                value=sum(sizes.values()))


def quantile(q: float, buckets: Buckets) -> float | None:
    """Estimate the q-quantile of a histogram's [(upper bound, cumulative count)]; None without observations.

    Interpolate within the bucket the rank falls in, as Prometheus' histogram_quantile does.
    """
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


def _samples(metric: Any) -> list[Any]:
    return next(iter(metric.collect())).samples


def _total(metric: Any) -> float:
    return sum(s.value for s in _samples(metric) if s.name.endswith("_total"))


def _bound(le: str) -> float:
    return math.inf if le == "+Inf" else float(le)
