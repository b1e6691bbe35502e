"""What the admin performance endpoints answer, read from the app's window (window.py).

With monitoring off (ENABLE_PERFORMANCE_MONITORING=false) nothing is recorded: the endpoints still answer 200, with
every figure 0, no slow entries and `enabled: false`, so a dashboard shows "off" rather than an error.
"""

from __future__ import annotations

import time
from typing import Any

import psutil
from flask import Flask

from fantasize.platform.monitoring import window_of
from fantasize.platform.monitoring.figures import report
from fantasize.platform.monitoring.window import SCOPE_INSTANCE

SUMMARY_WINDOWS = (("last5Minutes", 300), ("lastHour", 3600), ("last24Hours", 86400))
SUMMARY_SLOW_QUERIES = 20


def metrics(app: Flask, window_ms: int) -> dict[str, Any]:
    window = window_of(app)
    if window is None:
        return {**report({}, window_ms / 1000), "scope": SCOPE_INSTANCE, "enabled": False}
    return {**window.metrics(window_ms / 1000), "enabled": True}


def slow_requests(app: Flask, limit: int) -> list[dict[str, Any]]:
    window = window_of(app)
    return [] if window is None else window.recent(window.slow_requests, limit)


def memory() -> dict[str, Any]:
    return {"rssBytes": psutil.Process().memory_info().rss, "systemUsagePercent": psutil.virtual_memory().percent}


def uptime_ms() -> int:
    return int((time.time() - psutil.Process().create_time()) * 1000)


def summary(app: Flask) -> dict[str, Any]:
    window = window_of(app)
    figures = {name: metrics(app, seconds * 1000) for name, seconds in SUMMARY_WINDOWS}
    queries = [] if window is None else window.recent(window.slow_queries, SUMMARY_SLOW_QUERIES)
    return {**figures, "memory": memory(), "uptime": uptime_ms(), "slowQueries": queries,
            "enabled": window is not None}
