"""Fixtures: every database test runs on SQLite and on real PostgreSQL (the `app` fixture is parametrised).

Each backend's schema is built once per session by the real Alembic migrations; tables are emptied after
each test. PostgreSQL missing: its half of the suite is skipped locally and fails in CI.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg2
import pytest
from flask import Flask
from flask_migrate import upgrade
from sqlalchemy import text
from sqlalchemy.engine import make_url
from werkzeug.routing import Rule

from config import TestingConfig
from fantasize import create_app
from fantasize.extensions import db
from fantasize.platform import monitoring
from tests.factories import Factory


def _share_url_builders() -> None:
    """werkzeug compiles two URL builders (Python source, parsed and compiled) for every rule of every app: some
    0.2 s of create_app's 0.3 s with the API's ~400 rules, paid again by every test, which builds an app of its
    own. A builder's code depends only on the rule's text, host or subdomain, defaults and converters (it reaches
    the rule through its first argument), so the tests compile each one once per process and share it."""
    compile_builder = Rule._compile_builder
    builders: dict[tuple, Callable] = {}

    def shared(self: Rule, append_unknown: bool = True) -> Callable:
        key = (self.rule, self.subdomain, self.host, self.merge_slashes, append_unknown, repr(self.defaults),
               tuple((name, type(converter), converter.regex) for name, converter in self._converters.items()))
        if key not in builders:
            builders[key] = compile_builder(self, append_unknown)
        return builders[key]

    Rule._compile_builder = shared


_share_url_builders()

BACKENDS = ("sqlite", "postgresql")
_state: dict[str, Any] = {}


def _worker_suffix() -> str:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    return f"_{worker}" if worker else ""


def _postgres_url() -> str:
    url = make_url(TestingConfig.TEST_POSTGRES_URL)
    return url.set(database=f"{url.database}{_worker_suffix()}").render_as_string(hide_password=False)


def _recreate_postgres_database(url: str) -> None:
    target = make_url(url)
    admin = target.set(database="postgres")
    conn = psycopg2.connect(
        host=admin.host, port=admin.port or 5432, user=admin.username, password=admin.password,
        dbname="postgres", connect_timeout=3,
    )
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{target.database}" WITH (FORCE)')
        cur.execute(f'CREATE DATABASE "{target.database}"')
        # The tests commit thousands of times (and empty the tables after each test): without waiting for each
        # commit's WAL flush. What every session sees is unchanged; only a crash of the server could lose the last
        # commits, and a test database is recreated at every run anyway.
        cur.execute(f'ALTER DATABASE "{target.database}" SET synchronous_commit = off')
    conn.close()


def database_url(backend: str, tmp_root: Path) -> str:
    """The migrated database of a backend, built on first use in this session."""
    key = f"url:{backend}"
    if key in _state:
        return _state[key]
    if backend == "postgresql":
        url = _postgres_url()
        try:
            _recreate_postgres_database(url)
        except psycopg2.OperationalError as exc:
            message = f"PostgreSQL is not reachable at {TestingConfig.TEST_POSTGRES_URL}: {exc}"
            if TestingConfig.REQUIRE_SERVICES:
                pytest.fail(message)
            pytest.skip(message)
    else:
        url = f"sqlite:///{tmp_root / 'fantasize-test.db'}"
    app = create_app(TestingConfig, {"SQLALCHEMY_DATABASE_URI": url})
    with app.app_context():
        upgrade()
        db.engine.dispose()
    _state[key] = url
    return url


def empty_tables() -> None:
    tables = [t.name for t in reversed(db.metadata.sorted_tables)]
    with db.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for table in tables:
                conn.execute(text(f"DELETE FROM {table}"))


@pytest.fixture(scope="session")
def tmp_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fantasize")


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    return request.param


@pytest.fixture
def make_app(backend: str, tmp_root: Path) -> Iterator[Callable[..., Flask]]:
    """Build apps on this test's backend with config overrides; their tables are emptied afterwards."""
    url = database_url(backend, tmp_root)
    built: list[Flask] = []

    def build(**overrides: Any) -> Flask:
        settings = {
            "SQLALCHEMY_DATABASE_URI": url,
            "UPLOAD_FOLDER": str(tmp_root / "uploads"),
            **overrides,
        }
        app = create_app(TestingConfig, settings)
        built.append(app)
        return app

    yield build
    if built:
        with built[0].app_context():
            db.session.remove()
            empty_tables()
    for app in built:
        app.extensions["fantasize.realtime"].stop()  # its background loop (if a socket started one) ends
        window = monitoring.window_of(app)
        if window is not None:
            window.close()  # its flush task ends instead of writing to the test's Redis after the test
        with app.app_context():
            db.engine.dispose()


@pytest.fixture
def app(make_app) -> Iterator[Flask]:
    application = make_app()
    with application.app_context():
        yield application


@pytest.fixture
def client(app: Flask):
    return app.test_client()


@pytest.fixture
def factory(app: Flask) -> Factory:
    return Factory(app)


@pytest.fixture
def runner(app: Flask):
    return app.test_cli_runner()


SWEEP_KEY = "sweep-key-0123456789"


@pytest.fixture
def sweep(make_app):
    """For sweeps over the URL map: an app with an API key, its test client, and headers of an administrator that
    also carry the key, so every route gets past authentication to the part a sweep tests."""
    app = make_app(API_KEYS=SWEEP_KEY)
    with app.app_context():
        factory = Factory(app)
        headers = {**factory.headers(factory.admin()), "X-API-Key": SWEEP_KEY}
        yield app, app.test_client(), headers


@pytest.fixture
def limited(make_app) -> Iterator[Callable[..., Flask]]:
    """Build apps rate-limited on the tests' Redis with the given settings; all share this test's key prefix."""
    from tests.support import delete_prefix, shared_redis

    client = shared_redis()
    prefix = f"test:{uuid.uuid4().hex}:"
    yield lambda **settings: make_app(REDIS_URL=TestingConfig.TEST_REDIS_URL,
                                      RATE_LIMIT_KEY_PREFIX=f"{prefix}limits", **settings)
    delete_prefix(client, prefix)
