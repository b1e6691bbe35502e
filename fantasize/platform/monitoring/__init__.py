"""Request monitoring: one pair of hooks times every request and hands the sample to its listeners.

The hooks measure; what is kept is up to the listeners registered with `on_request`: the in-process window behind
the admin performance endpoints (window.py) and the Prometheus metrics (prometheus.py). A listener runs on the
request's path, so it only counts in process memory: no Redis or database call per request (window.py flushes
once a second from a background task). `ENABLE_PERFORMANCE_MONITORING=false` registers no hook at all.

The route is the Flask rule that matched (`/api/v1/products/<int:product_id>`), never the raw path, so the number
of labels is bounded by the app's routes; requests that match no rule count under UNMATCHED. Socket.IO's own
requests are answered by its middleware before Flask and are not recorded here (the real-time figures are).
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from time import perf_counter, time
from typing import TYPE_CHECKING, Any, NamedTuple

from flask import Flask, Response, current_app, g, request

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from fantasize.platform.monitoring.window import Window

EXTENSION = "fantasize.monitoring"
# A client may send any method name; a Sample carries it only when it is one of these, else OTHER, so a stream of
# made-up methods cannot grow any listener's counters, labels or caches.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER_METHOD = "OTHER"
UNMATCHED = "<unmatched>"


class Sample(NamedTuple):
    """One finished request (a named tuple: built on every request, and a frozen dataclass costs three times as
    much)."""

    method: str  # one of METHODS, or OTHER_METHOD
    route: str  # the rule's template, or UNMATCHED
    status: int
    seconds: float  # from the first before-request hook to the last after-request hook
    request_id: str | None
    at: float  # wall-clock time (time.time()) the request finished


RequestListener = Callable[[Sample], None]


def counting_lock() -> Any:
    """The lock that guards counters the request path adds to (held only to add or copy, never across I/O).

    Under gevent's monkey-patching a greenlet runs until it waits on I/O, so such a block cannot interleave with
    another greenlet's, and gevent's Lock (a Python object) costs a few microseconds a request for nothing: no lock
    at all there. Under threads (gthread workers, the development server, tests) a real one."""
    monkey = sys.modules.get("gevent.monkey")
    if monkey is not None and monkey.is_module_patched("threading"):
        return contextlib.nullcontext()
    return threading.Lock()
# (statement with its parameters elided, seconds it took, request id or None outside a request)
SlowQueryListener = Callable[[str, float, "str | None"], None]


@dataclass
class Monitoring:
    listeners: list[RequestListener] = field(default_factory=list)
    slow_query_listeners: list[SlowQueryListener] = field(default_factory=list)
    window: Window | None = None  # the admin endpoints' figures (window.py)
    statement_events: tuple[Any, ...] = ()  # the engine events timing SQL (statements.py), once registered


def state(app: Flask) -> Monitoring | None:
    """The app's monitoring, or None when ENABLE_PERFORMANCE_MONITORING is off."""
    return app.extensions.get(EXTENSION)


def on_request(app: Flask, listener: RequestListener) -> None:
    """Call `listener` with every finished request's Sample (nothing happens while monitoring is off)."""
    monitoring = state(app)
    if monitoring is not None:
        monitoring.listeners.append(listener)


def on_slow_query(app: Flask, listener: SlowQueryListener) -> None:
    """Call `listener` for every SQL statement slower than SLOW_QUERY_THRESHOLD (nothing while monitoring is off)."""
    monitoring = state(app)
    if monitoring is not None:
        monitoring.slow_query_listeners.append(listener)


def window_of(app: Flask) -> Window | None:
    """The request window the admin endpoints read, or None while monitoring is off."""
    monitoring = state(app)
    return monitoring.window if monitoring is not None else None


def watch_statements(app: Flask, engine: Engine) -> None:
    """Time every SQL statement of `engine` (slow ones go to the slow-query listeners); nothing while off."""
    monitoring = state(app)
    if monitoring is not None and not monitoring.statement_events:
        from fantasize.platform.monitoring import statements

        statements.watch(app, engine, monitoring)


def route_of() -> str:
    rule = request.url_rule
    return rule.rule if rule is not None else UNMATCHED


def unrecorded() -> None:
    """Leave the current request out of every listener's figures (GET /metrics: a scrape every few seconds would
    show an idle instance as busy and pull its latencies toward a scrape's). Prometheus times its scrapes itself
    (`scrape_duration_seconds`)."""
    g.pop("monitoring_started", None)


def _start() -> None:
    g.monitoring_started = perf_counter()


def _finish(status: int) -> None:
    started = g.pop("monitoring_started", None)
    if started is None:  # recorded already (after_request ran before teardown), or never started
        return
    method = request.method
    if method not in METHODS:
        method = OTHER_METHOD
    sample = Sample(method, route_of(), status, perf_counter() - started, g.get("request_id"), time())
    for listener in current_app.extensions[EXTENSION].listeners:
        listener(sample)


def _after(response: Response) -> Response:
    _finish(response.status_code)
    return response


def _teardown(exc: BaseException | None) -> None:
    # Only reached with the sample still pending when no response was made (an error in an error handler):
    # what the client gets is a 500.
    _finish(500)


def init_app(app: Flask) -> None:
    if not app.config["ENABLE_PERFORMANCE_MONITORING"]:
        return
    from fantasize.platform.monitoring.window import Window

    cfg = app.config
    window = Window(cfg.get("REDIS_URL"), f"{cfg['CACHE_KEY_PREFIX']}monitoring:", cfg["SLOW_REQUEST_THRESHOLD"])
    app.extensions[EXTENSION] = Monitoring(window=window)
    on_request(app, window.record)
    on_slow_query(app, window.note_query)
    # Right after the request id is assigned (request_log puts its hook first), before every other hook.
    app.before_request_funcs.setdefault(None, []).insert(1, _start)
    app.after_request(_after)
    app.teardown_request(_teardown)
