"""Configuration: the one place that reads the environment (and `.env`).

Every setting of API.md "Configuration" is read here, once, into a Config class. The app factory picks
the class from FLASK_ENV / NODE_ENV (production, testing, development) unless one is passed in; any other name
stops the app. No secret is written here: production must be given one, development generates its own (kept in
the instance folder), and each test process makes up one.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

from dotenv import load_dotenv

BASE_DIR = Path(__file__).resolve().parent
load_dotenv(BASE_DIR / ".env")

MIN_JWT_SECRET_BYTES = 32
ENVIRONMENTS = ("production", "testing", "development")
# The file in the instance folder that keeps development's generated JWT secret.
INSTANCE_SECRET_FILE = "jwt-secret"


class ConfigError(RuntimeError):
    """A setting the app must not start with; the message names it and says what to do."""


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return default if value is None or value == "" else value


def _bool(name: str, default: bool) -> bool:
    value = _env(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _int(name: str, default: int) -> int:
    value = _env(name)
    return default if value is None else int(value)


def _datetime(name: str, default: str) -> datetime:
    value = _env(name, default)
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _named_environments() -> dict[str, str]:
    named = {variable: (_env(variable) or "").strip().lower() for variable in ("FLASK_ENV", "NODE_ENV")}
    return {variable: name for variable, name in named.items() if name}


def environment_name() -> str:
    """production | testing | development, from FLASK_ENV or NODE_ENV (the seed's name); development if neither.

    Any other name is a ConfigError, and so are the two naming different environments: a typo such as `prod`
    must not quietly start development (log mail, no production checks) where production was meant.
    """
    named = _named_environments()
    for variable, name in named.items():
        if name not in ENVIRONMENTS:
            raise ConfigError(f"{variable}={name!r} is not an environment: use one of {', '.join(ENVIRONMENTS)}")
    if len(set(named.values())) > 1:
        raise ConfigError("FLASK_ENV and NODE_ENV name different environments "
                          f"({named['FLASK_ENV']!r}, {named['NODE_ENV']!r}): set one of them")
    return next(iter(named.values()), "development")


def default_environment(name: str) -> None:
    """Name the environment for this process and the processes it starts, unless FLASK_ENV or NODE_ENV does.

    gunicorn.conf.py calls it with "production": whatever serves through gunicorn (the Procfile) is production
    unless development or testing is named explicitly, so it gets production's checks and defaults.
    """
    if not _named_environments():
        os.environ["FLASK_ENV"] = name


def database_url() -> str | None:
    """DATABASE_URL, else one built from the DATABASE_* parts, else None (the embedded SQLite)."""
    url = _env("DATABASE_URL")
    if url:
        # Heroku-style URLs say postgres://, which SQLAlchemy 2 no longer accepts.
        return "postgresql://" + url[len("postgres://"):] if url.startswith("postgres://") else url
    host = _env("DATABASE_HOST")
    if not host:
        return None
    user = quote(_env("DATABASE_USER", "postgres"), safe="")
    password = _env("DATABASE_PASSWORD")
    auth = f"{user}:{quote(password, safe='')}" if password else user
    return f"postgresql://{auth}@{host}:{_env('DATABASE_PORT', '5432')}/{_env('DATABASE_NAME', 'fantasize')}"


def redis_url() -> str | None:
    """The one Redis every Redis user of the app shares (fantasize.platform.redis_clients reads the URL):

    - REDIS_SENTINELS (host:port,...) with REDIS_SENTINEL_MASTER: the primary those sentinels name, followed
      through failovers (a `redis+sentinel://` URL, see sentinel_url);
    - else REDIS_URL (which may itself be a `redis+sentinel://` URL);
    - else one built from REDIS_HOST/PORT/PASSWORD/DB;
    - else None (in-process fallbacks).

    REDIS_SENTINELS beside REDIS_URL or REDIS_HOST is a ConfigError: two Redis configurations, and whichever won,
    the instances that read the other one would keep limits and pages apart.
    """
    sentinels = _env("REDIS_SENTINELS")
    url = _env("REDIS_URL")
    if sentinels:
        others = [name for name in ("REDIS_URL", "REDIS_HOST") if _env(name)]
        if others:
            raise ConfigError(f"REDIS_SENTINELS and {' and '.join(others)} are both set: set one Redis "
                              "configuration (REDIS_SENTINELS with REDIS_SENTINEL_MASTER, or the other)")
        return sentinel_url(sentinels, _env("REDIS_SENTINEL_MASTER"), _env("REDIS_PASSWORD"),
                            _env("REDIS_SENTINEL_PASSWORD"), _env("REDIS_DB", "0"))
    if _env("REDIS_SENTINEL_MASTER"):
        raise ConfigError("REDIS_SENTINEL_MASTER is set without REDIS_SENTINELS (host:port,host:port,...)")
    if url:
        return url
    host = _env("REDIS_HOST")
    if not host:
        return None
    password = _env("REDIS_PASSWORD")
    auth = f":{quote(password, safe='')}@" if password else ""
    return f"redis://{auth}{host}:{_env('REDIS_PORT', '6379')}/{_redis_db(_env('REDIS_DB', '0'))}"


def _redis_db(db: str) -> int:
    if not db.isdigit():
        raise ConfigError(f"REDIS_DB={db!r} is not a database number (0, 1, ...)")
    return int(db)


def sentinel_url(sentinels: str, master: str | None, password: str | None = None,
                 sentinel_password: str | None = None, db: str = "0") -> str:
    """The `redis+sentinel://[:password@]host:port,.../db/master[?sentinel_password=...]` URL of REDIS_SENTINELS'
    service `master`, as fantasize.platform.redis_clients reads it (ConfigError naming what is wrong)."""
    hosts = []
    for entry in sentinels.split(","):
        host, colon, port = entry.strip().rpartition(":")
        if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError(f"REDIS_SENTINELS={sentinels!r}: {entry.strip()!r} is not host:port; list the "
                              "sentinels as host:port,host:port,...")
        hosts.append(f"{host}:{int(port)}")
    if not master or not master.strip():
        raise ConfigError("REDIS_SENTINELS is set without REDIS_SENTINEL_MASTER, the name of the service the "
                          "sentinels watch (their `sentinel monitor <name> ...`)")
    auth = f":{quote(password, safe='')}@" if password else ""
    query = f"?sentinel_password={quote(sentinel_password, safe='')}" if sentinel_password else ""
    return f"redis+sentinel://{auth}{','.join(hosts)}/{_redis_db(db)}/{quote(master.strip(), safe='')}{query}"


class Config:
    ENV_NAME = "development"
    DEBUG = False
    TESTING = False
    APP_VERSION = "1.0.0"

    # No development fallback here: production must be given a real secret (checked by the factory).
    JWT_SECRET = _env("JWT_SECRET")
    JWT_EXPIRES_SECONDS = _int("JWT_EXPIRES_SECONDS", 3600)
    PASSWORD_RESET_EXPIRES_SECONDS = _int("PASSWORD_RESET_EXPIRES_SECONDS", 3600)
    # The rate limiter checks a token's version against the user's current one through an in-process cache kept
    # this long: a token revoked on another instance may keep the signed-in budget for up to this many seconds.
    TOKEN_VERSION_CACHE_SECONDS = _int("TOKEN_VERSION_CACHE_SECONDS", 10)

    SQLALCHEMY_DATABASE_URI = database_url()  # None: filled with instance/fantasize.db by the factory
    SQLALCHEMY_ENGINE_OPTIONS = {"pool_pre_ping": True}
    REDIS_URL = redis_url()
    # Pools, per worker process, sized to the concurrency a worker serves (gunicorn threads or gevent
    # connections that reach the database or Redis at once). The database pool applies to PostgreSQL (SQLite's
    # file database keeps SQLAlchemy's default); requests beyond pool + overflow wait for a connection.
    DB_POOL_SIZE = _int("DB_POOL_SIZE", 10)
    DB_MAX_OVERFLOW = _int("DB_MAX_OVERFLOW", 10)
    # Seconds a request waits for a pooled connection when pool and overflow are all in use (SQLAlchemy's
    # pool_timeout, whole seconds: Flask-SQLAlchemy passes it through engine_from_config, which makes it an int)
    # before it answers 503: while PostgreSQL hangs, connections are held DB_WAIT_TIMEOUT_MS each.
    DB_POOL_TIMEOUT_SECONDS = _int("DB_POOL_TIMEOUT_SECONDS", 30)
    # How a pooled PostgreSQL connection is checked before each use: "socket" looks for the server's goodbye on its
    # socket (no round trip; catches a terminated backend, a restart, an idle timeout), "ping" is SQLAlchemy's
    # pool_pre_ping (a SELECT 1 round trip per checkout, which also waits out a silently dead network path).
    DB_POOL_CHECK = _env("DB_POOL_CHECK", "socket")
    # Under gevent workers, the longest a request waits on PostgreSQL for one step (connecting, a statement's reply)
    # before the connection is dropped and the request answers 503: what bounds a request to a server that stopped
    # answering without closing its connections. Also the longest one statement may run. 0: no bound.
    DB_WAIT_TIMEOUT_MS = _int("DB_WAIT_TIMEOUT_MS", 15000)
    # Each Redis client (the page cache, the rate limiter) keeps at most this many connections; a request that
    # finds them all busy waits for one.
    REDIS_MAX_CONNECTIONS = _int("REDIS_MAX_CONNECTIONS", 50)

    HOST = _env("HOST", "127.0.0.1")
    PORT = _int("APP_PORT", _int("PORT", 5000))

    API_DEFAULT_VERSION = _env("API_DEFAULT_VERSION", "v1")
    API_V0_DEPRECATED_AT = _datetime("API_V0_DEPRECATED_AT", "2024-01-01T00:00:00Z")
    API_V0_SUNSET = _datetime("API_V0_SUNSET", "2024-12-31T23:59:59Z")
    API_V0_ENFORCE_SUNSET = _bool("API_V0_ENFORCE_SUNSET", True)

    API_KEYS = _env("API_KEYS", "")
    CORS_ORIGIN = _env("CORS_ORIGIN", "")
    PROXY_COUNT = _int("PROXY_COUNT", 0)
    FORCE_HTTPS = _bool("FORCE_HTTPS", False)

    MAX_CONTENT_LENGTH = _int("MAX_CONTENT_LENGTH", 10 * 1024 * 1024)
    MAX_UPLOAD_MB = _int("MAX_UPLOAD_MB", 5)
    # Images are decoded before they are kept; these bounds are checked first, from the header alone.
    MAX_IMAGE_SIDE = _int("MAX_IMAGE_SIDE", 10_000)
    MAX_IMAGE_PIXELS = _int("MAX_IMAGE_PIXELS", 40_000_000)
    UPLOAD_FOLDER = _env("UPLOAD_FOLDER")  # None: instance/uploads
    # How long the signed URL of a private upload (not shown in the public catalogue) works, in seconds.
    UPLOAD_URL_TTL_SECONDS = _int("UPLOAD_URL_TTL_SECONDS", 900)

    LOW_STOCK_THRESHOLD = _int("LOW_STOCK_THRESHOLD", 5)
    CURRENCY = _env("CURRENCY", "USD")

    CACHE_TTL_PRODUCTS = _int("CACHE_TTL_PRODUCTS", 600)
    CACHE_TTL_CATEGORIES = _int("CACHE_TTL_CATEGORIES", 1800)
    CACHE_TTL_PACKAGES = _int("CACHE_TTL_PACKAGES", 600)
    CACHE_TTL_OFFERS = _int("CACHE_TTL_OFFERS", 300)
    CACHE_ENABLED = _bool("CACHE_ENABLED", True)
    CACHE_KEY_PREFIX = _env("CACHE_KEY_PREFIX", "fantasize:")
    # A dead or slow Redis may cost a request a quarter of a second at most, and then nothing for
    # CACHE_BREAKER_SECONDS: the cache is skipped (reads go to the database) until Redis is tried again.
    CACHE_REDIS_TIMEOUT_MS = _int("CACHE_REDIS_TIMEOUT_MS", 250)
    CACHE_BREAKER_SECONDS = _int("CACHE_BREAKER_SECONDS", 5)
    # Stampede guard: one request recomputes a missing page under a lock that expires on its own
    # (CACHE_LOCK_MS) should that request die; the others wait up to CACHE_LOCK_WAIT_MS, then compute too.
    CACHE_LOCK_MS = _int("CACHE_LOCK_MS", 5000)
    CACHE_LOCK_WAIT_MS = _int("CACHE_LOCK_WAIT_MS", 2000)

    RATE_LIMIT_WINDOW_MS = _int("RATE_LIMIT_WINDOW_MS", 900_000)
    RATE_LIMIT_MAX_REQUESTS = _int("RATE_LIMIT_MAX_REQUESTS", 100)
    RATE_LIMIT_AUTH = _env("RATE_LIMIT_AUTH", "5 per 15 minutes")
    RATE_LIMIT_ADMIN = _env("RATE_LIMIT_ADMIN", "50 per 5 minutes")
    # The read-only figures an administrator's /ops page polls (performance metrics, slow requests, summary,
    # real-time stats), per user: room for the page's four readings every 2 s.
    RATE_LIMIT_MONITORING = _env("RATE_LIMIT_MONITORING", "1000 per 5 minutes")
    RATE_LIMIT_UPLOAD = _env("RATE_LIMIT_UPLOAD", "10 per hour")
    RATE_LIMIT_ORDER = _env("RATE_LIMIT_ORDER", "10 per hour")
    RATE_LIMIT_AUTH_MULTIPLIER = _int("RATE_LIMIT_AUTH_MULTIPLIER", 5)
    RATE_LIMIT_PASSWORD_RESET_PER_EMAIL = _env("RATE_LIMIT_PASSWORD_RESET_PER_EMAIL", "3 per hour")
    RATELIMIT_ENABLED = _bool("RATELIMIT_ENABLED", True)
    RATE_LIMIT_KEY_PREFIX = _env("RATE_LIMIT_KEY_PREFIX", "fantasize:limits")
    # A dead Redis holds a request at most twice this (one reconnect); then limits count in memory until it answers.
    RATE_LIMIT_REDIS_TIMEOUT_MS = _int("RATE_LIMIT_REDIS_TIMEOUT_MS", 250)

    # Who may read GET /metrics (Prometheus text): comma-separated IPs or CIDR networks, judged on the client's
    # address after PROXY_COUNT proxies (so a proxy in front does not open it to everyone); a valid API key
    # (API_KEYS, sent as X-API-Key or as a bearer token) opens it from anywhere its key allows. Anyone else: 404.
    METRICS_ALLOW = _env("METRICS_ALLOW", "127.0.0.1/8,::1")
    ENABLE_PERFORMANCE_MONITORING = _bool("ENABLE_PERFORMANCE_MONITORING", True)
    # Requests slower than this many ms are logged at warning with their request id and kept as slow requests
    # (GET /api/admin/performance/slow-requests).
    SLOW_REQUEST_THRESHOLD = _int("SLOW_REQUEST_THRESHOLD", 1000)
    # SQL statements slower than this many ms are logged at warning (the statement, never its parameters) with the
    # request id and listed in GET /api/admin/performance/summary's slowQueries.
    SLOW_QUERY_THRESHOLD = _int("SLOW_QUERY_THRESHOLD", 200)
    # Health probes (fantasize.platform.health): how long /health and /health/ready wait for the database and for
    # Redis before calling them unhealthy (a hung dependency cannot hang a probe), and the system memory use, in
    # percent, from which /health reports `degraded`.
    HEALTH_CHECK_TIMEOUT_MS = _int("HEALTH_CHECK_TIMEOUT_MS", 500)
    HEALTH_MEMORY_DEGRADED_PERCENT = _int("HEALTH_MEMORY_DEGRADED_PERCENT", 95)
    # Real time (fantasize.realtime). Events a socket may send per minute, counted per socket by the instance that
    # holds it (a socket stays on one instance for its whole life).
    SOCKET_EVENTS_PER_MINUTE = _int("SOCKET_EVENTS_PER_MINUTE", 60)
    # Socket connections (Engine.IO handshakes) a client address may open per minute, counted like the HTTP limits
    # (Redis, shared by every instance; the client's address through PROXY_COUNT proxies). Beyond it: 429.
    SOCKET_CONNECTS_PER_MINUTE = _int("SOCKET_CONNECTS_PER_MINUTE", 30)
    # The largest message a socket client may send, in bytes, on either transport (a long-polling POST body, a
    # websocket message): client events are ids and tokens. Larger closes the socket before it is held.
    SOCKET_MAX_MESSAGE_BYTES = _int("SOCKET_MAX_MESSAGE_BYTES", 64 * 1024)
    # Where Socket.IO events travel between processes (another instance, a `flask` command): Redis when REDIS_URL is
    # set, else in-process only.
    SOCKETIO_MESSAGE_QUEUE = _env("SOCKETIO_MESSAGE_QUEUE") or redis_url()
    # How often each instance re-checks its signed-in sockets (token expiry, sign-out elsewhere, deactivation, role
    # change) and publishes its figures for GET /api/v1/admin/realtime/stats. A revocation made through the API
    # ends the sockets at once; this bounds the rest.
    SOCKET_SWEEP_SECONDS = _int("SOCKET_SWEEP_SECONDS", 5)

    # Where password-reset mail goes: "log" (development), "memory" (tests) or "smtp" (production's only choice).
    MAIL_BACKEND = _env("MAIL_BACKEND", "log")
    MAIL_FROM = _env("MAIL_FROM", "Fantasize <no-reply@fantasize.local>")
    SMTP_HOST = _env("SMTP_HOST", "localhost")
    SMTP_PORT = _int("SMTP_PORT", 25)
    SMTP_USER = _env("SMTP_USER")
    SMTP_PASSWORD = _env("SMTP_PASSWORD")
    PUBLIC_BASE_URL = _env("PUBLIC_BASE_URL", "http://127.0.0.1:5000")

    LOG_LEVEL = _env("LOG_LEVEL", "INFO")
    # How log lines are written: "json" (one object per line, for a log pipeline) or "text" (for a person at a
    # terminal). Development defaults to text, everything else to JSON. Each HTTP request is logged once, by the app
    # (logger fantasize.requests, at INFO), not by gunicorn.
    LOG_FORMAT = _env("LOG_FORMAT", "json")

    # gunicorn (gunicorn.conf.py; its command-line options still win). gevent serves many connections per worker as
    # greenlets (Socket.IO needs it); gthread serves GUNICORN_THREADS requests at once per worker with real threads,
    # fairer to every connection when the CPU is saturated. Keep-alive: seconds an idle connection stays open.
    GUNICORN_WORKER_CLASS = _env("GUNICORN_WORKER_CLASS", "gevent")
    GUNICORN_THREADS = _int("GUNICORN_THREADS", 8)
    GUNICORN_WORKER_CONNECTIONS = _int("GUNICORN_WORKER_CONNECTIONS", 1000)
    GUNICORN_KEEPALIVE = _int("GUNICORN_KEEPALIVE", 5)


class DevelopmentConfig(Config):
    ENV_NAME = "development"
    LOG_FORMAT = _env("LOG_FORMAT", "text")
    # JWT_SECRET unset: the factory takes the one generated in the instance folder (instance_secret).
    DEBUG = _bool("FLASK_DEBUG", False)


class TestingConfig(Config):
    ENV_NAME = "testing"
    TESTING = True
    # One random secret per test process; tests/live_server.py hands it to the servers it starts, so tokens
    # minted in the test process work there too.
    JWT_SECRET = _env("JWT_SECRET") or secrets.token_urlsafe(48)
    MAIL_BACKEND = "memory"
    # Limits no test meets by accident (a live server serves a whole test module); rate-limit tests set small ones.
    RATE_LIMIT_MAX_REQUESTS = _int("RATE_LIMIT_MAX_REQUESTS", 1_000_000)
    RATE_LIMIT_AUTH = _env("RATE_LIMIT_AUTH", "1000000 per 15 minutes")
    RATE_LIMIT_ADMIN = _env("RATE_LIMIT_ADMIN", "1000000 per 5 minutes")
    RATE_LIMIT_MONITORING = _env("RATE_LIMIT_MONITORING", "1000000 per 5 minutes")
    RATE_LIMIT_UPLOAD = _env("RATE_LIMIT_UPLOAD", "1000000 per hour")
    RATE_LIMIT_ORDER = _env("RATE_LIMIT_ORDER", "1000000 per hour")
    RATE_LIMIT_PASSWORD_RESET_PER_EMAIL = _env("RATE_LIMIT_PASSWORD_RESET_PER_EMAIL", "1000000 per hour")
    SOCKET_CONNECTS_PER_MINUTE = _int("SOCKET_CONNECTS_PER_MINUTE", 1_000_000)
    # The test suite's databases; conftest points SQLALCHEMY_DATABASE_URI at one of them per run.
    TEST_POSTGRES_URL = _env("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/fantasize_test")
    TEST_REDIS_URL = _env("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    # Unit tests use Flask-SocketIO's test client, which cannot run with a message queue; live-server tests set it.
    SOCKETIO_MESSAGE_QUEUE = _env("SOCKETIO_MESSAGE_QUEUE")
    # In CI a missing PostgreSQL or Redis fails the suite instead of skipping its tests.
    REQUIRE_SERVICES = _bool("CI", False) or _bool("FANTASIZE_REQUIRE_SERVICES", False)


class ProductionConfig(Config):
    ENV_NAME = "production"
    FORCE_HTTPS = _bool("FORCE_HTTPS", True)
    HOST = _env("HOST", "0.0.0.0")
    # No defaults that only work on a developer's machine: check_production names what is missing.
    MAIL_BACKEND = _env("MAIL_BACKEND", "smtp")
    SMTP_HOST = _env("SMTP_HOST")
    PUBLIC_BASE_URL = _env("PUBLIC_BASE_URL")


CONFIGS = {"development": DevelopmentConfig, "testing": TestingConfig, "production": ProductionConfig}


def config_for(name: str | None = None) -> type[Config]:
    name = (name or environment_name()).strip().lower()
    if name not in CONFIGS:
        raise ConfigError(f"{name!r} is not an environment: use one of {', '.join(ENVIRONMENTS)}")
    return CONFIGS[name]


def settings_of(config_class: type[Config]) -> dict[str, object]:
    """A Config class's settings as the mapping app.config would hold (before the factory's overrides)."""
    return {name: getattr(config_class, name) for name in dir(config_class) if name.isupper()}


def check_production(settings: Mapping[str, object]) -> None:
    """Refuse production settings that would be unsafe or broken, naming every one at once."""
    problems = []
    secret = settings.get("JWT_SECRET") or ""
    if len(str(secret).encode()) < MIN_JWT_SECRET_BYTES:
        problems.append(f"JWT_SECRET must be a random secret of at least {MIN_JWT_SECRET_BYTES} bytes "
                        "(python -c 'import secrets; print(secrets.token_urlsafe(48))')")
    backend = settings.get("MAIL_BACKEND")
    if backend != "smtp":
        # log writes working password-reset links into the log; memory keeps them in the process, unsent.
        problems.append(f"MAIL_BACKEND={backend!r} is not allowed in production (reset links would be logged or "
                        "never sent): use smtp")
    elif not settings.get("SMTP_HOST"):
        problems.append("SMTP_HOST must name the mail server that sends password-reset links (with SMTP_PORT, "
                        "SMTP_USER, SMTP_PASSWORD as it needs)")
    if not settings.get("PUBLIC_BASE_URL"):
        problems.append("PUBLIC_BASE_URL must be the shop's public address: password-reset links point at it")
    if problems:
        raise ConfigError("refusing to start in production:\n  - " + "\n  - ".join(problems))


def instance_secret(folder: Path) -> str:
    """Development's JWT secret: random, generated on first use into `folder`/jwt-secret (mode 0600) and read
    back on every later start, so no secret lives in the code and tokens survive a restart (as Flask apps keep a
    SECRET_KEY in their instance folder)."""
    path = folder / INSTANCE_SECRET_FILE
    if not path.exists():
        # Written to a private temporary file (mkstemp creates it 0600), then linked into place: a second process
        # starting at the same moment either wins the link or reads the winner's file, never a half-written one.
        handle, temporary = tempfile.mkstemp(dir=folder, prefix=f".{INSTANCE_SECRET_FILE}.")
        try:
            with os.fdopen(handle, "w") as file:
                file.write(secrets.token_urlsafe(48) + "\n")
            with contextlib.suppress(FileExistsError):  # another process linked its own first: use that
                os.link(temporary, path)
        finally:
            os.unlink(temporary)
    secret = path.read_text().strip()
    if len(secret.encode()) < MIN_JWT_SECRET_BYTES:
        raise ConfigError(f"{path} holds no usable secret: delete it and a new one is generated")
    return secret
