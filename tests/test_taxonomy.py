"""Categories, subcategories, brands and materials: public reads, admin writes, conflicts and validation."""

from __future__ import annotations

import pytest

from fantasize.extensions import db
from fantasize.models import Brand, Category, Material, SubCategory

TRICKY_TEXTS = ("O'Brien", "Select your size", "DROP earrings -- 50% off;")


@pytest.fixture
def admin_headers(factory):
    return factory.headers(factory.admin())


@pytest.fixture
def customer_headers(factory):
    return factory.headers(factory.user())


def test_admin_manages_a_category_and_its_subcategories(client, admin_headers, factory):
    image = factory.upload()
    created = client.post("/api/v1/categories", headers=admin_headers, json={
        "name": "Jewellery & Watches", "description": "Rings, chains", "imageId": image.id,
    })
    assert created.status_code == 201
    category = created.json
    assert category["slug"] == "jewellery-watches"
    assert category["isActive"] is True
    assert category["image"] == image.url
    assert category["subcategories"] == []

    sub = client.post(f"/api/v1/categories/{category['id']}/subcategories", headers=admin_headers,
                      json={"name": "Rings"})
    assert sub.status_code == 201
    assert sub.json["categoryId"] == category["id"] and sub.json["slug"] == "rings"

    renamed = client.patch(f"/api/v1/subcategories/{sub.json['id']}", headers=admin_headers,
                           json={"name": "Silver rings"})
    assert renamed.status_code == 200 and renamed.json["slug"] == "silver-rings"

    changed = client.patch(f"/api/v1/categories/{category['id']}", headers=admin_headers,
                           json={"name": "Jewellery", "imageId": None})
    assert changed.status_code == 200
    assert changed.json["slug"] == "jewellery" and changed.json["image"] is None
    assert changed.json["description"] == "Rings, chains"

    detail = client.get(f"/api/v1/categories/{category['id']}").json
    assert detail["subcategories"] == [{"id": sub.json["id"], "name": "Silver rings", "slug": "silver-rings"}]

    assert client.delete(f"/api/v1/subcategories/{sub.json['id']}", headers=admin_headers).status_code == 204
    assert client.delete(f"/api/v1/categories/{category['id']}", headers=admin_headers).status_code == 204
    assert client.get(f"/api/v1/categories/{category['id']}").status_code == 404


def test_v2_category_renders_the_image_as_an_object_in_the_envelope(client, factory):
    image = factory.upload()
    category = factory.category(image_id=image.id)
    body = client.get(f"/api/v2/categories/{category.id}").json
    assert body["success"] is True
    assert body["data"]["image"] == {"id": image.id, "url": image.url, "mimeType": "image/png"}


def test_category_image_must_be_an_existing_upload(client, admin_headers):
    response = client.post("/api/v1/categories", headers=admin_headers, json={"name": "Toys", "imageId": 999})
    assert response.status_code == 422
    assert "imageId" in response.json["error"]["details"]
    assert db.session.query(Category).count() == 0


def test_categories_with_the_same_slug_get_distinct_slugs(client, admin_headers):
    first = client.post("/api/v1/categories", headers=admin_headers, json={"name": "Gifts!"}).json
    second = client.post("/api/v1/categories", headers=admin_headers, json={"name": "Gifts?"}).json
    assert (first["slug"], second["slug"]) == ("gifts", "gifts-2")


def test_public_list_hides_inactive_categories_but_admins_see_them(client, factory, admin_headers):
    factory.category(name="Books")
    hidden = factory.category(name="Archive", is_active=False)
    public = client.get("/api/v1/categories").json
    assert [c["name"] for c in public] == ["Books"]
    assert client.get(f"/api/v1/categories/{hidden.id}").status_code == 404
    everything = client.get("/api/v1/categories", headers=admin_headers).json
    assert [c["name"] for c in everything] == ["Archive", "Books"]
    assert client.get(f"/api/v1/categories/{hidden.id}", headers=admin_headers).json["isActive"] is False


def test_category_lists_include_subcategories_in_v1_and_v2(client, factory):
    category = factory.category(name="Home")
    factory.subcategory(category=category, name="Mugs", slug="mugs")
    factory.subcategory(category=category, name="Candles", slug="candles")
    v1 = client.get("/api/v1/categories").json
    v2 = client.get("/api/v2/categories").json["data"]
    for listed in (v1, v2):
        assert [s["name"] for s in listed[0]["subcategories"]] == ["Candles", "Mugs"]


