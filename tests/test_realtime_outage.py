"""Real time while its message queue is away, against live gunicorn servers (one gevent worker each) on
PostgreSQL: SOCKETIO_MESSAGE_QUEUE is a socket that accepts and never answers (a hung Redis, a black-holed route),
or a private redis-server killed and started again. The cache and the rate limits stay on the tests' Redis, so
only the queue is away.

What must hold (API.md "Real time"): HTTP requests never wait for the queue (events leave through the outbox,
after the response); a socket's own replies never wait for it either; each instance keeps delivering to its own
sockets; a revocation the queue could not carry is caught by every instance's sweep; and once the queue is back,
events cross instances again.

Bounds are generous (2 s for what takes milliseconds) so that load cannot fail them, yet far below the seconds a
request or reply would hang on the queue (redis-py waits 5 s for an answer, python-socketio tries twice).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from uuid import uuid4

import pytest
import requests
from flask import Flask

from config import TestingConfig
from tests.conftest import database_url
from tests.live_server import LiveServer
from tests.realtime_clients import Peer, close_all
from tests.support import PrivateRedis, SilentServer, delete_prefix, shared_redis

pytestmark = pytest.mark.parametrize("backend", ["postgresql"])

FAST = 2.0  # seconds: the bound on a request or a reply that must not wait for the queue
SWEEP_SECONDS = 1
REVOKED = [{"message": "Token has been revoked"}]


@pytest.fixture
def prefix() -> Iterator[str]:
    redis = shared_redis(TestingConfig.TEST_REDIS_URL)
    prefix = f"test:{uuid4().hex}:"
    yield prefix
    delete_prefix(redis, prefix)


@pytest.fixture
def app(make_app, prefix) -> Iterator[Flask]:
    """The tests' own app writes the rows (users, products) to the servers' database."""
    application = make_app(CACHE_KEY_PREFIX=prefix)
    with application.app_context():
        yield application


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    server = PrivateRedis().start()  # skips locally, fails in CI, without redis-server
    yield server
    server.stop()


@pytest.fixture
def launch(tmp_root, prefix) -> Iterator[Callable[[str, int], list[LiveServer]]]:
    """Start `count` instances whose message queue is `queue_url`; stopped after the test's clients closed (a
    server whose websockets are still open takes its whole graceful timeout to stop)."""
    started: list[LiveServer] = []

    def start(queue_url: str, count: int) -> list[LiveServer]:
        env = {"DATABASE_URL": database_url("postgresql", tmp_root), "SOCKET_SWEEP_SECONDS": str(SWEEP_SECONDS),
               "REDIS_URL": TestingConfig.TEST_REDIS_URL, "SOCKETIO_MESSAGE_QUEUE": queue_url,
               "CACHE_KEY_PREFIX": prefix, "RATE_LIMIT_KEY_PREFIX": f"{prefix}limits"}
        built = [LiveServer(env, workers=1, log_path=tmp_root / f"realtime-outage-{n}.log") for n in range(count)]
        started.extend(built)
        with ThreadPoolExecutor(count) as pool:
            list(pool.map(LiveServer.start, built))
        return built

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def peers(launch) -> Iterator[Callable[..., Peer]]:
    """Clients, closed before the servers stop. A token signs the client in at connect, which must be fast."""
    made: list[Peer] = []

    def make(server: LiveServer, name: str, token: str | None = None) -> Peer:
        client = Peer(server.url, name)
        made.append(client)
        started = time.monotonic()
        client.connect(token)
        if token is not None:
            client.wait_for("authenticated", timeout=FAST)
        assert time.monotonic() - started < FAST, f"{name} took {time.monotonic() - started:.1f} s to connect"
        return client

    yield make
    close_all(made)


def timed(method: str, url: str, token: str, **options: Any) -> tuple[requests.Response, float]:
    started = time.monotonic()
    response = requests.request(method, url, headers={"Authorization": f"Bearer {token}"}, timeout=30, **options)
    return response, time.monotonic() - started


def fast(method: str, url: str, token: str, status: int = 200, **options: Any) -> requests.Response:
    response, took = timed(method, url, token, **options)
    assert response.status_code == status, response.text
    assert took < FAST, f"{method} {url} took {took:.2f} s"
    return response


def track(client: Peer, product_id: int, quantity: int) -> None:
    """track_inventory, whose acknowledgement must come at once (a reply goes to this socket only)."""
    started = time.monotonic()
    assert client.call("track_inventory", product_id, timeout=10) == {"productId": product_id, "quantity": quantity}
    assert time.monotonic() - started < FAST, f"the acknowledgement took {time.monotonic() - started:.2f} s"


def quantities(client: Peer, product_id: int) -> list[int]:
    return [update["quantity"] for update in client.events("inventory_update") if update["productId"] == product_id]


def test_a_message_queue_that_never_answers_holds_no_request_and_no_reply(app, factory, launch, peers):
    """The queue accepts connections and never answers. Stock PATCHes answer at once, the instance's own trackers
    still hear every update, a socket's acknowledgements come at once, and a sign-out is caught by the sweep
    although the outbox that would carry it is stuck behind the queue.
    (Caught: Outbox.put running the job in the request, which held each PATCH for 10 s, 2 s once the queue's
    client had a read timeout; replies to the caller sent through the queue, which held each acknowledgement and
    the connect-time sign-in as long; no read timeout on the queue's client, which let each update hold the outbox
    10 s; a sweep that does not run while the revocations channel cannot be subscribed to.)"""
    admin = factory.token(factory.admin())
    customer = factory.user()
    product = factory.product(quantity=10)
    with SilentServer() as silent:
        [server] = launch(silent.url, 1)
        tracker = peers(server, "tracker")
        track(tracker, product.id, 10)
        started = time.monotonic()
        for _ in range(5):
            track(tracker, product.id, 10)
        assert time.monotonic() - started < 2 * FAST, f"five replies took {time.monotonic() - started:.1f} s"
        token = factory.token(customer)
        signed_in = peers(server, "customer", token)
        track(signed_in, product.id, 10)

        started = time.monotonic()
        for _ in range(5):
            fast("PATCH", f"{server.url}/api/v1/products/{product.id}/stock", admin, json={"delta": 1})
        # Together too: an emit in the request's way costs the queue's timeout twice (2 s) each.
        assert time.monotonic() - started < 2 * FAST, f"five PATCHes took {time.monotonic() - started:.1f} s"
        assert silent.accepted, "the server never tried the queue: nothing was tested"
        # The sign-out's job waits in the outbox behind the five updates, each held by the queue until it gives
        # up (a second or two): the sweep ends the session first.
        fast("POST", f"{server.url}/api/v1/auth/logout", token, status=204)
        assert signed_in.wait_for("auth_error", timeout=SWEEP_SECONDS + 3) == REVOKED
        assert signed_in.call("track_order", 1, timeout=FAST) == {
            "error": {"code": "UNAUTHENTICATED", "message": "Authenticate before tracking an order"}}
        # This instance delivers to its own sockets whatever becomes of the queue.
        tracker.wait_for("inventory_update", count=5, timeout=15)
        assert quantities(tracker, product.id) == list(range(11, 16))
        fast("GET", f"{server.url}/api/v1/products", admin)


def test_with_the_message_queue_stopped_requests_stay_fast_and_events_resume_when_it_returns(
        app, factory, private_redis, launch, peers):
    """Two instances on a private Redis, which is killed and started again. Meanwhile requests answer at once, each
    instance's own trackers hear its updates, and a sign-out on A (which could not tell B through Redis) ends B's
    socket by B's sweep; once Redis is back, A's updates reach B's trackers again."""
    admin = factory.token(factory.admin())
    customer = factory.user()
    product = factory.product(quantity=10)
    queue = private_redis
    a, b = launch(queue.url, 2)
    on_a, on_b = peers(a, "tracker on A"), peers(b, "tracker on B")
    token = factory.token(customer)
    signed_in = peers(b, "customer on B", token)
    for client in (on_a, on_b, signed_in):
        track(client, product.id, 10)
    stock = f"{a.url}/api/v1/products/{product.id}/stock"
    fast("PATCH", stock, admin, json={"delta": 1})
    for client in (on_a, on_b):
        assert client.wait_for("inventory_update")[-1]["quantity"] == 11  # across instances, through Redis

    queue.stop()
    for _ in range(3):
        fast("PATCH", stock, admin, json={"delta": 1})
    on_a.wait_for("inventory_update", count=4)
    assert quantities(on_a, product.id) == [11, 12, 13, 14]
    fast("GET", f"{a.url}/api/v1/products", admin)

    fast("POST", f"{a.url}/api/v1/auth/logout", token, status=204)
    assert signed_in.wait_for("auth_error", timeout=SWEEP_SECONDS + 4) == REVOKED
    assert signed_in.call("track_order", 1, timeout=FAST) == {
        "error": {"code": "UNAUTHENTICATED", "message": "Authenticate before tracking an order"}}

    queue.start()  # the same port: the instances find it again by themselves
    quantity = 14
    deadline = time.monotonic() + 90  # python-socketio's listener retries after 1, 2, 4... 60 s
    while True:
        quantity += 1
        fast("PATCH", stock, admin, json={"delta": 1})
        time.sleep(0.5)
        if quantity in quantities(on_b, product.id):
            break
        assert time.monotonic() < deadline, f"B heard nothing since Redis returned: {on_b.received}"
    quantity += 1
    fast("PATCH", stock, admin, json={"delta": 1})
    for client in (on_a, on_b):
        client.wait_for("inventory_update", where=lambda update, q=quantity: update["quantity"] == q, timeout=5)
    assert quantities(on_a, product.id) == list(range(11, quantity + 1))  # A's own never missed one
