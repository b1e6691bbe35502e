"""Products: public listing (filters, sorts, pages), the v1 and v2 shapes, admin writes, stock and query counts."""

from __future__ import annotations

import threading
from datetime import timedelta
from decimal import Decimal

import pytest

from fantasize import events
from fantasize.events import StockChanged
from fantasize.extensions import db
from fantasize.models.base import utcnow

V1_KEYS = {
    "id", "name", "slug", "description", "price", "discountPrice", "quantity", "status", "ratingAverage", "brand",
    "subCategory", "offer", "images", "materials", "customizations", "createdAt", "updatedAt",
}
V2_KEYS = {
    "id", "name", "slug", "description", "pricing", "stock", "rating", "brand", "subCategory", "offer", "images",
    "materials", "customizations", "createdAt", "updatedAt",
}


def names(response) -> list[str]:
    assert response.status_code == 200, response.json
    return [item["name"] for item in response.json]


def product_body(factory, **overrides) -> dict:
    subcategory = factory.subcategory()
    body = {
        "name": "Silver ring", "description": "A ring", "price": "25.50", "quantity": 8,
        "brandId": factory.brand().id, "subCategoryId": subcategory.id,
    }
    return {**body, **overrides}


# Listing and filters


def test_public_list_shows_only_active_products(client, factory):
    factory.product(name="Shown")
    factory.product(name="Hidden", is_active=False)
    assert names(client.get("/api/v1/products")) == ["Shown"]


def test_admin_may_include_inactive_products_but_others_may_not(client, factory):
    factory.product(name="Shown")
    factory.product(name="Hidden", is_active=False)
    admin = factory.headers(factory.admin())
    assert set(names(client.get("/api/v1/products?includeInactive=true", headers=admin))) == {"Shown", "Hidden"}
    assert names(client.get("/api/v1/products?includeInactive=false", headers=admin)) == ["Shown"]
    customer = factory.headers(factory.user())
    assert client.get("/api/v1/products?includeInactive=true", headers=customer).status_code == 403
    assert client.get("/api/v1/products?includeInactive=true").status_code == 401


def test_q_matches_name_or_description_case_insensitively(client, factory):
    factory.product(name="Silver Ring", description="plain")
    factory.product(name="Necklace", description="Sterling SILVER chain")
    factory.product(name="Mug", description="ceramic")
    assert set(names(client.get("/api/v1/products?q=silver"))) == {"Silver Ring", "Necklace"}
    assert names(client.get("/api/v1/products?q=CERAMIC")) == ["Mug"]


def test_q_treats_wildcards_and_quotes_as_plain_text(client, factory):
    factory.product(name="DROP earrings -- 50% off;")
    factory.product(name="500 beads")
    factory.product(name="O'Brien scarf")
    assert names(client.get("/api/v1/products", query_string={"q": "50%"})) == ["DROP earrings -- 50% off;"]
    assert names(client.get("/api/v1/products", query_string={"q": "o'brien"})) == ["O'Brien scarf"]
    assert names(client.get("/api/v1/products", query_string={"q": "_"})) == []


def test_category_and_subcategory_filters(client, factory):
    category = factory.category()
    rings, chains = factory.subcategory(category=category), factory.subcategory(category=category)
    factory.product(name="Ring", sub_category=rings)
    factory.product(name="Chain", sub_category=chains)
    factory.product(name="Mug")
    assert set(names(client.get(f"/api/v1/products?category={category.id}"))) == {"Ring", "Chain"}
    assert names(client.get(f"/api/v1/products?subcategory={chains.id}")) == ["Chain"]
    assert names(client.get(f"/api/v1/products?category={category.id}&subcategory={rings.id}")) == ["Ring"]


def test_brand_and_material_filters(client, factory):
    acme, gold, silk = factory.brand(), factory.material(), factory.material()
    factory.product(name="Gold ring", brand=acme, materials=[(gold, 90)])
    factory.product(name="Silk scarf", brand=acme, materials=[(silk, 100)])
    factory.product(name="Gold chain", materials=[(gold, 50), (silk, 50)])
    assert set(names(client.get(f"/api/v1/products?brand={acme.id}"))) == {"Gold ring", "Silk scarf"}
    assert set(names(client.get(f"/api/v1/products?material={gold.id}"))) == {"Gold ring", "Gold chain"}
    assert names(client.get(f"/api/v1/products?brand={acme.id}&material={gold.id}")) == ["Gold ring"]


