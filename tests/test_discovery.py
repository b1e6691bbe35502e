"""Discovery: search across products, packages and categories, the home page and the explore page."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from fantasize.models.base import utcnow

only_postgresql = pytest.mark.parametrize("backend", ["postgresql"], indirect=True)


def search(client, q, **params) -> dict:
    response = client.get("/api/v1/search", query_string={"q": q, **params})
    assert response.status_code == 200, response.json
    return response.json


def found(client, q, **params) -> dict[str, list[str]]:
    body = search(client, q, **params)
    return {section: [item["name"] for item in items] for section, items in body.items()}


# Search


def test_search_matches_names_and_descriptions_case_insensitively_in_every_section(client, factory):
    factory.product(name="Silver Ring", description="plain")
    factory.product(name="Necklace", description="Sterling SILVER chain")
    factory.product(name="Mug", description="ceramic")
    factory.package(name="Gift set", description="a silver-plated spoon and more")
    factory.category(name="Silverware")
    factory.category(name="Kitchen")

    result = found(client, "SiLvEr")
    assert set(result["products"]) == {"Silver Ring", "Necklace"}
    assert result["packages"] == ["Gift set"]
    assert result["categories"] == ["Silverware"]


def test_search_hides_inactive_items_and_categories(client, factory):
    factory.product(name="Lamp shown")
    factory.product(name="Lamp hidden", is_active=False)
    factory.package(name="Lamp bundle hidden", is_active=False)
    factory.category(name="Lamps hidden", is_active=False)
    assert found(client, "lamp") == {"products": ["Lamp shown"], "packages": [], "categories": []}


def test_search_finds_partial_words(client, factory):
    factory.product(name="Handmade candle", description="Smells of lavender")
    factory.category(name="Candles")
    result = found(client, "andl")
    assert result["products"] == ["Handmade candle"] and result["categories"] == ["Candles"]
    assert found(client, "laven")["products"] == ["Handmade candle"]


def test_search_puts_name_matches_before_description_matches(client, factory):
    factory.product(name="Desk light", description="A lamp for reading")
    factory.product(name="Lamp", description="Bright")
    assert found(client, "lamp")["products"] == ["Lamp", "Desk light"]


def test_search_treats_percent_and_underscore_literally(client, factory):
    factory.product(name="DROP earrings -- 50% off;")
    factory.product(name="500 beads")
    factory.product(name="snake_case tee")
    factory.product(name="snakescase tee")
    assert found(client, "50%")["products"] == ["DROP earrings -- 50% off;"]
    assert found(client, "e_c")["products"] == ["snake_case tee"]
    assert found(client, "%")["products"] == ["DROP earrings -- 50% off;"]
    assert found(client, "_")["products"] == ["snake_case tee"]


def test_sql_looking_queries_are_plain_text(client, factory):
    factory.product(name="O'Brien scarf")
    factory.product(name="Mug")
    factory.category(name="Gifts")
    assert found(client, "' OR 1=1 --") == {"products": [], "packages": [], "categories": []}
    assert found(client, "'; DROP TABLE products; --") == {"products": [], "packages": [], "categories": []}
    assert found(client, "o'brien")["products"] == ["O'Brien scarf"]
    assert found(client, "mug")["products"] == ["Mug"]


def test_search_limit_caps_each_list(client, factory):
    for n in range(4):
        factory.product(name=f"Tea cup {n}")
        factory.category(name=f"Tea {n}")
    factory.package(name="Tea party")
    result = found(client, "tea", limit=2)
    assert result == {
        "products": ["Tea cup 0", "Tea cup 1"], "packages": ["Tea party"], "categories": ["Tea 0", "Tea 1"],
    }
    assert len(found(client, "tea")["products"]) == 4


@pytest.mark.parametrize("params", [
    {}, {"q": ""}, {"q": "   "}, {"q": "x" * 101}, {"q": "mug", "limit": 0}, {"q": "mug", "limit": 51},
    {"q": "mug", "limit": "many"},
])
def test_search_refuses_a_missing_blank_or_overlong_q_and_a_bad_limit(client, params):
    response = client.get("/api/v1/search", query_string=params)
    assert response.status_code == 400
    assert response.json["error"]["code"] == "BAD_REQUEST"


def test_search_renders_items_in_the_versions_shape(client, factory):
    factory.product(name="Velvet box")
    factory.package(name="Velvet bundle")
    factory.category(name="Velvet")
    v1 = search(client, "velvet")
    assert v1["products"][0]["price"] == "19.90" and "pricing" not in v1["products"][0]
    assert v1["packages"][0]["items"][0]["quantity"] == 1
    assert v1["categories"][0]["subcategories"] == []

    v2 = client.get("/api/v2/search", query_string={"q": "velvet"}).json
    assert v2["success"] is True
    assert v2["data"]["products"][0]["pricing"]["price"] == "19.90"
    assert v2["data"]["packages"][0]["stock"] == {"quantity": 5, "status": "running_low"}
    assert v2["data"]["categories"][0]["name"] == "Velvet"


def test_search_shows_no_withdrawn_product_in_a_package_and_no_offer_that_is_not_current(client, factory):
    now = utcnow()
    unstarted = factory.offer(valid_from=now + timedelta(days=1), valid_to=now + timedelta(days=9))
    mug = factory.product(name="Velvet mug", offer=unstarted)
    withdrawn = factory.product(name="Withdrawn card", is_active=False)
    factory.package(name="Velvet bundle", products=[(mug, 1), (withdrawn, 1)], offer=unstarted)

    v1 = search(client, "velvet")
    assert [entry["product"]["name"] for entry in v1["packages"][0]["items"]] == ["Velvet mug"]
    assert (v1["products"][0]["offer"], v1["packages"][0]["offer"]) == (None, None)
    v2 = client.get("/api/v2/search", query_string={"q": "velvet"}).json["data"]
    assert [entry["product"]["name"] for entry in v2["packages"][0]["items"]] == ["Velvet mug"]
    assert (v2["products"][0]["offer"], v2["packages"][0]["offer"]) == (None, None)


def test_home_shows_no_offer_that_is_not_current(client, factory):
    now = utcnow()
    factory.product(name="Expired deal", offer=factory.offer(valid_from=now - timedelta(days=9),
                                                             valid_to=now - timedelta(days=1)))
    factory.product(name="Switched off deal", offer=factory.offer(is_active=False))
    for version, unwrap in (("v1", lambda body: body), ("v2", lambda body: body["data"])):
        home = unwrap(client.get(f"/api/{version}/home").json)
        assert [(p["name"], p["offer"]) for p in home["newArrivals"]] == [
            ("Switched off deal", None), ("Expired deal", None),
        ]
        assert home["currentOffers"] == []


@only_postgresql
def test_postgresql_full_text_search_matches_words_in_any_order_and_ranks_them(client, factory):
    factory.product(name="Red ceramic mug", description="Holds tea")
    factory.product(name="Blue mug", description="A red stripe")
    factory.product(name="Red scarf", description="Wool")
    result = found(client, "mug red")
    assert result["products"] == ["Red ceramic mug", "Blue mug"]


def test_search_runs_a_fixed_number_of_statements(client, factory):
    counts = []
    for size in (2, 10):
        for n in range(size):
            material = factory.material()
            product = factory.product(name=f"Amber {size}-{n}", materials=[(material, 100)], offer=factory.offer())
            factory.attach_images(product, factory.upload())
            factory.package(name=f"Amber pack {size}-{n}", products=[(product, 1)])
            factory.subcategory(category=factory.category(name=f"Amber {size}-{n}"))
        with factory.statement_counter() as statements:
            body = search(client, "amber", limit=50)
        assert len(body["products"]) >= size
        counts.append(len(statements))
    assert counts[0] == counts[1] <= 10, counts


# Home


def test_home_shows_the_newest_and_best_rated_active_products(client, factory):
    now = utcnow()
    for n in range(10):
        factory.product(name=f"P{n}", created_at=now - timedelta(hours=10 - n), rating_average=Decimal(n % 5),
                        rating_count=n)
    factory.product(name="Newest but hidden", created_at=now, rating_average=Decimal(5), is_active=False)
    body = client.get("/api/v1/home").json
    assert [p["name"] for p in body["newArrivals"]] == ["P9", "P8", "P7", "P6", "P5", "P4", "P3", "P2"]
    # By rating, then by the number of ratings.
    assert [p["name"] for p in body["topRated"]] == ["P9", "P4", "P8", "P3", "P7", "P2", "P6", "P1"]


def test_home_lists_offers_running_now_with_a_few_of_their_active_products(client, factory):
    now = utcnow()
    running = factory.offer(title="Spring sale", valid_to=now + timedelta(days=2))
    ending_sooner = factory.offer(title="Flash sale", valid_to=now + timedelta(hours=1))
    factory.offer(title="Switched off", is_active=False)
    factory.offer(title="Not yet", valid_from=now + timedelta(days=1), valid_to=now + timedelta(days=3))
    factory.offer(title="Over", valid_from=now - timedelta(days=3), valid_to=now - timedelta(days=1))
    for n in range(6):
        factory.product(name=f"Sale {n}", offer=running, created_at=now - timedelta(minutes=10 - n))
    factory.product(name="Sale hidden", offer=running, is_active=False, created_at=now)
    factory.product(name="Flash item", offer=ending_sooner)

    offers = client.get("/api/v1/home").json["currentOffers"]
    assert [offer["title"] for offer in offers] == ["Flash sale", "Spring sale"]
    assert [p["name"] for p in offers[0]["products"]] == ["Flash item"]
    assert [p["name"] for p in offers[1]["products"]] == ["Sale 5", "Sale 4", "Sale 3", "Sale 2"]
    assert offers[1]["discountPercent"] == "20.00"
    assert offers[1]["products"][0]["discountPrice"] == "15.92"


def test_home_lists_active_categories_in_each_versions_shape(client, factory):
    factory.subcategory(category=factory.category(name="Jewellery"), name="Rings")
    factory.category(name="Archived", is_active=False)
    factory.product(name="Ring")

    v1 = client.get("/api/v1/home").json
    assert set(v1) == {"newArrivals", "topRated", "currentOffers", "categories"}
    names = [c["name"] for c in v1["categories"]]
    assert "Jewellery" in names and "Archived" not in names
    assert "price" in v1["newArrivals"][0]

    v2 = client.get("/api/v2/home").json
    assert v2["success"] is True
    assert "pricing" in v2["data"]["newArrivals"][0] and "price" not in v2["data"]["newArrivals"][0]
    assert [c["name"] for c in v2["data"]["categories"]] == names


def test_home_on_an_empty_shop(client):
    assert client.get("/api/v1/home").json == {"newArrivals": [], "topRated": [], "currentOffers": [], "categories": []}


def test_home_runs_a_fixed_number_of_statements(client, factory):
    counts = []
    for size in (2, 10):
        for _ in range(size):
            offer = factory.offer()
            for _ in range(2):
                product = factory.product(materials=[(factory.material(), 100)], offer=offer)
                factory.attach_images(product, factory.upload())
            factory.subcategory(category=factory.category())
        with factory.statement_counter() as statements:
            body = client.get("/api/v1/home").json
        assert body["newArrivals"] and body["topRated"] and body["categories"]
        assert all(len(offer["products"]) == 2 for offer in body["currentOffers"])
        counts.append(len(statements))
    assert counts[0] == counts[1] <= 15, counts


# Explore


def test_explore_counts_active_products_per_category_subcategory_brand_and_material(client, factory):
    jewellery = factory.category(name="Jewellery")
    rings = factory.subcategory(category=jewellery, name="Rings")
    chains = factory.subcategory(category=jewellery, name="Chains")
    home = factory.category(name="Home")
    factory.subcategory(category=home, name="Mugs")
    factory.category(name="Archived", is_active=False)
    acme, other = factory.brand(name="Acme"), factory.brand(name="Zeta")
    silver, gold = factory.material(name="Silver"), factory.material(name="Gold")
    factory.product(sub_category=rings, brand=acme, price=Decimal("12.00"), materials=[(silver, 60), (gold, 40)])
    factory.product(sub_category=rings, brand=acme, price=Decimal("99.50"), materials=[(silver, 100)])
    factory.product(sub_category=chains, brand=acme, price=Decimal("30.00"))
    factory.product(sub_category=chains, brand=other, price=Decimal("5.00"), is_active=False,
                    materials=[(gold, 100)])

    body = client.get("/api/v1/explore").json
    assert body["categories"] == [
        {"id": home.id, "name": "Home", "productCount": 0, "slug": home.slug,
         "subcategories": [{"id": home.subcategories[0].id, "name": "Mugs", "productCount": 0,
                            "slug": home.subcategories[0].slug}]},
        {"id": jewellery.id, "name": "Jewellery", "productCount": 3, "slug": jewellery.slug,
         "subcategories": [{"id": chains.id, "name": "Chains", "productCount": 1, "slug": chains.slug},
                           {"id": rings.id, "name": "Rings", "productCount": 2, "slug": rings.slug}]},
    ]
    assert body["brands"] == [{"id": acme.id, "name": "Acme", "productCount": 3},
                              {"id": other.id, "name": "Zeta", "productCount": 0}]
    assert body["materials"] == [{"id": gold.id, "name": "Gold", "productCount": 1},
                                 {"id": silver.id, "name": "Silver", "productCount": 2}]
    assert body["priceRange"] == {"min": "12.00", "max": "99.50"}


def test_explore_on_an_empty_shop_and_in_v2(client):
    empty = {"categories": [], "brands": [], "priceRange": {"min": None, "max": None}, "materials": []}
    assert client.get("/api/v1/explore").json == empty
    v2 = client.get("/api/v2/explore").json
    assert v2["success"] is True and v2["data"] == empty


def test_explore_runs_a_fixed_number_of_statements(client, factory):
    counts = []
    for size in (2, 10):
        for _ in range(size):
            factory.product(materials=[(factory.material(), 100)])
        with factory.statement_counter() as statements:
            body = client.get("/api/v1/explore").json
        assert len(body["brands"]) >= size
        counts.append(len(statements))
    assert counts[0] == counts[1] <= 5, counts
