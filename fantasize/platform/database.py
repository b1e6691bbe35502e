"""Database engine set-up per backend: the pool sized and checked as settings say, SQLite's foreign keys and busy
timeout, and connections for reads that need no transaction."""

from __future__ import annotations

import select
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import Flask
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import DisconnectionError

from config import ConfigError
from fantasize.extensions import db
from fantasize.platform import monitoring


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


def _os_poll() -> Any:
    """The operating system's poll, even where gevent has patched `select` (a poll that does not wait needs no event
    loop, and gevent's sets up a watcher on it for every call)."""
    monkey = sys.modules.get("gevent.monkey")
    return monkey.get_original("select", "poll") if monkey is not None else select.poll


_poll = _os_poll()


def _server_said_goodbye(dbapi_connection, _record, _proxy) -> None:
    """Pool checkout (DB_POOL_CHECK=socket): refuse a pooled connection the server has closed, with no round trip.

    An idle connection has nothing to read; one the server ended (pg_terminate_backend, a restart, an idle timeout)
    has the server's farewell or the end of the stream waiting on its socket. DisconnectionError makes the pool
    drop it and check out another (a fresh one if need be), which is what pool_pre_ping's SELECT 1 achieves.
    """
    if dbapi_connection.closed:
        raise DisconnectionError("the pooled connection is closed")
    poller = _poll()
    poller.register(dbapi_connection.fileno(), select.POLLIN)
    if poller.poll(0):
        raise DisconnectionError("the server closed the pooled connection")


def configure_engine(app: Flask) -> None:
    """Size the connection pool from DB_POOL_SIZE and DB_MAX_OVERFLOW and pick its check (DB_POOL_CHECK); call
    before the engine is created.

    SQLite keeps SQLAlchemy's own pool (an in-memory database needs its static pool, and a file database is one
    writer at a time whatever the pool)."""
    config = app.config
    if make_url(config["SQLALCHEMY_DATABASE_URI"]).get_backend_name() == "sqlite":
        return
    options = dict(config.get("SQLALCHEMY_ENGINE_OPTIONS") or {})
    options.setdefault("pool_size", config["DB_POOL_SIZE"])
    options.setdefault("max_overflow", config["DB_MAX_OVERFLOW"])
    options.setdefault("pool_timeout", config["DB_POOL_TIMEOUT_SECONDS"])
    check = config["DB_POOL_CHECK"]
    if check not in ("socket", "ping"):
        raise ValueError(f"DB_POOL_CHECK={check!r}: use 'socket' or 'ping'")
    if check == "socket" and make_url(config["SQLALCHEMY_DATABASE_URI"]).get_backend_name() == "postgresql":
        options["pool_pre_ping"] = False  # init_app checks the socket instead
    config["SQLALCHEMY_ENGINE_OPTIONS"] = options


class BoundedGeventWait:
    """psycogreen's gevent wait callback with a bound on each wait: a server that stops answering (a stopped or
    stalled host, a black-holed route: the kernel still acknowledges, so TCP keepalives see nothing wrong) costs a
    request `timeout` seconds, then psycopg2 closes the connection, the pool drops it and the request answers 503.

    Each wait is one step of the protocol (the connection's handshake, a statement's reply), so the bound is also
    the longest a single statement may run. psycopg2 calls it for every wait of every connection in the process.
    """

    def __init__(self, timeout: float) -> None:
        import psycopg2
        from gevent.socket import wait_read, wait_write
        from psycopg2 import extensions

        self.timeout = timeout
        # Bound once: psycopg2 calls this for every wait of every statement.
        self._error = psycopg2.OperationalError
        self._ok, self._read, self._write = extensions.POLL_OK, extensions.POLL_READ, extensions.POLL_WRITE
        self._wait_read, self._wait_write = wait_read, wait_write

    def __call__(self, connection: Any) -> None:
        while True:
            state = connection.poll()
            if state == self._ok:
                return
            try:
                if state == self._read:
                    self._wait_read(connection.fileno(), timeout=self.timeout)
                elif state == self._write:
                    self._wait_write(connection.fileno(), timeout=self.timeout)
                else:
                    raise self._error(f"Bad result from poll: {state!r}")
            except TimeoutError:
                raise self._error(f"PostgreSQL did not answer within {round(self.timeout * 1000)} ms") from None


def bound_cooperative_waits(timeout_ms: int) -> None:
    """Where wsgi.py made psycopg2 cooperative (psycogreen, under gevent workers), bound each of its waits by
    DB_WAIT_TIMEOUT_MS (0: unbounded, psycogreen's own). Under threads psycopg2 waits inside libpq, which has no
    read timeout: there a request to a server that stopped answering waits until it answers or the connection
    breaks (the health probes do not: fantasize.platform.health)."""
    from psycopg2 import extensions

    current = extensions.get_wait_callback()
    if not (isinstance(current, BoundedGeventWait) or getattr(current, "__module__", "") == "psycogreen.gevent"):
        return
    if timeout_ms > 0:
        extensions.set_wait_callback(BoundedGeventWait(timeout_ms / 1000))
    else:
        from psycogreen.gevent import gevent_wait_callback

        extensions.set_wait_callback(gevent_wait_callback)


def init_app(app: Flask) -> None:
    with app.app_context():
        engine: Engine = db.engine
        if engine.dialect.name == "sqlite" and not event.contains(engine, "connect", _sqlite_pragmas):
            event.listen(engine, "connect", _sqlite_pragmas)
        if app.config["DB_POOL_TIMEOUT_SECONDS"] < 1:
            raise ConfigError("DB_POOL_TIMEOUT_SECONDS must be at least 1")
        if app.config["DB_WAIT_TIMEOUT_MS"] < 0:
            raise ConfigError("DB_WAIT_TIMEOUT_MS must be 0 (no bound) or more (milliseconds)")
        if engine.dialect.name == "postgresql":
            bound_cooperative_waits(app.config["DB_WAIT_TIMEOUT_MS"])
        if (engine.dialect.name == "postgresql" and app.config["DB_POOL_CHECK"] == "socket"
                and not event.contains(engine, "checkout", _server_said_goodbye)):
            event.listen(engine, "checkout", _server_said_goodbye)
        monitoring.watch_statements(app, engine)


@contextmanager
def read_connection() -> Iterator[Connection]:
    """A connection for reads that need no transaction of their own (one statement each, or statements that need
    not agree with each other).

    While the request's session has a transaction going, its connection: what the request wrote or read stays in
    view. Otherwise, on PostgreSQL, a pooled connection in autocommit: psycopg2 sends no BEGIN before the statement
    and the pool no ROLLBACK after it, two round trips of three for an uncached read. Elsewhere, the session's.

    Autocommit is switched on the driver's connection, and off again before the pool has it back, rather than with
    SQLAlchemy's isolation_level option: that one makes the pool set the isolation level explicitly when the
    connection returns, after which psycopg2 spends a round trip on every later switch.
    """
    session = db.session()  # this request's Session (db.session is its registry)
    if session.in_transaction() or db.engine.dialect.name != "postgresql":
        yield session.connection()
        return
    with db.engine.connect() as connection:
        driver = connection.connection.dbapi_connection
        driver.autocommit = True
        try:
            yield connection
        finally:
            if not connection.invalidated and not driver.closed:
                driver.autocommit = False