def test_price_range_filters_on_the_price_customers_pay(client, factory):
    factory.product(name="Cheap", price=Decimal("5.00"))
    factory.product(name="Middle", price=Decimal("15.00"))
    factory.product(name="Dear", price=Decimal("40.00"))
    factory.product(name="Dear on offer", price=Decimal("40.00"), offer=factory.offer(discount_percent=Decimal("75")))
    assert set(names(client.get("/api/v1/products?minPrice=10&maxPrice=15"))) == {"Middle", "Dear on offer"}
    assert set(names(client.get("/api/v1/products?minPrice=15.01"))) == {"Dear"}
    assert set(names(client.get("/api/v1/products?maxPrice=5"))) == {"Cheap"}


def test_in_stock_filter(client, factory):
    factory.product(name="Plenty", quantity=10)
    factory.product(name="Last one", quantity=1)
    factory.product(name="Sold out", quantity=0)
    assert set(names(client.get("/api/v1/products?inStock=true"))) == {"Plenty", "Last one"}
    assert names(client.get("/api/v1/products?inStock=false")) == ["Sold out"]


def test_on_offer_filter_counts_only_active_offers_inside_their_window(client, factory):
    now = utcnow()
    factory.product(name="Current", offer=factory.offer())
    factory.product(name="Expired", offer=factory.offer(valid_from=now - timedelta(days=9),
                                                        valid_to=now - timedelta(days=1)))
    factory.product(name="Future", offer=factory.offer(valid_from=now + timedelta(days=1),
                                                       valid_to=now + timedelta(days=9)))
    factory.product(name="Switched off", offer=factory.offer(is_active=False))
    factory.product(name="No offer")
    assert names(client.get("/api/v1/products?onOffer=true")) == ["Current"]
    assert set(names(client.get("/api/v1/products?onOffer=false"))) == {
        "Expired", "Future", "Switched off", "No offer",
    }


@pytest.fixture
def sortable(factory):
    """Five products whose prices, ratings, names and ages give a different order for every sort."""
    now = utcnow()
    factory.product(name="banana", price=Decimal("30.00"), rating_average=Decimal("4.5"), rating_count=2,
                    created_at=now - timedelta(days=3))
    factory.product(name="Apple", price=Decimal("10.00"), rating_average=Decimal("3.0"), rating_count=5,
                    created_at=now - timedelta(days=1))
    factory.product(name="cherry", price=Decimal("20.00"), rating_average=Decimal("4.5"), rating_count=10,
                    created_at=now - timedelta(days=2), offer=factory.offer(discount_percent=Decimal("60")))
    factory.product(name="date", price=Decimal("10.00"), rating_average=Decimal("1.0"), rating_count=1,
                    created_at=now - timedelta(days=4))
    factory.product(name="elderberry", price=Decimal("10.00"), rating_average=Decimal("1.0"), rating_count=1,
                    created_at=now - timedelta(days=1))


@pytest.mark.parametrize(("sort", "expected"), [
    ("price", ["cherry", "Apple", "date", "elderberry", "banana"]),  # cherry costs 8.00 on offer
    ("-price", ["banana", "Apple", "date", "elderberry", "cherry"]),
    ("newest", ["elderberry", "Apple", "cherry", "banana", "date"]),  # same age: the later id first
    ("rating", ["cherry", "banana", "Apple", "date", "elderberry"]),
    ("name", ["Apple", "banana", "cherry", "date", "elderberry"]),
])
def test_sorts(client, sortable, sort, expected):
    assert names(client.get(f"/api/v1/products?sort={sort}")) == expected


def test_newest_is_the_default_sort(client, sortable):
    assert names(client.get("/api/v1/products")) == names(client.get("/api/v1/products?sort=newest"))


def test_pages_never_repeat_or_skip_items_with_equal_sort_values(client, factory):
    for n in range(7):
        factory.product(name=f"Same {n}", price=Decimal("9.99"))
    seen = []
    for page in (1, 2, 3, 4):
        seen += names(client.get(f"/api/v1/products?sort=price&limit=2&page={page}"))
    assert sorted(seen) == [f"Same {n}" for n in range(7)]


