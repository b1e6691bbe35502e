"""Health probes through the app (API.md "Health"): shapes, statuses and codes, readiness against the migrations'
head, and probes that stay fast and few while a dependency hangs.

Unit-level: the app's test client, on SQLite and on the tests' PostgreSQL. A dependency that is down is a port
nobody listens on; one that hangs is tests.support.SilentServer, which accepts TCP connections and never answers
(what a stopped PostgreSQL or Redis looks like from outside: the kernel completes the handshake, nothing replies).
The real failures, private PostgreSQL and Redis servers stopped mid-test under a live gunicorn, are in
tests/test_faults.py.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask

from config import ConfigError, TestingConfig
from fantasize import create_app
from fantasize.extensions import db
from fantasize.platform import monitoring
from fantasize.platform.health import EXTENSION, MIGRATIONS, script_heads
from tests.conftest import database_url
from tests.live_server import ROOT, LiveServer, free_port
from tests.support import SilentServer, all_at_once, recorded, shared_redis

TIMEOUT_MS = 300  # HEALTH_CHECK_TIMEOUT_MS for these apps
BOUND = TIMEOUT_MS / 1000 + 1  # API.md: a probe answers within the check timeout + 1 s whatever its dependencies do
MEMORY_DETAILS = {"systemMemory", "process", "cpu"}


def timed_get(client, path: str):
    started = time.monotonic()
    response = client.get(path)
    return response, time.monotonic() - started


def assert_check(check: dict, status: str) -> None:
    assert check["status"] == status, check
    assert isinstance(check["responseTime"], int | float) and check["responseTime"] >= 0
    assert isinstance(check["message"], str) and check["message"]


def closed_by_client(connection: socket.socket, within: float = 2.0) -> bool:
    """True when the client end closes the connection within `within` seconds (what it sent first is skipped)."""
    deadline = time.monotonic() + within
    while (remaining := deadline - time.monotonic()) > 0:
        connection.settimeout(remaining)
        try:
            if connection.recv(4096) == b"":
                return True
        except TimeoutError:
            return False
        except OSError:
            return True
    return False


@pytest.fixture
def standalone(tmp_root) -> Iterator[Callable[..., Flask]]:
    """Apps whose database is not the tests' (a dead or hung server): make_app would empty its tables after."""
    built: list[Flask] = []

    def build(**overrides: Any) -> Flask:
        app = create_app(TestingConfig, {"UPLOAD_FOLDER": str(tmp_root / "uploads"),
                                         "HEALTH_CHECK_TIMEOUT_MS": TIMEOUT_MS, **overrides})
        built.append(app)
        return app

    yield build
    for app in built:
        with app.app_context():
            db.engine.dispose()


@pytest.fixture
def probe_app(make_app) -> Iterator[Flask]:
    app = make_app(HEALTH_CHECK_TIMEOUT_MS=TIMEOUT_MS)
    with app.app_context():
        yield app


def test_health_reports_each_check_with_the_shape_of_api_md(probe_app):
    response = probe_app.test_client().get("/health")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    body = response.json
    assert set(body) == {"status", "timestamp", "uptime", "version", "environment", "checks"}
    assert body["status"] == "healthy"
    assert body["timestamp"].endswith("Z") and isinstance(body["uptime"], int) and body["uptime"] >= 0
    assert body["version"] == probe_app.config["APP_VERSION"] and body["environment"] == "testing"
    checks = body["checks"]
    assert set(checks) == {"database", "redis", "memory"}
    assert_check(checks["database"], "healthy")
    pool = checks["database"]["details"]["pool"]
    assert {"size", "checkedOut", "overflow"} <= set(pool) and pool["checkedOut"] >= 0 and pool["overflow"] >= 0
    # The embedded default has no Redis to check: nothing is wrong, so the whole stays healthy.
    assert checks["redis"]["status"] == "skipped"
    assert_check(checks["memory"], "healthy")
    details = checks["memory"]["details"]
    assert set(details) == MEMORY_DETAILS
    assert 0 < details["systemMemory"]["usagePercent"] < 100
    assert details["process"]["rssBytes"] > 10 * 1024 * 1024


@pytest.mark.parametrize("backend", ["postgresql"])
def test_the_database_check_keeps_the_urls_connection_options(make_app, tmp_root):
    url = database_url("postgresql", tmp_root)
    app = make_app(SQLALCHEMY_DATABASE_URI=f"{url}?application_name=shop&connect_timeout=3")
    response = app.test_client().get("/health")
    assert response.status_code == 200, response.json
    assert response.json["checks"]["database"]["status"] == "healthy"


