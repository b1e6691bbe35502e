"""Orders under real concurrency: a gunicorn server (two gevent workers) on PostgreSQL, many client threads.

These run on PostgreSQL only: row locking and conditional updates across processes are what is being proved.
"""

from __future__ import annotations

import pytest
import requests
from sqlalchemy import func, select

from fantasize.extensions import db
from fantasize.models import Order, OrderLine, Package, Product
from tests.conftest import database_url
from tests.live_server import LiveServer
from tests.support import all_at_once

pytestmark = pytest.mark.parametrize("backend", ["postgresql"])


@pytest.fixture(scope="module")
def live(tmp_root):
    """One server for the module; each test's tables are still emptied by the `app` fixture."""
    url = database_url("postgresql", tmp_root)
    with LiveServer({"DATABASE_URL": url}, log_path=tmp_root / "live-server.log") as running:
        yield running


@pytest.fixture
def server(app, live):
    return live


def place(server: LiveServer, token: str, items: list[dict], key: str | None = None) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"}
    if key:
        headers["Idempotency-Key"] = key
    return requests.post(f"{server.url}/api/v1/orders", json={"items": items}, headers=headers, timeout=60)


def customers(factory, n: int) -> list[str]:
    return [factory.token(factory.user()) for _ in range(n)]


def refreshed(model, ident):
    db.session.expire_all()
    return db.session.get(model, ident)


def test_forty_customers_racing_for_ten_units_never_oversell(server, factory):
    product = factory.product(quantity=10)
    tokens = customers(factory, 40)
    items = [{"productId": product.id, "quantity": 1}]
    responses = all_at_once([lambda t=t: place(server, t, items) for t in tokens])

    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(201) == 10 and statuses.count(409) == 30, statuses
    assert all(r.json()["error"]["code"] == "OUT_OF_STOCK" for r in responses if r.status_code == 409)
    assert refreshed(Product, product.id).quantity == 0
    sold = db.session.scalar(select(func.sum(OrderLine.quantity)).where(OrderLine.product_id == product.id))
    assert sold == 10


def test_forty_customers_racing_for_a_package_never_oversell(server, factory):
    package = factory.package(quantity=10)
    tokens = customers(factory, 40)
    items = [{"packageId": package.id, "quantity": 1}]
    responses = all_at_once([lambda t=t: place(server, t, items) for t in tokens])

    assert sorted(r.status_code for r in responses).count(201) == 10
    assert refreshed(Package, package.id).quantity == 0
    sold = db.session.scalar(select(func.sum(OrderLine.quantity)).where(OrderLine.package_id == package.id))
    assert sold == 10


def test_a_short_last_line_takes_nothing_from_the_other_lines(server, factory):
    plenty_a, plenty_b, scarce = factory.product(quantity=40), factory.product(quantity=40), factory.product(quantity=5)
    lines = [{"productId": p.id, "quantity": 1} for p in (plenty_a, plenty_b, scarce)]
    tokens = customers(factory, 40)
    responses = all_at_once([lambda t=t: place(server, t, lines) for t in tokens])

    assert sorted(r.status_code for r in responses).count(201) == 5
    assert [refreshed(Product, p.id).quantity for p in (plenty_a, plenty_b, scarce)] == [35, 35, 0]
    assert db.session.scalar(select(func.count()).select_from(Order)) == 5


def test_twenty_replays_of_one_idempotency_key_make_one_order(server, factory):
    product = factory.product(quantity=50)
    token = factory.token(factory.user())
    items = [{"productId": product.id, "quantity": 2}]
    responses = all_at_once([lambda: place(server, token, items, key="checkout-7f3a")] * 20)

    assert {r.status_code for r in responses} <= {200, 201}, [r.text for r in responses if r.status_code >= 300]
    assert [r.status_code for r in responses].count(201) == 1
    assert len({r.json()["id"] for r in responses}) == 1
    assert refreshed(Product, product.id).quantity == 48
    assert db.session.scalar(select(func.count()).select_from(Order)) == 1


def test_racing_cancels_give_the_stock_back_once(server, factory):
    product = factory.product(quantity=10)
    user = factory.user()
    token = factory.token(user)
    order_id = place(server, token, [{"productId": product.id, "quantity": 4}]).json()["id"]
    assert refreshed(Product, product.id).quantity == 6

    cancel = lambda: requests.post(  # noqa: E731
        f"{server.url}/api/v1/orders/{order_id}/cancel", headers={"Authorization": f"Bearer {token}"}, timeout=60
    )
    responses = all_at_once([cancel] * 10)

    assert sorted(r.status_code for r in responses).count(200) == 1
    assert {r.json()["error"]["code"] for r in responses if r.status_code != 200} == {"INVALID_TRANSITION"}
    assert refreshed(Product, product.id).quantity == 10
