"""What other modules count for Prometheus where the thing happens: page-cache hits and misses, rate-limit
rejections, orders placed and their status changes.

The callers (the page cache, the rate limiter, the socket admission gate, the order events) import only this
module, which imports no prometheus_client: each call is a dict lookup for the app's counters and, when
ENABLE_PERFORMANCE_MONITORING is on, one increment of a child metric resolved when the app was built (the page
cache's, on every cacheable read, through the tally: prometheus.Tally). With monitoring off the app has no counters
and every call returns at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import Flask, current_app, has_app_context

from fantasize import events

if TYPE_CHECKING:
    from fantasize.platform.monitoring.prometheus import Counters

EXTENSION = "fantasize.prometheus.counters"


def counters(app: Flask | None = None) -> Counters | None:
    """The app's event counters, or None (monitoring off, or no app at hand)."""
    if app is not None:
        return app.extensions.get(EXTENSION)
    return current_app.extensions.get(EXTENSION) if has_app_context() else None


def page_cache(hit: bool) -> None:
    """A cacheable read was answered from the cache (hit) or computed (miss, also while Redis is away)."""
    found = counters()
    if found is not None:
        found.tally.add(found.cache_hit if hit else found.cache_miss)


def rate_limited(kind: str, app: Flask | None = None) -> None:
    """A request refused with 429: kind "http" (the API's limits) or "socket" (connections a minute)."""
    found = counters(app)
    if found is not None:
        found.rejections[kind].inc()


def on_order_status(event: events.OrderStatusChanged) -> None:
    """After commit: a new order (no previous status) is a placed order; anything else a status change."""
    found = counters()
    if found is None:
        return
    if event.previous_status is None:
        found.orders_placed.inc()
    else:
        found.status_changes.labels(event.status).inc()


def subscribe() -> None:
    events.after_commit(events.OrderStatusChanged)(on_order_status)  # idempotent
