"""Health probes (API.md "Health"): `/health` for people and dashboards, `/health/ready` for load balancers,
`/health/live` for process supervisors.

- `/health` checks the database, Redis and the process's memory: 200 `healthy` or `degraded` (Redis down, memory
  short), 503 `unhealthy` (the database down). Its database check carries the pool's figures.
- `/health/ready` is 200 when the database answers and its Alembic revision is the scripts' head (worked out
  once, here, from the migration files: no Alembic or Flask-Migrate in a serving worker), else 503.
- `/health/live` is 200 while the process serves requests: no I/O at all, as cheap as a bare route.

A dependency that hangs must not hang a probe, under gevent workers as under threads. So no check goes through
the app's pools (a pooled PostgreSQL connection to a stopped server waits for its answer forever; the pool's
socket check cannot tell a stopped server from an idle one): the database check opens a connection of its own in
psycopg2's asynchronous mode and waits for each step with `select.poll` and a deadline (gevent's cooperative
poll once monkey-patched, the OS's otherwise), closing it when the deadline passes; the Redis check uses a client
of its own with socket timeouts. Both run in a background thread (a greenlet under gevent) that the probe waits
for up to HEALTH_CHECK_TIMEOUT_MS (plus a little grace), and each dependency has at most one check in flight:
probes arriving while one runs wait for its result rather than starting another, so a hung dependency holds one
connection, not one per probe.

Probes are exempt from rate limits (rate_limits.EXEMPT_PATHS) and are never cached (they are not `@endpoint`
views, the only ones the page cache serves); they answer `Cache-Control: no-store` and log nothing per call: a
dependency's change of state is logged once, at warning when it fails and at info when it recovers.
"""

from __future__ import annotations

import ast
import logging
import os
import select
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import psutil
from flask import Blueprint, Flask, Response, current_app
from sqlalchemy import text
from sqlalchemy.engine import Engine

from config import ConfigError
from fantasize.extensions import db
from fantasize.platform.request_log import request_id_for
from fantasize.web import iso_now

log = logging.getLogger("fantasize.health")

EXTENSION = "fantasize.health"
MIGRATIONS = Path(__file__).resolve().parent.parent.parent / "migrations" / "versions"
# How much longer than HEALTH_CHECK_TIMEOUT_MS a probe waits for a check's thread before it gives up on it: the
# check's own deadline ends it in time, this only covers the thread's scheduling.
GRACE_SECONDS = 0.2

HEALTHY, DEGRADED, UNHEALTHY, SKIPPED = "healthy", "degraded", "unhealthy", "skipped"
NO_STORE = {"Cache-Control": "no-store"}
ALEMBIC_VERSIONS = "SELECT version_num FROM alembic_version"
UNDEFINED_TABLE = "42P01"  # PostgreSQL's SQLSTATE for a missing table (no alembic_version: never migrated)

bp = Blueprint("health", __name__)


# What a check finds


@dataclass(frozen=True)
class CheckResult:
    status: str
    response_time_ms: float
    message: str
    details: dict[str, Any] = field(default_factory=dict)
    # The database check only: the revisions in alembic_version (None when the database did not answer or has none).
    revisions: frozenset[str] | None = None

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"status": self.status, "responseTime": round(self.response_time_ms, 1),
                                "message": self.message}
        if self.details:
            body["details"] = self.details
        return body


def _elapsed_ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


