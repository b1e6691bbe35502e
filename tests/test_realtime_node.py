"""The official JavaScript client (socket.io-client from npm, tests/node) tracks an order over the websocket
transport and over long-polling, against both servers Fantasize ships: gunicorn's gevent worker and `python
wsgi.py` (`make run`), each on PostgreSQL with the Redis message queue.

tests/node/track_order.js is the client (tests/js_clients.py runs it); without Node or its installed packages these
tests are skipped locally and fail in CI.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest
import requests
from flask import Flask

from config import TestingConfig
from tests.conftest import database_url
from tests.js_clients import EXIT_OK, EXIT_REFUSED, EXIT_UNAUTHENTICATED, TRANSPORTS, Tracker, node_program
from tests.live_server import LiveServer
from tests.support import delete_prefix, shared_redis

pytestmark = pytest.mark.parametrize("backend", ["postgresql"])

ISO_MILLIS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


@pytest.fixture(scope="module")
def node() -> str:
    return node_program()


@pytest.fixture(scope="module")
def shared_redis_settings() -> Iterator[dict[str, str]]:
    """This module's Redis: the servers' cache and, set explicitly (testing leaves it off), their message queue."""
    redis = shared_redis(TestingConfig.TEST_REDIS_URL)
    prefix = f"test:{uuid4().hex}:"
    yield {"REDIS_URL": TestingConfig.TEST_REDIS_URL, "CACHE_KEY_PREFIX": prefix}
    delete_prefix(redis, prefix)


@pytest.fixture(scope="module", params=["gunicorn", "wsgi"], ids=["gunicorn", "python-wsgi"])
def live(request, node, tmp_root, shared_redis_settings) -> Iterator[LiveServer]:
    """One server per kind for the module (none without Node); one gunicorn worker, since long-polling needs every
    request of a socket to reach the same process."""
    env = {"DATABASE_URL": database_url("postgresql", tmp_root),
           "SOCKETIO_MESSAGE_QUEUE": TestingConfig.TEST_REDIS_URL, **shared_redis_settings}
    log_path = tmp_root / f"realtime-node-{request.param}.log"
    with LiveServer(env, workers=1, log_path=log_path, server=request.param) as server:
        yield server


@pytest.fixture
def app(make_app, shared_redis_settings) -> Iterator[Flask]:
    """The tests' own app writes to the servers' database and shares their cache prefix."""
    application = make_app(**shared_redis_settings)
    with application.app_context():
        yield application


@pytest.fixture
def server(app, live) -> LiveServer:
    return live


@pytest.fixture
def run_client(node, server) -> Iterator:
    started: list[Tracker] = []

    def run(token: str, order_id: int, transport: str, auth: str = "connect", **options: Any) -> Tracker:
        tracker = Tracker(node, server.url, token, order_id, transport, auth, **options)
        started.append(tracker)
        return tracker

    yield run
    for tracker in started:
        tracker.stop()


def move(server: LiveServer, admin_token: str, order_id: int, status: str, details: dict | None = None) -> None:
    body = {"status": status, **({"details": details} if details is not None else {})}
    response = requests.patch(f"{server.url}/api/v1/orders/{order_id}/status", json=body,
                              headers={"Authorization": f"Bearer {admin_token}"}, timeout=10)
    assert response.status_code == 200, response.text


def moment(stamp: str) -> datetime:
    assert ISO_MILLIS.fullmatch(stamp), stamp
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


@pytest.mark.parametrize("auth", ["connect", "event"])
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_the_js_client_hears_every_status_change_of_its_order(server, factory, run_client, transport, auth):
    customer, admin = factory.user(), factory.admin()
    order = factory.order_of(customer, factory.product())
    client = run_client(factory.token(customer), order.id, transport, auth, updates=2)

    tracking = client.wait_for("tracking")
    assert tracking == {"orderId": order.id, "status": "pending"}
    assert client.events("authenticated") == [{"userId": customer.id, "role": "customer"}]
    assert client.events("connect")[0]["transport"] == transport
    before = datetime.now(UTC)
    move(server, factory.token(admin), order.id, "confirmed", {"trackingNumber": "TRK-7", "warehouse": "internal"})
    move(server, factory.token(admin), order.id, "processing")
    after = datetime.now(UTC)

    assert client.finish() == EXIT_OK, client.lines
    assert client.acks("track_order") == [tracking]
    if auth == "event":
        assert client.acks("authenticate") == client.events("authenticated")
    # Two moves, two events in order: one each, though the client is in both the order's and the owner's room.
    confirmed, processing = client.events("order_status_update")
    assert confirmed == {"orderId": order.id, "status": "confirmed", "previousStatus": "pending",
                         "details": {"trackingNumber": "TRK-7"}, "timestamp": confirmed["timestamp"]}
    assert processing == {"orderId": order.id, "status": "processing", "previousStatus": "confirmed",
                          "details": None, "timestamp": processing["timestamp"]}
    slack = timedelta(milliseconds=1)  # the timestamps are cut to milliseconds
    assert before - slack <= moment(confirmed["timestamp"]) <= moment(processing["timestamp"]) <= after
    assert client.events("error") == [] and client.events("auth_error") == []


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("whose", ["another customer's", "missing"])
def test_the_js_client_may_not_track_an_order_it_cannot_see(server, factory, run_client, transport, whose):
    customer, other = factory.user(), factory.user()
    order_id = factory.order_of(other, factory.product()).id if whose != "missing" else 999_999
    code = "FORBIDDEN" if whose != "missing" else "NOT_FOUND"

    client = run_client(factory.token(customer), order_id, transport, "event")

    assert client.finish() == EXIT_REFUSED, client.lines
    [reply] = client.acks("track_order")
    assert reply["error"]["code"] == code and reply["error"]["message"]
    assert [error["code"] for error in client.events("error")] == [code]
    assert client.events("tracking") == []


@pytest.mark.parametrize("auth", ["connect", "event"])
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_the_js_client_with_a_bad_token_gets_auth_error(server, factory, run_client, transport, auth):
    order = factory.order_of(factory.user(), factory.product())
    forged = factory.token(factory.user())[:-4] + "AAAA"

    client = run_client(forged, order.id, transport, auth)

    assert client.finish() == EXIT_UNAUTHENTICATED, client.lines
    [error] = client.events("auth_error")
    assert isinstance(error["message"], str) and error["message"]
    if auth == "event":
        assert client.acks("authenticate") == [{"error": {"code": "UNAUTHENTICATED", "message": error["message"]}}]
    assert client.events("authenticated") == [] and client.events("tracking") == []
