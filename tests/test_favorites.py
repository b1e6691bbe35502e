"""Favourites: idempotent add and remove, the owner's list with item summaries, and its statement count."""

from __future__ import annotations

from decimal import Decimal

from fantasize.extensions import db
from fantasize.models import Product

FAVORITES = "/api/v1/users/me/favorites"


def put(client, factory, user, item, version="v1"):
    kind = "products" if isinstance(item, Product) else "packages"
    return client.put(f"/api/{version}/users/me/favorites/{kind}/{item.id}", headers=factory.headers(user))


def test_adding_a_product_is_201_then_200_with_the_same_favourite(client, factory):
    user, product = factory.user(), factory.product(name="Silver ring", price=Decimal("25.50"))
    first = put(client, factory, user, product)
    assert first.status_code == 201
    assert first.json["type"] == "product"
    assert first.json["item"]["id"] == product.id and first.json["item"]["name"] == "Silver ring"
    assert first.json["item"]["price"] == "25.50"
    again = put(client, factory, user, product)
    assert again.status_code == 200
    assert again.json["id"] == first.json["id"]
    assert len(client.get(FAVORITES, headers=factory.headers(user)).json) == 1


def test_adding_a_package_names_its_type(client, factory):
    user, package = factory.user(), factory.package()
    response = put(client, factory, user, package)
    assert response.status_code == 201
    assert response.json["type"] == "package" and response.json["item"]["id"] == package.id


def test_unknown_or_inactive_items_cannot_be_added(client, factory):
    user = factory.user()
    headers = factory.headers(user)
    assert client.put("/api/v1/users/me/favorites/products/999999", headers=headers).status_code == 404
    assert client.put("/api/v1/users/me/favorites/packages/999999", headers=headers).status_code == 404
    assert put(client, factory, user, factory.product(is_active=False)).status_code == 404


def test_removing_is_204_whether_or_not_it_was_a_favourite(client, factory):
    user, product, package = factory.user(), factory.product(), factory.package()
    headers = factory.headers(user)
    put(client, factory, user, product)
    put(client, factory, user, package)
    assert client.delete(f"/api/v1/users/me/favorites/products/{product.id}", headers=headers).status_code == 204
    assert client.delete(f"/api/v1/users/me/favorites/products/{product.id}", headers=headers).status_code == 204
    assert client.delete("/api/v1/users/me/favorites/packages/999999", headers=headers).status_code == 204
    assert [f["type"] for f in client.get(FAVORITES, headers=headers).json] == ["package"]


def test_removing_leaves_other_users_favourites_alone(client, factory):
    owner, other, product = factory.user(), factory.user(), factory.product()
    put(client, factory, owner, product)
    put(client, factory, other, product)
    removed = client.delete(f"/api/v1/users/me/favorites/products/{product.id}", headers=factory.headers(other))
    assert removed.status_code == 204
    assert client.get(FAVORITES, headers=factory.headers(other)).json == []
    assert [f["item"]["id"] for f in client.get(FAVORITES, headers=factory.headers(owner)).json] == [product.id]


def test_the_list_is_the_owners_newest_first_and_paginated(client, factory):
    user, other = factory.user(), factory.user()
    items = [factory.product(), factory.package(), factory.product()]
    ids = [put(client, factory, user, item).json["id"] for item in items]
    put(client, factory, other, factory.product())
    response = client.get(f"{FAVORITES}?limit=2", headers=factory.headers(user))
    assert response.status_code == 200
    assert [f["id"] for f in response.json] == [ids[2], ids[1]]
    assert response.headers["X-Total-Count"] == "3"
    page_two = client.get(f"{FAVORITES}?limit=2&page=2", headers=factory.headers(user)).json
    assert [f["id"] for f in page_two] == [ids[0]]


def test_v1_summarises_the_item_in_the_v1_shape(client, factory):
    user = factory.user()
    product = factory.product(price=Decimal("40.00"), offer=factory.offer(discount_percent=Decimal("25")))
    factory.attach_images(product, factory.upload())
    put(client, factory, user, product)
    favourite = client.get(FAVORITES, headers=factory.headers(user)).json[0]
    assert set(favourite) == {"id", "type", "item", "createdAt"}
    assert set(favourite["item"]) == {"id", "name", "slug", "price", "discountPrice", "status", "ratingAverage",
                                      "images"}
    assert favourite["item"]["price"] == "40.00" and favourite["item"]["discountPrice"] == "30.00"
    assert favourite["item"]["status"] == "in_stock"
    assert favourite["item"]["images"][0].startswith("/api/v1/uploads/")


def test_v2_summarises_the_item_with_the_v2_groups(client, factory):
    user = factory.user()
    package = factory.package(price=Decimal("40.00"), quantity=3, offer=factory.offer(discount_percent=Decimal("25")))
    response = put(client, factory, user, package, version="v2")
    assert response.status_code == 201 and response.json["success"] is True
    body = client.get("/api/v2/users/me/favorites", headers=factory.headers(user)).json
    item = body["data"][0]["item"]
    assert set(item) == {"id", "name", "slug", "pricing", "stock", "rating", "images"}
    assert item["pricing"]["price"] == "40.00" and item["pricing"]["effectivePrice"] == "30.00"
    assert item["stock"] == {"quantity": 3, "status": "running_low"}
    assert item["rating"] == {"average": 0.0, "count": 0}
    assert body["meta"]["pagination"]["total"] == 1


def test_items_withdrawn_from_sale_drop_out_of_the_list_until_they_return(client, factory):
    user, product, shown = factory.user(), factory.product(), factory.product()
    headers = factory.headers(user)
    put(client, factory, user, product)
    put(client, factory, user, shown)
    product.is_active = False
    db.session.commit()
    assert [f["item"]["id"] for f in client.get(FAVORITES, headers=headers).json] == [shown.id]
    product.is_active = True
    db.session.commit()
    assert len(client.get(FAVORITES, headers=headers).json) == 2


def test_favourites_need_a_token(client, factory):
    product = factory.product()
    assert client.get(FAVORITES).status_code == 401
    assert client.put(f"/api/v1/users/me/favorites/products/{product.id}").status_code == 401
    assert client.delete(f"/api/v1/users/me/favorites/products/{product.id}").status_code == 401


def test_listing_runs_the_same_number_of_statements_for_3_or_30_favourites(client, factory):
    counts = {}
    for size in (3, 30):
        user = factory.user()
        offer = factory.offer()
        for n in range(size):
            item = factory.product(offer=offer) if n % 2 else factory.package(offer=offer)
            factory.attach_images(item, factory.upload())
            put(client, factory, user, item)
        headers = factory.headers(user)
        with factory.statement_counter() as statements:
            response = client.get(f"/api/v2/users/me/favorites?limit={size}", headers=headers)
        assert len(response.json["data"]) == size
        assert all(len(f["item"]["images"]) == 1 for f in response.json["data"])
        counts[size] = len(statements)
    assert counts[3] == counts[30]
    assert counts[30] <= 5  # the user, the count, favourites with items and offers, then each kind's images