class SharedCheck:
    """One check of one dependency in flight at a time, run in a background thread (a greenlet under gevent).

    `result(timeout)` starts the check unless one is running (`start`), and waits for it at most `timeout` +
    GRACE_SECONDS (`wait`); probes that arrive meanwhile wait for the same run. The check is given the timeout as
    its own deadline, so its thread ends about then too; should it not (a driver call that ignores it), later probes
    still wait no longer than their timeout, and no second thread is started behind the stuck one.
    """

    def __init__(self, name: str, run: Callable[[float], CheckResult]) -> None:
        self.name = name
        self._run = run
        self._lock = threading.Lock()
        self._flight: _Flight | None = None
        self._last_status: str | None = None

    def start(self, timeout: float) -> _Flight:
        """The check in flight, started now unless one is running."""
        with self._lock:
            flight = self._flight
            if flight is None:
                flight = self._flight = _Flight()
                threading.Thread(target=self._fly, args=(flight, timeout), name=f"health-{self.name}",
                                 daemon=True).start()
        return flight

    def wait(self, flight: _Flight, timeout: float, deadline: float) -> CheckResult:
        """The flight's result, or unhealthy once time.monotonic() passes `deadline`."""
        if flight.done.wait(max(deadline - time.monotonic(), 0)):
            assert flight.result is not None
            return flight.result
        return CheckResult(UNHEALTHY, timeout * 1000, f"No answer within {round(timeout * 1000)} ms")

    def result(self, timeout: float) -> CheckResult:
        return self.wait(self.start(timeout), timeout, time.monotonic() + timeout + GRACE_SECONDS)

    def _fly(self, flight: _Flight, timeout: float) -> None:
        started = time.perf_counter()
        try:
            result = self._run(timeout)
        except Exception as exc:  # noqa: BLE001  (a check reports what went wrong; it never raises into a probe)
            result = CheckResult(UNHEALTHY, _elapsed_ms(started), f"Check failed ({type(exc).__name__})")
        self._log_change(result)
        flight.result = result
        with self._lock:
            self._flight = None
        flight.done.set()

    def _log_change(self, result: CheckResult) -> None:
        previous, self._last_status = self._last_status, result.status
        if previous == result.status:
            return
        if result.status == UNHEALTHY:
            log.warning("health check failing", extra={"check": self.name, "detail": result.message})
        elif previous == UNHEALTHY:
            log.info("health check recovered", extra={"check": self.name})


@dataclass
class _Flight:
    done: threading.Event = field(default_factory=threading.Event)
    result: CheckResult | None = None


# The database


def _wait(connection: Any, deadline: float) -> None:
    """Drive an asynchronous psycopg2 connection until its current step is done, or raise TimeoutError."""
    import psycopg2.extensions as ext

    while True:
        state = connection.poll()
        if state == ext.POLL_OK:
            return
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        poller = select.poll()  # gevent's cooperative poll when monkey-patched
        poller.register(connection.fileno(), select.POLLIN if state == ext.POLL_READ else select.POLLOUT)
        if not poller.poll(remaining * 1000):
            raise TimeoutError


def _postgres_revisions(engine: Engine, timeout: float) -> frozenset[str] | None:
    """The revisions in alembic_version (None: no such table), over a connection of the check's own."""
    import psycopg2

    _, options = engine.dialect.create_connect_args(engine.url)
    options.setdefault("application_name", "fantasize-health")  # how it shows in pg_stat_activity
    deadline = time.monotonic() + timeout
    connection = psycopg2.connect(**options, async_=True)
    try:
        _wait(connection, deadline)
        cursor = connection.cursor()
        cursor.execute(ALEMBIC_VERSIONS)
        try:
            _wait(connection, deadline)
        except psycopg2.Error as exc:
            if exc.pgcode == UNDEFINED_TABLE:
                return None
            raise
        return frozenset(row[0] for row in cursor.fetchall())
    finally:
        connection.close()  # also what ends a step the deadline cut short


def _sqlite_revisions(engine: Engine) -> frozenset[str] | None:
    # A local file: nothing to hang on but another writer's lock, which a read in WAL mode does not wait for.
    with engine.connect() as connection:
        if connection.execute(text("SELECT 1 FROM sqlite_master WHERE name = 'alembic_version'")).first() is None:
            return None
        return frozenset(connection.execute(text(ALEMBIC_VERSIONS)).scalars())


