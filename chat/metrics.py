"""Prometheus instrumentation: the counters the chat path moves, the gauges read at scrape time, GET /metrics.

The chat path only increments counters, through two seams: the broadcaster wrapper (what the service
emits) and the hook the events table calls (what clients send, what they are refused). Whatever takes
work (gauges, rates, quantiles) is computed when /metrics is scraped.

Papo's own counters and its histogram are plain numbers under an OS lock, handed to prometheus_client
as metric families when scraped. prometheus_client's Counter takes a threading.Lock per increment,
which eventlet and gevent patch into a green lock written in Python: 0.47 µs an increment against
0.06 µs here (measured under eventlet), and a message moved six of them.
"""
import bisect
import math
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from flask import Flask, Response
from prometheus_client import (CONTENT_TYPE_LATEST, CollectorRegistry, GCCollector, PlatformCollector,
                               ProcessCollector, generate_latest)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.utils import floatToGoString

from . import internals
from .async_modes import short_lock
from .errors import CODES
from .ports import Broadcaster, Presence

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075,
                   0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0)
SERVER_EVENTS = ("message", "presence", "typing", "direct", "notification", "notifications_read")
Buckets = Sequence[tuple[float, float]]  # a histogram's [(upper bound, cumulative count)]


class Tally:
    """One counter's value, moved under an OS lock: no increment may yield to another green thread."""

    __slots__ = ("value", "created", "_lock")

    def __init__(self) -> None:
        self.value = 0.0
        self.created = time.time()
        self._lock = short_lock()

    def inc(self, amount: float = 1) -> None:
        """Add amount (one by default)."""
        with self._lock:
            self.value += amount


class Counters:
    """A counter family: one Tally per combination of label values, made on first use."""

    def __init__(self, name: str, documentation: str, labels: Sequence[str] = ()) -> None:
        self.name = name
        self.documentation = documentation
        self.label_names = list(labels)
        self._tallies: dict[tuple[str, ...], Tally] = {}
        self._lock = short_lock()
        if not labels:
            self.labels()

    def labels(self, *values: str) -> Tally:
        """Return the Tally of these label values."""
        tally = self._tallies.get(values)
        if tally is None:
            with self._lock:
                tally = self._tallies.setdefault(values, Tally())
        return tally

    def inc(self, amount: float = 1) -> None:
        """Add to a family without labels."""
        self._tallies[()].inc(amount)

    def total(self) -> float:
        """Return the sum over every combination of label values."""
        return sum(tally.value for tally in list(self._tallies.values()))

    def family(self) -> Metric:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.label_names)
        for values, tally in list(self._tallies.items()):
            family.add_metric(list(values), tally.value, created=tally.created)
        return family


class Latencies:
    """A histogram of seconds: a count per bucket (upper bounds inclusive, the last +Inf) and the sum."""

    def __init__(self, name: str, documentation: str, bounds: Sequence[float]) -> None:
        self.name = name
        self.documentation = documentation
        self.bounds = [*bounds, math.inf]
        self.counts = [0] * len(self.bounds)
        self.sum = 0.0
        self._lock = short_lock()

    def observe(self, seconds: float) -> None:
        """Count one observation in the first bucket whose bound holds it."""
        index = bisect.bisect_left(self.bounds, seconds)
        with self._lock:
            self.counts[index] += 1
            self.sum += seconds

    def cumulative(self) -> list[tuple[float, float]]:
        """Return [(upper bound, observations at or below it)], as Prometheus' buckets count."""
        return self._snapshot()[0]

    def family(self) -> Metric:
        buckets, total = self._snapshot()
        return HistogramMetricFamily(self.name, self.documentation, sum_value=total,
                                     buckets=[(floatToGoString(bound), count) for bound, count in buckets])

    def _snapshot(self) -> tuple[list[tuple[float, float]], float]:
        with self._lock:
            counts, total = list(self.counts), self.sum
        running, buckets = 0, []
        for bound, count in zip(self.bounds, counts, strict=True):
            running += count
            buckets.append((bound, float(running)))
        return buckets, total


class Metrics:
    """One app's metrics on a registry of its own (tests build many apps in one process)."""

    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry()
        for collector in (ProcessCollector, PlatformCollector, GCCollector):
            collector(registry=registry)
        self.events_in = Counters("papo_events_received", "Socket.IO events received from clients in the chat "
                                  "namespace, by event", ["event"])
        self.events_out = Counters("papo_events_emitted", "Events the server emitted to a channel (one per "
                                   "broadcast, whatever its number of receivers), by event", ["event"])
        self.messages_in = Counters("papo_messages_received", "Chat messages stored and broadcast, from "
                                    "Socket.IO or HTTP")
        self.messages_out = Counters("papo_messages_delivered", "Chat messages handed to a connection of this "
                                     "process (one per receiving connection)")
        self.latency = Latencies("papo_delivery_latency_seconds", "From a message's server timestamp to the end "
                                 "of its broadcast to this process's connections", LATENCY_BUCKETS)
        self.errors = Counters("papo_errors", "Errors answered to clients, by contract code and transport",
                               ["code", "transport"])
        self.pushed = Counters("papo_series_pushed", "Values pushed to POST /api/metrics/<name>")
        registry.register(_TallyCollector([self.events_in, self.events_out, self.messages_in, self.messages_out,
                                           self.latency, self.errors, self.pushed]))
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
        return {"messages_in": self.messages_in.total(), "messages_out": self.messages_out.total(),
                "errors": self.errors.total(), "buckets": self.latency.cumulative()}


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


class _TallyCollector:
    """Papo's counters and histogram, as prometheus_client's metric families, when scraped."""

    def __init__(self, metrics: list[Any]) -> None:
        self.metrics = metrics

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        for metric in self.metrics:
            yield metric.family()


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