# Pagination


def test_v1_pagination_headers(client, factory):
    for n in range(5):
        factory.product(name=f"P{n}")
    response = client.get("/api/v1/products?limit=2&page=2&sort=name")
    assert names(response) == ["P2", "P3"]
    assert response.headers["X-Total-Count"] == "5"
    link = response.headers["Link"]
    assert 'page=1' in link.split(",")[0] and 'rel="prev"' in link.split(",")[0]
    assert 'page=3' in link.split(",")[1] and 'rel="next"' in link.split(",")[1]
    assert "sort=name" in link
    first = client.get("/api/v1/products?limit=2&page=1")
    assert 'rel="prev"' not in first.headers["Link"] and 'rel="next"' in first.headers["Link"]


def test_v2_pagination_meta(client, factory):
    for n in range(5):
        factory.product(name=f"P{n}")
    body = client.get("/api/v2/products?limit=2&page=3&sort=name").json
    assert [item["name"] for item in body["data"]] == ["P4"]
    assert body["meta"]["pagination"] == {"page": 3, "limit": 2, "total": 5, "pages": 3}


@pytest.mark.parametrize("query", [
    "sort=banana", "minPrice=abc", "maxPrice=NaN", "minPrice=-1", "minPrice=20&maxPrice=10", "page=0", "page=x",
    "limit=500", "limit=0", "inStock=maybe", "onOffer=2x", "category=abc", "brand=0", "material=-3",
    "includeInactive=perhaps",
])
def test_bad_query_values_are_400(client, query):
    response = client.get(f"/api/v1/products?{query}")
    assert response.status_code == 400
    assert response.json["error"]["code"] == "BAD_REQUEST"


# Shapes and versions


@pytest.fixture
def full_product(factory):
    gold = factory.material(name="Gold")
    silver = factory.material(name="Silver")
    product = factory.product(
        name="Locket", price=Decimal("10.05"), quantity=3, rating_average=Decimal("4.25"), rating_count=4,
        offer=factory.offer(discount_percent=Decimal("10")), materials=[(silver, 25), (gold, 75)],
        customizations=[factory.customization(name="Engraving")],
    )
    factory.attach_images(product, factory.upload(), factory.upload(mime_type="image/jpeg"))
    return product


def test_v1_shape(client, full_product):
    body = client.get(f"/api/v1/products/{full_product.id}").json
    assert set(body) == V1_KEYS
    assert body["price"] == "10.05"
    assert body["discountPrice"] == "9.05"  # 9.045 rounds half up
    assert body["quantity"] == 3 and body["status"] == "running_low"
    assert body["ratingAverage"] == 4.25
    assert body["brand"] == {"id": full_product.brand.id, "name": full_product.brand.name}
    assert body["subCategory"] == {"id": full_product.sub_category.id, "name": full_product.sub_category.name}
    assert body["offer"] == {"id": full_product.offer.id, "discountPercent": "10.00"}
    assert body["materials"] == [{"name": "Gold", "percentage": 75}, {"name": "Silver", "percentage": 25}]
    assert [c["name"] for c in body["customizations"]] == ["Engraving"]
    assert len(body["images"]) == 2 and all(url.startswith("/api/v1/uploads/") for url in body["images"])
    assert body["createdAt"].endswith("Z")


def test_v2_shape(client, full_product):
    response = client.get(f"/api/v2/products/{full_product.id}")
    body = response.json
    assert body["success"] is True and body["meta"]["version"] == "v2"
    data = body["data"]
    assert set(data) == V2_KEYS
    assert data["pricing"] == {"price": "10.05", "effectivePrice": "9.05", "discountPercent": "10.00",
                               "currency": "USD"}
    assert data["stock"] == {"quantity": 3, "status": "running_low"}
    assert data["rating"] == {"average": 4.25, "count": 4}
    assert [set(image) for image in data["images"]] == [{"id", "url", "mimeType"}] * 2
    assert [image["mimeType"] for image in data["images"]] == ["image/png", "image/jpeg"]