def pool_figures(engine: Engine) -> dict[str, int]:
    """The connection pool as it stands: its size, the connections open, checked out (in use) and idle, and how
    many are open beyond the size (overflow, up to maxOverflow). Empty for a pool without these figures."""
    pool = engine.pool
    if not all(hasattr(pool, name) for name in ("size", "checkedout", "checkedin", "overflow")):
        return {}
    size, overflow = pool.size(), pool.overflow()  # SQLAlchemy counts overflow from -size (no connection open)
    return {"size": size, "open": size + overflow, "checkedOut": pool.checkedout(), "checkedIn": pool.checkedin(),
            "overflow": max(overflow, 0), "maxOverflow": getattr(pool, "_max_overflow", 0)}


def database_check(engine: Engine) -> Callable[[float], CheckResult]:
    def run(timeout: float) -> CheckResult:
        started = time.perf_counter()
        try:
            if engine.dialect.name == "postgresql":
                revisions = _postgres_revisions(engine, timeout)
            else:
                revisions = _sqlite_revisions(engine)
        except TimeoutError:
            return CheckResult(UNHEALTHY, _elapsed_ms(started),
                               f"No answer within {round(timeout * 1000)} ms")
        except Exception as exc:  # noqa: BLE001  (the driver's errors name hosts: the class says enough here)
            return CheckResult(UNHEALTHY, _elapsed_ms(started), f"Database unreachable ({type(exc).__name__})")
        return CheckResult(HEALTHY, _elapsed_ms(started), "Database connection successful", revisions=revisions)

    return run


# Redis


def redis_check(url: str, timeout: float) -> Callable[[float], CheckResult]:
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    from fantasize.platform import redis_clients

    # Its own small client: the app's pools may be busy, and their retries are not the probe's to wait for. Each
    # socket step (connect, the PING's reply) is bounded by the timeout. With Sentinel the PING goes to the primary
    # the sentinels name now: while none is named (a failover under way) Redis is unhealthy, /health degraded.
    client = redis_clients.client(url, socket_timeout=timeout, socket_connect_timeout=timeout,
                                  retry=Retry(NoBackoff(), 0), max_connections=2)

    def run(_timeout: float) -> CheckResult:
        started = time.perf_counter()
        try:
            client.ping()
        except Exception as exc:  # noqa: BLE001
            return CheckResult(UNHEALTHY, _elapsed_ms(started), f"Redis unreachable ({type(exc).__name__})")
        return CheckResult(HEALTHY, _elapsed_ms(started), "Redis connection successful")

    return run


# The process


@dataclass
class ProcessFigures:
    """psutil's view of this process, made again after a fork (a Process object names one pid)."""

    pid: int = -1
    process: psutil.Process | None = None

    def current(self) -> psutil.Process:
        if self.process is None or self.pid != os.getpid():
            self.pid = os.getpid()
            self.process = psutil.Process(self.pid)
            self.process.cpu_percent(None)  # the first reading is always 0.0: start the count
        return self.process


def memory_check(figures: ProcessFigures, degraded_percent: int) -> CheckResult:
    started = time.perf_counter()
    process = figures.current()
    system = psutil.virtual_memory()
    with process.oneshot():
        rss = process.memory_info().rss
        cpu = process.cpu_percent(None)
    status = DEGRADED if system.percent >= degraded_percent else HEALTHY
    message = (f"System memory {system.percent:.0f}% used" if status == DEGRADED
               else "Memory usage normal")
    details = {
        "systemMemory": {"usagePercent": system.percent, "totalBytes": system.total,
                         "availableBytes": system.available},
        "process": {"rssBytes": rss, "cpuPercent": cpu, "pid": figures.pid},
        "cpu": {"systemPercent": psutil.cpu_percent(None), "count": psutil.cpu_count()},
    }
    return CheckResult(status, _elapsed_ms(started), message, details)


# Migrations


