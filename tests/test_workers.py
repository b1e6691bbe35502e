"""Process plumbing: gunicorn's worker class from settings (gevent patches, gthread does not), pools from settings."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from redis import BlockingConnectionPool
from sqlalchemy import event

from config import TestingConfig
from fantasize.extensions import db
from fantasize.platform.cache import page_store
from fantasize.platform.rate_limits import EXTENSION as LIMITER
from tests.conftest import database_url
from tests.factories import Factory
from tests.live_server import ROOT, LiveServer


def import_wsgi(prelude: str, check: str, tmp_path) -> subprocess.CompletedProcess:
    """Import wsgi.py in a fresh interpreter after `prelude`, then run `check` (asserts) there."""
    env = {**{k: v for k, v in os.environ.items() if k not in ("NODE_ENV", "REDIS_URL", "DATABASE_URL")},
           "FLASK_ENV": "testing", "DATABASE_URL": f"sqlite:///{tmp_path / 'shop.db'}"}
    code = f"{prelude}\nimport sys, wsgi, psycopg2.extensions as ext\n{check}\n"
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=60)


def test_under_gevent_wsgi_makes_psycopg2_yield_to_other_greenlets(tmp_path):
    # As gunicorn's gevent worker does: patch first, then import the app.
    result = import_wsgi("from gevent import monkey; monkey.patch_all()",
                         "assert ext.get_wait_callback() is not None", tmp_path)
    assert result.returncode == 0, result.stderr


def test_under_threads_wsgi_patches_nothing(tmp_path):
    # As gunicorn's gthread worker does: import the app in a process nobody patched.
    result = import_wsgi("import socket, threading",
                         "from gevent import monkey\n"
                         "assert not monkey.is_module_patched('socket') and not monkey.is_module_patched('threading')\n"
                         "assert ext.get_wait_callback() is None", tmp_path)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("backend", ["postgresql"])
def test_gunicorn_serves_with_gthread_workers(backend, make_app, tmp_root):
    app = make_app()
    with app.app_context():
        product_id = Factory(app).product(name="Threaded Lamp").id
    env = {"DATABASE_URL": database_url("postgresql", tmp_root), "REDIS_URL": TestingConfig.TEST_REDIS_URL,
           "CACHE_KEY_PREFIX": f"test:workers:{os.getpid()}:", "GUNICORN_WORKER_CLASS": "gthread",
           "GUNICORN_THREADS": "4"}
    with LiveServer(env, workers=1, log_path=tmp_root / "gthread.log") as server, ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: requests.get(f"{server.url}/api/v1/products/{product_id}", timeout=10),
                                range(16)))

    assert [a.status_code for a in answers] == [200] * 16
    assert {a.json()["name"] for a in answers} == {"Threaded Lamp"}


@pytest.mark.parametrize("backend", ["postgresql"])
def test_pools_are_sized_from_settings(backend, make_app):
    app = make_app(DB_POOL_SIZE=3, DB_MAX_OVERFLOW=2, REDIS_MAX_CONNECTIONS=7, REDIS_URL=TestingConfig.TEST_REDIS_URL)
    with app.app_context():
        assert (db.engine.pool.size(), db.engine.pool._max_overflow) == (3, 2)
    for pool in (page_store(app).backend.client.connection_pool,
                 app.extensions[LIMITER].storage.get_connection().connection_pool):
        # Blocking: a request that finds every connection busy waits for one instead of failing.
        assert isinstance(pool, BlockingConnectionPool) and pool.max_connections == 7


@pytest.mark.parametrize("backend", ["sqlite"])
def test_sqlite_keeps_its_own_pool(backend, make_app):
    app = make_app(DB_POOL_SIZE=3)
    with app.app_context():
        assert db.engine.dialect.name == "sqlite"
        assert "pool_size" not in app.config["SQLALCHEMY_ENGINE_OPTIONS"]


def _backend_pid(app) -> int:
    with app.app_context(), db.engine.connect() as connection:
        return connection.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()


@pytest.mark.parametrize("backend", ["postgresql"])
@pytest.mark.parametrize("check", ["socket", "ping"])
def test_a_pooled_connection_the_server_ended_is_replaced_before_the_next_request(backend, make_app, check):
    app = make_app(DB_POOL_SIZE=1, DB_MAX_OVERFLOW=0, DB_POOL_CHECK=check)
    with app.app_context():
        product_id = Factory(app).product(name="Sturdy Lamp").id
        assert db.engine.pool._pre_ping is (check == "ping")  # socket: no SELECT 1 round trip per checkout
    client = app.test_client()
    assert client.get(f"/api/v1/products/{product_id}").status_code == 200
    pid = _backend_pid(app)  # the pool's one connection
    killer = make_app(DB_POOL_SIZE=1, DB_MAX_OVERFLOW=0)
    with killer.app_context(), db.engine.connect() as connection:
        # With a timeout, pg_terminate_backend returns once the backend has gone.
        assert connection.exec_driver_sql(f"SELECT pg_terminate_backend({pid}, 5000)").scalar_one() is True

    for path in (f"/api/v1/products/{product_id}", "/api/v1/products?limit=5", "/api/v1/cart"):
        response = client.get(path)
        assert response.status_code in (200, 401), (path, response.status_code, response.get_data(as_text=True))
    assert client.get(f"/api/v1/products/{product_id}").json["name"] == "Sturdy Lamp"
    assert _backend_pid(app) != pid


@pytest.mark.parametrize("backend", ["postgresql"])
def test_an_anonymous_read_runs_in_autocommit_and_gives_the_connection_back_as_it_found_it(backend, make_app):
    app = make_app(DB_POOL_SIZE=1, DB_MAX_OVERFLOW=0, CACHE_ENABLED=False)
    with app.app_context():
        factory = Factory(app)
        product_id = factory.product(name="Quiet Lamp").id
        headers = factory.headers(factory.admin())
    seen: list[tuple[str, bool]] = []

    def note(conn, _cursor, statement, _parameters, _context, _executemany) -> None:
        seen.append((statement.split()[0], conn.connection.dbapi_connection.autocommit))

    with app.app_context():
        event.listen(db.engine, "before_cursor_execute", note)
    client = app.test_client()
    # Anonymous: the read is the request's only statement, in autocommit (no BEGIN before it, no ROLLBACK after).
    assert client.get(f"/api/v1/products/{product_id}").status_code == 200
    assert client.get("/api/v1/products?limit=5&page=9").status_code == 200  # past the end: a count besides
    assert seen and all(autocommit for _, autocommit in seen), seen
    # A request whose session already has a transaction (the administrator was read) reads inside it.
    seen.clear()
    assert client.get(f"/api/v1/products/{product_id}", headers=headers).status_code == 200
    assert seen and not any(autocommit for _, autocommit in seen), seen
    with app.app_context(), db.engine.connect() as connection:
        assert connection.connection.dbapi_connection.autocommit is False
