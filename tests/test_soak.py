"""A worker is as fast after many requests as after the first (DESIGN.md "The request budget"): nothing a request
does may grow state that outlives it. The leak this guards against: a query schema bound per request inserted a
validator into its declared field's list (marshmallow copies fields shallowly), so every integer parameter ran one
more validator per request served, and the worker slowed and grew without end.
"""

from __future__ import annotations

import os

import pytest
import requests
from marshmallow import Schema

from config import TestingConfig
from fantasize.api.endpoint import schema_instance
from fantasize.schemas.base import InputSchema
from tests.conftest import database_url
from tests.factories import Factory
from tests.live_server import LiveServer, cpu_seconds, rss, worker_pid

# Every query schema in use with the parameters it reads; each round of the live test asks for all of them.
LIST_URLS = (
    "/api/v1/products?limit=20&page=1&minPrice=1&maxPrice=900",
    "/api/v1/products?limit=5&page=1&category=1&subcategory=1&brand=1&material=1",
    "/api/v2/packages?limit=10&page=1",
    "/api/v1/search?q=lamp&limit=5",
    "/api/v1/categories?limit=10",
)


def _schema_classes(base: type[Schema]) -> list[type[Schema]]:
    found, pending = [], [base]
    while pending:
        cls = pending.pop()
        found.append(cls)
        pending.extend(cls.__subclasses__())
    return found


def declared_validators() -> dict[tuple[str, str], int]:
    """How many validators every declared field of every input schema holds."""
    return {(cls.__qualname__, name): len(field.validators)
            for cls in _schema_classes(InputSchema) for name, field in cls._declared_fields.items()}


def test_building_a_query_schema_leaves_its_declared_fields_alone():
    from fantasize.schemas.products import ProductQuery

    before = declared_validators()
    for _ in range(3):
        schema = ProductQuery()
        # Each instance still checks integers against what a database column holds...
        assert schema.fields["limit"].validators[0].max == 2**63 - 1
    assert len(ProductQuery._declared_fields["limit"].validators) == before[("ProductQuery", "limit")]
    assert declared_validators() == before


def test_every_request_loads_its_query_with_one_shared_schema(client, factory):
    factory.product(name="Soak Lamp")
    before = declared_validators()
    for _ in range(200):
        for url in LIST_URLS:
            assert client.get(url).status_code == 200, url
        assert client.get("/api/v1/products?limit=abc").status_code == 400

    assert declared_validators() == before
    # One instance per schema class, bound once, shared by every request.
    assert schema_instance.cache_info().currsize <= len(_schema_classes(InputSchema))


@pytest.mark.parametrize("backend", ["postgresql"])
def test_a_worker_serving_query_strings_stays_as_fast_and_as_small(backend, make_app, tmp_root):
    """Thousands of cached list reads with integer parameters on one gevent worker: the worker's CPU time per
    request in the last round is within 1.35x of the first (with the leak, every request ran one more validator
    per integer parameter than the one before: the last round cost 1.6-1.9x the first), and its RSS grows by
    under 5 MiB."""
    app = make_app()
    with app.app_context():
        factory = Factory(app)
        for number in range(25):
            factory.product(name=f"Soak Lamp {number}", price="10.00")
    env = {"DATABASE_URL": database_url("postgresql", tmp_root), "REDIS_URL": TestingConfig.TEST_REDIS_URL,
           "CACHE_KEY_PREFIX": f"test:soak:{os.getpid()}:", "RATELIMIT_ENABLED": "false"}
    rounds, per_round = 6, 1200
    with LiveServer(env, workers=1, log_path=tmp_root / "soak.log") as server, requests.Session() as session:
        worker = worker_pid(server)
        for url in LIST_URLS:  # warm: every page cached, every lazy import done
            for _ in range(20):
                assert session.get(f"{server.url}{url}", timeout=10).status_code == 200
        cpu, sizes = [], []
        for _ in range(rounds):
            started = cpu_seconds(worker)
            for number in range(per_round):
                url = LIST_URLS[number % len(LIST_URLS)]
                assert session.get(f"{server.url}{url}", timeout=10).status_code == 200
            cpu.append((cpu_seconds(worker) - started) / per_round)
            sizes.append(rss(worker))

    assert cpu[-1] <= 1.35 * cpu[0], [f"{seconds * 1000:.2f} ms" for seconds in cpu]
    assert sizes[-1] - sizes[0] < 5 * 1024 * 1024, sizes