def test_v2_pricing_without_an_offer(client, factory):
    product = factory.product(price=Decimal("12.00"), quantity=0)
    data = client.get(f"/api/v2/products/{product.id}").json["data"]
    assert data["pricing"] == {"price": "12.00", "effectivePrice": "12.00", "discountPercent": None, "currency": "USD"}
    assert data["offer"] is None
    assert data["stock"] == {"quantity": 0, "status": "out_of_stock"}


def test_currency_and_low_stock_threshold_come_from_config(make_app, factory):
    client = make_app(CURRENCY="EUR", LOW_STOCK_THRESHOLD=10).test_client()
    product = factory.product(quantity=8)
    data = client.get(f"/api/v2/products/{product.id}").json["data"]
    assert data["pricing"]["currency"] == "EUR"
    assert data["stock"]["status"] == "running_low"


def test_the_same_product_in_every_way_of_asking_for_a_version(client, full_product):
    path = f"/products/{full_product.id}"
    v1 = client.get(f"/api/v1{path}")
    by_header = client.get(f"/api{path}", headers={"API-Version": "v2"})
    by_query = client.get(f"/api{path}?version=v2")
    assert v1.headers["API-Version"] == "v1" and set(v1.json) == V1_KEYS
    for response in (by_header, by_query):
        assert response.headers["API-Version"] == "v2"
        assert set(response.json["data"]) == V2_KEYS
        assert response.json["data"]["id"] == v1.json["id"]


def test_list_uses_the_same_shapes(client, full_product):
    assert [set(item) for item in client.get("/api/v1/products").json] == [V1_KEYS]
    assert [set(item) for item in client.get("/api/v2/products").json["data"]] == [V2_KEYS]


@pytest.mark.parametrize(("window", "discounted"), [
    ("current", "15.92"), ("expired", None), ("future", None), ("inactive", None),
])
def test_effective_price_applies_only_active_offers_inside_their_window(client, factory, window, discounted):
    now = utcnow()
    offers = {
        "current": {},
        "expired": {"valid_from": now - timedelta(days=5), "valid_to": now - timedelta(seconds=1)},
        "future": {"valid_from": now + timedelta(hours=1), "valid_to": now + timedelta(days=5)},
        "inactive": {"is_active": False},
    }
    product = factory.product(price=Decimal("19.90"), offer=factory.offer(**offers[window]))
    v1 = client.get(f"/api/v1/products/{product.id}").json
    v2 = client.get(f"/api/v2/products/{product.id}").json["data"]
    assert v1["discountPrice"] == discounted
    assert v2["pricing"]["effectivePrice"] == (discounted or "19.90")
    assert v2["pricing"]["discountPercent"] == ("20.00" if discounted else None)


NOT_CURRENT = {
    "expired": lambda now: {"valid_from": now - timedelta(days=5), "valid_to": now - timedelta(seconds=1)},
    "unstarted": lambda now: {"valid_from": now + timedelta(hours=1), "valid_to": now + timedelta(days=5)},
    "switched off": lambda now: {"is_active": False},
}


@pytest.mark.parametrize("window", NOT_CURRENT)
def test_the_public_never_sees_an_offer_that_is_not_current(client, factory, window):
    offer = factory.offer(**NOT_CURRENT[window](utcnow()))
    product = factory.product(offer=offer)
    assert client.get(f"/api/v1/offers/{offer.id}").status_code == 404
    for headers in ({}, factory.headers(factory.user())):
        assert client.get(f"/api/v1/products/{product.id}", headers=headers).json["offer"] is None
        assert client.get(f"/api/v2/products/{product.id}", headers=headers).json["data"]["offer"] is None
        assert [p["offer"] for p in client.get("/api/v1/products", headers=headers).json] == [None]
        assert [p["offer"] for p in client.get("/api/v2/products", headers=headers).json["data"]] == [None]

    # Administrators see the link they made, though it gives no discount now.
    seen = client.get(f"/api/v1/products/{product.id}", headers=factory.headers(factory.admin())).json
    assert seen["offer"] == {"id": offer.id, "discountPercent": "20.00"}
    assert seen["discountPrice"] is None


def test_inactive_product_is_404_for_the_public_and_visible_to_admins(client, factory):
    product = factory.product(is_active=False)
    assert client.get(f"/api/v1/products/{product.id}").status_code == 404
    assert client.get(f"/api/v1/products/{product.id}", headers=factory.headers(factory.user())).status_code == 404
    admin = factory.headers(factory.admin())
    assert client.get(f"/api/v1/products/{product.id}", headers=admin).status_code == 200
    assert client.get("/api/v1/products/999999").status_code == 404


