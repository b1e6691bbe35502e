"""Schemas for the admin performance endpoints (API.md "Monitoring"): their query parameters and their figures."""

from __future__ import annotations

from marshmallow import fields, validate

from fantasize.schemas.base import QuerySchema
from fantasize.schemas.realtime import FiguresSchema

DEFAULT_WINDOW_MS = 300_000
MIN_WINDOW_MS = 1_000
MAX_WINDOW_MS = 86_400_000  # a day: the window keeps no more
SCOPES = ("cluster", "instance")


class MetricsQuery(QuerySchema):
    # 422, not API.md's 400 for a bad query value: the observability issue asks these figures' parameters to answer
    # nonsense with 422 (VALIDATION_ERROR, details field -> messages).
    refused_status = 422

    time_window = fields.Integer(
        load_default=DEFAULT_WINDOW_MS, validate=validate.Range(min=MIN_WINDOW_MS, max=MAX_WINDOW_MS),
        metadata={"description": "The last this many ms (whole 10 s slots up to an hour, 5 minute slots beyond); "
                                 "defaults to 300000"},
    )


class SlowRequestsQuery(QuerySchema):
    refused_status = 422  # as MetricsQuery

    limit = fields.Integer(load_default=10, validate=validate.Range(min=1, max=100),
                           metadata={"description": "Defaults to 10"})


class TopEndpointSchema(FiguresSchema):
    endpoint = fields.String(metadata={"description": "Method and route template, e.g. GET /api/v1/products"})
    count = fields.Integer()
    average_response_time = fields.Float(metadata={"description": "ms"})


class PerformanceMetricsSchema(FiguresSchema):
    total_requests = fields.Integer()
    average_response_time = fields.Float(metadata={"description": "ms"})
    p50_response_time = fields.Float(metadata={"description": "ms, within 2.5 % (a histogram of 5 % buckets)"})
    p95_response_time = fields.Float(metadata={"description": "ms, within 2.5 %"})
    p99_response_time = fields.Float(metadata={"description": "ms, within 2.5 %"})
    error_rate = fields.Float(metadata={"description": "Percent of requests answered 5xx"})
    slow_requests = fields.Integer(metadata={"description": "Requests slower than SLOW_REQUEST_THRESHOLD"})
    requests_per_second = fields.Float(metadata={"description": "Requests over the window's length"})
    status_codes = fields.Dict(keys=fields.String(), values=fields.Integer(),
                               metadata={"description": "Requests per status code"})
    top_endpoints = fields.List(fields.Nested(TopEndpointSchema), metadata={"description": "The 10 most requested"})
    scope = fields.String(metadata={"enum": list(SCOPES), "description": "cluster: every instance (from Redis); "
                                    "instance: this process only (no Redis, or Redis did not answer)"})
    enabled = fields.Boolean(metadata={"description": "false: ENABLE_PERFORMANCE_MONITORING is off, nothing is "
                                       "recorded and every figure is 0"})


class SlowRequestSchema(FiguresSchema):
    method = fields.String()
    route = fields.String(metadata={"description": "The route template, or <unmatched>"})
    path = fields.String(allow_none=True, metadata={"description": "The path asked for (no query string)"})
    status = fields.Integer()
    duration_ms = fields.Float()
    request_id = fields.String(allow_none=True)
    timestamp = fields.String(metadata={"format": "date-time", "description": "When it finished"})


class SlowQuerySchema(FiguresSchema):
    statement = fields.String(metadata={"description": "The SQL as sent, parameters elided (placeholders)"})
    duration_ms = fields.Float()
    request_id = fields.String(allow_none=True, metadata={"description": "null outside a request"})
    timestamp = fields.String(metadata={"format": "date-time"})


class MemorySchema(FiguresSchema):
    rss_bytes = fields.Integer(metadata={"description": "This process's resident set size"})
    system_usage_percent = fields.Float(metadata={"description": "Memory in use on the machine"})


class PerformanceSummarySchema(FiguresSchema):
    last5_minutes = fields.Nested(PerformanceMetricsSchema)
    last_hour = fields.Nested(PerformanceMetricsSchema)
    last24_hours = fields.Nested(PerformanceMetricsSchema)
    memory = fields.Nested(MemorySchema, metadata={"description": "Of the process that answered"})
    uptime = fields.Integer(metadata={"description": "ms since the process that answered started"})
    slow_queries = fields.List(fields.Nested(SlowQuerySchema),
                               metadata={"description": "The latest statements slower than SLOW_QUERY_THRESHOLD, "
                                                        "newest first (up to 20)"})
    enabled = fields.Boolean()
