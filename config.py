"""Configuration: the one place that reads the environment (and `.env`).

Every setting of API.md "Configuration" is read here, once, into a Config class. The app factory picks
the class from FLASK_ENV / NODE_ENV (production, testing, development) unless one is passed in.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

from dotenv import load_dotenv

BASE_DIR = Path(__file__).resolve().parent
load_dotenv(BASE_DIR / ".env")

MIN_JWT_SECRET_BYTES = 32
DEV_JWT_SECRET = "dev-only-secret-change-me-dev-only-secret-change-me"


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


def environment_name() -> str:
    """production | testing | development, from FLASK_ENV or NODE_ENV (the seed's name)."""
    return (_env("FLASK_ENV") or _env("NODE_ENV") or "development").lower()


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
    """REDIS_URL, else one built from REDIS_HOST/PORT/PASSWORD, else None (in-process fallbacks)."""
    url = _env("REDIS_URL")
    if url:
        return url
    host = _env("REDIS_HOST")
    if not host:
        return None
    password = _env("REDIS_PASSWORD")
    auth = f":{quote(password, safe='')}@" if password else ""
    return f"redis://{auth}{host}:{_env('REDIS_PORT', '6379')}/0"


class Config:
    ENV_NAME = "development"
    DEBUG = False
    TESTING = False
    APP_VERSION = "1.0.0"

    # No development fallback here: production must be given a real secret (checked by the factory).
    JWT_SECRET = _env("JWT_SECRET")
    JWT_EXPIRES_SECONDS = _int("JWT_EXPIRES_SECONDS", 3600)
    PASSWORD_RESET_EXPIRES_SECONDS = _int("PASSWORD_RESET_EXPIRES_SECONDS", 3600)

    SQLALCHEMY_DATABASE_URI = database_url()  # None: filled with instance/fantasize.db by the factory
    SQLALCHEMY_ENGINE_OPTIONS = {"pool_pre_ping": True}
    REDIS_URL = redis_url()

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
    RATE_LIMIT_UPLOAD = _env("RATE_LIMIT_UPLOAD", "10 per hour")
    RATE_LIMIT_ORDER = _env("RATE_LIMIT_ORDER", "10 per hour")
    RATE_LIMIT_AUTH_MULTIPLIER = _int("RATE_LIMIT_AUTH_MULTIPLIER", 5)
    RATE_LIMIT_PASSWORD_RESET_PER_EMAIL = _env("RATE_LIMIT_PASSWORD_RESET_PER_EMAIL", "3 per hour")
    RATELIMIT_ENABLED = _bool("RATELIMIT_ENABLED", True)
    RATE_LIMIT_KEY_PREFIX = _env("RATE_LIMIT_KEY_PREFIX", "fantasize:limits")
    # A dead Redis holds a request at most twice this (one reconnect); then limits count in memory until it answers.
    RATE_LIMIT_REDIS_TIMEOUT_MS = _int("RATE_LIMIT_REDIS_TIMEOUT_MS", 250)

    ENABLE_PERFORMANCE_MONITORING = _bool("ENABLE_PERFORMANCE_MONITORING", True)
    SLOW_REQUEST_THRESHOLD = _int("SLOW_REQUEST_THRESHOLD", 1000)
    SOCKET_EVENTS_PER_MINUTE = _int("SOCKET_EVENTS_PER_MINUTE", 60)

    # Where password-reset mail goes: "log" (development), "memory" (tests) or "smtp".
    MAIL_BACKEND = _env("MAIL_BACKEND", "log")
    MAIL_FROM = _env("MAIL_FROM", "Fantasize <no-reply@fantasize.local>")
    SMTP_HOST = _env("SMTP_HOST", "localhost")
    SMTP_PORT = _int("SMTP_PORT", 25)
    SMTP_USER = _env("SMTP_USER")
    SMTP_PASSWORD = _env("SMTP_PASSWORD")
    PUBLIC_BASE_URL = _env("PUBLIC_BASE_URL", "http://127.0.0.1:5000")

    LOG_LEVEL = _env("LOG_LEVEL", "INFO")


class DevelopmentConfig(Config):
    ENV_NAME = "development"
    JWT_SECRET = _env("JWT_SECRET") or DEV_JWT_SECRET
    DEBUG = _bool("FLASK_DEBUG", False)


class TestingConfig(Config):
    ENV_NAME = "testing"
    TESTING = True
    JWT_SECRET = _env("JWT_SECRET") or DEV_JWT_SECRET
    MAIL_BACKEND = "memory"
    # Limits no test meets by accident (a live server serves a whole test module); rate-limit tests set small ones.
    RATE_LIMIT_MAX_REQUESTS = _int("RATE_LIMIT_MAX_REQUESTS", 1_000_000)
    RATE_LIMIT_AUTH = _env("RATE_LIMIT_AUTH", "1000000 per 15 minutes")
    RATE_LIMIT_ADMIN = _env("RATE_LIMIT_ADMIN", "1000000 per 5 minutes")
    RATE_LIMIT_UPLOAD = _env("RATE_LIMIT_UPLOAD", "1000000 per hour")
    RATE_LIMIT_ORDER = _env("RATE_LIMIT_ORDER", "1000000 per hour")
    RATE_LIMIT_PASSWORD_RESET_PER_EMAIL = _env("RATE_LIMIT_PASSWORD_RESET_PER_EMAIL", "1000000 per hour")
    # The test suite's databases; conftest points SQLALCHEMY_DATABASE_URI at one of them per run.
    TEST_POSTGRES_URL = _env("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/fantasize_test")
    TEST_REDIS_URL = _env("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    # In CI a missing PostgreSQL or Redis fails the suite instead of skipping its tests.
    REQUIRE_SERVICES = _bool("CI", False) or _bool("FANTASIZE_REQUIRE_SERVICES", False)


class ProductionConfig(Config):
    ENV_NAME = "production"
    FORCE_HTTPS = _bool("FORCE_HTTPS", True)
    HOST = _env("HOST", "0.0.0.0")


CONFIGS = {"development": DevelopmentConfig, "testing": TestingConfig, "production": ProductionConfig}


def config_for(name: str | None = None) -> type[Config]:
    return CONFIGS.get((name or environment_name()), DevelopmentConfig)
