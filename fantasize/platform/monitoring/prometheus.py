"""GET /metrics: Prometheus text (prometheus_client), one registry per app.

What it holds (every name and label is listed in the README's Monitoring section):
- requests and their latency by method, route template and status (a `monitoring.on_request` listener);
- page-cache hits and misses, rate-limit rejections, orders placed and status changes, slow SQL statements
  (counted where they happen: `counts`, `monitoring.on_slow_query`);
- read when scraped (`readings`, as `gauges`): the database pool, Socket.IO clients and rooms, whether Redis answers;
- the process (prometheus_client's process, platform and GC collectors).

One registry per app, never prometheus_client's global REGISTRY: the test suite builds many apps in one process,
and each must count its own requests without a "Duplicated timeseries" error.

Under gunicorn with more than one worker (WEB_CONCURRENCY>1) gunicorn.conf.py sets PROMETHEUS_MULTIPROC_DIR before
the workers fork, so prometheus_client keeps every value in a memory-mapped file per worker, and a scrape (answered
by whichever worker gets it) sums every worker's files with MultiProcessCollector. Figures read at scrape time
would then be the answering worker's alone, so in that mode each worker writes them to gauges (live workers' values
summed, or the largest) every REFRESH_SECONDS from a background thread (a greenlet under gevent). Lost in that
mode: the per-process CPU, file-descriptor and start-time figures and the GC and platform collectors
(prometheus_client cannot merge them); memory is kept as the largest live worker's resident size.

ENABLE_PERFORMANCE_MONITORING=false registers no listener and no counter: /metrics then holds only what is read when
it is scraped (pool, sockets, Redis, process) and `fantasize_monitoring_enabled 0`.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from dataclasses import dataclass
from typing import Any

from flask import Flask, Response, current_app
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    GC_COLLECTOR,
    CollectorRegistry,
    Counter,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
    values,
)
from prometheus_client.multiprocess import MultiProcessCollector

from fantasize.models.orders import ORDER_STATUSES
from fantasize.platform import monitoring
from fantasize.platform.monitoring import counts, scrape_access
from fantasize.platform.monitoring.gauges import NAMESPACE, ScrapeFigures, WorkerFigures
from fantasize.web import error_response

EXTENSION = "fantasize.prometheus"
PATH = "/metrics"
# Seconds. SLOW_REQUEST_THRESHOLD's default (1 s) is a bucket edge, so the p99 and slow-request alerts are exact.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def multiprocess_mode() -> bool:
    """Whether prometheus_client keeps values in PROMETHEUS_MULTIPROC_DIR's files: decided by the library when it
    was imported (from the environment gunicorn.conf.py prepared), so ask it rather than the environment."""
    return values.ValueClass is not values.MutexValue


class Tally:
    """Increments kept as plain numbers on the request path, added to their metrics in one go: before each scrape
    this process answers and, with several workers, every REFRESH_SECONDS (WorkerFigures) and at exit.

    An increment of a prometheus_client value takes a lock and, with several workers, writes a memory-mapped file; a
    cached read made four of them (request count, latency sum and bucket, cache hit), some 40 µs with two workers
    (bench/run's monitoring row). Here a request adds to a dict under one lock, and each value is written once per
    flush however many requests added to it. What a scrape shows is the same: the values are the histogram's and
    the counters' own (their children's `_sum` and `_buckets`, and the children), increased by the same amounts
    that `observe` and `inc` would have added (tests/test_prometheus.py compares the two expositions).
    """

    def __init__(self) -> None:
        self._pending: dict[Any, float] = {}
        self._lock = monitoring.counting_lock()

    def add(self, value: Any, amount: float = 1.0) -> None:
        with self._lock:
            self._pending[value] = self._pending.get(value, 0.0) + amount

    def add_request(self, count: Any, latency_sum: Any, bucket: Any, seconds: float) -> None:
        """One request's three increments under one lock."""
        with self._lock:
            pending = self._pending
            pending[count] = pending.get(count, 0.0) + 1.0
            pending[latency_sum] = pending.get(latency_sum, 0.0) + seconds
            pending[bucket] = pending.get(bucket, 0.0) + 1.0

    def apply(self) -> None:
        with self._lock:
            pending, self._pending = self._pending, {}
        for value, amount in pending.items():
            value.inc(amount)


@dataclass
class Counters:
    """The counters other modules increment (through `counts`), children resolved once."""

    tally: Tally
    cache_hit: Any
    cache_miss: Any
    rejections: dict[str, Any]
    orders_placed: Counter
    status_changes: Counter
    slow_queries: Counter