def test_v1_lists_paginate_with_total_and_link_headers(client, factory):
    for n in range(5):
        factory.brand(name=f"Brand {n}")
    response = client.get("/api/v1/brands?page=2&limit=2")
    assert [b["name"] for b in response.json] == ["Brand 2", "Brand 3"]
    assert response.headers["X-Total-Count"] == "5"
    assert 'rel="prev"' in response.headers["Link"] and 'rel="next"' in response.headers["Link"]
    assert "page=3" in response.headers["Link"]


def test_v2_lists_carry_pagination_meta(client, factory):
    for n in range(3):
        factory.category(name=f"Category {n}")
        factory.material(name=f"Material {n}")
    for path in ("/api/v2/categories", "/api/v2/materials"):
        body = client.get(path, query_string={"limit": 2}).json
        assert len(body["data"]) == 2
        assert body["meta"]["pagination"] == {"page": 1, "limit": 2, "total": 3, "pages": 2}


def test_bad_pagination_values_are_400(client):
    assert client.get("/api/v1/brands?limit=500").status_code == 400
    assert client.get("/api/v1/categories?page=0").status_code == 400


@pytest.mark.parametrize("resource", ["brands", "materials"])
def test_admin_manages_brands_and_materials(client, admin_headers, resource):
    created = client.post(f"/api/v1/{resource}", headers=admin_headers, json={"name": "Acme", "description": "x"})
    assert created.status_code == 201
    item_id = created.json["id"]
    assert client.get(f"/api/v1/{resource}").json[0]["name"] == "Acme"
    changed = client.patch(f"/api/v1/{resource}/{item_id}", headers=admin_headers, json={"name": "Acme Ltd"})
    assert changed.status_code == 200
    assert (changed.json["name"], changed.json["description"]) == ("Acme Ltd", "x")
    assert client.delete(f"/api/v1/{resource}/{item_id}", headers=admin_headers).status_code == 204
    assert client.get(f"/api/v1/{resource}").json == []


WRITES = [
    ("post", "/api/v1/categories", {"name": "New"}),
    ("patch", "/api/v1/categories/{category}", {"name": "New"}),
    ("delete", "/api/v1/categories/{category}", None),
    ("post", "/api/v1/categories/{category}/subcategories", {"name": "New"}),
    ("patch", "/api/v1/subcategories/{sub}", {"name": "New"}),
    ("delete", "/api/v1/subcategories/{sub}", None),
    ("post", "/api/v1/brands", {"name": "New"}),
    ("patch", "/api/v1/brands/{brand}", {"name": "New"}),
    ("delete", "/api/v1/brands/{brand}", None),
    ("post", "/api/v1/materials", {"name": "New"}),
    ("patch", "/api/v1/materials/{material}", {"name": "New"}),
    ("delete", "/api/v1/materials/{material}", None),
]


def test_writes_need_an_admin(client, factory, customer_headers):
    sub = factory.subcategory()
    ids = {"category": sub.category_id, "sub": sub.id, "brand": factory.brand().id,
           "material": factory.material().id}
    for method, path, body in WRITES:
        url = path.format(**ids)
        anonymous = getattr(client, method)(url, json=body)
        assert anonymous.status_code == 401, (method, url)
        customer = getattr(client, method)(url, json=body, headers=customer_headers)
        assert customer.status_code == 403, (method, url)
    assert db.session.query(Category).count() == 1
    assert db.session.query(Brand).count() == 1


def test_duplicate_names_are_409(client, factory, admin_headers):
    factory.category(name="Flowers")
    factory.brand(name="Acme")
    factory.material(name="Gold")
    for path, name in (("categories", "Flowers"), ("brands", "Acme"), ("materials", "Gold")):
        response = client.post(f"/api/v1/{path}", headers=admin_headers, json={"name": name})
        assert response.status_code == 409, path
        assert response.json["error"]["code"] == "CONFLICT"


def test_renaming_onto_a_taken_name_is_409(client, factory, admin_headers):
    factory.brand(name="Acme")
    other = factory.brand(name="Other")
    response = client.patch(f"/api/v1/brands/{other.id}", headers=admin_headers, json={"name": "Acme"})
    assert response.status_code == 409
    assert client.get("/api/v1/brands").json[1]["name"] == "Other"