# Admin writes


def test_admin_creates_a_product(client, factory):
    gold, engraving = factory.material(name="Gold"), factory.customization()
    offer, picture = factory.offer(), factory.upload()
    body = product_body(factory, materials=[{"materialId": gold.id, "percentage": 60}], customizationIds=[engraving.id],
                        imageIds=[picture.id], offerId=offer.id, sku="RING-1")
    response = client.post("/api/v1/products", json=body, headers=factory.headers(factory.admin()))
    assert response.status_code == 201, response.json
    created = response.json
    assert created["name"] == "Silver ring" and created["slug"] == "silver-ring"
    assert created["price"] == "25.50" and created["discountPrice"] == "20.40"
    assert created["brand"]["id"] == body["brandId"] and created["subCategory"]["id"] == body["subCategoryId"]
    assert created["materials"] == [{"name": "Gold", "percentage": 60}]
    assert [c["id"] for c in created["customizations"]] == [engraving.id]
    assert created["images"] == [picture.url]
    assert client.get(f"/api/v1/products/{created['id']}").json == created


def test_an_inactive_product_can_be_created_and_stays_hidden(client, factory):
    response = client.post("/api/v1/products", json=product_body(factory, isActive=False),
                           headers=factory.headers(factory.admin()))
    assert response.status_code == 201
    assert client.get(f"/api/v1/products/{response.json['id']}").status_code == 404


def test_names_that_slugify_alike_get_distinct_slugs(client, factory):
    admin = factory.headers(factory.admin())
    first = client.post("/api/v1/products", json=product_body(factory, name="Mug!"), headers=admin).json
    second = client.post("/api/v1/products", json=product_body(factory, name="Mug?"), headers=admin).json
    assert (first["slug"], second["slug"]) == ("mug", "mug-2")


@pytest.mark.parametrize("text", ["O'Brien", "Select your size", "DROP earrings -- 50% off;"])
def test_text_round_trips_exactly(client, factory, text):
    body = product_body(factory, name=text, description=f"{text} <- exactly")
    created = client.post("/api/v1/products", json=body, headers=factory.headers(factory.admin()))
    assert created.status_code == 201, created.json
    fetched = client.get(f"/api/v1/products/{created.json['id']}").json
    assert (fetched["name"], fetched["description"]) == (text, f"{text} <- exactly")
    assert names(client.get("/api/v1/products", query_string={"q": text})) == [text]


def test_customers_may_not_write(client, factory):
    product = factory.product()
    customer = factory.headers(factory.user())
    assert client.post("/api/v1/products", json=product_body(factory), headers=customer).status_code == 403
    assert client.patch(f"/api/v1/products/{product.id}", json={"price": "1.00"}, headers=customer).status_code == 403
    assert client.delete(f"/api/v1/products/{product.id}", headers=customer).status_code == 403
    stock = client.patch(f"/api/v1/products/{product.id}/stock", json={"quantity": 1}, headers=customer)
    assert stock.status_code == 403
    assert client.get(f"/api/v1/products/{product.id}").json["price"] == "19.90"


def test_anonymous_callers_may_not_write(client, factory):
    product = factory.product()
    assert client.post("/api/v1/products", json=product_body(factory)).status_code == 401
    assert client.patch(f"/api/v1/products/{product.id}", json={"price": "1.00"}).status_code == 401
    assert client.delete(f"/api/v1/products/{product.id}").status_code == 401
    assert client.patch(f"/api/v1/products/{product.id}/stock", json={"quantity": 1}).status_code == 401


INVALID_BODIES = [
    ({"price": "-1.00"}, "price"),
    ({"price": 0}, "price"),
    ({"price": "1.999"}, "price"),
    ({"price": [1]}, "price"),
    ({"quantity": -1}, "quantity"),
    ({"quantity": "5"}, "quantity"),
    ({"quantity": 2.5}, "quantity"),
    ({"name": "x" * 201}, "name"),
    ({"name": ""}, "name"),
    ({"isActive": "yes"}, "isActive"),
    ({"colour": "red"}, "colour"),
    ({"brandId": 999999}, "brandId"),
    ({"brandId": "1"}, "brandId"),
    ({"subCategoryId": 999999}, "subCategoryId"),
    ({"offerId": 999999}, "offerId"),
    ({"customizationIds": [999999]}, "customizationIds"),
    ({"imageIds": [999999]}, "imageIds"),
    ({"materials": [{"materialId": 999999, "percentage": 10}]}, "materials"),
    ({"sku": "x" * 65}, "sku"),
]


