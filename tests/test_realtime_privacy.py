"""An inactive product's stock never reaches the public over sockets (issue 13, item 3), end to end: the pair of
gunicorn instances of tests/test_realtime.py (one database, the Redis message queue), python-socketio clients.

The public room `inventory:<id>` hears a product only while it is active; signed-in admins tracking it also sit in
`admin-inventory:<id>`, which hears it always and which a socket leaves when its session ends (sign-out here).
"""

from __future__ import annotations

import pytest

from tests import test_realtime as live
from tests.realtime_clients import TIMESTAMP
from tests.test_realtime import Scene, api

# The live suite's fixtures: its pair of instances (started for this module), its scenes.
redis_settings, pair, app, scene = live.redis_settings, live.pair, live.app, live.scene

pytestmark = pytest.mark.parametrize("backend", ["postgresql"])


def update(product_id: int, quantity: int, previous: int, details: dict) -> dict:
    return {"productId": product_id, "quantity": quantity, "previousQuantity": previous, "details": details,
            "timestamp": TIMESTAMP}


def patch(scene: Scene, path: str, body: dict) -> None:
    response = api(scene.a, "PATCH", path, scene.admin_token, json=body)
    assert response.status_code == 200, response.text


def test_an_inactive_products_stock_reaches_signed_in_admins_only_and_the_public_again_once_active(scene, factory):
    product = factory.product(quantity=10)
    customer = factory.user()
    order = api(scene.a, "POST", "/orders", factory.token(customer),
                json={"items": [{"productId": product.id, "quantity": 2}]})
    assert order.status_code == 201, order.text
    leaving_admin, staying_admin = factory.admin(), factory.admin()
    leaving_token = factory.token(leaving_admin)

    public = scene.peer(scene.b)
    leaving = scene.peer(scene.a, token=leaving_token)
    staying = scene.peer(scene.b, staying_admin)
    for client in (public, leaving, staying):
        assert client.call("track_inventory", product.id) == {"productId": product.id, "quantity": 8}

    # The admin signs out: its socket's session ends (it stays a member of the public room, as anyone may be).
    assert api(scene.a, "POST", "/auth/logout", leaving_token).status_code in (200, 204)
    leaving.wait_for("auth_error", timeout=3)
    patch(scene, f"/products/{product.id}", {"isActive": False})
    assert api(scene.a, "GET", f"/products/{product.id}").status_code == 404  # gone for the public
    scene.mark()

    # Every way stock moves, while the product is inactive: an admin's stock edit, a product update that also
    # sets the quantity, and the restock of a cancelled order.
    patch(scene, f"/products/{product.id}/stock", {"quantity": 4242})
    patch(scene, f"/products/{product.id}", {"quantity": 4000, "description": "Withdrawn"})
    patch(scene, f"/orders/{order.json()['id']}/status", {"status": "cancelled"})
    hidden = [update(product.id, 4242, 8, {"change": "set"}), update(product.id, 4000, 4242, {"change": "update"}),
              update(product.id, 4002, 4000, {"reason": "order_cancelled"})]
    staying.wait_for("inventory_update", count=3, where=lambda data: data["productId"] == product.id)
    scene.quiet()

    assert scene.heard(public) == []
    assert scene.heard(leaving) == []
    assert scene.heard(staying) == [("inventory_update", data) for data in hidden]

    # Deactivated and given stock in one update: still the admins' only.
    scene.mark()
    patch(scene, f"/products/{product.id}", {"quantity": 3900, "isActive": False})
    staying.wait_for("inventory_update", where=lambda data: data["quantity"] == 3900)
    scene.quiet()
    assert scene.heard(public) == [] and scene.heard(leaving) == []

    # Active again: the public room hears it, each socket once (the admin sits in both rooms).
    scene.mark()
    patch(scene, f"/products/{product.id}", {"isActive": True})
    patch(scene, f"/products/{product.id}/stock", {"quantity": 7})
    shown = [("inventory_update", update(product.id, 7, 3900, {"change": "set"}))]
    public.wait_for("inventory_update", where=lambda data: data["quantity"] == 7)
    scene.quiet()
    for client in (public, leaving, staying):
        assert scene.heard(client) == shown, client.name


def test_an_admin_hears_the_inactive_products_it_tracks_even_those_tracked_before_signing_in(scene, factory):
    hidden = factory.product(quantity=5, is_active=False)
    shown = factory.product(quantity=9)
    anonymous = scene.peer(scene.a)
    admin = scene.peer(scene.b, scene.admin)
    later_admin = scene.peer(scene.a)
    assert anonymous.call("track_inventory", hidden.id)["error"]["code"] == "NOT_FOUND"
    assert admin.call("track_inventory", hidden.id) == {"productId": hidden.id, "quantity": 5}
    for client in (anonymous, later_admin):
        assert client.call("track_inventory", shown.id) == {"productId": shown.id, "quantity": 9}
    assert later_admin.call("authenticate", factory.token(factory.admin()))["role"] == "admin"
    patch(scene, f"/products/{shown.id}", {"isActive": False})
    scene.mark()

    patch(scene, f"/products/{hidden.id}/stock", {"delta": 1})
    patch(scene, f"/products/{shown.id}/stock", {"delta": -1})
    admin.wait_for("inventory_update", where=lambda data: data["productId"] == hidden.id)
    later_admin.wait_for("inventory_update", where=lambda data: data["productId"] == shown.id)
    scene.quiet()
    assert scene.heard(anonymous) == []
    assert scene.heard(admin) == [("inventory_update", update(hidden.id, 6, 5, {"change": "delta", "delta": 1}))]
    assert scene.heard(later_admin) == [("inventory_update", update(shown.id, 8, 9, {"change": "delta", "delta": -1}))]
