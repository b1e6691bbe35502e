"""The request budget (DESIGN.md) in Redis round trips, counted on the wire against the tests' real Redis.

A cached read costs one round trip in all: the rate limiter's hit carries the page lookup (generations, page) and
answers the figures of the X-RateLimit-* headers. A miss costs one more (store the page, let go of the lock), and
a read with the cache switched off costs the limiter's hit alone. Every round trip is one write of commands to a
connection, so a pipeline or a script counts once; the connections are warmed first (the handshake of a fresh
connection and the first load of a script are not part of a request's budget).
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from redis import Redis
from redis.connection import AbstractConnection

from config import TestingConfig
from fantasize.api.endpoint import endpoint
from tests.factories import Factory
from tests.support import delete_prefix, shared_redis

REDIS_URL = TestingConfig.TEST_REDIS_URL


@pytest.fixture
def backend() -> str:
    return "sqlite"  # Redis is what is counted; the database behind the views does not matter


@pytest.fixture
def prefix() -> Iterator[str]:
    client = shared_redis()
    prefix = f"test:{uuid.uuid4().hex}:"
    yield prefix
    delete_prefix(client, prefix)


@pytest.fixture
def build(make_app, prefix):
    def build(**settings: Any) -> Flask:
        return make_app(**{"REDIS_URL": REDIS_URL, "CACHE_KEY_PREFIX": f"{prefix}cache:",
                           "RATE_LIMIT_KEY_PREFIX": f"{prefix}limits", "RATE_LIMIT_MAX_REQUESTS": 1000, **settings})
    return build


def _command_names(chunks: Any) -> list[str]:
    """The names of the commands in one packed write (RESP arrays of bulk strings)."""
    data = chunks.encode() if isinstance(chunks, str) else b"".join(chunks)
    names, at = [], 0
    while at < len(data):
        end = data.index(b"\r\n", at)
        count, at = int(data[at + 1:end]), end + 2
        for position in range(count):
            end = data.index(b"\r\n", at)
            length = int(data[at + 1:end])
            if position == 0:
                names.append(data[end + 2:end + 2 + length].decode().upper())
            at = end + 2 + length + 2
    return names


@contextlib.contextmanager
def round_trips(monkeypatch) -> Iterator[list[list[str]]]:
    """Every write of commands to Redis meanwhile (each a round trip) by this thread, which the test client's
    requests run on, as the names of the commands it carries. Background tasks (the monitoring window's flush, once
    a second) are not the request's budget, and their writes are left out."""
    trips: list[list[str]] = []
    send = AbstractConnection.send_packed_command
    requester = threading.current_thread()

    def counted(self, command, check_health=True):
        if threading.current_thread() is requester:
            trips.append(_command_names(command))
        return send(self, command, check_health)

    with monkeypatch.context() as patch:
        patch.setattr(AbstractConnection, "send_packed_command", counted)
        yield trips


def product_page(app: Flask) -> str:
    with app.app_context():
        return f"/api/v1/products/{Factory(app).product(quantity=5).id}"


def warm(client, path: str) -> None:
    """Fill the page, then read it once from the cache: connections open, scripts loaded, the offers' mark set."""
    assert client.get(path).headers["X-Cache"] == "MISS"
    assert client.get(path).headers["X-Cache"] == "HIT"


def test_a_cached_read_costs_one_round_trip_with_its_rate_limit_headers(build, monkeypatch):
    app = build()
    client = app.test_client()
    path = product_page(app)
    warm(client, path)

    with round_trips(monkeypatch) as trips:
        response = client.get(path)

    assert response.status_code == 200 and response.headers["X-Cache"] == "HIT"
    assert trips == [["EVALSHA"]]  # the limiter's hit with the lookup riding in it
    # The header figures came with the hit: the third request of this client leaves 997 of 1000.
    assert (response.headers["X-RateLimit-Limit"], response.headers["X-RateLimit-Remaining"]) == ("1000", "997")
    assert int(response.headers["X-RateLimit-Reset"]) > 0


