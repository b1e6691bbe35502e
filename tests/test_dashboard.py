"""The admin dashboard's figures against a hand-computed shop, and the low-stock list."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

import pytest

from fantasize.extensions import db
from fantasize.models import Order, OrderLine, Product, User
from fantasize.models.base import utcnow
from fantasize.models.orders import ORDER_STATUSES
from tests.factories import Factory


def at(day: date, clock: time = time(12)) -> datetime:
    return datetime.combine(day, clock, tzinfo=UTC)


def place(user: User, created_at: datetime, status: str, total: str,
          lines: list[tuple[Product, int, str]] = ()) -> Order:
    """An order as the shop would have stored it, with an explicit time and status."""
    order = Order(user=user, status=status, subtotal=Decimal(total), discount_total=Decimal("0.00"),
                  total=Decimal(total), created_at=created_at, updated_at=created_at)
    for product, quantity, line_total in lines:
        order.lines.append(OrderLine(
            product_id=product.id, name=product.name, quantity=quantity, unit_price=product.price,
            unit_discount=Decimal("0.00"), line_total=Decimal(line_total),
        ))
    db.session.add(order)
    db.session.commit()
    return order


@pytest.fixture
def shop(factory: Factory) -> dict:
    """Users, products and orders spread over days, statuses and the edges of the 30-day window."""
    today = utcnow().date()
    first_day = today - timedelta(days=29)
    admin = factory.admin()  # signed up now
    buyer = factory.user(created_at=at(today - timedelta(days=40)))
    factory.user(created_at=at(today - timedelta(days=10)))
    factory.user(created_at=at(first_day, time(0)))  # the first moment of the window: new
    factory.user(created_at=at(first_day, time(0)) - timedelta(seconds=1))  # the last moment before it: not new
    factory.admin(created_at=at(today - timedelta(days=100)))

    products = {}
    for name, quantity, active in (("P1", 0, True), ("P2", 5, True), ("P3", 6, True), ("P4", 100, True),
                                   ("P5", 3, False), ("P6", 10, True), ("P7", 10, True), ("P8", 10, True)):
        products[name] = factory.product(name=name, quantity=quantity, is_active=active)
    p = products
    factory.package(name="Low bundle", quantity=5, products=[(p["P4"], 1)])
    factory.package(name="Stocked bundle", quantity=6, products=[(p["P4"], 1)])

    place(buyer, at(today, time(0)), "pending", "10.00", [(p["P4"], 2, "10.00")])
    place(buyer, at(today), "delivered", "25.50", [(p["P1"], 3, "15.00"), (p["P2"], 1, "10.50")])
    place(buyer, at(today), "cancelled", "100.00", [(p["P3"], 50, "100.00")])
    place(buyer, at(today, time(0)) - timedelta(microseconds=1), "completed", "7.25", [(p["P2"], 2, "7.25")])
    place(buyer, at(today - timedelta(days=2)), "pending", "5.00", [(p["P6"], 1, "3.00"), (p["P7"], 1, "2.00")])
    place(buyer, at(today - timedelta(days=5)), "rejected", "40.00", [(p["P3"], 5, "40.00")])
    place(buyer, at(today - timedelta(days=5)), "shipped", "12.50", [(p["P4"], 2, "12.50")])
    place(buyer, at(first_day, time(0)), "confirmed", "3.00", [(p["P8"], 1, "3.00")])
    place(buyer, at(first_day, time(0)) - timedelta(seconds=1), "processing", "50.00", [(p["P1"], 1, "50.00")])
    place(buyer, at(today - timedelta(days=100)), "returned", "60.00", [(p["P5"], 10, "60.00")])
    return {"admin": admin, "today": today, "first_day": first_day, "products": products}


def test_dashboard_figures_match_the_hand_computed_shop(client, factory, shop):
    response = client.get("/api/v1/admin/dashboard", headers=factory.headers(shop["admin"]))
    assert response.status_code == 200, response.json
    body = response.json
    p = shop["products"]

    assert body["users"] == {"total": 6, "customers": 4, "admins": 2, "newLast30Days": 3}
    assert body["orders"] == {"total": 10, "byStatus": {
        "pending": 2, "confirmed": 1, "processing": 1, "shipped": 1, "delivered": 1, "completed": 1,
        "cancelled": 1, "rejected": 1, "returned": 1,
    }}
    # 10.00 + 25.50 + 7.25 + 5.00 + 12.50 + 3.00 + 50.00; the cancelled, rejected and returned ones earn nothing.
    assert body["revenue"]["total"] == "113.25"
    chart = body["revenue"]["last30Days"]
    assert len(chart) == 30
    assert chart[0]["date"] == shop["first_day"].isoformat() and chart[-1]["date"] == shop["today"].isoformat()
    assert [entry["date"] for entry in chart] == sorted({entry["date"] for entry in chart})
    busy = {entry["date"]: (entry["orders"], entry["revenue"]) for entry in chart if entry["orders"]}
    day = lambda n: (shop["today"] - timedelta(days=n)).isoformat()
    assert busy == {
        day(0): (3, "35.50"), day(1): (1, "7.25"), day(2): (1, "5.00"), day(5): (2, "12.50"), day(29): (1, "3.00"),
    }
    assert all(entry["revenue"] == "0.00" for entry in chart if not entry["orders"])
    assert body["lowStock"] == {"products": 3, "packages": 1}
    assert body["topSellers"] == [
        {"productId": p["P1"].id, "name": "P1", "quantitySold": 4, "revenue": "65.00"},
        {"productId": p["P4"].id, "name": "P4", "quantitySold": 4, "revenue": "22.50"},
        {"productId": p["P2"].id, "name": "P2", "quantitySold": 3, "revenue": "17.75"},
        {"productId": p["P6"].id, "name": "P6", "quantitySold": 1, "revenue": "3.00"},
        {"productId": p["P8"].id, "name": "P8", "quantitySold": 1, "revenue": "3.00"},
    ]


def test_dashboard_of_an_empty_shop_has_every_status_and_day_at_zero(client, factory):
    body = client.get("/api/v2/admin/dashboard", headers=factory.headers(factory.admin())).json["data"]
    assert body["orders"] == {"total": 0, "byStatus": dict.fromkeys(ORDER_STATUSES, 0)}
    assert body["revenue"]["total"] == "0.00"
    assert [(e["orders"], e["revenue"]) for e in body["revenue"]["last30Days"]] == [(0, "0.00")] * 30
    assert body["lowStock"] == {"products": 0, "packages": 0}
    assert body["topSellers"] == []
    assert body["users"] == {"total": 1, "customers": 0, "admins": 1, "newLast30Days": 1}


def test_dashboard_is_computed_in_a_fixed_number_of_statements(client, factory, shop):
    headers = factory.headers(shop["admin"])
    with factory.statement_counter() as few:
        assert client.get("/api/v1/admin/dashboard", headers=headers).status_code == 200
    buyer = factory.user()
    for n in range(20):
        place(buyer, at(shop["today"] - timedelta(days=n % 40)), ORDER_STATUSES[n % 9], "1.00",
              [(factory.product(quantity=n % 7), 1, "1.00")])
    with factory.statement_counter() as many:
        assert client.get("/api/v1/admin/dashboard", headers=headers).status_code == 200
    assert len(few) == len(many) <= 8


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_days_are_utc_days_whatever_the_database_sessions_time_zone(make_app):
    app = make_app(SQLALCHEMY_ENGINE_OPTIONS={"connect_args": {"options": "-c timezone=America/Los_Angeles"}})
    with app.app_context():
        factory = Factory(app)
        today = utcnow().date()
        buyer = factory.user()
        place(buyer, at(today, time(0, 30)), "pending", "4.00")
        place(buyer, at(today, time(0)) - timedelta(minutes=30), "pending", "6.00")
        body = app.test_client().get("/api/v1/admin/dashboard", headers=factory.headers(factory.admin())).json
    chart = body["revenue"]["last30Days"]
    assert chart[-1] == {"date": today.isoformat(), "orders": 1, "revenue": "4.00"}
    assert chart[-2] == {"date": (today - timedelta(days=1)).isoformat(), "orders": 1, "revenue": "6.00"}


def test_dashboard_and_low_stock_are_for_admins_only(client, factory):
    customer = factory.headers(factory.user())
    for path in ("/api/v1/admin/dashboard", "/api/v1/admin/inventory/low-stock"):
        assert client.get(path).status_code == 401
        assert client.get(path, headers=customer).status_code == 403


# Low stock


def test_low_stock_lists_products_and_packages_at_or_below_the_threshold_lowest_first(client, factory):
    empty = factory.product(name="Empty", quantity=0)
    hidden = factory.product(name="Withdrawn", quantity=2, is_active=False)
    low = factory.product(name="Low", quantity=5)
    factory.product(name="Stocked", quantity=6)
    bundle = factory.package(name="Bundle", quantity=5, products=[(low, 1)])
    factory.package(name="Big bundle", quantity=50, products=[(low, 1)])

    response = client.get("/api/v1/admin/inventory/low-stock", headers=factory.headers(factory.admin()))
    assert response.status_code == 200
    assert response.headers["X-Total-Count"] == "4"
    assert response.json == [
        {"type": "product", "id": empty.id, "name": "Empty", "quantity": 0, "status": "out_of_stock",
         "isActive": True},
        {"type": "product", "id": hidden.id, "name": "Withdrawn", "quantity": 2, "status": "running_low",
         "isActive": False},
        {"type": "package", "id": bundle.id, "name": "Bundle", "quantity": 5, "status": "running_low",
         "isActive": True},
        {"type": "product", "id": low.id, "name": "Low", "quantity": 5, "status": "running_low", "isActive": True},
    ]


def test_low_stock_threshold_can_be_overridden_and_the_list_is_paginated(client, factory):
    for quantity in (0, 1, 2, 3, 20):
        factory.product(name=f"Q{quantity}", quantity=quantity)
    headers = factory.headers(factory.admin())
    response = client.get("/api/v2/admin/inventory/low-stock?threshold=2&limit=2&page=2", headers=headers)
    assert [item["name"] for item in response.json["data"]] == ["Q2"]
    assert response.json["meta"]["pagination"] == {"page": 2, "limit": 2, "total": 3, "pages": 2}
    zero = client.get("/api/v1/admin/inventory/low-stock?threshold=0", headers=headers).json
    assert [item["name"] for item in zero] == ["Q0"]
    for bad in ("-1", "1001", "lots"):
        assert client.get(f"/api/v1/admin/inventory/low-stock?threshold={bad}", headers=headers).status_code == 400
