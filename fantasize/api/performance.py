"""Request figures for administrators (API.md "Monitoring"): `{success, data, meta}` in every version."""

from __future__ import annotations

from flask import Blueprint, current_app

from fantasize.api.endpoint import endpoint
from fantasize.platform.monitoring import report
from fantasize.schemas.performance import (
    MetricsQuery,
    PerformanceMetricsSchema,
    PerformanceSummarySchema,
    SlowRequestSchema,
    SlowRequestsQuery,
)
from fantasize.web import Shape

bp = Blueprint("performance", __name__)

METRICS = Shape("PerformanceMetrics", PerformanceMetricsSchema)
SLOW_REQUEST = Shape("SlowRequest", SlowRequestSchema)
SUMMARY = Shape("PerformanceSummary", PerformanceSummarySchema)

TAGS = ("admin", "monitoring")


@bp.get("/admin/performance/metrics")
@endpoint("Requests over the last timeWindow ms: counts, mean and p50/p95/p99 times, error rate, status codes and "
          "the busiest routes, over every instance sharing Redis (else this process)",
          returns=METRICS, query=MetricsQuery, auth="admin", tags=TAGS, enveloped=True)
def get_performance_metrics(args):
    return report.metrics(current_app, args["time_window"])


@bp.get("/admin/performance/slow-requests")
@endpoint("The latest requests slower than SLOW_REQUEST_THRESHOLD, newest first",
          returns=SLOW_REQUEST, many=True, query=SlowRequestsQuery, auth="admin", tags=TAGS, enveloped=True)
def list_slow_requests(args):
    return report.slow_requests(current_app, args["limit"])


@bp.get("/admin/performance/summary")
@endpoint("The request figures of the last 5 minutes, hour and day, this process's memory and uptime, and the "
          "latest slow SQL statements", returns=SUMMARY, auth="admin", tags=TAGS, enveloped=True)
def get_performance_summary():
    return report.summary(current_app)