@pytest.mark.parametrize(("change", "field"), INVALID_BODIES)
def test_invalid_product_bodies_are_422(client, factory, change, field):
    response = client.post("/api/v1/products", json=product_body(factory, **change),
                           headers=factory.headers(factory.admin()))
    assert response.status_code == 422, response.json
    assert response.json["error"]["code"] == "VALIDATION_ERROR"
    assert field in response.json["error"]["details"]


def test_missing_required_fields_are_422(client, factory):
    body = product_body(factory)
    del body["name"], body["price"]
    response = client.post("/api/v1/products", json=body, headers=factory.headers(factory.admin()))
    assert response.status_code == 422
    assert {"name", "price"} <= set(response.json["error"]["details"])


@pytest.mark.parametrize("shares", [
    [{"percentage": 0}], [{"percentage": 101}], [{"percentage": 60}, {"percentage": 41}], "same material twice",
])
def test_material_shares_are_1_to_100_percent_distinct_and_at_most_100_in_all(client, factory, shares):
    first, second = factory.material(), factory.material()
    if shares == "same material twice":
        materials = [{"materialId": first.id, "percentage": 10}, {"materialId": first.id, "percentage": 20}]
    else:
        materials = [{"materialId": m.id, **share} for m, share in zip((first, second), shares, strict=False)]
    response = client.post("/api/v1/products", json=product_body(factory, materials=materials),
                           headers=factory.headers(factory.admin()))
    assert response.status_code == 422
    assert "materials" in response.json["error"]["details"]


def test_an_upload_that_is_not_an_image_cannot_be_a_product_image(client, factory):
    pdf = factory.upload(mime_type="application/pdf")
    response = client.post("/api/v1/products", json=product_body(factory, imageIds=[pdf.id]),
                           headers=factory.headers(factory.admin()))
    assert response.status_code == 422
    assert "imageIds" in response.json["error"]["details"]


def test_write_bodies_must_be_json_objects(client, factory):
    admin = factory.headers(factory.admin())
    assert client.post("/api/v1/products", data="name=x", headers=admin).status_code == 415
    malformed = client.post("/api/v1/products", data="{", headers=admin, content_type="application/json")
    assert malformed.status_code == 400


def test_duplicate_names_are_409(client, factory):
    factory.product(name="Taken")
    other = factory.product(name="Free")
    admin = factory.headers(factory.admin())
    created = client.post("/api/v1/products", json=product_body(factory, name="Taken"), headers=admin)
    assert created.status_code == 409 and created.json["error"]["code"] == "CONFLICT"
    renamed = client.patch(f"/api/v1/products/{other.id}", json={"name": "Taken"}, headers=admin)
    assert renamed.status_code == 409
    assert client.get(f"/api/v1/products/{other.id}").json["name"] == "Free"


def test_patch_changes_only_the_given_fields(client, factory):
    gold = factory.material(name="Gold")
    product = factory.product(name="Ring", price=Decimal("10.00"), materials=[(gold, 50)])
    response = client.patch(f"/api/v1/products/{product.id}", json={"price": "12.50"},
                            headers=factory.headers(factory.admin()))
    assert response.status_code == 200, response.json
    assert response.json["price"] == "12.50"
    assert response.json["name"] == "Ring" and response.json["materials"] == [{"name": "Gold", "percentage": 50}]


def test_patch_renames_and_reslugs(client, factory):
    product = factory.product(name="Old name")
    response = client.patch(f"/api/v1/products/{product.id}", json={"name": "New name"},
                            headers=factory.headers(factory.admin()))
    assert (response.json["name"], response.json["slug"]) == ("New name", "new-name")


