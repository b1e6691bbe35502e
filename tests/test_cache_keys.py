"""A cached page answers only the URLs whose uncached answer it is (API.md "Caching"): the page key holds the query
exactly as the views read it, so a repeated parameter cannot make one URL's page another's."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode
from uuid import uuid4

import pytest
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from config import TestingConfig
from tests.factories import Factory
from tests.support import delete_prefix, shared_redis


@pytest.fixture
def apps(make_app) -> Iterator[tuple[Flask, Flask]]:
    """One app caching pages in Redis and one that never caches, on the same database."""
    prefix = f"test:{uuid4().hex}:"
    cached = make_app(REDIS_URL=TestingConfig.TEST_REDIS_URL, CACHE_KEY_PREFIX=prefix, RATELIMIT_ENABLED=False)
    plain = make_app(CACHE_ENABLED=False, RATELIMIT_ENABLED=False)
    with cached.app_context():
        factory = Factory(cached)
        for number, price in enumerate(("5.00", "12.50", "20.00", "33.00", "48.00", "75.00", "99.99")):
            factory.product(name=f"Keyed Lamp {number}", price=price, quantity=number)
    yield cached, plain
    delete_prefix(shared_redis(TestingConfig.TEST_REDIS_URL), prefix)


def answer(response) -> dict[str, Any]:
    """What a caller sees of a list read, less what names the request itself."""
    body = response.get_json()
    if isinstance(body, dict):
        body = {key: value for key, value in body.items() if key != "meta"}
    return {"status": response.status_code, "body": body if response.status_code == 200 else None,
            "total": response.headers.get("X-Total-Count"), "link": response.headers.get("Link")}


@pytest.mark.parametrize("backend", ["postgresql"])
@pytest.mark.parametrize("first, second", [("limit=3&limit=1", "limit=1&limit=3"),
                                           ("limit=1&limit=3", "limit=3&limit=1")])
def test_a_repeated_parameter_is_keyed_by_the_value_the_view_reads(apps, backend, first, second):
    cached, _plain = apps
    client = cached.test_client()

    one = client.get(f"/api/v1/products?{first}")
    other = client.get(f"/api/v1/products?{second}")

    assert one.headers["X-Cache"] == "MISS" and other.headers["X-Cache"] == "MISS"
    assert len(one.get_json()) == int(first.split("&")[0].split("=")[1])
    assert len(other.get_json()) == int(second.split("&")[0].split("=")[1])
    # The same first value is the same question, whatever follows it.
    alone = client.get(f"/api/v1/products?{first.split('&')[0]}")
    assert alone.headers["X-Cache"] == "HIT" and alone.get_json() == one.get_json()


PARAMETERS = {
    "limit": ["1", "2", "3", "100", "0", "x"],
    "page": ["1", "2", "3", "-1"],
    "sort": ["newest", "price", "-price", "rating", "name", "nope"],
    "minPrice": ["0", "10", "30", "abc"],
    "maxPrice": ["20", "60", "1000"],
    "inStock": ["true", "false"],
    "q": ["lamp", "Keyed", "zzz"],
    "cb": ["1", "2"],
    "version": ["1", "2"],
}
pairs = st.sampled_from(sorted(PARAMETERS)).flatmap(
    lambda name: st.tuples(st.just(name), st.sampled_from(PARAMETERS[name])))


@pytest.mark.parametrize("backend", ["postgresql"])
@settings(max_examples=150, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(query=st.lists(pairs, max_size=6), path=st.sampled_from(["/api/v1/products", "/api/v2/products",
                                                                   "/api/products", "/api/v1/packages"]))
def test_for_any_query_the_cached_answer_is_the_uncached_one(apps, backend, query, path):
    """Every generated URL, and the same parameters in the reverse order, is asked of the caching app (twice: a
    MISS or a page another URL stored, then a HIT) and of one that never caches; the answers agree."""
    cached, plain = apps
    for ordered in (query, query[::-1]):
        url = f"{path}?{urlencode(ordered)}"
        truth = answer(plain.test_client().get(url))
        for _ in range(2):
            assert answer(cached.test_client().get(url)) == truth, url