def test_a_signed_in_customers_cached_read_costs_one_round_trip(build, monkeypatch):
    app = build()
    client = app.test_client()
    path = product_page(app)
    with app.app_context():
        factory = Factory(app)
        customer = factory.headers(factory.user())
    warm(client, path)
    client.get(path, headers=customer)  # the token's version is remembered in process after its first use

    with round_trips(monkeypatch) as trips:
        response = client.get(path, headers=customer)

    assert response.headers["X-Cache"] == "HIT" and trips == [["EVALSHA"]]
    assert response.headers["X-RateLimit-Limit"] == str(1000 * app.config["RATE_LIMIT_AUTH_MULTIPLIER"])


def test_a_miss_costs_two_round_trips_and_the_page_is_stored(build, monkeypatch):
    app = build()
    client = app.test_client()
    path = product_page(app)
    warm(client, path)
    with app.app_context():
        Factory(app).product()  # a commit to the products moves their generation: the page must be computed again

    with round_trips(monkeypatch) as trips:
        response = client.get(path)

    assert response.headers["X-Cache"] == "MISS"
    assert trips == [["EVALSHA"], ["EVALSHA"]]  # hit + lookup (the lock taken); store the page + let go of the lock
    assert client.get(path).headers["X-Cache"] == "HIT"


def test_a_read_with_the_cache_off_costs_the_limiters_hit_alone(build, monkeypatch):
    app = build(CACHE_ENABLED=False)
    client = app.test_client()
    path = product_page(app)
    client.get(path)

    with round_trips(monkeypatch) as trips:
        response = client.get(path)

    assert response.status_code == 200 and "X-Cache" not in response.headers
    assert trips == [["EVALSHA"]]
    assert response.headers["X-RateLimit-Remaining"] == "998"


def test_without_rate_limits_a_cached_read_still_costs_one_round_trip(build, monkeypatch):
    app = build(RATELIMIT_ENABLED=False)
    client = app.test_client()
    path = product_page(app)
    warm(client, path)

    with round_trips(monkeypatch) as trips:
        response = client.get(path)

    assert response.headers["X-Cache"] == "HIT" and trips == [["EVALSHA"]]  # the lookup on its own


def locks(prefix: str) -> list[bytes]:
    return list(Redis.from_url(REDIS_URL).scan_iter(match=f"{prefix}cache:lock:*"))


def test_a_lookup_that_is_not_served_lets_go_of_its_lock(build, prefix):
    app = build()
    client = app.test_client()

    @endpoint("Refuses after the lookup", cache=("products",))
    def refusing():
        raise RuntimeError("fails before anything is stored")

    app.add_url_rule("/api/v1/test/refusing", "refusing", refusing)
    path = product_page(app)
    with app.app_context():
        factory = Factory(app)
        admin = factory.headers(factory.admin())

    assert client.get("/api/v1/test/refusing").status_code == 500
    assert "X-Cache" not in client.get(path, headers=admin).headers  # looked up before we knew: an administrator
    assert client.get("/api/v1/products?limit=0").status_code == 400  # refused by the view's query schema
    assert locks(prefix) == []


def test_a_refused_request_lets_go_of_the_lock_its_lookup_took(build, prefix):
    app = build(RATE_LIMIT_MAX_REQUESTS=1)
    client = app.test_client()
    path = product_page(app)

    assert client.get(path).status_code == 200
    with app.app_context():
        Factory(app).product()  # the page is gone: the next lookup takes the lock
    assert client.get(path).status_code == 429
    assert locks(prefix) == []


def test_a_failing_lookup_never_fails_the_limit(build, prefix):
    app = build()
    client = app.test_client()
    path = product_page(app)
    redis = Redis.from_url(REDIS_URL)
    redis.delete(f"{prefix}cache:gen:products")
    redis.hset(f"{prefix}cache:gen:products", "not", "a counter")  # the lookup's GET of it fails

    responses = [client.get(path) for _ in range(2)]

    # Counted (the limiter's part of the script ran), answered from the database, the cache skipped meanwhile.
    assert [r.status_code for r in responses] == [200, 200]
    assert [r.headers["X-Cache"] for r in responses] == ["MISS", "MISS"]
    assert [r.headers["X-RateLimit-Remaining"] for r in responses] == ["999", "998"]