def test_subcategory_names_are_unique_within_a_category_only(client, factory, admin_headers):
    first, second = factory.category(), factory.category()
    factory.subcategory(category=first, name="Rings")
    same = client.post(f"/api/v1/categories/{first.id}/subcategories", headers=admin_headers, json={"name": "Rings"})
    assert same.status_code == 409
    other = client.post(f"/api/v1/categories/{second.id}/subcategories", headers=admin_headers,
                        json={"name": "Rings"})
    assert other.status_code == 201


def test_deleting_a_brand_used_by_a_product_is_409_and_keeps_it(client, factory, admin_headers):
    product = factory.product()
    brand_id = product.brand_id
    response = client.delete(f"/api/v1/brands/{brand_id}", headers=admin_headers)
    assert response.status_code == 409
    assert "brand" in response.json["error"]["message"]
    db.session.expire_all()
    assert db.session.get(Brand, brand_id) is not None
    assert client.get("/api/v1/brands").json[0]["id"] == brand_id


def test_deleting_a_used_material_or_subcategory_or_category_is_409(client, factory, admin_headers):
    material = factory.material()
    product = factory.product(materials=[(material, 100)])
    sub = product.sub_category
    for path in (f"materials/{material.id}", f"subcategories/{sub.id}", f"categories/{sub.category_id}"):
        response = client.delete(f"/api/v1/{path}", headers=admin_headers)
        assert response.status_code == 409, path
    db.session.expire_all()
    assert db.session.get(Material, material.id) is not None
    assert db.session.get(SubCategory, sub.id) is not None
    assert db.session.get(Category, sub.category_id) is not None


def test_unknown_ids_are_404(client, admin_headers):
    assert client.get("/api/v1/categories/999").status_code == 404
    for method, path in (("patch", "categories/999"), ("delete", "categories/999"),
                         ("post", "categories/999/subcategories"), ("patch", "subcategories/999"),
                         ("delete", "subcategories/999"), ("patch", "brands/999"), ("delete", "brands/999"),
                         ("patch", "materials/999"), ("delete", "materials/999")):
        body = {"name": "X"} if method != "delete" else None
        response = getattr(client, method)(f"/api/v1/{path}", headers=admin_headers, json=body)
        assert response.status_code == 404, (method, path)
        assert response.json["error"]["code"] == "NOT_FOUND"


@pytest.mark.parametrize("body", [
    {"name": "X", "colour": "red"},
    {"name": 5},
    {"name": ""},
    {"name": "x" * 101},
    {"name": None},
    {"name": "X", "isActive": "yes"},
    {"name": "X", "isActive": 1},
    {"name": "X", "imageId": "1"},
    {"name": "X", "imageId": True},
    {"description": "no name"},
])
def test_invalid_category_bodies_are_422(client, admin_headers, body):
    response = client.post("/api/v1/categories", headers=admin_headers, json=body)
    assert response.status_code == 422
    assert response.json["error"]["code"] == "VALIDATION_ERROR"


def test_patch_with_wrong_types_is_422_and_changes_nothing(client, factory, admin_headers):
    brand = factory.brand(name="Acme")
    response = client.patch(f"/api/v1/brands/{brand.id}", headers=admin_headers, json={"name": ["Acme 2"]})
    assert response.status_code == 422
    assert client.get("/api/v1/brands").json[0]["name"] == "Acme"


@pytest.mark.parametrize("text", TRICKY_TEXTS)
def test_text_round_trips_exactly(client, admin_headers, text):
    category = client.post("/api/v1/categories", headers=admin_headers, json={"name": text, "description": text})
    brand = client.post("/api/v1/brands", headers=admin_headers, json={"name": text, "description": text})
    assert category.status_code == brand.status_code == 201
    fetched = client.get(f"/api/v1/categories/{category.json['id']}").json
    assert (fetched["name"], fetched["description"]) == (text, text)
    listed = client.get("/api/v1/brands").json
    assert [(b["name"], b["description"]) for b in listed] == [(text, text)]


def test_deleting_a_category_deletes_its_unused_subcategories(client, factory, admin_headers):
    sub = factory.subcategory()
    sub_id, category_id = sub.id, sub.category_id
    assert client.delete(f"/api/v1/categories/{category_id}", headers=admin_headers).status_code == 204
    db.session.expire_all()
    assert db.session.get(SubCategory, sub_id) is None
