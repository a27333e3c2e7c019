"""Prometheus metrics of one application: requests by route and status, and store gauges.

The request counters sit on every request's path, so they are plain integers kept by the event
loop's thread and turned into Prometheus families only when /metrics is scraped; a labelled
prometheus_client Counter and Histogram cost several times more per request (label lookup, locks).
"""

from __future__ import annotations

import os
import time
from bisect import bisect_left
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_BUCKET_LABELS = (*(repr(bound) for bound in LATENCY_BUCKETS), "+Inf")


class _StoreCollector(Collector):
    def __init__(self, stats: Callable[[], dict[str, float]]) -> None:
        self._stats = stats

    def collect(self) -> Iterator[Metric]:
        for name, value in self._stats().items():
            if name.endswith("_total"):
                yield CounterMetricFamily(
                    name[: -len("_total")], name.replace("_", " "), value=value
                )
            else:
                yield GaugeMetricFamily(name, name.replace("_", " "), value=value)


@dataclass(slots=True)
class _Latency:
    """One route's latency histogram: a count per bucket (the last one is +Inf) and the sum."""

    counts: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))
    total: float = 0.0


class RequestStats(Collector):
    """HTTP request counts by method, route and status, and latency histograms by route."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str, int], int] = {}
        self.latencies: dict[tuple[str, str], _Latency] = {}

    def record(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one served request."""
        key = (method, route, status)
        self.counts[key] = self.counts.get(key, 0) + 1
        latency = self.latencies.get((method, route))
        if latency is None:
            latency = self.latencies[(method, route)] = _Latency()
        latency.counts[bisect_left(LATENCY_BUCKETS, seconds)] += 1
        latency.total += seconds

    def collect(self) -> Iterator[Metric]:
        """The counters as Prometheus families (called when /metrics is scraped)."""
        requests = CounterMetricFamily(
            "burgo_http_requests", "HTTP requests served", labels=["method", "route", "status"]
        )
        for (method, route, status), count in list(self.counts.items()):
            requests.add_metric([method, route, str(status)], count)
        yield requests
        latency = HistogramMetricFamily(
            "burgo_http_request_seconds",
            "Time to serve an HTTP request",
            labels=["method", "route"],
        )
        for (method, route), histogram in list(self.latencies.items()):
            cumulative, buckets = 0, []
            for label, count in zip(_BUCKET_LABELS, histogram.counts, strict=True):
                cumulative += count
                buckets.append((label, cumulative))
            latency.add_metric([method, route], buckets, histogram.total)
        yield latency


class Metrics:
    """The metrics registry of one Burgo application."""

    def __init__(self, store_stats: Callable[[], dict[str, float]]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = RequestStats()
        self.registry.register(self.requests)
        self.registry.register(_StoreCollector(store_stats))
        # Several workers answer /metrics each for itself: this tells them apart.
        process = Gauge(
            "burgo_process", "The Burgo process answering", ["pid"], registry=self.registry
        )
        process.labels(str(os.getpid())).set(1)


class MetricsMiddleware:
    """Counts and times every HTTP request by its route template (not its raw path)."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.record = metrics.requests.record

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            template = getattr(route, "path_format", None) or getattr(route, "path", "unmatched")
            self.record(scope["method"], str(template), status, time.perf_counter() - start)