def test_patch_lists_replace_the_old_ones(client, factory):
    gold, silver = factory.material(name="Gold"), factory.material(name="Silver")
    old_custom, new_custom = factory.customization(), factory.customization()
    first, second, third = factory.upload(), factory.upload(), factory.upload()
    product = factory.product(materials=[(gold, 50), (silver, 50)], customizations=[old_custom])
    factory.attach_images(product, first, second)
    body = {
        "materials": [{"materialId": silver.id, "percentage": 80}],
        "customizationIds": [new_custom.id],
        "imageIds": [third.id, first.id],
    }
    response = client.patch(f"/api/v1/products/{product.id}", json=body, headers=factory.headers(factory.admin()))
    assert response.status_code == 200, response.json
    assert response.json["materials"] == [{"name": "Silver", "percentage": 80}]
    assert [c["id"] for c in response.json["customizations"]] == [new_custom.id]
    assert response.json["images"] == [third.url, first.url]
    cleared = client.patch(f"/api/v1/products/{product.id}", json={"materials": [], "offerId": None},
                           headers=factory.headers(factory.admin()))
    assert cleared.json["materials"] == [] and cleared.json["offer"] is None


def test_patch_list_entries_must_be_whole(client, factory):
    gold = factory.material()
    product = factory.product()
    response = client.patch(f"/api/v1/products/{product.id}", json={"materials": [{"materialId": gold.id}]},
                            headers=factory.headers(factory.admin()))
    assert response.status_code == 422


def test_patch_validates_like_create(client, factory):
    product = factory.product()
    admin = factory.headers(factory.admin())
    assert client.patch(f"/api/v1/products/{product.id}", json={"price": "-5"}, headers=admin).status_code == 422
    assert client.patch(f"/api/v1/products/{product.id}", json={"brandId": None}, headers=admin).status_code == 422
    assert client.patch(f"/api/v1/products/{product.id}", json={"brandId": 999999}, headers=admin).status_code == 422
    assert client.patch("/api/v1/products/999999", json={"price": "5.00"}, headers=admin).status_code == 404


def test_admin_deletes_a_product(client, factory):
    product = factory.product()
    admin = factory.headers(factory.admin())
    response = client.delete(f"/api/v1/products/{product.id}", headers=admin)
    assert response.status_code == 204 and response.data == b""
    assert client.get(f"/api/v1/products/{product.id}").status_code == 404
    assert client.delete(f"/api/v1/products/{product.id}", headers=admin).status_code == 404


def test_a_product_in_a_package_or_on_an_order_cannot_be_deleted(client, factory):
    in_package, ordered = factory.product(), factory.product()
    factory.package(products=[(in_package, 1)])
    factory.order_line_for(ordered)
    admin = factory.headers(factory.admin())
    for product in (in_package, ordered):
        response = client.delete(f"/api/v1/products/{product.id}", headers=admin)
        assert response.status_code == 409
        assert client.get(f"/api/v1/products/{product.id}").status_code == 200


# Stock


def test_admin_sets_the_stock(client, factory):
    product = factory.product(quantity=2)
    response = client.patch(f"/api/v1/products/{product.id}/stock", json={"quantity": 40},
                            headers=factory.headers(factory.admin()))
    assert response.status_code == 200
    assert (response.json["quantity"], response.json["status"]) == (40, "in_stock")


def test_admin_moves_the_stock_by_a_delta(client, factory):
    product = factory.product(quantity=10)
    admin = factory.headers(factory.admin())
    assert client.patch(f"/api/v1/products/{product.id}/stock", json={"delta": 5}, headers=admin).json[
        "quantity"] == 15
    taken = client.patch(f"/api/v1/products/{product.id}/stock", json={"delta": -15}, headers=admin).json
    assert (taken["quantity"], taken["status"]) == (0, "out_of_stock")


def test_a_delta_below_zero_is_409_and_leaves_the_stock_alone(client, factory):
    product = factory.product(quantity=3)
    response = client.patch(f"/api/v1/products/{product.id}/stock", json={"delta": -4},
                            headers=factory.headers(factory.admin()))
    assert response.status_code == 409
    assert response.json["error"]["code"] == "INSUFFICIENT_STOCK"
    assert response.json["error"]["details"] == {"available": 3, "delta": -4}
    assert client.get(f"/api/v1/products/{product.id}").json["quantity"] == 3