def test_uptime_counts_from_when_the_app_was_built(probe_app):
    first = probe_app.test_client().get("/health").json["uptime"]
    time.sleep(0.05)
    assert probe_app.test_client().get("/health").json["uptime"] >= first + 50


def test_health_checks_redis_when_it_is_configured(make_app):
    shared_redis()
    app = make_app(REDIS_URL=TestingConfig.TEST_REDIS_URL, HEALTH_CHECK_TIMEOUT_MS=TIMEOUT_MS)
    body = app.test_client().get("/health").json
    assert body["status"] == "healthy"
    assert_check(body["checks"]["redis"], "healthy")


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_redis_that_never_answers_makes_health_degraded_not_slow(make_app):
    with SilentServer() as silent:
        app = make_app(REDIS_URL=silent.url, HEALTH_CHECK_TIMEOUT_MS=TIMEOUT_MS)
        client = app.test_client()
        response, took = timed_get(client, "/health")
        assert response.status_code == 200, response.json
        assert response.json["status"] == "degraded"
        assert_check(response.json["checks"]["redis"], "unhealthy")
        assert_check(response.json["checks"]["database"], "healthy")
        assert took < BOUND, f"/health took {took:.2f} s"
        assert silent.accepted, "the check never reached the silent Redis: nothing was tested"
        # Readiness does not depend on Redis: the shop serves without it.
        assert client.get("/health/ready").status_code == 200


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_redis_nobody_listens_on_makes_health_degraded(make_app):
    app = make_app(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0", HEALTH_CHECK_TIMEOUT_MS=TIMEOUT_MS)
    response = app.test_client().get("/health")
    assert response.status_code == 200 and response.json["status"] == "degraded"
    assert "unreachable" in response.json["checks"]["redis"]["message"].lower()


def test_ready_is_200_on_a_database_migrated_to_head(probe_app):
    response = probe_app.test_client().get("/health/ready")
    assert response.status_code == 200, response.json
    assert response.headers["Cache-Control"] == "no-store"
    body = response.json
    assert body["status"] == "ready"
    migrations = body["checks"]["migrations"]
    assert migrations["status"] == "healthy" and migrations["current"] == migrations["head"] == sorted(script_heads())
    assert_check(body["checks"]["database"], "healthy")


def test_ready_is_503_while_the_database_is_behind_the_scripts(probe_app):
    # As after deploying code with a new migration before `flask db upgrade` ran: the scripts' head moved on.
    probe_app.extensions[EXTENSION].heads = frozenset({"9999_not_applied"})
    response = probe_app.test_client().get("/health/ready")
    assert response.status_code == 503
    body = response.json
    assert body["status"] == "not ready"
    assert body["checks"]["migrations"]["status"] == "unhealthy"
    assert body["checks"]["migrations"]["head"] == ["9999_not_applied"]
    assert "flask db upgrade" in body["checks"]["migrations"]["message"]
    # The database itself answers: /health stays healthy (a pending migration is not an outage).
    assert probe_app.test_client().get("/health").status_code == 200


def test_ready_stays_200_while_a_newer_release_has_migrated_the_database_ahead(probe_app):
    # A rolling deploy: the release phase migrated the database for new code, and this instance, running the old
    # code, does not know the revision. Taking it out of the load balancer would leave no instance serving.
    state = probe_app.extensions[EXTENSION]
    state.heads, state.known = frozenset({"0000_older"}), frozenset({"0000_older"})
    response = probe_app.test_client().get("/health/ready")
    assert response.status_code == 200, response.json
    migrations = response.json["checks"]["migrations"]
    assert migrations["status"] == "healthy" and "ahead" in migrations["message"]
    assert migrations["head"] == ["0000_older"] and migrations["current"] == sorted(script_heads())


def test_the_scripts_head_is_read_from_revision_assignments(tmp_path: Path):
    def script(name: str, revision: str, down: str | tuple | None) -> None:
        (tmp_path / f"{name}.py").write_text(f'"""{name}"""\nrevision = {revision!r}\ndown_revision = {down!r}\n')

    assert script_heads(tmp_path) is None
    script("a", "0001", None)
    script("b", "0002", "0001")
    assert script_heads(tmp_path) == {"0002"}
    script("c", "0003", "0001")  # a branch: two heads, both must be applied
    assert script_heads(tmp_path) == {"0002", "0003"}
    script("d", "0004", ("0002", "0003"))  # a merge point joins them again
    assert script_heads(tmp_path) == {"0004"}
    # The project's own scripts have one head, the one the tests' databases were migrated to.
    assert len(script_heads()) == 1


def test_the_head_is_alembics_and_a_serving_worker_finds_it_without_alembic(tmp_path):
    from alembic.config import Config as AlembicConfig
    from alembic.script import ScriptDirectory

    alembic = AlembicConfig()
    alembic.set_main_option("script_location", str(MIGRATIONS.parent))
    assert script_heads() == set(ScriptDirectory.from_config(alembic).get_heads())
    # What gunicorn serves (wsgi.py: migrations=False) has the head and never imported Alembic or Flask-Migrate.
    check = ("import sys, wsgi\n"
             "from fantasize.platform.health import EXTENSION\n"
             "print(sorted(wsgi.app.extensions[EXTENSION].heads))\n"
             "assert not [m for m in sys.modules if m.startswith(('alembic', 'flask_migrate'))]\n")
    env = {**{k: v for k, v in os.environ.items() if k not in ("NODE_ENV", "REDIS_URL", "DATABASE_URL")},
           "FLASK_ENV": "testing", "DATABASE_URL": f"sqlite:///{tmp_path / 'shop.db'}"}
    result = subprocess.run([sys.executable, "-c", check], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[-2] == str(sorted(script_heads()))


def test_live_answers_without_touching_any_dependency(standalone):
    # Every dependency is a port nobody listens on: liveness is about the process, not what it talks to.
    dead = free_port()
    app = standalone(SQLALCHEMY_DATABASE_URI=f"postgresql://postgres@127.0.0.1:{dead}/none",
                     REDIS_URL=f"redis://127.0.0.1:{dead}/0")
    client = app.test_client()
    response = client.get("/health/live")
    assert response.status_code == 200 and response.json == {"status": "alive"}
    assert response.headers["Cache-Control"] == "no-store"
    health = client.get("/health")
    assert health.status_code == 503 and health.json["status"] == "unhealthy"
    assert_check(health.json["checks"]["database"], "unhealthy")
    ready = client.get("/health/ready")
    assert ready.status_code == 503 and ready.json["checks"]["migrations"]["status"] == "unhealthy"


def test_live_probes_after_the_first_are_answered_in_front_of_flask_with_the_views_answer(standalone):
    """The first probe reaches the view; later ones get its status, body and shared headers without Flask (no
    request hook runs: monitoring counts only the first), each with its own X-Request-ID."""
    app = standalone(SQLALCHEMY_DATABASE_URI=f"postgresql://postgres@127.0.0.1:{free_port()}/none")
    samples = []
    monitoring.on_request(app, samples.append)
    client = app.test_client()
    first = client.get("/health/live", headers={"X-Request-ID": "probe-1"})
    later = [client.get("/health/live", headers={"X-Request-ID": f"probe-{n}"}) for n in (2, 3)]
    fresh = client.get("/health/live", headers={"X-Request-ID": "not valid!"})
    head = client.head("/health/live")
    assert [sample.route for sample in samples] == ["/health/live"]  # only the first went through Flask
    for response in (*later, fresh):
        assert (response.status_code, response.data) == (200, first.data)
        assert {k: v for k, v in response.headers.items() if k != "X-Request-ID"} == \
               {k: v for k, v in first.headers.items() if k != "X-Request-ID"}
    assert [r.headers["X-Request-ID"] for r in (first, *later)] == ["probe-1", "probe-2", "probe-3"]
    assert len(fresh.headers["X-Request-ID"]) == 32 and fresh.headers["X-Request-ID"] != "not valid!"
    assert head.status_code == 200 and head.data == b"" and head.headers["Content-Length"] == str(len(first.data))
    assert client.post("/health/live").status_code == 405  # anything else is Flask's, with its error body
    assert len(samples) == 2


def test_a_database_that_never_answers_bounds_every_probe_and_holds_one_connection(standalone):
    """A PostgreSQL that accepts connections and answers nothing (stopped, or a black hole behind a proxy): each
    probe answers 503 within the timeout + 1 s, and twenty probes at once, twice over, open one connection to it
    each round, not one per probe, and each check closes its connection at its deadline. (Caught: a synchronous
    connection, as a pool checkout is, which waited on the socket for ever, kept the connection and left every later
    probe waiting on the stuck check; a check per probe, which left twenty-two connections to the hung server.)"""
    with SilentServer() as silent:
        app = standalone(SQLALCHEMY_DATABASE_URI=f"postgresql://postgres@127.0.0.1:{silent.port}/hung")
        client = app.test_client()
        for path in ("/health", "/health/ready"):
            response, took = timed_get(client, path)
            assert response.status_code == 503, response.json
            assert took < BOUND, f"{path} took {took:.2f} s"
        assert "within" in response.json["checks"]["database"]["message"]
        accepted = len(silent.accepted)
        assert accepted == 2, "each probe's check should have tried the hung server once"
        for connection in silent.accepted:  # a check gives its connection up at its deadline, not left hanging
            assert closed_by_client(connection), "the check left its connection to the hung server open"

        for _ in range(2):
            before = len(silent.accepted)
            started = time.monotonic()
            results = all_at_once([lambda: client.get("/health") for _ in range(20)])
            took = time.monotonic() - started
            assert [r.status_code for r in results] == [503] * 20
            assert took < BOUND, f"twenty probes at once took {took:.2f} s"
            # One check for them all; a straggler arriving after it ended may start one more.
            assert len(silent.accepted) - before <= 3, "concurrent probes each opened a connection"
        assert client.get("/health/live").status_code == 200


def test_probes_are_not_rate_limited(make_app):
    app = make_app(RATE_LIMIT_MAX_REQUESTS=2)
    client = app.test_client()
    for path in ("/health", "/health/ready", "/health/live"):
        responses = [client.get(path) for _ in range(5)]
        assert [r.status_code for r in responses] == [200] * 5, path
        assert "X-RateLimit-Limit" not in responses[-1].headers
    # The limit itself is live: an API route meets it at the third request.
    assert [client.get("/api/v1/versions").status_code for _ in range(3)] == [200, 200, 429]


def test_probes_log_nothing_while_all_is_well_and_a_change_of_state_once(make_app, standalone):
    app = make_app(HEALTH_CHECK_TIMEOUT_MS=TIMEOUT_MS)
    client = app.test_client()
    with recorded("fantasize") as records:
        for _ in range(3):
            for path in ("/health", "/health/ready", "/health/live"):
                assert client.get(path).status_code == 200
    assert [r for r in records if r.levelno >= logging.INFO] == []

    dead = standalone(SQLALCHEMY_DATABASE_URI=f"postgresql://postgres@127.0.0.1:{free_port()}/none")
    with recorded("fantasize.health") as records:
        for _ in range(3):
            assert dead.test_client().get("/health").status_code == 503
    assert [r.getMessage() for r in records] == ["health check failing"]


def test_the_request_log_leaves_out_probes_that_pass(tmp_root):
    """The request line (fantasize.platform.request_log) is not written for a probe that passes, and is for a probe
    that fails: here the database is a port nobody listens on, so /health is 503 and /health/live 200."""
    log_path = tmp_root / "probe-access.log"
    env = {"DATABASE_URL": f"postgresql://postgres@127.0.0.1:{free_port()}/none", "LOG_LEVEL": "INFO",
           "HEALTH_CHECK_TIMEOUT_MS": str(TIMEOUT_MS), "REDIS_URL": "", "SOCKETIO_MESSAGE_QUEUE": ""}
    with LiveServer(env, workers=1, log_path=log_path) as server:
        for path, status in (("/health/live", 200), ("/health", 503), ("/api/v1/versions", 200)):
            response = requests.get(f"{server.url}{path}", headers={"X-Request-ID": f"probe-log{status}"}, timeout=5)
            assert response.status_code == status, path
    lines = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
    logged = [(line["path"], line["status"]) for line in lines if line["logger"] == "fantasize.requests"]
    assert ("/health/live", 200) not in logged
    assert ("/health", 503) in logged and ("/api/v1/versions", 200) in logged, logged


@pytest.mark.parametrize("settings, named", [
    ({"HEALTH_CHECK_TIMEOUT_MS": 0}, "HEALTH_CHECK_TIMEOUT_MS"),
    ({"HEALTH_MEMORY_DEGRADED_PERCENT": 0}, "HEALTH_MEMORY_DEGRADED_PERCENT"),
    ({"HEALTH_MEMORY_DEGRADED_PERCENT": 101}, "HEALTH_MEMORY_DEGRADED_PERCENT"),
    ({"DB_WAIT_TIMEOUT_MS": -1}, "DB_WAIT_TIMEOUT_MS"),
    ({"DB_POOL_TIMEOUT_SECONDS": 0}, "DB_POOL_TIMEOUT_SECONDS"),
])
def test_settings_that_would_break_the_probes_stop_the_app(standalone, settings, named):
    with pytest.raises(ConfigError, match=named):
        standalone(SQLALCHEMY_DATABASE_URI="sqlite://", **settings)
