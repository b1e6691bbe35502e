"""The bodies of the health probes (fantasize.platform.health), for the OpenAPI document only.

The probes write their JSON themselves (orjson, no schema on the request path: `/health/live` must stay as cheap as
a bare route); these schemas describe what they write, and tests/test_openapi.py holds real answers against them.
Keys are camelCase as written (CamelSchema), and a key the probe never writes is refused (unknown = RAISE becomes
`additionalProperties: false`), so a field added to a probe without its schema fails that test.
"""

from __future__ import annotations

from marshmallow import fields, validate

from fantasize.schemas.base import CamelSchema

CHECK_STATUSES = ("healthy", "degraded", "unhealthy", "skipped")
OVERALL_STATUSES = ("healthy", "degraded", "unhealthy")
READY_STATUSES = ("ready", "not ready")


def _status(statuses: tuple[str, ...], description: str) -> fields.String:
    return fields.String(required=True, validate=validate.OneOf(statuses), metadata={"description": description})


class _CheckSchema(CamelSchema):
    """What every check reports."""

    response_time = fields.Float(required=True, validate=validate.Range(min=0),
                                 metadata={"description": "ms the check took (one decimal)"})
    message = fields.String(required=True, metadata={"description": "What the check found, in words (an error "
                                                                    "names its class only, never a host)"})


class PoolSchema(CamelSchema):
    """The app's SQLAlchemy connection pool (empty for a pool without these figures, e.g. SQLite's)."""

    size = fields.Integer(metadata={"description": "Connections the pool keeps"})
    open = fields.Integer(metadata={"description": "Connections open now"})
    checked_out = fields.Integer(metadata={"description": "Connections in use"})
    checked_in = fields.Integer(metadata={"description": "Connections idle in the pool"})
    overflow = fields.Integer(metadata={"description": "Connections open beyond size"})
    max_overflow = fields.Integer(metadata={"description": "The most connections allowed beyond size"})


class DatabaseDetailsSchema(CamelSchema):
    pool = fields.Nested(PoolSchema, required=True)


class DatabaseCheckSchema(_CheckSchema):
    status = _status(("healthy", "unhealthy"), "unhealthy: no answer within HEALTH_CHECK_TIMEOUT_MS, or an error")
    details = fields.Nested(DatabaseDetailsSchema, required=True)


class RedisCheckSchema(_CheckSchema):
    status = _status(("healthy", "unhealthy", "skipped"), "skipped: REDIS_URL is not set")


class SystemMemorySchema(CamelSchema):
    usage_percent = fields.Float(required=True)
    total_bytes = fields.Integer(required=True)
    available_bytes = fields.Integer(required=True)


class ProcessFiguresSchema(CamelSchema):
    rss_bytes = fields.Integer(required=True, metadata={"description": "This worker's resident memory"})
    cpu_percent = fields.Float(required=True, metadata={"description": "This worker's CPU since the last probe"})
    pid = fields.Integer(required=True)


class CpuSchema(CamelSchema):
    system_percent = fields.Float(required=True, metadata={"description": "The machine's CPU since the last probe"})
    count = fields.Integer(required=True, allow_none=True, metadata={"description": "Logical CPUs"})


class MemoryDetailsSchema(CamelSchema):
    system_memory = fields.Nested(SystemMemorySchema, required=True)
    process = fields.Nested(ProcessFiguresSchema, required=True)
    cpu = fields.Nested(CpuSchema, required=True)


class MemoryCheckSchema(_CheckSchema):
    status = _status(("healthy", "degraded"), "degraded: system memory at HEALTH_MEMORY_DEGRADED_PERCENT or more")
    details = fields.Nested(MemoryDetailsSchema, required=True)


class HealthChecksSchema(CamelSchema):
    database = fields.Nested(DatabaseCheckSchema, required=True)
    redis = fields.Nested(RedisCheckSchema, required=True)
    memory = fields.Nested(MemoryCheckSchema, required=True)


class HealthSchema(CamelSchema):
    """GET /health."""

    status = _status(OVERALL_STATUSES, "unhealthy (503): the database check failed; degraded (200): Redis failed or "
                                       "memory is short; else healthy (200)")
    timestamp = fields.String(required=True, metadata={"format": "date-time"})
    uptime = fields.Integer(required=True, validate=validate.Range(min=0),
                            metadata={"description": "ms since this worker's app was built"})
    version = fields.String(required=True, metadata={"description": "APP_VERSION"})
    environment = fields.String(required=True, metadata={"description": "The configuration's name"})
    checks = fields.Nested(HealthChecksSchema, required=True)


class MigrationsCheckSchema(CamelSchema):
    status = _status(("healthy", "unhealthy", "skipped"),
                     "healthy: at the scripts' head, or ahead of it (a newer release migrated the database); "
                     "unhealthy: behind it, never migrated, or the database did not answer; skipped: no scripts")
    message = fields.String(required=True)
    head = fields.List(fields.String(), required=True, allow_none=True,
                       metadata={"description": "The migration scripts' head revisions; null without scripts"})
    current = fields.List(fields.String(), metadata={"description": "The database's revisions (absent when it did "
                                                                    "not answer)"})


class ReadyChecksSchema(CamelSchema):
    database = fields.Nested(DatabaseCheckSchema, required=True)
    migrations = fields.Nested(MigrationsCheckSchema, required=True)


class ReadySchema(CamelSchema):
    """GET /health/ready."""

    status = _status(READY_STATUSES, "ready (200): the database answers and its revision suits this code; "
                                     "else not ready (503)")
    timestamp = fields.String(required=True, metadata={"format": "date-time"})
    checks = fields.Nested(ReadyChecksSchema, required=True)


class LiveSchema(CamelSchema):
    """GET /health/live."""

    status = _status(("alive",), "Always alive: that the process answers is the whole answer")