def read_scripts(directory: Path = MIGRATIONS) -> tuple[frozenset[str], frozenset[str]]:
    """(every revision, the heads) of the migration scripts, read from their `revision` and `down_revision`
    assignments: what Alembic's ScriptDirectory works out, without importing Alembic or the scripts."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in sorted(directory.glob("*.py")) if directory.is_dir() else ():
        assigned: dict[str, Any] = {}
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            target = node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1 else None
            if isinstance(target, ast.Name) and target.id in ("revision", "down_revision"):
                assigned[target.id] = ast.literal_eval(node.value)
        if isinstance(assigned.get("revision"), str):
            revisions.add(assigned["revision"])
            down = assigned.get("down_revision")
            parents.update([down] if isinstance(down, str) else down or ())
    return frozenset(revisions), frozenset(revisions - parents)


def script_heads(directory: Path = MIGRATIONS) -> frozenset[str] | None:
    """The head revisions of the migration scripts; None without any."""
    return read_scripts(directory)[1] or None


# The probes


@dataclass
class Health:
    started: float  # time.monotonic() when the app was built
    heads: frozenset[str] | None
    known: frozenset[str]  # every revision of this code's scripts
    timeout: float  # seconds
    memory_degraded_percent: int
    figures: ProcessFigures = field(default_factory=ProcessFigures)
    database: SharedCheck | None = None  # made on first use (the engine exists once the app is built)
    redis: SharedCheck | None = None

    def uptime_ms(self) -> int:
        return int((time.monotonic() - self.started) * 1000)

    def database_result(self) -> CheckResult:
        if self.database is None:
            self.database = SharedCheck("database", database_check(db.engine))
        result = self.database.result(self.timeout)
        return CheckResult(result.status, result.response_time_ms, result.message, {"pool": pool_figures(db.engine)},
                           result.revisions)


def health_of(app: Flask) -> Health:
    return app.extensions[EXTENSION]


def _json(body: dict[str, Any], status: int) -> Response:
    return Response(orjson.dumps(body), status=status, mimetype="application/json", headers=NO_STORE)


@bp.get("/health")
def health() -> Response:
    state = health_of(current_app)
    redis_url = current_app.config.get("REDIS_URL")
    if redis_url and state.redis is None:
        state.redis = SharedCheck("redis", redis_check(redis_url, state.timeout))
    # Redis is checked while the database is: a probe waits for the slower of the two, not for both in turn.
    deadline = time.monotonic() + state.timeout + GRACE_SECONDS
    redis_flight = state.redis.start(state.timeout) if state.redis else None
    database = state.database_result()
    if state.redis and redis_flight:
        redis = state.redis.wait(redis_flight, state.timeout, deadline)
    else:
        redis = CheckResult(SKIPPED, 0.0, "REDIS_URL is not set: cache and limits are kept in process memory")
    memory = memory_check(state.figures, state.memory_degraded_percent)
    if database.status == UNHEALTHY:
        status = UNHEALTHY
    elif redis.status == UNHEALTHY or memory.status != HEALTHY:
        status = DEGRADED
    else:
        status = HEALTHY
    config = current_app.config
    return _json({
        "status": status,
        "timestamp": iso_now(),
        "uptime": state.uptime_ms(),
        "version": config["APP_VERSION"],
        "environment": config["ENV_NAME"],
        "checks": {"database": database.body(), "redis": redis.body(), "memory": memory.body()},
    }, 503 if status == UNHEALTHY else 200)


@bp.get("/health/ready")
def ready() -> Response:
    state = health_of(current_app)
    database = state.database_result()
    migrations = migrations_status(state.heads, state.known, database)
    ready_now = database.status == HEALTHY and migrations["status"] in (HEALTHY, SKIPPED)
    return _json({
        "status": "ready" if ready_now else "not ready",
        "timestamp": iso_now(),
        "checks": {"database": database.body(), "migrations": migrations},
    }, 200 if ready_now else 503)


def migrations_status(heads: frozenset[str] | None, known: frozenset[str], database: CheckResult) -> dict[str, Any]:
    """Whether the database's revision suits this code. Behind the scripts' head: not ready (the release phase has
    not run). Ahead of them, at a revision these scripts do not know: ready, as a release that migrated the
    database for newer code while this one still serves (a rolling deploy) must not take every old instance out."""
    body: dict[str, Any] = {"head": sorted(heads) if heads else None}
    if database.status != HEALTHY:
        return {"status": UNHEALTHY, "message": "The database did not answer", **body}
    current = sorted(database.revisions or ())
    body["current"] = current
    if heads is None:
        return {"status": SKIPPED, "message": "No migration scripts found beside the app", **body}
    if not current:
        return {"status": UNHEALTHY, "message": "The database has not been migrated (run `flask db upgrade`)",
                **body}
    if set(current) == heads:
        return {"status": HEALTHY, "message": "Migrations at head", **body}
    if not set(current) <= known:
        return {"status": HEALTHY, "message": "The database is ahead of this code's migrations (a newer release "
                                              "migrated it)", **body}
    return {"status": UNHEALTHY, "message": "The database is behind the migrations' head (run `flask db upgrade`)",
            **body}


_LIVE = orjson.dumps({"status": "alive"})
LIVE_PATH = "/health/live"
# Headers of one request, not of the answer every probe shares.
_PER_REQUEST_HEADERS = frozenset({"x-request-id", "date", "strict-transport-security"})


@bp.get(LIVE_PATH)
def live() -> Response:
    # No I/O and nothing computed: that the process answers is the whole answer.
    return Response(_LIVE, mimetype="application/json", headers=NO_STORE)


def answer_live_probes(wsgi_app: Any) -> Any:
    """`wsgi_app` with GET and HEAD /health/live answered in front of it, without Flask.

    A supervisor asks every few seconds whether the process still serves; what it needs is that a worker answers,
    and Flask's hooks (request id, monitoring, security headers, the limiter's context) would only cost. The first
    probe goes through Flask, to the `live` view; its answer (status, body, and the headers every probe shares:
    content type, no-store, the security headers) is kept and given to every later probe, with the X-Request-ID
    the client sent or a new one. So the probe is as cheap as a bare WSGI answer (bench/run's health-live row)
    while saying exactly what the view says. Answered here, probes are neither logged nor counted by monitoring.
    """
    kept: list[Any] = []  # [status, headers, body] once the view has answered 200

    def keep(status: str, headers: list[tuple[str, str]], body: bytes) -> None:
        if status.startswith("200") and not kept:
            kept[:] = [status, [(n, v) for n, v in headers if n.lower() not in _PER_REQUEST_HEADERS], body]

    def probes(environ: dict[str, Any], start_response: Any) -> Any:
        method = environ.get("REQUEST_METHOD")
        if environ.get("PATH_INFO") != LIVE_PATH or method not in ("GET", "HEAD"):
            return wsgi_app(environ, start_response)
        if not kept:
            answered: list[Any] = []

            def remember(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
                answered[:] = [status, headers]
                return start_response(status, headers, exc_info) if exc_info else start_response(status, headers)

            result = wsgi_app(environ, remember)
            if method == "GET" and answered:
                body = b"".join(result)
                if hasattr(result, "close"):
                    result.close()
                keep(answered[0], answered[1], body)
                return [body]
            return result
        status, headers, body = kept
        request_id = request_id_for(environ.get("HTTP_X_REQUEST_ID", ""))
        start_response(status, [*headers, ("X-Request-ID", request_id)])
        return [body] if method == "GET" else []

    return probes


def init_app(app: Flask) -> None:
    config = app.config
    if config["HEALTH_CHECK_TIMEOUT_MS"] < 1:
        raise ConfigError("HEALTH_CHECK_TIMEOUT_MS must be at least 1 (milliseconds)")
    if not 1 <= config["HEALTH_MEMORY_DEGRADED_PERCENT"] <= 100:
        raise ConfigError("HEALTH_MEMORY_DEGRADED_PERCENT must be between 1 and 100")
    known, heads = read_scripts()
    app.extensions[EXTENSION] = Health(
        started=time.monotonic(), heads=heads or None, known=known, timeout=config["HEALTH_CHECK_TIMEOUT_MS"] / 1000,
        memory_degraded_percent=config["HEALTH_MEMORY_DEGRADED_PERCENT"])
    app.register_blueprint(bp)
