"""Offers (validation, linking products and packages, visibility) and customization definitions."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import event

from fantasize.extensions import db
from fantasize.models import Offer, Package, Product
from fantasize.models.base import utcnow


def iso(moment) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def offer_body(**fields) -> dict:
    now = utcnow()
    return {
        "title": "Summer sale", "discountPercent": "20", "validFrom": iso(now - timedelta(days=1)),
        "validTo": iso(now + timedelta(days=7)), "isActive": True, **fields,
    }


@pytest.fixture
def admin_headers(factory):
    return factory.headers(factory.admin())


@pytest.fixture
def customer_headers(factory):
    return factory.headers(factory.user())


def linked_offer_ids(*items) -> list:
    db.session.expire_all()
    return [db.session.get(type(item), item.id).offer_id for item in items]


def test_admin_creates_reads_updates_and_deletes_an_offer(client, factory, admin_headers):
    product, package = factory.product(), factory.package()
    created = client.post("/api/v1/offers", headers=admin_headers,
                          json=offer_body(discountPercent=12.5, productIds=[product.id], packageIds=[package.id]))
    assert created.status_code == 201
    offer = created.json
    assert offer["discountPercent"] == "12.50"
    assert offer["isActive"] is True and offer["isCurrent"] is True
    assert (offer["productIds"], offer["packageIds"]) == ([product.id], [package.id])
    assert offer["validTo"].endswith("Z")
    assert linked_offer_ids(product, package) == [offer["id"], offer["id"]]

    fetched = client.get(f"/api/v1/offers/{offer['id']}").json
    assert fetched == offer

    changed = client.patch(f"/api/v1/offers/{offer['id']}", headers=admin_headers,
                           json={"title": "Bigger sale", "discountPercent": "30"})
    assert changed.status_code == 200
    assert (changed.json["title"], changed.json["discountPercent"]) == ("Bigger sale", "30.00")
    assert changed.json["productIds"] == [product.id]

    assert client.delete(f"/api/v1/offers/{offer['id']}", headers=admin_headers).status_code == 204
    assert client.get(f"/api/v1/offers/{offer['id']}", headers=admin_headers).status_code == 404
    assert linked_offer_ids(product, package) == [None, None]
    assert db.session.get(Product, product.id) is not None


def test_patching_product_ids_replaces_the_linked_set(client, factory, admin_headers):
    first, second, third = factory.product(), factory.product(), factory.product()
    offer = client.post("/api/v1/offers", headers=admin_headers,
                        json=offer_body(productIds=[first.id, second.id])).json
    assert offer["productIds"] == [first.id, second.id]

    replaced = client.patch(f"/api/v1/offers/{offer['id']}", headers=admin_headers,
                            json={"productIds": [third.id, second.id, third.id]})
    assert replaced.status_code == 200
    assert replaced.json["productIds"] == [second.id, third.id]
    assert linked_offer_ids(first, second, third) == [None, offer["id"], offer["id"]]

    emptied = client.patch(f"/api/v1/offers/{offer['id']}", headers=admin_headers, json={"productIds": []})
    assert emptied.json["productIds"] == []
    assert linked_offer_ids(second, third) == [None, None]


def test_unknown_linked_ids_are_422_listing_them_and_change_nothing(client, factory, admin_headers):
    product = factory.product()
    offer = factory.offer(title="Before")
    response = client.patch(f"/api/v1/offers/{offer.id}", headers=admin_headers,
                            json={"title": "After", "productIds": [product.id, 998, 999], "packageIds": [997]})
    assert response.status_code == 422
    details = response.json["error"]["details"]
    assert "998, 999" in details["productIds"][0]
    assert linked_offer_ids(product) == [None]
    assert client.get(f"/api/v1/offers/{offer.id}").json["title"] == "Before"

    created = client.post("/api/v1/offers", headers=admin_headers, json=offer_body(packageIds=[997]))
    assert created.status_code == 422
    assert "997" in created.json["error"]["details"]["packageIds"][0]
    assert db.session.query(Offer).count() == 1


@pytest.mark.parametrize("discount", [0, "0", 91, "90.01", -5, "-1", "12.345", "abc", True, None, [20]])
def test_discount_outside_0_to_90_or_malformed_is_422(client, admin_headers, discount):
    response = client.post("/api/v1/offers", headers=admin_headers, json=offer_body(discountPercent=discount))
    assert response.status_code == 422
    assert "discountPercent" in response.json["error"]["details"]


@pytest.mark.parametrize("discount", [90, "0.01", "45.5"])
def test_discount_bounds_are_accepted(client, admin_headers, discount):
    response = client.post("/api/v1/offers", headers=admin_headers, json=offer_body(discountPercent=discount))
    assert response.status_code == 201


def test_offer_window_must_end_after_it_starts(client, factory, admin_headers):
    now = utcnow()
    backwards = offer_body(validFrom=iso(now + timedelta(days=2)), validTo=iso(now))
    response = client.post("/api/v1/offers", headers=admin_headers, json=backwards)
    assert response.status_code == 422
    assert "validTo" in response.json["error"]["details"]
    empty = offer_body(validFrom=iso(now), validTo=iso(now))
    assert client.post("/api/v1/offers", headers=admin_headers, json=empty).status_code == 422

    offer = factory.offer()
    moved = client.patch(f"/api/v1/offers/{offer.id}", headers=admin_headers,
                         json={"validTo": iso(offer.valid_from - timedelta(hours=1))})
    assert moved.status_code == 422


@pytest.mark.parametrize("change", [
    {"colour": "red"}, {"title": 5}, {"title": ""}, {"isActive": "true"}, {"productIds": "1"},
    {"productIds": ["1"]}, {"productIds": [True]}, {"validFrom": "yesterday"},
])
def test_invalid_offer_bodies_are_422(client, admin_headers, change):
    response = client.post("/api/v1/offers", headers=admin_headers, json=offer_body(**change))
    assert response.status_code == 422


def test_missing_required_offer_fields_are_422(client, admin_headers):
    response = client.post("/api/v1/offers", headers=admin_headers, json={"title": "Sale"})
    assert response.status_code == 422
    assert {"discountPercent", "validFrom", "validTo"} <= set(response.json["error"]["details"])


def test_public_sees_only_current_offers_and_admins_may_ask_for_all(client, factory, admin_headers,
                                                                      customer_headers):
    now = utcnow()
    current = factory.offer(title="Current")
    expired = factory.offer(title="Expired", valid_from=now - timedelta(days=9), valid_to=now - timedelta(days=2))
    upcoming = factory.offer(title="Upcoming", valid_from=now + timedelta(days=2), valid_to=now + timedelta(days=9))
    switched_off = factory.offer(title="Off", is_active=False, valid_from=now - timedelta(hours=12))

    public = client.get("/api/v1/offers").json
    assert [o["title"] for o in public] == ["Current"]
    for hidden in (expired, upcoming, switched_off):
        assert client.get(f"/api/v1/offers/{hidden.id}").status_code == 404
        assert client.get(f"/api/v1/offers/{hidden.id}", headers=admin_headers).json["isCurrent"] is False
    assert client.get(f"/api/v1/offers/{current.id}").json["isCurrent"] is True

    everything = client.get("/api/v1/offers?include=all", headers=admin_headers)
    assert everything.headers["X-Total-Count"] == "4"
    assert [o["title"] for o in everything.json] == ["Upcoming", "Off", "Current", "Expired"]
    assert client.get("/api/v1/offers?include=all").status_code == 401
    assert client.get("/api/v1/offers?include=all", headers=customer_headers).status_code == 403
    assert client.get("/api/v1/offers?include=everything").status_code == 400


def test_an_offer_lists_only_its_active_products_and_packages_to_the_public(client, factory, admin_headers,
                                                                            customer_headers):
    offer = factory.offer()
    shown, withdrawn = factory.product(offer=offer), factory.product(offer=offer, is_active=False)
    box, old_box = factory.package(offer_id=offer.id), factory.package(offer_id=offer.id, is_active=False)

    for headers in ({}, customer_headers):
        [listed] = client.get("/api/v1/offers", headers=headers).json
        single = client.get(f"/api/v2/offers/{offer.id}", headers=headers).json["data"]
        for body in (listed, single):
            assert (body["productIds"], body["packageIds"]) == ([shown.id], [box.id])

    everything = ([shown.id, withdrawn.id], [box.id, old_box.id])
    for path in (f"/api/v1/offers/{offer.id}", "/api/v1/offers?include=all"):
        body = client.get(path, headers=admin_headers).json
        body = body[0] if isinstance(body, list) else body
        assert (body["productIds"], body["packageIds"]) == everything
    changed = client.patch(f"/api/v1/offers/{offer.id}", headers=admin_headers, json={"title": "Renamed"})
    assert (changed.json["productIds"], changed.json["packageIds"]) == everything


def test_offer_lists_paginate_in_v1_and_v2(client, factory):
    for _ in range(3):
        factory.offer()
    v1 = client.get("/api/v1/offers?limit=2")
    assert len(v1.json) == 2 and v1.headers["X-Total-Count"] == "3" and 'rel="next"' in v1.headers["Link"]
    v2 = client.get("/api/v2/offers?limit=2&page=2").json
    assert v2["meta"]["pagination"] == {"page": 2, "limit": 2, "total": 3, "pages": 2}
    assert len(v2["data"]) == 1


def test_listing_offers_loads_linked_ids_without_a_query_per_offer(client, factory, app):
    for _ in range(4):
        offer = factory.offer()
        factory.product(offer=offer)
        factory.package(offer_id=offer.id)
    statements: list[str] = []

    def count(conn, cursor, statement, *args):
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append(statement)

    db.session.expire_all()
    event.listen(db.engine, "before_cursor_execute", count)
    try:
        response = client.get("/api/v1/offers")
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    assert response.status_code == 200
    assert all(len(o["productIds"]) == 1 and len(o["packageIds"]) == 1 for o in response.json)
    # a count, the page, its products and its packages (plus none per offer)
    assert len(statements) <= 4, statements


def test_offer_writes_need_an_admin(client, factory, customer_headers):
    offer = factory.offer()
    for method, path, body in (("post", "/api/v1/offers", offer_body()),
                               ("patch", f"/api/v1/offers/{offer.id}", {"title": "X"}),
                               ("delete", f"/api/v1/offers/{offer.id}", None)):
        assert getattr(client, method)(path, json=body).status_code == 401
        assert getattr(client, method)(path, json=body, headers=customer_headers).status_code == 403
    assert client.get(f"/api/v1/offers/{offer.id}").json["title"] == offer.title


def test_unknown_offer_ids_are_404(client, admin_headers):
    assert client.get("/api/v1/offers/999").status_code == 404
    assert client.patch("/api/v1/offers/999", headers=admin_headers, json={"title": "X"}).status_code == 404
    assert client.delete("/api/v1/offers/999", headers=admin_headers).status_code == 404


def test_offer_title_round_trips_exactly(client, admin_headers):
    text = "DROP earrings -- 50% off;"
    created = client.post("/api/v1/offers", headers=admin_headers, json=offer_body(title=text)).json
    assert client.get(f"/api/v1/offers/{created['id']}").json["title"] == text


# Customizations

def test_admin_manages_customizations(client, admin_headers):
    options = [{"name": "Small", "value": "S"}, {"name": "O'Brien", "value": "Select your size"}]
    created = client.post("/api/v1/customizations", headers=admin_headers,
                          json={"name": "Size", "type": "button", "options": options})
    assert created.status_code == 201
    assert created.json == {"id": created.json["id"], "name": "Size", "type": "button", "options": options}

    changed = client.patch(f"/api/v1/customizations/{created.json['id']}", headers=admin_headers,
                           json={"type": "text", "options": [{"name": "maxLength", "value": "20"}]})
    assert changed.status_code == 200
    assert (changed.json["type"], changed.json["options"]) == ("text", [{"name": "maxLength", "value": "20"}])

    listed = client.get("/api/v1/customizations")
    assert listed.headers["X-Total-Count"] == "1" and listed.json[0]["name"] == "Size"
    v2 = client.get("/api/v2/customizations").json
    assert v2["meta"]["pagination"]["total"] == 1

    assert client.delete(f"/api/v1/customizations/{created.json['id']}", headers=admin_headers).status_code == 204
    assert client.get("/api/v1/customizations").json == []


def test_deleting_a_customization_detaches_it_from_products(client, factory, admin_headers):
    customization = factory.customization()
    product = factory.product(customizations=[customization])
    assert client.delete(f"/api/v1/customizations/{customization.id}", headers=admin_headers).status_code == 204
    db.session.expire_all()
    assert db.session.get(Product, product.id).customizations == []


def test_customization_without_options_defaults_to_none(client, admin_headers):
    created = client.post("/api/v1/customizations", headers=admin_headers, json={"name": "Note", "type": "text"})
    assert created.status_code == 201 and created.json["options"] == []


@pytest.mark.parametrize("body", [
    {"name": "Size", "type": "dropdown", "options": []},
    {"name": "Size", "type": "button", "options": [{"name": "S"}]},
    {"name": "Size", "type": "button", "options": [{"name": "S", "value": 1}]},
    {"name": "Size", "type": "button", "options": [{"name": "", "value": "S"}]},
    {"name": "Size", "type": "button", "options": [{"name": "x" * 51, "value": "S"}]},
    {"name": "Size", "type": "button", "options": [{"name": "S", "value": "v" * 201}]},
    {"name": "Size", "type": "button", "options": [{"name": "S", "value": "S", "price": 1}]},
    {"name": "Size", "type": "button", "options": ["S"]},
    {"name": "Size", "type": "button", "options": {"name": "S", "value": "S"}},
    {"name": "Size", "type": "button", "options": [{"name": f"o{n}", "value": "v"} for n in range(51)]},
    {"name": "", "type": "text"},
    {"type": "text"},
    {"name": "Size", "type": "text", "extra": True},
])
def test_invalid_customizations_are_422(client, admin_headers, body):
    response = client.post("/api/v1/customizations", headers=admin_headers, json=body)
    assert response.status_code == 422
    assert response.json["error"]["code"] == "VALIDATION_ERROR"


def test_fifty_options_are_allowed(client, admin_headers):
    options = [{"name": f"o{n}", "value": "v"} for n in range(50)]
    response = client.post("/api/v1/customizations", headers=admin_headers,
                           json={"name": "Many", "type": "button", "options": options})
    assert response.status_code == 201


def test_customization_writes_need_an_admin(client, factory, customer_headers):
    customization = factory.customization()
    body = {"name": "X", "type": "text"}
    for method, path in (("post", "/api/v1/customizations"), ("patch", f"/api/v1/customizations/{customization.id}"),
                         ("delete", f"/api/v1/customizations/{customization.id}")):
        assert getattr(client, method)(path, json=body).status_code == 401
        assert getattr(client, method)(path, json=body, headers=customer_headers).status_code == 403


def test_unknown_customization_ids_are_404(client, admin_headers):
    body = {"name": "X"}
    assert client.patch("/api/v1/customizations/999", headers=admin_headers, json=body).status_code == 404
    assert client.delete("/api/v1/customizations/999", headers=admin_headers).status_code == 404


def test_package_offer_links_are_replaced_too(client, factory, admin_headers):
    first, second = factory.package(), factory.package()
    offer = client.post("/api/v1/offers", headers=admin_headers, json=offer_body(packageIds=[first.id])).json
    client.patch(f"/api/v1/offers/{offer['id']}", headers=admin_headers, json={"packageIds": [second.id]})
    db.session.expire_all()
    assert [db.session.get(Package, p.id).offer_id for p in (first, second)] == [None, offer["id"]]
