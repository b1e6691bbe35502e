"""The app while its dependencies fail, against a live gunicorn (one gevent worker, as deployed) and private servers
the tests stop and start: a PostgreSQL cluster of their own (tests.private_postgres) and a redis-server of their
own (tests.support.PrivateRedis). Never the shared servers, which the rest of the suite is using.

What must hold (API.md "Health", "Errors", "Caching", "Rate limits"; issue 14's fault tests):
- PostgreSQL stopped: /health 503 `unhealthy`, /health/ready 503, /health/live 200; API calls answer 503 in the
  error format within 5 s, none hangs, none is a 500. Started again: everything recovers, the same worker serving.
- PostgreSQL that accepts connections and answers nothing (every server process SIGSTOPped): the probes answer 503
  within HEALTH_CHECK_TIMEOUT_MS + 1 s, /health/live at once, API calls 503 within DB_WAIT_TIMEOUT_MS and a little.
  Resumed: recovers by itself.
- Redis stopped: /health 200 `degraded`, catalogue reads 200 from the database, limits counted in memory, writes
  succeed, nothing is a 5xx or slower than the Redis timeouts allow; a Socket.IO client stays connected. Started
  again: the cache is used again and the client hears events sent through the queue after the restart.

Each test prints what it measured (run with -s), the figures of the README's "When a dependency fails".
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from uuid import uuid4

import pytest
import requests
from flask import Flask
from flask_migrate import upgrade
from sqlalchemy.exc import OperationalError

from config import TestingConfig
from fantasize import create_app
from fantasize.extensions import db
from tests.conftest import database_url
from tests.factories import PASSWORD, Factory
from tests.live_server import LiveServer, worker_pid
from tests.private_postgres import PrivatePostgres
from tests.realtime_clients import Peer
from tests.support import PrivateRedis, SilentServer, delete_prefix, shared_redis

HEALTH_TIMEOUT_MS = 500
PROBE_BOUND = HEALTH_TIMEOUT_MS / 1000 + 1  # the bound on a probe while a dependency hangs
DB_WAIT_TIMEOUT_MS = 2000
API_BOUND = 5.0  # the bound on an API call while PostgreSQL is down
HUNG_API_BOUND = DB_WAIT_TIMEOUT_MS / 1000 + 2
FAST = 1.0  # a request that must not wait on Redis at all: its timeouts are 250 ms (cache, limits)
RECOVERY = 20.0  # the longest a recovery may take once the dependency is back


def timed(method: str, url: str, **options: Any) -> tuple[requests.Response, float]:
    started = time.monotonic()
    response = requests.request(method, url, timeout=10, **options)
    return response, time.monotonic() - started


def assert_unavailable(response: requests.Response) -> None:
    """503 in the error format of API.md, not a 500 or a hang."""
    assert response.status_code == 503, (response.status_code, response.text[:300])
    body = response.json()
    assert body["success"] is False and body["error"]["code"] == "SERVICE_UNAVAILABLE"
    assert body["meta"]["requestId"] == response.headers["X-Request-ID"]


def wait_for(check: Callable[[], bool], what: str, timeout: float = RECOVERY) -> float:
    """Poll `check` until it holds; how long that took."""
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < timeout, f"{what}: not within {timeout:.0f} s"
        time.sleep(0.2)
    return time.monotonic() - started


def health(server: LiveServer) -> tuple[requests.Response, float]:
    return timed("GET", f"{server.url}/health")


def report(name: str, **figures: float) -> None:
    print(f"\n[{name}] " + ", ".join(f"{key}={value:.3f}s" for key, value in figures.items()))


# PostgreSQL


@pytest.fixture(scope="module")
def private_postgres() -> Iterator[PrivatePostgres]:
    server = PrivatePostgres().create()  # skips locally, fails in CI, without initdb
    try:
        yield server
    finally:
        server.destroy()


@pytest.fixture(scope="module")
def private_database(private_postgres, tmp_path_factory) -> str:
    """A database on the private cluster, migrated as the release phase does (`flask db upgrade`)."""
    url = private_postgres.create_database("fantasize")
    app = create_app(TestingConfig, {"SQLALCHEMY_DATABASE_URI": url})
    with app.app_context():
        upgrade()
        db.engine.dispose()
    return url


@pytest.fixture
def postgres_rows(private_database, tmp_path) -> Iterator[Factory]:
    """A factory writing to the private database."""
    app = create_app(TestingConfig, {"SQLALCHEMY_DATABASE_URI": private_database,
                                     "UPLOAD_FOLDER": str(tmp_path / "uploads")})
    with app.app_context():
        yield Factory(app)
        with contextlib.suppress(OperationalError):  # its connection may have died with the server
            db.session.remove()
        db.engine.dispose()


@pytest.fixture
def postgres_server(private_postgres, private_database, tmp_root) -> Iterator[Callable[..., LiveServer]]:
    """Start a live instance on the private database (no Redis: the in-process cache and limits) with extra
    settings; restarted by nobody. The cluster is running and answering again after the test whatever the test
    did to it."""
    started: list[LiveServer] = []

    def start(**settings: str) -> LiveServer:
        env = {"DATABASE_URL": private_database, "HEALTH_CHECK_TIMEOUT_MS": str(HEALTH_TIMEOUT_MS),
               "DB_WAIT_TIMEOUT_MS": str(DB_WAIT_TIMEOUT_MS), "REDIS_URL": "", "SOCKETIO_MESSAGE_QUEUE": "",
               **settings}
        server = LiveServer(env, workers=1, log_path=tmp_root / f"faults-postgres-{uuid4().hex[:6]}.log")
        started.append(server)
        return server.start()

    try:
        yield start
    finally:
        for server in started:
            server.stop()
        if not (private_postgres.data / "postmaster.pid").exists():
            private_postgres.start()
        private_postgres.wait_until_answering()


def login(server: LiveServer, email: str) -> tuple[requests.Response, float]:
    return timed("POST", f"{server.url}/api/v1/auth/login", json={"email": email, "password": PASSWORD})


def assert_serving(server: LiveServer, email: str, product_id: int) -> None:
    response, _ = health(server)
    assert response.status_code == 200 and response.json()["status"] == "healthy", response.text
    assert requests.get(f"{server.url}/health/ready", timeout=5).status_code == 200
    assert login(server, email)[0].status_code == 200
    # A page no one asked for yet, so the database answers it rather than the cache.
    products = requests.get(f"{server.url}/api/v1/products", params={"limit": 3, "q": uuid4().hex}, timeout=5)
    assert products.status_code == 200, products.text
    assert requests.get(f"{server.url}/api/v1/products/{product_id}", timeout=5).status_code == 200


def uncached_read(server: LiveServer) -> tuple[requests.Response, float]:
    return timed("GET", f"{server.url}/api/v1/products", params={"limit": 3, "q": uuid4().hex})


def test_postgresql_stopped_and_started_again(private_postgres, postgres_rows, postgres_server):
    """pg_ctl stop -m immediate (every server process ends, as in a crash), then pg_ctl start.
    (Caught: nothing in the app needed fixing here: the pool's socket check sees the ended connections, the new
    connection is refused at once and OperationalError is the 503 handler's; the probes' own deadline is
    test_health's.)"""
    user, product = postgres_rows.user(), postgres_rows.product()
    headers = postgres_rows.headers(user)
    server = postgres_server()
    worker = worker_pid(server)
    assert_serving(server, user.email, product.id)

    private_postgres.stop("immediate")
    response, probe = health(server)
    assert response.status_code == 503, response.text
    body = response.json()
    assert body["status"] == "unhealthy" and body["checks"]["database"]["status"] == "unhealthy"
    assert probe < PROBE_BOUND
    ready, ready_took = timed("GET", f"{server.url}/health/ready")
    assert ready.status_code == 503 and ready.json()["status"] == "not ready" and ready_took < PROBE_BOUND
    live, _ = timed("GET", f"{server.url}/health/live")
    assert live.status_code == 200

    calls = {"read": uncached_read(server), "login": login(server, user.email),
             "profile": timed("GET", f"{server.url}/api/v1/users/me", headers=headers),
             "product": timed("GET", f"{server.url}/api/v1/products/{product.id + 1000}")}
    for name, (call, took) in calls.items():
        assert_unavailable(call)
        assert call.headers.get("Retry-After"), name
        assert took < API_BOUND, f"{name} took {took:.2f} s"

    private_postgres.start()
    recovered = wait_for(lambda: health(server)[0].status_code == 200, "/health back to 200")
    assert_serving(server, user.email, product.id)
    assert worker_pid(server) == worker, "the worker was restarted: the app did not recover by itself"
    report("postgresql stopped", probe=probe, ready=ready_took, recovered_after_start=recovered,
           **{f"api_{name}": took for name, (_, took) in calls.items()})


def test_postgresql_that_answers_nothing_bounds_probes_and_requests(private_postgres, postgres_rows,
                                                                     postgres_server):
    """Every process of the cluster SIGSTOPped: connections are accepted by the kernel and never answered, the
    pooled ones too. (Caught: requests on a pooled connection waited for ever, until the server resumed, with
    psycogreen's unbounded wait; BoundedGeventWait (DB_WAIT_TIMEOUT_MS) ends them with a 503.)"""
    user, product = postgres_rows.user(), postgres_rows.product()
    server = postgres_server()
    worker = worker_pid(server)
    assert_serving(server, user.email, product.id)  # the pool holds a connection that will hang

    with private_postgres.frozen():
        response, probe = health(server)
        assert response.status_code == 503 and response.json()["status"] == "unhealthy", response.text
        assert probe < PROBE_BOUND, f"/health took {probe:.2f} s"
        ready, ready_took = timed("GET", f"{server.url}/health/ready")
        assert ready.status_code == 503 and ready_took < PROBE_BOUND, f"/health/ready took {ready_took:.2f} s"
        # The worker is not blocked by what waits on the database: liveness answers at once meanwhile.
        live, live_took = timed("GET", f"{server.url}/health/live")
        assert live.status_code == 200 and live_took < FAST

        read, read_took = uncached_read(server)
        assert_unavailable(read)
        assert read_took < HUNG_API_BOUND, f"a catalogue read took {read_took:.2f} s"
        signed_in, login_took = login(server, user.email)
        assert_unavailable(signed_in)
        assert login_took < HUNG_API_BOUND, f"a login took {login_took:.2f} s"

    recovered = wait_for(lambda: health(server)[0].status_code == 200, "/health back to 200")
    assert_serving(server, user.email, product.id)
    assert worker_pid(server) == worker
    report("postgresql frozen", probe=probe, ready=ready_took, live=live_took, api_read=read_took,
           api_login=login_took, recovered_after_resume=recovered)


def test_requests_queued_for_a_connection_while_postgresql_hangs_answer_503(private_postgres, postgres_rows,
                                                                             postgres_server):
    """One pooled connection and no overflow: while the cluster is frozen, a read holds it (DB_WAIT_TIMEOUT_MS) and
    the requests behind it wait for the pool (DB_POOL_TIMEOUT_MS), then answer 503 like any database failure.
    (Caught: SQLAlchemy's pool TimeoutError was no OperationalError, so the queued requests were 500
    INTERNAL_ERROR, after SQLAlchemy's fixed 30 s.)"""
    server = postgres_server(DB_POOL_SIZE="1", DB_MAX_OVERFLOW="0", DB_POOL_TIMEOUT_SECONDS="1",
                             DB_WAIT_TIMEOUT_MS="3000")
    product = postgres_rows.product()
    assert requests.get(f"{server.url}/api/v1/products/{product.id}", timeout=5).status_code == 200
    with private_postgres.frozen(), ThreadPoolExecutor(4) as pool:
        calls = list(pool.map(lambda _: uncached_read(server), range(4)))
    for call, took in calls:
        assert_unavailable(call)
        assert took < 3 + 2, f"a read took {took:.2f} s"
    waited = sorted(took for _, took in calls)
    assert waited[0] < 2, "no request was refused by the pool: nothing was tested"
    wait_for(lambda: health(server)[0].status_code == 200, "/health back to 200")
    assert uncached_read(server)[0].status_code == 200
    report("pool exhausted while frozen", first=waited[0], last=waited[-1])


def test_the_pool_timeout_reaches_the_pool_in_whole_seconds(tmp_root):
    # Flask-SQLAlchemy builds the engine with engine_from_config, which turns pool_timeout into an int: a
    # fraction of a second would become 0, and a request would be refused the moment the pool is busy.
    app = create_app(TestingConfig, {"SQLALCHEMY_DATABASE_URI": "postgresql://postgres@127.0.0.1:1/none",
                                     "DB_POOL_TIMEOUT_SECONDS": 2, "UPLOAD_FOLDER": str(tmp_root / "uploads")})
    with app.app_context():
        assert db.engine.pool.timeout() == 2
        db.engine.dispose()


# Redis


@pytest.fixture
def prefix() -> Iterator[str]:
    redis = shared_redis()
    prefix = f"test:{uuid4().hex}:"
    yield prefix
    delete_prefix(redis, prefix)


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    server = PrivateRedis().start()  # skips locally, fails in CI, without redis-server
    yield server
    server.stop()


@pytest.fixture
def queue_app(make_app, private_redis, prefix) -> Iterator[Flask]:
    """An app of the test's own on the servers' database and message queue: it writes the rows and announces."""
    app = make_app(SOCKETIO_MESSAGE_QUEUE=private_redis.url, CACHE_KEY_PREFIX=prefix)
    with app.app_context():
        yield app


LOGINS = 3  # RATE_LIMIT_AUTH of the Redis test's server, per 15 minutes


@pytest.mark.parametrize("backend", ["postgresql"])
def test_redis_stopped_and_started_again(queue_app, private_redis, prefix, tmp_root):
    """redis-server killed, then started again on its port. It carries the page cache, the limits and the Socket.IO
    queue. (Caught: nothing in the app needed fixing here: the cache's breaker and the limiter's memory fallback
    held.)"""
    factory = Factory(queue_app)
    admin = factory.headers(factory.admin())
    product = factory.product(quantity=10)
    env = {"DATABASE_URL": database_url("postgresql", tmp_root), "REDIS_URL": private_redis.url,
           "SOCKETIO_MESSAGE_QUEUE": private_redis.url, "CACHE_KEY_PREFIX": prefix,
           "RATE_LIMIT_KEY_PREFIX": f"{prefix}limits", "RATE_LIMIT_AUTH": f"{LOGINS} per 15 minutes",
           "HEALTH_CHECK_TIMEOUT_MS": str(HEALTH_TIMEOUT_MS)}
    item = f"/api/v1/products/{product.id}"
    statuses: list[int] = []

    def get(path: str, **options: Any) -> tuple[requests.Response, float]:
        response, took = timed("GET", f"{server.url}{path}", **options)
        statuses.append(response.status_code)
        return response, took

    with LiveServer(env, workers=1, log_path=tmp_root / f"faults-redis-{uuid4().hex[:6]}.log") as server:
        tracker = Peer(server.url, "tracker").connect()
        try:
            assert tracker.call("track_inventory", product.id, timeout=10) == {"productId": product.id,
                                                                                "quantity": 10}
            sid = tracker.sio.sid
            response, _ = health(server)
            assert response.json()["status"] == "healthy" and response.json()["checks"]["redis"]["status"] == "healthy"
            assert get(item)[0].headers["X-Cache"] == "MISS" and get(item)[0].headers["X-Cache"] == "HIT"

            private_redis.stop()
            response, probe = health(server)
            assert response.status_code == 200, response.text
            assert response.json()["status"] == "degraded"
            assert response.json()["checks"]["redis"]["status"] == "unhealthy"
            assert probe < PROBE_BOUND
            reads = [get(item) for _ in range(3)] + [get("/api/v1/products"), get("/api/v1/categories")]
            for read, took in reads:
                assert read.status_code == 200, read.text
                assert read.headers.get("X-Cache") != "HIT"  # from the database: the cache is bypassed
                assert took < FAST, f"a catalogue read took {took:.2f} s with Redis down"
            # Limits are counted in this process meanwhile: the sign-in limit still ends at LOGINS.
            attempts = [timed("POST", f"{server.url}/api/v1/auth/login",
                              json={"email": "nobody@example.com", "password": "wrong password"})[0].status_code
                        for _ in range(LOGINS + 2)]
            assert attempts == [401] * LOGINS + [429] * 2, attempts
            patch, patch_took = timed("PATCH", f"{server.url}{item}/stock", headers=admin, json={"delta": 1})
            assert patch.status_code == 200 and patch_took < FAST, (patch.text, patch_took)
            tracker.wait_for("inventory_update", where=lambda update: update["quantity"] == 11, timeout=5)

            private_redis.start()
            recovered = wait_for(lambda: health(server)[0].json()["status"] == "healthy", "/health healthy again")
            cached_again = wait_for(lambda: get(item)[0].headers.get("X-Cache") == "HIT", "the cache used again")
            assert private_redis.key_count() > 0

            # The client never left, and hears what another process sends through the queue after the restart.
            assert tracker.sio.connected and tracker.sio.sid == sid
            runner = queue_app.test_cli_runner()

            def announced() -> bool:
                result = runner.invoke(args=["announce", "Back", "Redis returned", "--type", "maintenance"])
                assert result.exit_code == 0, result.output
                return any(event == "system_announcement" for event, _ in tracker.received)

            heard_after = wait_for(announced, "an announcement sent through the restarted queue")
            assert not [status for status in statuses if status >= 500], statuses
            report("redis stopped", probe=probe, slowest_read=max(took for _, took in reads), patch=patch_took,
                   healthy_after_start=recovered, cache_hit_after_start=cached_again,
                   queue_event_after_start=heard_after)
        finally:
            tracker.close()


@pytest.mark.parametrize("backend", ["postgresql"])
def test_a_redis_that_never_answers_costs_requests_its_timeouts_at_most(make_app, prefix, tmp_root):
    """REDIS_URL is a socket that accepts and never answers (a hung Redis, a black-holed route). A request pays the
    cache's and the limiter's Redis timeouts (250 ms, each tried twice) at most, and only now and then: the cache's
    breaker skips Redis for CACHE_BREAKER_SECONDS after a failure, the limiter counts in memory until a ping
    answers. /health says degraded within its own timeout. (Caught: nothing in the app needed fixing here.)"""
    app = make_app(CACHE_KEY_PREFIX=prefix)
    with app.app_context():
        product_id = Factory(app).product().id
    bound = 4 * 0.25 + 0.5  # every Redis step of a request timing out, and some scheduling
    with SilentServer() as silent:
        env = {"DATABASE_URL": database_url("postgresql", tmp_root), "REDIS_URL": silent.url,
               "SOCKETIO_MESSAGE_QUEUE": "", "CACHE_KEY_PREFIX": prefix, "RATE_LIMIT_KEY_PREFIX": f"{prefix}limits",
               "RATE_LIMIT_AUTH": f"{LOGINS} per 15 minutes", "HEALTH_CHECK_TIMEOUT_MS": str(HEALTH_TIMEOUT_MS),
               "CACHE_BREAKER_SECONDS": "2"}
        with LiveServer(env, workers=1, log_path=tmp_root / f"faults-hung-redis-{uuid4().hex[:6]}.log") as server:
            response, probe = health(server)
            assert response.status_code == 200 and response.json()["status"] == "degraded", response.text
            assert response.json()["checks"]["redis"]["status"] == "unhealthy"
            assert probe < PROBE_BOUND, f"/health took {probe:.2f} s"
            reads = []
            started = time.monotonic()
            while time.monotonic() - started < 5:  # across two of the breaker's retries
                reads.append(timed("GET", f"{server.url}/api/v1/products/{product_id}"))
                time.sleep(0.2)
            assert [read.status_code for read, _ in reads] == [200] * len(reads)
            slowest, median = max(took for _, took in reads), sorted(took for _, took in reads)[len(reads) // 2]
            assert slowest < bound, f"a read took {slowest:.2f} s"
            assert median < 0.25, f"reads wait on the hung Redis most of the time: median {median:.2f} s"
            attempts = [timed("POST", f"{server.url}/api/v1/auth/login",
                              json={"email": "nobody@example.com", "password": "wrong password"})[0].status_code
                        for _ in range(LOGINS + 1)]
            assert attempts == [401] * LOGINS + [429], attempts
            assert silent.accepted, "the app never tried the hung Redis: nothing was tested"
    report("redis hung", probe=probe, slowest_read=slowest, median_read=median)
