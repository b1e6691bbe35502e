"""Two instances (gunicorn processes) sharing PostgreSQL and Redis share one page cache: a page one fills the
other serves, and a write on one invalidates what the other would serve."""

from __future__ import annotations

from collections.abc import Iterator
from uuid import uuid4

import pytest
import requests
from flask import Flask

from config import TestingConfig
from tests.conftest import database_url
from tests.live_server import LiveServer
from tests.support import delete_prefix, shared_redis

pytestmark = pytest.mark.parametrize("backend", ["postgresql"])


@pytest.fixture(scope="module")
def shared_cache() -> Iterator[dict[str, str]]:
    """The Redis settings every instance of this module uses (its own key prefix)."""
    redis = shared_redis(TestingConfig.TEST_REDIS_URL)
    prefix = f"test:{uuid4().hex}:"
    yield {"REDIS_URL": TestingConfig.TEST_REDIS_URL, "CACHE_KEY_PREFIX": prefix}
    delete_prefix(redis, prefix)


@pytest.fixture(scope="module")
def instances(tmp_root, shared_cache) -> Iterator[tuple[LiveServer, LiveServer]]:
    env = {"DATABASE_URL": database_url("postgresql", tmp_root), **shared_cache}
    first = LiveServer(env, workers=1, log_path=tmp_root / "cache-instance-a.log")
    second = LiveServer(env, workers=1, log_path=tmp_root / "cache-instance-b.log")
    with first, second:
        yield first, second


@pytest.fixture
def app(make_app, shared_cache) -> Iterator[Flask]:
    """The tests' own app shares the cache too, so the data its factory writes invalidates the servers' pages."""
    application = make_app(**shared_cache)
    with application.app_context():
        yield application


def read(server: LiveServer, path: str) -> requests.Response:
    response = requests.get(f"{server.url}{path}", timeout=10)
    assert response.status_code == 200, response.text
    return response


def test_a_page_cached_by_one_instance_is_served_by_the_other(app, factory, instances):
    one, other = instances
    factory.product(name="Shared Lamp")

    assert read(one, "/api/v2/products").headers["X-Cache"] == "MISS"
    served = read(other, "/api/v2/products")

    assert served.headers["X-Cache"] == "HIT"
    assert [p["name"] for p in served.json()["data"]] == ["Shared Lamp"]
    assert served.json()["meta"]["requestId"] == served.headers["X-Request-ID"]


def test_a_write_on_one_instance_invalidates_the_page_on_the_other(app, factory, instances):
    writer, reader = instances
    admin = {"Authorization": f"Bearer {factory.token(factory.admin())}"}
    product = factory.product(name="Before", quantity=10)
    page = f"/api/v1/products/{product.id}"
    assert read(reader, page).headers["X-Cache"] == "MISS"
    assert read(reader, page).headers["X-Cache"] == "HIT"

    changed = requests.patch(f"{writer.url}{page}", json={"name": "After"}, headers=admin, timeout=10)
    assert changed.status_code == 200

    after = read(reader, page)
    assert after.headers["X-Cache"] == "MISS" and after.json()["name"] == "After"

    moved = requests.patch(f"{writer.url}{page}/stock", json={"delta": -3}, headers=admin, timeout=10)
    assert moved.status_code == 200
    assert read(reader, page).json()["quantity"] == 7
