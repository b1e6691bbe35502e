"""Orders: placement with frozen prices and all-or-nothing stock, idempotency keys, the status machine with its
history and restocking, owner-only reads, admin filters and the events announced after commit."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select, update

from fantasize import events
from fantasize.events import OrderStatusChanged, StockChanged
from fantasize.extensions import db
from fantasize.models import Order, Package, Product
from fantasize.models.base import utcnow
from fantasize.services.orders import TRANSITIONS
from tests.factories import Factory

ORDERS = "/api/v1/orders"
V1_KEYS = {
    "id", "status", "userId", "isGift", "giftMessage", "isAnonymous", "shippingAddress", "paymentSummary",
    "subtotal", "discountTotal", "total", "items", "createdAt", "updatedAt",
}
LINE_KEYS = {"id", "productId", "packageId", "name", "quantity", "unitPrice", "unitDiscount", "discountPercent",
             "lineTotal", "customizations"}


@pytest.fixture
def shopper(factory):
    user = factory.user()
    return user, factory.headers(user)


@pytest.fixture
def admin(factory):
    return factory.headers(factory.admin())


def place(client, headers, key=None, **body):
    if key is not None:
        headers = {**headers, "Idempotency-Key": key}
    return client.post(ORDERS, json=body, headers=headers)


def line(item, quantity=1, **extra) -> dict:
    return {("productId" if isinstance(item, Product) else "packageId"): item.id, "quantity": quantity, **extra}


def stock(model, ident) -> int:
    db.session.expire_all()
    return db.session.get(model, ident).quantity


def order_count() -> int:
    return db.session.scalar(select(func.count()).select_from(Order))


# Placement and prices


def test_an_order_from_items_freezes_prices_and_takes_stock(client, factory, shopper):
    user, headers = shopper
    ring = factory.product(name="Ring", price=Decimal("20.00"), quantity=10,
                           offer=factory.offer(discount_percent=Decimal("25")))
    box = factory.package(name="Box", price=Decimal("49.00"), quantity=3)

    response = place(client, headers, items=[line(ring, 2), line(box)])
    assert response.status_code == 201, response.json
    order = response.json
    assert set(order) == V1_KEYS
    assert (order["status"], order["userId"], order["isGift"], order["isAnonymous"]) == ("pending", user.id, False,
                                                                                         False)
    assert (order["subtotal"], order["discountTotal"], order["total"]) == ("89.00", "10.00", "79.00")
    assert all(set(item) == LINE_KEYS for item in order["items"])
    assert [(i["productId"], i["packageId"], i["name"], i["quantity"], i["unitPrice"], i["unitDiscount"],
             i["discountPercent"], i["lineTotal"]) for i in order["items"]] == [
        (ring.id, None, "Ring", 2, "20.00", "5.00", "25.00", "30.00"),
        (None, box.id, "Box", 1, "49.00", "0.00", None, "49.00"),
    ]
    assert (stock(Product, ring.id), stock(Package, box.id)) == (8, 2)
    history = client.get(f"{ORDERS}/{order['id']}/history", headers=headers).json
    assert [(h["from"], h["to"], h["details"]) for h in history] == [(None, "pending", None)]


def test_an_expired_offer_gives_no_discount(client, factory, shopper):
    now = utcnow()
    expired = factory.offer(valid_from=now - timedelta(days=9), valid_to=now - timedelta(days=1))
    product = factory.product(price=Decimal("10.00"), offer=expired)
    order = place(client, shopper[1], items=[line(product, 3)]).json
    assert (order["subtotal"], order["discountTotal"], order["total"]) == ("30.00", "0.00", "30.00")
    assert order["items"][0]["discountPercent"] is None


def test_placed_prices_do_not_follow_later_catalogue_changes(client, factory, shopper):
    offer = factory.offer(discount_percent=Decimal("10"))
    product = factory.product(name="Mug", price=Decimal("10.00"), offer=offer)
    _, headers = shopper
    placed = place(client, headers, items=[line(product, 2)]).json

    product.price, product.name = Decimal("99.00"), "Renamed mug"
    offer.is_active = False
    db.session.commit()
    again = client.get(f"{ORDERS}/{placed['id']}", headers=headers).json
    assert again["items"] == placed["items"]
    assert (again["subtotal"], again["discountTotal"], again["total"]) == ("20.00", "2.00", "18.00")


def test_an_order_from_the_cart_empties_it(client, factory, shopper):
    user, headers = shopper
    engraving = factory.customization(type="text", options=[])
    product = factory.product(price=Decimal("5.00"), quantity=4, customizations=[engraving])
    package = factory.package(price=Decimal("30.00"), quantity=2)
    choice = [{"customizationId": engraving.id, "value": "For Ada"}]
    client.post("/api/v1/cart/items", json=line(product, 2, customizations=choice), headers=headers)
    client.post("/api/v1/cart/items", json=line(package), headers=headers)

    response = place(client, headers, isGift=True, giftMessage="Happy birthday, O'Brien!")
    assert response.status_code == 201, response.json
    order = response.json
    assert [(i["productId"], i["packageId"], i["quantity"]) for i in order["items"]] == [
        (product.id, None, 2), (None, package.id, 1),
    ]
    assert order["items"][0]["customizations"] == [
        {"customizationId": engraving.id, "name": engraving.name, "type": "text", "value": "For Ada"}
    ]
    assert (order["total"], order["isGift"], order["giftMessage"]) == ("40.00", True, "Happy birthday, O'Brien!")
    assert client.get("/api/v1/cart", headers=headers).json["items"] == []
    assert (stock(Product, product.id), stock(Package, package.id)) == (2, 1)


def test_an_empty_cart_cannot_be_ordered(client, shopper):
    response = place(client, shopper[1])
    assert response.status_code == 422
    assert "cart" in response.json["error"]["details"]
    assert order_count() == 0


def test_a_cart_line_gone_inactive_is_422_and_the_cart_stays(client, factory, shopper):
    _, headers = shopper
    product = factory.product()
    client.post("/api/v1/cart/items", json=line(product), headers=headers)
    product.is_active = False
    db.session.commit()
    response = place(client, headers)
    assert response.status_code == 422
    assert response.json["error"]["details"] == {"cart": {"0": {"productId": [f"No active product with id "
                                                                               f"{product.id}."]}}}
    assert len(client.get("/api/v1/cart", headers=headers).json["items"]) == 1


def test_items_must_exist_and_be_active(client, factory, shopper):
    _, headers = shopper
    good, inactive = factory.product(quantity=5), factory.package(is_active=False)
    response = place(client, headers, items=[line(good), line(inactive), {"productId": 999_999, "quantity": 1}])
    assert response.status_code == 422
    assert set(response.json["error"]["details"]["items"]) == {"1", "2"}
    assert "packageId" in response.json["error"]["details"]["items"]["1"]
    assert stock(Product, good.id) == 5 and order_count() == 0


def test_address_and_payment_method_are_snapshotted(client, factory, shopper):
    user, headers = shopper
    address = factory.address(user, line1="7 Rua Augusta", line2=None, city="Lisbon", state=None, country="PT",
                              postal_code="1100-048")
    card = factory.payment_method(user, brand="visa", last4="4242")
    order = place(client, headers, items=[line(factory.product())], addressId=address.id,
                  paymentMethodId=card.id).json
    assert order["shippingAddress"] == {"line1": "7 Rua Augusta", "line2": None, "city": "Lisbon", "state": None,
                                        "country": "PT", "postalCode": "1100-048"}
    assert order["paymentSummary"] == {"method": "card", "brand": "visa", "last4": "4242"}

    address.city = "Porto"
    db.session.commit()
    assert client.get(f"{ORDERS}/{order['id']}", headers=headers).json["shippingAddress"]["city"] == "Lisbon"


def test_someone_elses_address_or_payment_method_is_422(client, factory, shopper):
    _, headers = shopper
    stranger = factory.user()
    product = factory.product(quantity=5)
    for field, ident in (("addressId", factory.address(stranger).id),
                         ("paymentMethodId", factory.payment_method(stranger).id),
                         ("addressId", 999_999)):
        response = place(client, headers, items=[line(product)], **{field: ident})
        assert response.status_code == 422
        assert list(response.json["error"]["details"]) == [field]
    assert stock(Product, product.id) == 5 and order_count() == 0


@pytest.mark.parametrize("body, field", [
    ({"giftMessage": "Hi"}, "giftMessage"),
    ({"isGift": False, "giftMessage": "Hi"}, "giftMessage"),
    ({"isGift": True, "giftMessage": "x" * 501}, "giftMessage"),
    ({"isGift": "yes"}, "isGift"),
    ({"total": "0.01"}, "total"),
    ({"subtotal": "1.00"}, "subtotal"),
    ({"items": []}, "items"),
])
def test_bodies_failing_the_schema_are_422(client, factory, shopper, body, field):
    items = {"items": [line(factory.product())]}
    response = place(client, shopper[1], **{**items, **body})
    assert response.status_code == 422
    assert field in response.json["error"]["details"]


def test_the_placement_answer_is_what_a_later_read_shows(client, factory, shopper):
    # The answer is built from the values placement wrote, not read back: it must match the committed rows.
    user, headers = shopper
    engraving = factory.customization(type="text", options=[])
    ring = factory.product(price=Decimal("19.99"), quantity=9, customizations=[engraving],
                           offer=factory.offer(discount_percent=Decimal("12.5")))
    box = factory.package(price=Decimal("49.00"), quantity=9)
    plain = factory.product(price=Decimal("3.10"), quantity=9)
    address, card = factory.address(user), factory.payment_method(user)
    body = {"items": [line(box, 2), line(ring, 3, customizations=[{"customizationId": engraving.id,
                                                                   "value": "For Ada"}]), line(plain)],
            "addressId": address.id, "paymentMethodId": card.id, "isGift": True, "giftMessage": "Enjoy",
            "isAnonymous": True}
    for version, unwrap in (("v1", lambda body: body), ("v2", lambda body: body["data"])):
        placed = client.post(f"/api/{version}/orders", json=body, headers=headers)
        assert placed.status_code == 201, placed.json
        order = unwrap(placed.json)
        assert [(i["productId"], i["packageId"]) for i in order["items"]] == [
            (None, box.id), (ring.id, None), (plain.id, None)]
        assert order["items"][1]["discountPercent"] == "12.50" and order["items"][2]["discountPercent"] is None
        assert order == unwrap(client.get(f"/api/{version}/orders/{order['id']}", headers=headers).json)
        [listed] = [o for o in unwrap(client.get(f"/api/{version}/orders", headers=headers).json)
                    if o["id"] == order["id"]]
        assert order == listed

    # An administrator's own order answers in the staff shape, as a later read of it does.
    staff = factory.admin()
    staff_headers = factory.headers(staff)
    placed = client.post("/api/v2/orders", json={"items": [line(plain)]}, headers=staff_headers).json["data"]
    assert [(h["to"], h["actorId"]) for h in placed["history"]] == [("pending", staff.id)]
    assert placed == client.get(f"/api/v2/orders/{placed['id']}", headers=staff_headers).json["data"]


def test_placing_an_order_costs_the_same_few_statements_for_one_line_or_five(client, factory, shopper):
    # The request's statements: the user (authentication), the items' terms, the order row, one stock UPDATE per
    # table, the lines, the history entry and the owner's notification; nothing is read back after the writes.
    _, headers = shopper
    products = [factory.product(quantity=50) for _ in range(5)]
    package = factory.package(quantity=50)
    counts = {}
    for name, items in (("one", [line(products[0])]), ("five", [line(product, 2) for product in products]),
                        ("five and a package", [*(line(product) for product in products), line(package)])):
        with factory.statement_counter() as statements:
            response = place(client, headers, key=f"budget-{name}", items=items)
        assert response.status_code == 201, response.json
        verbs = [statement.split(None, 1)[0].upper() for statement in statements]
        counts[name] = len(statements)
        assert verbs.count("SELECT") == 2, statements
        assert verbs[verbs.index("INSERT"):].count("SELECT") == 0, statements
    assert counts == {"one": 7, "five": 7, "five and a package": 8}


# Stock


def test_one_short_line_fails_the_whole_order_and_takes_nothing(client, factory, shopper):
    plenty, scarce, box = factory.product(quantity=10), factory.product(quantity=2), factory.package(quantity=4)
    response = place(client, shopper[1], items=[line(plenty, 3), line(scarce, 3), line(box, 1)])
    assert response.status_code == 409
    assert response.json["error"]["code"] == "OUT_OF_STOCK"
    assert response.json["error"]["details"] == {"items": [{"productId": scarce.id, "requested": 3, "available": 2}]}
    assert (stock(Product, plenty.id), stock(Product, scarce.id), stock(Package, box.id)) == (10, 2, 4)
    assert order_count() == 0


def test_every_short_item_is_named_and_repeated_items_count_together(client, factory, shopper):
    ring, box = factory.product(quantity=8), factory.package(quantity=0)
    response = place(client, shopper[1], items=[line(ring, 5), line(box, 1), line(ring, 5)])
    assert response.status_code == 409
    assert response.json["error"]["details"]["items"] == [
        {"productId": ring.id, "requested": 10, "available": 8},
        {"packageId": box.id, "requested": 1, "available": 0},
    ]
    assert stock(Product, ring.id) == 8


def test_the_last_units_can_be_ordered_and_then_none(client, factory, shopper):
    product = factory.product(quantity=3)
    _, headers = shopper
    assert place(client, headers, items=[line(product, 3)]).status_code == 201
    assert place(client, headers, items=[line(product, 1)]).status_code == 409
    assert stock(Product, product.id) == 0


def test_a_package_takes_only_its_own_stock(client, factory, shopper):
    inside = factory.product(quantity=5)
    package = factory.package(products=[(inside, 2)], quantity=3)
    assert place(client, shopper[1], items=[line(package, 2)]).status_code == 201
    assert (stock(Package, package.id), stock(Product, inside.id)) == (1, 5)


@pytest.mark.parametrize("backend", ["postgresql"])  # row locks are taken only there
def test_orders_sharing_items_in_any_order_neither_deadlock_nor_oversell(make_app, backend):
    # Each order takes its products' stock in one UPDATE; its rows are locked in id order whatever order the
    # lines come in, so two orders wanting the same rows never wait on each other in a circle.
    app = make_app(RATELIMIT_ENABLED=False)
    with app.app_context():
        factory = Factory(app)
        ids = [factory.product(quantity=1000).id for _ in range(4)]
        package_ids = [factory.package(quantity=1000).id for _ in range(2)]
        headers = [factory.headers(factory.user()) for _ in range(16)]
    rounds, responses = 4, []
    barrier = threading.Barrier(len(headers))

    def orders(n: int) -> None:
        with app.app_context():
            client = app.test_client()
            items = [*({"productId": i, "quantity": 1} for i in ids), {"packageId": package_ids[0], "quantity": 1},
                     {"packageId": package_ids[1], "quantity": 1}]
            if n % 2:
                items.reverse()
            barrier.wait()
            for _ in range(rounds):
                responses.append(client.post(ORDERS, json={"items": items}, headers=headers[n]))

    threads = [threading.Thread(target=orders, args=(n,)) for n in range(len(headers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    placed = len(headers) * rounds
    assert [r.status_code for r in responses] == [201] * placed, [r.json for r in responses if r.status_code != 201]
    with app.app_context():
        assert [stock(Product, i) for i in ids] == [1000 - placed] * 4
        assert [stock(Package, i) for i in package_ids] == [1000 - placed] * 2


# Idempotency


def test_a_replayed_key_returns_the_first_order_and_takes_stock_once(client, factory, shopper):
    product = factory.product(quantity=10)
    _, headers = shopper
    first = place(client, headers, key="checkout-1", items=[line(product, 2)])
    second = place(client, headers, key="checkout-1", items=[line(product, 2)])
    assert first.status_code == 201 and "Idempotent-Replayed" not in first.headers
    assert second.status_code == 200 and second.headers["Idempotent-Replayed"] == "true"
    assert second.json == first.json
    assert stock(Product, product.id) == 8 and order_count() == 1

    v2 = client.post("/api/v2/orders", json={"items": [line(product, 2)]},
                     headers={**headers, "Idempotency-Key": "checkout-1"})
    assert v2.status_code == 200 and v2.json["data"]["id"] == first.json["id"]


def test_the_same_key_with_another_body_is_422(client, factory, shopper):
    product = factory.product(quantity=10)
    _, headers = shopper
    place(client, headers, key="k-1", items=[line(product, 2)])
    response = place(client, headers, key="k-1", items=[line(product, 3)])
    assert response.status_code == 422
    assert response.json["error"]["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert stock(Product, product.id) == 8 and order_count() == 1


def test_keys_belong_to_one_user(client, factory):
    product = factory.product(quantity=10)
    one, two = factory.headers(factory.user()), factory.headers(factory.user())
    first = place(client, one, key="shared", items=[line(product)])
    second = place(client, two, key="shared", items=[line(product)])
    assert (first.status_code, second.status_code) == (201, 201)
    assert first.json["id"] != second.json["id"]


def test_a_refused_order_does_not_use_up_its_key(client, factory, shopper):
    product = factory.product(quantity=1)
    _, headers = shopper
    assert place(client, headers, key="retry-me", items=[line(product, 2)]).status_code == 409
    product.quantity = 5
    db.session.commit()
    assert place(client, headers, key="retry-me", items=[line(product, 2)]).status_code == 201


def test_a_key_older_than_a_day_starts_a_new_order(client, factory, shopper):
    product = factory.product(quantity=10)
    _, headers = shopper
    old = place(client, headers, key="daily", items=[line(product)]).json
    db.session.execute(update(Order).where(Order.id == old["id"]).values(created_at=utcnow() - timedelta(hours=25)))
    db.session.commit()
    fresh = place(client, headers, key="daily", items=[line(product)])
    assert fresh.status_code == 201 and fresh.json["id"] != old["id"]
    assert stock(Product, product.id) == 8


def test_a_key_replays_its_order_even_when_the_request_no_longer_checks_out(client, factory, shopper):
    user, headers = shopper
    product = factory.product(quantity=10)
    client.post("/api/v1/cart/items", json=line(product, 2), headers=headers)
    from_cart = place(client, headers, key="cart-checkout")
    assert from_cart.status_code == 201
    # The order emptied the cart; the same request replays rather than finding the cart empty.
    again = place(client, headers, key="cart-checkout")
    assert (again.status_code, again.json) == (200, from_cart.json)

    first = place(client, headers, key="items-checkout", items=[line(product)])
    product.is_active = False
    db.session.commit()
    again = place(client, headers, key="items-checkout", items=[line(product)])
    assert (again.status_code, again.json) == (200, first.json)
    assert place(client, headers, key="items-checkout", items=[line(product, 2)]).json["error"]["code"] == \
        "IDEMPOTENCY_KEY_REUSED"
    assert stock(Product, product.id) == 7 and order_count() == 2


@pytest.mark.parametrize("key", ["", "x" * 256, "caf\u00e9", "tab\there"])
def test_malformed_idempotency_keys_are_400(client, factory, shopper, key):
    response = client.post(ORDERS, json={"items": [line(factory.product())]},
                           headers={**shopper[1], "Idempotency-Key": key.encode("utf-8").decode("latin-1")})
    assert response.status_code == 400
    assert order_count() == 0


@pytest.mark.parametrize("backend", ["postgresql"])  # concurrent writers block on each other only there
def test_twenty_concurrent_requests_with_one_key_make_one_order(make_app, backend):
    app = make_app(RATELIMIT_ENABLED=False)
    with app.app_context():
        factory = Factory(app)
        product_id = factory.product(quantity=50).id
        headers = {**factory.headers(factory.user()), "Idempotency-Key": "one-checkout"}
    responses = []
    barrier = threading.Barrier(20)

    def order() -> None:
        with app.app_context():  # its own session and connection, as another worker's request would have
            client = app.test_client()
            barrier.wait()
            responses.append(client.post(ORDERS, json={"items": [{"productId": product_id, "quantity": 2}]},
                                         headers=headers))

    threads = [threading.Thread(target=order) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(r.status_code for r in responses) == [200] * 19 + [201], [r.json for r in responses]
    assert len({r.json["id"] for r in responses}) == 1
    with app.app_context():
        assert stock(Product, product_id) == 48 and order_count() == 1


# Status machine


ALLOWED = [(current, to) for current, moves in TRANSITIONS.items() for to in sorted(moves)]


@pytest.mark.parametrize("current, to", ALLOWED)
def test_every_allowed_move_is_applied_with_history(client, factory, admin, current, to):
    order = factory.order_of(factory.user(), factory.product(), status=current)
    details = {"trackingNumber": "TRK-1", "estimatedDelivery": "2030-01-01"}
    response = client.patch(f"{ORDERS}/{order.id}/status", json={"status": to, "details": details}, headers=admin)
    assert response.status_code == 200, response.json
    assert response.json["status"] == to
    history = client.get(f"{ORDERS}/{order.id}/history", headers=admin).json
    assert (history[-1]["from"], history[-1]["to"], history[-1]["details"]) == (current, to, details)


@pytest.mark.parametrize("current, to", [
    ("pending", "pending"), ("pending", "shipped"), ("pending", "completed"), ("confirmed", "confirmed"),
    ("confirmed", "delivered"), ("processing", "pending"), ("shipped", "cancelled"), ("delivered", "cancelled"),
    ("completed", "returned"), ("cancelled", "pending"), ("rejected", "confirmed"), ("returned", "delivered"),
])
def test_disallowed_moves_are_409_and_change_nothing(client, factory, admin, current, to):
    order = factory.order_of(factory.user(), factory.product(), status=current)
    response = client.patch(f"{ORDERS}/{order.id}/status", json={"status": to}, headers=admin)
    assert response.status_code == 409
    assert response.json["error"]["code"] == "INVALID_TRANSITION"
    assert client.get(f"{ORDERS}/{order.id}", headers=admin).json["status"] == current
    assert client.get(f"{ORDERS}/{order.id}/history", headers=admin).json == []


def test_status_changes_are_for_admins_and_known_statuses(client, factory, shopper, admin):
    user, headers = shopper
    order = factory.order_of(user, factory.product())
    assert client.patch(f"{ORDERS}/{order.id}/status", json={"status": "confirmed"}, headers=headers).status_code \
        == 403
    assert client.patch(f"{ORDERS}/{order.id}/status", json={"status": "lost"}, headers=admin).status_code == 422
    assert client.patch(f"{ORDERS}/{order.id}/status", json={"status": "confirmed", "details": "soon"},
                        headers=admin).status_code == 422
    assert client.patch(f"{ORDERS}/999999/status", json={"status": "confirmed"}, headers=admin).status_code == 404


@pytest.mark.parametrize("status", ["pending", "confirmed"])
def test_the_owner_may_cancel_early(client, factory, shopper, status):
    user, headers = shopper
    order = factory.order_of(user, factory.product(), status=status)
    response = client.post(f"{ORDERS}/{order.id}/cancel", headers=headers)
    assert response.status_code == 200
    assert response.json["status"] == "cancelled"


@pytest.mark.parametrize("status", ["processing", "shipped", "delivered", "cancelled"])
def test_the_owner_may_not_cancel_late(client, factory, shopper, status):
    user, headers = shopper
    order = factory.order_of(user, factory.product(), status=status)
    response = client.post(f"{ORDERS}/{order.id}/cancel", headers=headers)
    assert response.status_code == 409
    assert response.json["error"]["code"] == "INVALID_TRANSITION"


def test_an_admin_may_cancel_any_cancellable_order(client, factory, admin):
    order = factory.order_of(factory.user(), factory.product(), status="processing")
    response = client.post(f"{ORDERS}/{order.id}/cancel", headers=admin)
    assert response.status_code == 200 and response.json["status"] == "cancelled"
    shipped = factory.order_of(factory.user(), factory.product(), status="shipped")
    assert client.post(f"{ORDERS}/{shipped.id}/cancel", headers=admin).status_code == 409


def test_cancelling_gives_the_stock_back_exactly_once(client, factory, shopper):
    product, package = factory.product(quantity=10), factory.package(quantity=4)
    _, headers = shopper
    order = place(client, headers, items=[line(product, 3), line(package, 2), line(product, 1)]).json
    assert (stock(Product, product.id), stock(Package, package.id)) == (6, 2)

    assert client.post(f"{ORDERS}/{order['id']}/cancel", headers=headers).status_code == 200
    assert (stock(Product, product.id), stock(Package, package.id)) == (10, 4)
    again = client.post(f"{ORDERS}/{order['id']}/cancel", headers=headers)
    assert again.status_code == 409
    assert (stock(Product, product.id), stock(Package, package.id)) == (10, 4)


@pytest.mark.parametrize("path", [["rejected"], ["confirmed", "processing", "shipped", "returned"],
                                  ["confirmed", "processing", "shipped", "delivered", "returned"]])
def test_rejected_and_returned_orders_restock(client, factory, shopper, admin, path):
    product, package = factory.product(quantity=10), factory.package(quantity=5)
    order = place(client, shopper[1], items=[line(product, 4), line(package, 2)]).json
    for status in path:
        assert client.patch(f"{ORDERS}/{order['id']}/status", json={"status": status}, headers=admin).status_code \
            == 200
    assert (stock(Product, product.id), stock(Package, package.id)) == (10, 5)
    history = client.get(f"{ORDERS}/{order['id']}/history", headers=admin).json
    assert [h["to"] for h in history] == ["pending", *path]


def test_completed_orders_keep_their_stock_taken(client, factory, shopper, admin):
    product = factory.product(quantity=10)
    order = place(client, shopper[1], items=[line(product, 4)]).json
    for status in ("confirmed", "processing", "shipped", "delivered", "completed"):
        moved = client.patch(f"{ORDERS}/{order['id']}/status", json={"status": status}, headers=admin)
        assert (moved.status_code, moved.json["status"]) == (200, status), moved.json
    assert stock(Product, product.id) == 6


# Reading


def test_another_users_order_does_not_exist_for_them(client, factory, shopper):
    user, headers = shopper
    order = factory.order_of(user, factory.product())
    stranger = factory.headers(factory.user())
    for response in (client.get(f"{ORDERS}/{order.id}", headers=stranger),
                     client.get(f"{ORDERS}/{order.id}/history", headers=stranger),
                     client.post(f"{ORDERS}/{order.id}/cancel", headers=stranger)):
        assert response.status_code == 404
    assert client.get(ORDERS, headers=stranger).json == []
    assert client.get(f"{ORDERS}/{order.id}", headers=headers).status_code == 200
    for response in (client.get(ORDERS), client.get(f"{ORDERS}/{order.id}"), client.post(ORDERS, json={}),
                     client.get(f"{ORDERS}/{order.id}/history"), client.post(f"{ORDERS}/{order.id}/cancel")):
        assert response.status_code == 401


def test_customers_list_their_own_orders_newest_first(client, factory, shopper):
    user, headers = shopper
    product = factory.product(quantity=10)
    ids = [place(client, headers, items=[line(product)]).json["id"] for _ in range(3)]
    factory.order_of(factory.user(), product)
    response = client.get(ORDERS, headers=headers, query_string={"limit": 2})
    assert [o["id"] for o in response.json] == ids[::-1][:2]
    assert response.headers["X-Total-Count"] == "3"
    assert 'rel="next"' in response.headers["Link"]


def at(day: str) -> datetime:
    return datetime.fromisoformat(day).replace(tzinfo=UTC)


def test_admins_list_every_order_with_filters(client, factory, admin):
    ann, bob = factory.user(), factory.user()
    product = factory.product()
    placed = {
        "ann-jan": factory.order_of(ann, product, status="pending"),
        "ann-feb": factory.order_of(ann, product, status="shipped"),
        "bob-feb": factory.order_of(bob, product, status="pending"),
        "bob-mar": factory.order_of(bob, product, status="cancelled"),
    }
    for name, day in (("ann-jan", "2024-01-15T10:00:00"), ("ann-feb", "2024-02-01T00:00:00"),
                      ("bob-feb", "2024-02-29T23:59:59"), ("bob-mar", "2024-03-01T00:00:00")):
        placed[name].created_at = at(day)
    db.session.commit()
    by_id = {order.id: name for name, order in placed.items()}

    def listed(**query):
        response = client.get(ORDERS, headers=admin, query_string=query)
        assert response.status_code == 200, response.json
        return [by_id[o["id"]] for o in response.json]

    assert listed() == ["bob-mar", "bob-feb", "ann-feb", "ann-jan"]
    assert listed(status="pending") == ["bob-feb", "ann-jan"]
    assert listed(userId=ann.id) == ["ann-feb", "ann-jan"]
    assert listed(dateFrom="2024-02-01", dateTo="2024-02-29") == ["bob-feb", "ann-feb"]
    assert listed(dateFrom="2024-02-02") == ["bob-mar", "bob-feb"]
    assert listed(userId=bob.id, status="cancelled", dateTo="2024-03-01") == ["bob-mar"]
    for bad in ({"status": "lost"}, {"dateFrom": "yesterday"}, {"dateFrom": "2024-03-01", "dateTo": "2024-02-01"},
                {"userId": "ann"}):
        assert client.get(ORDERS, headers=admin, query_string=bad).status_code == 400, bad


def test_the_order_list_loads_lines_without_a_query_per_order(client, factory, shopper):
    _, headers = shopper
    products = [factory.product(quantity=50) for _ in range(5)]
    items = [line(product) for product in products]
    place(client, headers, items=items[:1])
    with factory.statement_counter() as one_order:
        client.get("/api/v2/orders", headers=headers)
    for n in range(1, 5):
        place(client, headers, items=items[: n + 1])
    with factory.statement_counter() as five_orders:
        assert len(client.get("/api/v2/orders", headers=headers).json["data"]) == 5
    assert len(five_orders) == len(one_order)


def test_v2_adds_history_and_item_count(client, factory, shopper):
    user, headers = shopper
    product = factory.product(quantity=10)
    response = client.post("/api/v2/orders", json={"items": [line(product, 2), line(factory.package(), 1)]},
                           headers=headers)
    assert response.status_code == 201
    order = response.json["data"]
    assert set(order) == V1_KEYS | {"history", "itemCount"}
    assert order["itemCount"] == 3
    [placed] = order["history"]
    assert set(placed) == {"from", "to", "details", "at"}  # never who acted: that is for administrators
    assert (placed["from"], placed["to"], placed["details"]) == (None, "pending", None)
    assert placed["at"].endswith("Z")


# What customers see of the history


def test_customers_see_the_history_without_the_acting_admin_or_internal_details(client, factory, shopper, admin):
    user, headers = shopper
    order_id = place(client, headers, items=[line(factory.product(quantity=5))]).json["id"]
    meant_for_them = {"trackingNumber": "TRK-7", "estimatedDelivery": "2030-01-02"}
    moves = (("confirmed", {"note": "internal: checked by Bob"}), ("processing", None),
             ("shipped", {**meant_for_them, "note": "fragile", "carrierAccount": "ACME-0042"}))
    for status, details in moves:
        moved = client.patch(f"{ORDERS}/{order_id}/status", json={"status": status, "details": details},
                             headers=admin)
        assert moved.status_code == 200, moved.json

    shown = [(None, "pending", None), ("pending", "confirmed", None), ("confirmed", "processing", None),
             ("processing", "shipped", meant_for_them)]
    v1 = client.get(f"{ORDERS}/{order_id}/history", headers=headers)
    v2_history = client.get(f"/api/v2/orders/{order_id}/history", headers=headers).json["data"]
    v2_order = client.get(f"/api/v2/orders/{order_id}", headers=headers).json["data"]
    [v2_listed] = client.get("/api/v2/orders", headers=headers).json["data"]
    assert v1.status_code == 200
    for history in (v1.json, v2_history, v2_order["history"], v2_listed["history"]):
        assert [set(entry) for entry in history] == [{"from", "to", "details", "at"}] * 4
        assert [(entry["from"], entry["to"], entry["details"]) for entry in history] == shown
    for body in (v1.get_data(as_text=True), str(v2_order)):
        assert "internal" not in body and "ACME-0042" not in body and "fragile" not in body

    # Administrators see who moved the order and every detail.
    staff_view = client.get(f"/api/v2/orders/{order_id}", headers=admin).json["data"]["history"]
    for history in (client.get(f"{ORDERS}/{order_id}/history", headers=admin).json, staff_view):
        actors = [entry["actorId"] for entry in history]
        assert actors[0] == user.id and len(set(actors[1:])) == 1 and actors[1] != user.id
        assert history[1]["details"] == {"note": "internal: checked by Bob"}
        assert history[3]["details"]["carrierAccount"] == "ACME-0042"


def test_an_order_a_customer_cancels_or_places_again_shows_no_actor(client, factory, shopper):
    _, headers = shopper
    product = factory.product(quantity=5)
    placed = client.post("/api/v2/orders", json={"items": [line(product)]}, headers={**headers, "Idempotency-Key": "a"})
    replayed = client.post("/api/v2/orders", json={"items": [line(product)]},
                           headers={**headers, "Idempotency-Key": "a"})
    cancelled = client.post(f"/api/v2/orders/{placed.json['data']['id']}/cancel", headers=headers)
    assert (placed.status_code, replayed.status_code, cancelled.status_code) == (201, 200, 200)
    for response in (placed, replayed, cancelled):
        assert all("actorId" not in entry for entry in response.json["data"]["history"])


# Events


@pytest.fixture
def delivered():
    heard: list = []
    record = heard.append
    events.after_commit(OrderStatusChanged)(record)
    events.after_commit(StockChanged)(record)
    yield heard
    events.unsubscribe(record)


def test_a_refused_order_announces_nothing(client, factory, shopper, delivered):
    plenty, scarce = factory.product(quantity=10), factory.product(quantity=1)
    assert place(client, shopper[1], items=[line(plenty, 2), line(scarce, 2)]).status_code == 409
    assert delivered == []


def test_a_placed_order_announces_its_stock_and_status_after_commit(client, factory, shopper, delivered):
    user, headers = shopper
    product, package = factory.product(quantity=10), factory.package(quantity=4)
    order_id = place(client, headers, items=[line(package, 1), line(product, 3)]).json["id"]
    stock_events = [(e.item_type, e.item_id, e.previous_quantity, e.quantity) for e in delivered
                    if isinstance(e, StockChanged)]
    assert stock_events == [("product", product.id, 10, 7), ("package", package.id, 4, 3)]
    status_events = [e for e in delivered if isinstance(e, OrderStatusChanged)]
    assert [(e.order_id, e.user_id, e.status, e.previous_status, e.details, e.actor_id) for e in status_events] == [
        (order_id, user.id, "pending", None, None, user.id)
    ]

    delivered.clear()
    place(client, headers, key="k", items=[line(product, 1)])
    place(client, headers, key="k", items=[line(product, 1)])
    assert len([e for e in delivered if isinstance(e, OrderStatusChanged)]) == 1


def test_a_status_change_announces_its_details_and_restock(client, factory, shopper, admin, delivered):
    product = factory.product(quantity=10)
    order_id = place(client, shopper[1], items=[line(product, 4)]).json["id"]
    delivered.clear()
    client.patch(f"{ORDERS}/{order_id}/status", json={"status": "rejected", "details": {"reason": "fraud"}},
                 headers=admin)
    status = [e for e in delivered if isinstance(e, OrderStatusChanged)]
    assert [(e.status, e.previous_status, e.details) for e in status] == [("rejected", "pending", {"reason": "fraud"})]
    assert [(e.item_id, e.previous_quantity, e.quantity) for e in delivered if isinstance(e, StockChanged)] == [
        (product.id, 6, 10)
    ]
    delivered.clear()
    client.patch(f"{ORDERS}/{order_id}/status", json={"status": "confirmed"}, headers=admin)
    assert delivered == []
