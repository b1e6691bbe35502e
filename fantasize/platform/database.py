"""Database engine set-up per backend: the pool sized from settings, SQLite's foreign keys and busy timeout."""

from __future__ import annotations

from flask import Flask
from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url

from fantasize.extensions import db


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


def configure_engine(app: Flask) -> None:
    """Size the connection pool from DB_POOL_SIZE and DB_MAX_OVERFLOW; call before the engine is created.

    SQLite keeps SQLAlchemy's own pool (an in-memory database needs its static pool, and a file database is one
    writer at a time whatever the pool)."""
    config = app.config
    if make_url(config["SQLALCHEMY_DATABASE_URI"]).get_backend_name() == "sqlite":
        return
    options = dict(config.get("SQLALCHEMY_ENGINE_OPTIONS") or {})
    options.setdefault("pool_size", config["DB_POOL_SIZE"])
    options.setdefault("max_overflow", config["DB_MAX_OVERFLOW"])
    config["SQLALCHEMY_ENGINE_OPTIONS"] = options


def init_app(app: Flask) -> None:
    with app.app_context():
        engine: Engine = db.engine
        if engine.dialect.name == "sqlite" and not event.contains(engine, "connect", _sqlite_pragmas):
            event.listen(engine, "connect", _sqlite_pragmas)
