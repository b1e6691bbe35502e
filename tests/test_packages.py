"""Packages: bundles of products with their own price and stock; listing, shapes, admin writes and stock."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from fantasize.models.base import utcnow

V1_KEYS = {
    "id", "name", "slug", "description", "price", "discountPrice", "quantity", "status", "ratingAverage", "brand",
    "subCategory", "offer", "images", "customizations", "items", "createdAt", "updatedAt",
}
V2_KEYS = {
    "id", "name", "slug", "description", "pricing", "stock", "rating", "brand", "subCategory", "offer", "images",
    "customizations", "items", "createdAt", "updatedAt",
}


def names(response) -> list[str]:
    assert response.status_code == 200, response.json
    return [item["name"] for item in response.json]


def package_body(factory, **overrides) -> dict:
    mug, card = factory.product(name="Mug"), factory.product(name="Card")
    body = {
        "name": "Birthday box", "description": "A mug and a card", "price": "29.90", "quantity": 4,
        "items": [{"productId": mug.id, "quantity": 2}, {"productId": card.id, "quantity": 1}],
    }
    return {**body, **overrides}


# Listing and filters


def test_public_list_shows_only_active_packages(client, factory):
    factory.package(name="Shown")
    factory.package(name="Hidden", is_active=False)
    assert names(client.get("/api/v1/packages")) == ["Shown"]
    admin = factory.headers(factory.admin())
    assert set(names(client.get("/api/v1/packages?includeInactive=true", headers=admin))) == {"Shown", "Hidden"}
    customer = factory.headers(factory.user())
    assert client.get("/api/v1/packages?includeInactive=true", headers=customer).status_code == 403


def test_package_filters(client, factory):
    now = utcnow()
    category = factory.category()
    gifts, boxes = factory.subcategory(category=category), factory.subcategory(category=category)
    factory.package(name="Gift box", description="Ribbons", sub_category=gifts, price=Decimal("20.00"), quantity=0)
    factory.package(name="Tea set", description="With a GIFT card", sub_category=boxes, price=Decimal("60.00"),
                    offer=factory.offer(discount_percent=Decimal("50")))
    factory.package(name="Plain", price=Decimal("45.00"),
                    offer=factory.offer(valid_from=now - timedelta(days=3), valid_to=now - timedelta(days=1)))
    assert set(names(client.get("/api/v1/packages?q=gift"))) == {"Gift box", "Tea set"}
    assert set(names(client.get(f"/api/v1/packages?category={category.id}"))) == {"Gift box", "Tea set"}
    assert names(client.get(f"/api/v1/packages?subcategory={boxes.id}")) == ["Tea set"]
    assert set(names(client.get("/api/v1/packages?minPrice=25&maxPrice=45"))) == {"Tea set", "Plain"}
    assert names(client.get("/api/v1/packages?inStock=false")) == ["Gift box"]
    assert set(names(client.get("/api/v1/packages?inStock=true"))) == {"Tea set", "Plain"}
    assert names(client.get("/api/v1/packages?onOffer=true")) == ["Tea set"]
    assert set(names(client.get("/api/v1/packages?onOffer=false"))) == {"Gift box", "Plain"}


@pytest.fixture
def sortable(factory):
    now = utcnow()
    factory.package(name="beta", price=Decimal("30.00"), rating_average=Decimal("2.0"),
                    created_at=now - timedelta(days=1))
    factory.package(name="Alpha", price=Decimal("50.00"), rating_average=Decimal("4.0"),
                    created_at=now - timedelta(days=3), offer=factory.offer(discount_percent=Decimal("50")))
    factory.package(name="gamma", price=Decimal("40.00"), rating_average=Decimal("5.0"),
                    created_at=now - timedelta(days=2))


@pytest.mark.parametrize(("sort", "expected"), [
    ("price", ["Alpha", "beta", "gamma"]),  # Alpha costs 25.00 on offer
    ("-price", ["gamma", "beta", "Alpha"]),
    ("newest", ["beta", "gamma", "Alpha"]),
    ("rating", ["gamma", "Alpha", "beta"]),
    ("name", ["Alpha", "beta", "gamma"]),
])
def test_package_sorts(client, sortable, sort, expected):
    assert names(client.get(f"/api/v1/packages?sort={sort}")) == expected


def test_package_pagination(client, factory):
    for n in range(3):
        factory.package(name=f"Box {n}")
    v1 = client.get("/api/v1/packages?limit=2&sort=name")
    assert names(v1) == ["Box 0", "Box 1"]
    assert v1.headers["X-Total-Count"] == "3" and 'rel="next"' in v1.headers["Link"]
    v2 = client.get("/api/v2/packages?limit=2&page=2&sort=name").json
    assert [item["name"] for item in v2["data"]] == ["Box 2"]
    assert v2["meta"]["pagination"] == {"page": 2, "limit": 2, "total": 3, "pages": 2}


@pytest.mark.parametrize("query", ["sort=oldest", "minPrice=abc", "minPrice=9&maxPrice=1", "page=0", "limit=101"])
def test_bad_package_query_values_are_400(client, query):
    assert client.get(f"/api/v1/packages?{query}").status_code == 400


# Shapes


@pytest.fixture
def full_package(factory):
    mug, card = factory.product(name="Mug"), factory.product(name="Card")
    package = factory.package(
        name="Box", price=Decimal("40.00"), quantity=12, products=[(mug, 2), (card, 1)], brand=factory.brand(),
        sub_category=factory.subcategory(), offer=factory.offer(discount_percent=Decimal("25")),
        customizations=[factory.customization()], rating_average=Decimal("3.5"), rating_count=2,
    )
    factory.attach_images(package, factory.upload())
    return package


def test_package_v1_shape(client, full_package):
    body = client.get(f"/api/v1/packages/{full_package.id}").json
    assert set(body) == V1_KEYS
    assert (body["price"], body["discountPrice"]) == ("40.00", "30.00")
    assert (body["quantity"], body["status"], body["ratingAverage"]) == (12, "in_stock", 3.5)
    assert sorted(body["items"], key=lambda item: item["product"]["name"]) == [
        {"product": {"id": full_package.items[1].product.id, "name": "Card"}, "quantity": 1},
        {"product": {"id": full_package.items[0].product.id, "name": "Mug"}, "quantity": 2},
    ]
    assert body["brand"]["id"] == full_package.brand_id and body["subCategory"]["id"] == full_package.sub_category_id
    assert len(body["images"]) == 1 and isinstance(body["images"][0], str)


def test_package_v2_shape(client, full_package):
    response = client.get(f"/api/packages/{full_package.id}", headers={"API-Version": "v2"})
    assert response.headers["API-Version"] == "v2"
    data = response.json["data"]
    assert set(data) == V2_KEYS
    assert data["pricing"] == {"price": "40.00", "effectivePrice": "30.00", "discountPercent": "25.00",
                               "currency": "USD"}
    assert data["stock"] == {"quantity": 12, "status": "in_stock"}
    assert data["rating"] == {"average": 3.5, "count": 2}
    assert [set(image) for image in data["images"]] == [{"id", "url", "mimeType"}]
    assert {item["product"]["name"]: item["quantity"] for item in data["items"]} == {"Mug": 2, "Card": 1}
    assert client.get(f"/api/packages/{full_package.id}?version=v2").json["data"] == data


def test_a_package_without_brand_or_subcategory_renders_nulls(client, factory):
    package = factory.package()
    body = client.get(f"/api/v1/packages/{package.id}").json
    assert (body["brand"], body["subCategory"], body["offer"]) == (None, None, None)


def test_a_package_shows_the_public_only_its_active_products(client, factory):
    mug, card = factory.product(name="Mug"), factory.product(name="Withdrawn card", is_active=False)
    package = factory.package(name="Gift box", products=[(mug, 1), (card, 2)])

    def contents(body) -> list[str]:
        return sorted(entry["product"]["name"] for entry in body["items"])

    for headers in ({}, factory.headers(factory.user())):
        assert contents(client.get(f"/api/v1/packages/{package.id}", headers=headers).json) == ["Mug"]
        assert contents(client.get(f"/api/v2/packages/{package.id}", headers=headers).json["data"]) == ["Mug"]
        assert [contents(p) for p in client.get("/api/v1/packages", headers=headers).json] == [["Mug"]]
        assert [contents(p) for p in client.get("/api/v2/packages", headers=headers).json["data"]] == [["Mug"]]

    # Administrators see every item, so they can see what to replace.
    admin = factory.headers(factory.admin())
    everything = ["Mug", "Withdrawn card"]
    assert contents(client.get(f"/api/v1/packages/{package.id}", headers=admin).json) == everything
    assert [contents(p) for p in client.get("/api/v2/packages", headers=admin).json["data"]] == [everything]
    changed = client.patch(f"/api/v1/packages/{package.id}", json={"name": "Gift box 2"}, headers=admin)
    assert changed.status_code == 200 and contents(changed.json) == everything


def test_inactive_package_is_404_for_the_public(client, factory):
    package = factory.package(is_active=False)
    assert client.get(f"/api/v1/packages/{package.id}").status_code == 404
    admin = factory.headers(factory.admin())
    assert client.get(f"/api/v1/packages/{package.id}", headers=admin).status_code == 200


# Admin writes


def test_admin_creates_a_package(client, factory):
    body = package_body(factory)
    response = client.post("/api/v1/packages", json=body, headers=factory.headers(factory.admin()))
    assert response.status_code == 201, response.json
    created = response.json
    assert (created["name"], created["slug"], created["price"]) == ("Birthday box", "birthday-box", "29.90")
    assert (created["brand"], created["subCategory"]) == (None, None)
    assert {item["product"]["name"]: item["quantity"] for item in created["items"]} == {"Mug": 2, "Card": 1}
    assert client.get(f"/api/v1/packages/{created['id']}").json == created


@pytest.mark.parametrize(("change", "field"), [
    ({"items": []}, "items"),
    ({"items": [{"productId": 999999, "quantity": 1}]}, "items"),
    ({"items": [{"productId": 1}]}, "items"),
    ({"items": [{"productId": 1, "quantity": 0}]}, "items"),
    ({"brandId": 999999}, "brandId"),
    ({"price": "0.001"}, "price"),
    ({"quantity": -1}, "quantity"),
    ({"materials": []}, "materials"),
])
def test_invalid_package_bodies_are_422(client, factory, change, field):
    response = client.post("/api/v1/packages", json=package_body(factory, **change),
                           headers=factory.headers(factory.admin()))
    assert response.status_code == 422, response.json
    assert field in response.json["error"]["details"]


def test_package_items_are_required_and_distinct(client, factory):
    admin = factory.headers(factory.admin())
    body = package_body(factory)
    items = body.pop("items")
    assert client.post("/api/v1/packages", json=body, headers=admin).status_code == 422
    twice = [items[0], {**items[0], "quantity": 5}]
    response = client.post("/api/v1/packages", json={**body, "items": twice}, headers=admin)
    assert response.status_code == 422 and "items" in response.json["error"]["details"]


def test_duplicate_package_names_are_409(client, factory):
    factory.package(name="Birthday box")
    response = client.post("/api/v1/packages", json=package_body(factory), headers=factory.headers(factory.admin()))
    assert response.status_code == 409


def test_patch_replaces_the_items(client, factory):
    mug, card, pen = factory.product(name="Mug"), factory.product(name="Card"), factory.product(name="Pen")
    package = factory.package(products=[(mug, 1), (card, 1)])
    body = {"items": [{"productId": card.id, "quantity": 3}, {"productId": pen.id, "quantity": 1}]}
    response = client.patch(f"/api/v1/packages/{package.id}", json=body, headers=factory.headers(factory.admin()))
    assert response.status_code == 200, response.json
    assert {item["product"]["name"]: item["quantity"] for item in response.json["items"]} == {"Card": 3, "Pen": 1}
    price_only = client.patch(f"/api/v1/packages/{package.id}", json={"price": "9.99"},
                              headers=factory.headers(factory.admin()))
    assert price_only.json["price"] == "9.99" and len(price_only.json["items"]) == 2


def test_package_writes_need_an_admin(client, factory):
    package = factory.package()
    customer = factory.headers(factory.user())
    assert client.post("/api/v1/packages", json=package_body(factory), headers=customer).status_code == 403
    assert client.patch(f"/api/v1/packages/{package.id}", json={"price": "1.00"}).status_code == 401
    assert client.delete(f"/api/v1/packages/{package.id}", headers=customer).status_code == 403
    assert client.patch(f"/api/v1/packages/{package.id}/stock", json={"delta": 1}).status_code == 401


def test_admin_deletes_a_package_but_not_an_ordered_one(client, factory):
    package, ordered = factory.package(), factory.package()
    factory.order_line_for(ordered)
    admin = factory.headers(factory.admin())
    assert client.delete(f"/api/v1/packages/{package.id}", headers=admin).status_code == 204
    assert client.get(f"/api/v1/packages/{package.id}").status_code == 404
    assert client.delete(f"/api/v1/packages/{ordered.id}", headers=admin).status_code == 409
    assert client.get(f"/api/v1/packages/{ordered.id}").status_code == 200


def test_deleting_a_package_keeps_its_products(client, factory):
    mug = factory.product()
    package = factory.package(products=[(mug, 1)])
    assert client.delete(f"/api/v1/packages/{package.id}", headers=factory.headers(factory.admin())).status_code == 204
    assert client.get(f"/api/v1/products/{mug.id}").status_code == 200


# Stock


def test_package_stock_set_and_delta(client, factory):
    package = factory.package(quantity=5)
    admin = factory.headers(factory.admin())
    url = f"/api/v1/packages/{package.id}/stock"
    assert client.patch(url, json={"quantity": 2}, headers=admin).json["quantity"] == 2
    assert client.patch(url, json={"delta": 3}, headers=admin).json["quantity"] == 5
    short = client.patch(url, json={"delta": -6}, headers=admin)
    assert short.status_code == 409 and short.json["error"]["code"] == "INSUFFICIENT_STOCK"
    assert client.get(f"/api/v1/packages/{package.id}").json["quantity"] == 5
    assert client.patch(url, json={"quantity": 1, "delta": 1}, headers=admin).status_code == 422


# Query counts


def test_listing_and_details_run_one_statement(make_app, factory):
    products = [factory.product(), factory.product()]
    customizations = [factory.customization(), factory.customization()]
    offer, brand, subcategory = factory.offer(), factory.brand(), factory.subcategory()
    for _ in range(30):
        package = factory.package(products=[(products[0], 1), (products[1], 2)], customizations=customizations,
                                  offer=offer, brand=brand, sub_category=subcategory)
        factory.attach_images(package, factory.upload(), factory.upload())
    package_id = package.id
    uncached = make_app(CACHE_ENABLED=False)  # the page cache's own bookkeeping is not the read's
    for path, count in ((f"/api/v2/packages?limit={3}", 3), (f"/api/v2/packages?limit={30}", 30),
                        (f"/api/v2/packages/{package_id}", None)):
        with uncached.app_context(), factory.statement_counter() as statements:
            response = uncached.test_client().get(path)
        data = response.json["data"]
        for item in data if count else [data]:
            assert len(item["items"]) == 2 and len(item["images"]) == 2 and len(item["customizations"]) == 2
        assert count is None or len(data) == count
        assert len(statements) == 1, statements  # the rows, their total and their links in one statement