class RequestMetrics:
    """The request listener: one count, and one latency observation, per request, kept in the tally.

    `.labels()` builds a key and takes a lock on every call (a few microseconds); the children are kept here per
    (method, route, status), a set bounded by the app's routes x monitoring.METHODS x status codes, with the histogram's
    values: its sum and its buckets (a duration counts in the first bucket whose bound it does not exceed, +Inf
    last, as Histogram.observe does).
    """

    def __init__(self, registry: CollectorRegistry, tally: Tally) -> None:
        self.tally = tally
        self.requests = Counter("http_requests_total", "HTTP requests answered, by method, route template and status",
                                ["method", "route", "status"], namespace=NAMESPACE, registry=registry)
        self.latency = Histogram("http_request_duration_seconds",
                                 "Time from the first before-request hook to the last after-request hook",
                                 ["method", "route", "status"], namespace=NAMESPACE, buckets=LATENCY_BUCKETS,
                                 registry=registry)
        self._bounds = (*LATENCY_BUCKETS, math.inf)
        self._children: dict[tuple[str, str, int], tuple[Any, Any, list[Any]]] = {}

    def __call__(self, sample: monitoring.Sample) -> None:
        key = (sample.method, sample.route, sample.status)
        children = self._children.get(key)
        if children is None:
            children = self._resolve(key)
        count, latency_sum, buckets = children
        self.tally.add_request(count, latency_sum, buckets[bisect_left(self._bounds, sample.seconds)], sample.seconds)

    def _resolve(self, key: tuple[str, str, int]) -> tuple[Any, Any, list[Any]]:
        method, route, status = key
        labels = (method, route, str(status))
        histogram = self.latency.labels(*labels)
        children = (self.requests.labels(*labels), histogram._sum, list(histogram._buckets))
        self._children[key] = children
        return children


def event_counters(registry: CollectorRegistry, tally: Tally) -> Counters:
    cache = Counter("page_cache_requests_total", "Cacheable reads, by whether the page cache answered",
                    ["result"], namespace=NAMESPACE, registry=registry)
    rejections = Counter("rate_limit_rejections_total", "Requests refused with 429, by what was limited",
                         ["kind"], namespace=NAMESPACE, registry=registry)
    status_changes = Counter("order_status_changes_total", "Order status changes committed, by new status",
                             ["status"], namespace=NAMESPACE, registry=registry)
    for status in ORDER_STATUSES:
        status_changes.labels(status)  # every status shows from the start, at 0 (rate() needs a first sample)
    return Counters(
        tally=tally, cache_hit=cache.labels("hit"), cache_miss=cache.labels("miss"),
        rejections={kind: rejections.labels(kind) for kind in ("http", "socket")},
        orders_placed=Counter("orders_placed_total", "Orders placed (committed)", namespace=NAMESPACE,
                              registry=registry),
        status_changes=status_changes,
        slow_queries=Counter("slow_queries_total", "SQL statements slower than SLOW_QUERY_THRESHOLD",
                             namespace=NAMESPACE, registry=registry),
    )


@dataclass
class Metrics:
    registry: CollectorRegistry | None  # None in multiprocess mode: each scrape builds one over the files
    multiprocess: bool
    tally: Tally | None  # None while monitoring is off


def scrape_registry(app: Flask, metrics: Metrics) -> CollectorRegistry:
    if metrics.registry is not None:
        return metrics.registry
    registry = CollectorRegistry()
    MultiProcessCollector(registry)
    registry.register(ScrapeFigures(app, redis_only=True))
    return registry


def metrics_view() -> Response:
    monitoring.unrecorded()
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if not scrape_access.allowed(app):
        return error_response(404, "NOT_FOUND", "No such resource or route")
    metrics: Metrics = app.extensions[EXTENSION]
    if metrics.tally is not None:
        metrics.tally.apply()  # this process's counts up to now (other workers' within REFRESH_SECONDS)
    body = generate_latest(scrape_registry(app, metrics))
    return Response(body, headers={"Content-Type": CONTENT_TYPE_LATEST, "Cache-Control": "no-store"})


def init_app(app: Flask) -> None:
    """GET /metrics and what it counts; call once the page cache, the rate limiter and real time are in place."""
    scrape_access.init_app(app)
    # No `_created` series beside every counter and histogram (a process-wide switch): they double what each scrape
    # carries and Prometheus' 0.0.4 text format takes them for series of their own.
    disable_created_metrics()
    multiprocess = multiprocess_mode()
    registry = None if multiprocess else CollectorRegistry()
    if registry is not None:
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        registry.register(GC_COLLECTOR)
        registry.register(ScrapeFigures(app))
    tally = None
    if monitoring.state(app) is not None:
        tally = Tally()
        monitoring.on_request(app, RequestMetrics(registry, tally))
        found = app.extensions[counts.EXTENSION] = event_counters(registry, tally)
        monitoring.on_slow_query(app, lambda _statement, _seconds, _request_id: found.slow_queries.inc())
        counts.subscribe()
    if multiprocess:
        WorkerFigures(app, tally).start()
    app.extensions[EXTENSION] = Metrics(registry, multiprocess, tally)
    app.add_url_rule(PATH, endpoint="metrics", view_func=metrics_view, methods=["GET"])