@pytest.mark.parametrize("body", [
    {}, {"quantity": 1, "delta": 1}, {"delta": 0}, {"quantity": -1}, {"delta": "1"}, {"quantity": 1.5},
    {"stock": 3},
])
def test_stock_bodies_need_exactly_one_valid_change(client, factory, body):
    product = factory.product(quantity=3)
    response = client.patch(f"/api/v1/products/{product.id}/stock", json=body,
                            headers=factory.headers(factory.admin()))
    assert response.status_code == 422


def test_stock_of_an_unknown_product_is_404(client, factory):
    admin = factory.headers(factory.admin())
    assert client.patch("/api/v1/products/999999/stock", json={"delta": 1}, headers=admin).status_code == 404
    assert client.patch("/api/v1/products/999999/stock", json={"quantity": 1}, headers=admin).status_code == 404


def test_concurrent_deltas_never_take_more_than_the_stock(app, factory):
    product_id = factory.product(quantity=5).id
    headers = factory.headers(factory.admin())
    statuses: list[int] = []

    def take_one() -> None:
        with app.app_context():  # its own session, as a request on another worker would have
            response = app.test_client().patch(f"/api/v1/products/{product_id}/stock", json={"delta": -1},
                                               headers=headers)
            statuses.append(response.status_code)

    threads = [threading.Thread(target=take_one) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200] * 5 + [409] * 7
    db.session.remove()
    assert app.test_client().get(f"/api/v1/products/{product_id}").json["quantity"] == 0


def test_stock_changes_are_announced_with_the_previous_quantity(client, factory):
    product = factory.product(quantity=10)
    admin = factory.headers(factory.admin())
    heard: list[StockChanged] = []
    listener = events.on_announce(StockChanged)(heard.append)
    try:
        client.patch(f"/api/v1/products/{product.id}/stock", json={"delta": -4}, headers=admin)
        client.patch(f"/api/v1/products/{product.id}/stock", json={"quantity": 20}, headers=admin)
        client.patch(f"/api/v1/products/{product.id}", json={"quantity": 7}, headers=admin)
        client.patch(f"/api/v1/products/{product.id}/stock", json={"delta": -8}, headers=admin)  # refused
    finally:
        events.unsubscribe(listener)
    assert [(e.item_type, e.item_id, e.previous_quantity, e.quantity) for e in heard] == [
        ("product", product.id, 10, 6), ("product", product.id, 6, 20), ("product", product.id, 20, 7),
    ]


# Query counts


def read_statements(make_app, factory, path: str) -> tuple[object, list[str]]:
    """The response to `path` and the SQL it ran, from an instance without the page cache (whose own bookkeeping
    is not the read's)."""
    uncached = make_app(CACHE_ENABLED=False)
    with uncached.app_context(), factory.statement_counter() as statements:
        response = uncached.test_client().get(path)
    return response, statements


def test_listing_runs_one_statement_for_3_or_30_products(make_app, factory):
    materials = [factory.material(), factory.material()]
    customizations = [factory.customization(), factory.customization()]
    offer = factory.offer()
    for _ in range(30):
        product = factory.product(materials=[(materials[0], 30), (materials[1], 70)], customizations=customizations,
                                  offer=offer)
        factory.attach_images(product, factory.upload(), factory.upload())
    for limit in (3, 30):
        response, statements = read_statements(make_app, factory, f"/api/v2/products?limit={limit}")
        assert len(response.json["data"]) == limit
        assert all(len(item["materials"]) == 2 and len(item["images"]) == 2 for item in response.json["data"])
        assert len(statements) == 1, statements  # the page, its total and its links in one statement


def test_a_detail_is_one_statement_and_a_page_past_the_end_two(make_app, factory):
    product = factory.product(materials=[(factory.material(), 100)], customizations=[factory.customization()])
    factory.attach_images(product, factory.upload())
    reads = {f"/api/v1/products/{product.id}": 1, f"/api/v2/products/{product.id}": 1,
             "/api/v1/products?page=1": 1, "/api/v1/products?page=2": 2}
    for path, expected in reads.items():
        response, statements = read_statements(make_app, factory, path)
        assert response.status_code == 200
        assert len(statements) == expected, (path, statements)
    assert response.headers["X-Total-Count"] == "1" and response.json == []
