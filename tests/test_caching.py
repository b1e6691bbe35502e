"""The page cache (API.md "Caching") on a real Redis: hits and misses, keys, invalidation by every kind of write,
who is served from the cache, the stampede guard, a Redis outage and the `flask cache` commands.

Each test's app gets its own key prefix in the shared test Redis database and deletes only its own keys.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from uuid import uuid4

import pytest
from flask import Flask
from redis import Redis
from sqlalchemy import update

from config import TestingConfig
from fantasize.api.endpoint import endpoint
from fantasize.extensions import db
from fantasize.models import Offer, Product
from fantasize.models.base import utcnow
from fantasize.platform.cache.store import PageStore
from tests.factories import PASSWORD, Factory
from tests.support import PrivateRedis, all_at_once, delete_prefix, shared_redis

API_KEY = "inventory-key-0123456789"
CATALOGUE_PATHS = ("/products", "/packages", "/categories", "/brands", "/materials", "/offers", "/customizations",
                   "/home", "/explore", "/search?q=thing")


@pytest.fixture
def redis_settings() -> Iterator[dict[str, str]]:
    """REDIS_URL and a key prefix of this test's own in the test Redis database."""
    client = shared_redis(TestingConfig.TEST_REDIS_URL)
    prefix = f"test:{uuid4().hex}:"
    yield {"REDIS_URL": TestingConfig.TEST_REDIS_URL, "CACHE_KEY_PREFIX": prefix}
    delete_prefix(client, prefix)


@pytest.fixture
def app(make_app, redis_settings) -> Iterator[Flask]:
    application = make_app(API_KEYS=API_KEY, **redis_settings)
    with application.app_context():
        yield application


def get(client, path: str, **kwargs: Any):
    response = client.get(path, **kwargs)
    assert response.status_code == 200, response.get_json()
    return response


def states(client, paths: list[str], **kwargs: Any) -> list[str | None]:
    return [client.get(path, **kwargs).headers.get("X-Cache") for path in paths]


def test_a_catalogue_read_is_a_miss_and_then_a_hit_with_the_same_answer(client, factory):
    factory.product(name="Amber Necklace")

    first = get(client, "/api/v1/products")
    second = get(client, "/api/v1/products")

    assert first.headers["X-Cache"] == "MISS" and second.headers["X-Cache"] == "HIT"
    assert second.get_json() == first.get_json()
    assert second.headers["X-Total-Count"] == "1"
    assert second.headers["Content-Type"] == "application/json"
    assert second.headers["API-Version"] == "v1"


def test_every_public_catalogue_read_is_cached(client, factory):
    product = factory.product(name="Thing One")
    package = factory.package(products=[(product, 1)])
    paths = [f"/api/v1{path}" for path in CATALOGUE_PATHS] + [
        f"/api/v1/products/{product.id}", f"/api/v1/packages/{package.id}",
        f"/api/v1/categories/{product.sub_category.category_id}", f"/api/v1/offers/{factory.offer().id}",
        f"/api/v1/products/{product.id}/reviews", f"/api/v1/packages/{package.id}/reviews",
    ]

    assert states(client, paths) == ["MISS"] * len(paths)
    assert states(client, paths) == ["HIT"] * len(paths)


def test_the_key_covers_version_path_and_the_sorted_query(client, factory):
    factory.product()

    assert states(client, ["/api/v1/products", "/api/v2/products", "/api/v1/products"]) == ["MISS", "MISS", "HIT"]
    assert states(client, ["/api/v1/products?page=1&limit=5", "/api/v1/products?limit=5&page=1"]) == ["MISS", "HIT"]
    assert states(client, ["/api/v1/products?limit=6"]) == ["MISS"]
    # Unversioned paths speak the version the request asks for, and are keyed by it.
    assert states(client, ["/api/products"]) == ["MISS"]
    v2 = client.get("/api/products", headers={"API-Version": "2"})
    assert v2.headers["X-Cache"] == "MISS" and v2.get_json()["success"] is True


def test_a_cached_v2_page_names_the_request_that_reads_it(client, factory):
    factory.product()
    get(client, "/api/v2/products")

    hit = get(client, "/api/v2/products", headers={"X-Request-ID": "second-request"})

    assert hit.headers["X-Cache"] == "HIT"
    assert hit.get_json()["meta"]["requestId"] == "second-request" == hit.headers["X-Request-ID"]
    assert hit.get_json()["meta"]["pagination"]["total"] == 1


def test_cached_page_links_follow_the_host_of_the_request(client, factory):
    for _ in range(3):
        factory.product()
    get(client, "/api/v1/products?limit=1", base_url="http://shop.example")

    hit = get(client, "/api/v1/products?limit=1", base_url="http://other.example")

    assert hit.headers["X-Cache"] == "HIT"
    assert hit.headers["Link"].startswith("<http://other.example/api/v1/products?")
    assert "shop.example" not in hit.headers["Link"]


def test_a_product_change_shows_at_once_on_every_cached_page_that_shows_it(client, factory):
    admin = factory.headers(factory.admin())
    product = factory.product(name="Amber Necklace")
    package = factory.package(products=[(product, 1)])
    pages = ["/api/v1/products", f"/api/v1/products/{product.id}", f"/api/v1/packages/{package.id}",
             "/api/v1/search?q=amber", "/api/v1/home", "/api/v2/products"]
    states(client, pages)
    assert states(client, pages) == ["HIT"] * len(pages)

    renamed = client.patch(f"/api/v1/products/{product.id}", json={"name": "Amber Pendant"}, headers=admin)
    assert renamed.status_code == 200

    responses = [get(client, page) for page in pages]
    assert [r.headers["X-Cache"] for r in responses] == ["MISS"] * len(pages)
    assert all("Amber Pendant" in r.get_data(as_text=True) for r in responses)
    assert not any("Amber Necklace" in r.get_data(as_text=True) for r in responses)


def test_an_offer_change_reaches_the_product_and_package_pages(client, factory):
    admin = factory.headers(factory.admin())
    offer = factory.offer(discount_percent=10)
    product = factory.product(price=100, offer=offer)
    package = factory.package(products=[(product, 1)], price=200, offer=offer)
    product_page, package_page = f"/api/v1/products/{product.id}", f"/api/v1/packages/{package.id}"
    assert get(client, product_page).get_json()["discountPrice"] == "90.00"
    get(client, package_page)

    assert client.patch(f"/api/v1/offers/{offer.id}", json={"discountPercent": 50}, headers=admin).status_code == 200

    assert get(client, product_page).get_json()["discountPrice"] == "50.00"
    assert get(client, package_page).get_json()["discountPrice"] == "100.00"


def test_a_review_changes_the_cached_rating_and_review_list(client, factory):
    customer = factory.headers(factory.user())
    product = factory.product()
    page, reviews = f"/api/v2/products/{product.id}", f"/api/v1/products/{product.id}/reviews"
    get(client, page)
    assert get(client, reviews).get_json() == []

    created = client.post(f"/api/v1/products/{product.id}/reviews", json={"rating": 4}, headers=customer)
    assert created.status_code == 201

    assert get(client, page).get_json()["data"]["rating"] == {"average": 4.0, "count": 1}
    assert [review["rating"] for review in get(client, reviews).get_json()] == [4]


def test_an_order_taking_stock_invalidates_the_stock_shown(client, factory):
    customer = factory.headers(factory.user())
    product = factory.product(quantity=10)
    page = f"/api/v1/products/{product.id}"
    get(client, page)
    assert get(client, page).headers["X-Cache"] == "HIT"

    order = client.post("/api/v1/orders", json={"items": [{"productId": product.id, "quantity": 3}]},
                        headers=customer)
    assert order.status_code == 201

    after = get(client, page)
    assert after.headers["X-Cache"] == "MISS" and after.get_json()["quantity"] == 7


def test_a_refused_order_leaves_the_cache_alone(client, factory):
    customer = factory.headers(factory.user())
    product = factory.product(quantity=1)
    page = f"/api/v1/products/{product.id}"
    get(client, page)

    refused = client.post("/api/v1/orders", json={"items": [{"productId": product.id, "quantity": 5}]},
                          headers=customer)

    assert refused.status_code == 409
    assert get(client, page).headers["X-Cache"] == "HIT"


def test_stock_changes_by_the_admin_and_the_inventory_integration_invalidate(client, factory):
    admin = factory.headers(factory.admin())
    product = factory.product(quantity=10)
    page = f"/api/v1/products/{product.id}"
    get(client, page)

    moved = client.patch(f"{page}/stock", json={"delta": -4}, headers=admin)
    assert moved.status_code == 200
    assert get(client, page).get_json()["quantity"] == 6

    synced = client.post("/api/v1/integrations/inventory", json={"items": [{"productId": product.id, "quantity": 42}]},
                         headers={"X-API-Key": API_KEY})
    assert synced.status_code == 200
    assert get(client, page).get_json()["quantity"] == 42


def test_taxonomy_and_customization_changes_reach_the_pages_that_show_them(client, factory):
    admin = factory.headers(factory.admin())
    product = factory.product()
    customization = factory.customization()
    page = f"/api/v1/products/{product.id}"
    get(client, page)
    get(client, "/api/v1/customizations")

    client.patch(f"/api/v1/brands/{product.brand_id}", json={"name": "Renamed Brand"}, headers=admin)
    client.patch(f"/api/v1/customizations/{customization.id}", json={"name": "Renamed Engraving"}, headers=admin)

    assert get(client, page).get_json()["brand"]["name"] == "Renamed Brand"
    assert get(client, "/api/v1/customizations").get_json()[0]["name"] == "Renamed Engraving"


def test_a_sign_in_keeps_review_lists_but_a_username_change_reaches_them(client, factory):
    author = factory.user(username="ada")
    product = factory.product()
    client.post(f"/api/v1/products/{product.id}/reviews", json={"rating": 5}, headers=factory.headers(author))
    reviews = f"/api/v1/products/{product.id}/reviews"
    get(client, reviews)

    signed_in = client.post("/api/v1/auth/login", json={"email": author.email, "password": PASSWORD})
    assert signed_in.status_code == 200, signed_in.get_json()
    assert get(client, reviews).headers["X-Cache"] == "HIT"

    author.username = "ada_l"
    factory._save(author)
    assert get(client, reviews).get_json()[0]["user"]["displayName"] == "ada_l"


def test_an_administrator_is_never_served_from_or_stored_in_the_cache(client, factory):
    admin = factory.headers(factory.admin())
    factory.product(name="On Sale")
    factory.product(name="Withdrawn", is_active=False)
    anonymous = get(client, "/api/v1/products")
    assert anonymous.headers["X-Cache"] == "MISS"

    for _ in range(2):
        seen = get(client, "/api/v1/products?includeInactive=true", headers=admin)
        assert "X-Cache" not in seen.headers
        assert {p["name"] for p in seen.get_json()} == {"On Sale", "Withdrawn"}
        own = get(client, "/api/v1/products", headers=admin)
        assert "X-Cache" not in own.headers

    again = get(client, "/api/v1/products")
    assert again.headers["X-Cache"] == "HIT" and [p["name"] for p in again.get_json()] == ["On Sale"]
    assert client.get("/api/v1/products?includeInactive=true").status_code == 401


def test_a_cached_page_never_shows_the_administrators_view_nor_the_reverse(client, factory):
    unstarted = factory.offer(valid_from=utcnow() + timedelta(days=1), valid_to=utcnow() + timedelta(days=2))
    mug, withdrawn = factory.product(name="Mug", offer=unstarted), factory.product(name="Gone", is_active=False)
    package = factory.package(products=[(mug, 1), (withdrawn, 1)], offer=unstarted)
    admin = factory.headers(factory.admin())
    pages = (f"/api/v1/packages/{package.id}", "/api/v1/packages", f"/api/v1/products/{mug.id}")

    def seen(response) -> tuple[Any, list[str] | None]:
        body = response.get_json()
        body = body[0] if isinstance(body, list) else body
        items = sorted(entry["product"]["name"] for entry in body["items"]) if "items" in body else None
        return body["offer"], items

    staff = [seen(get(client, path, headers=admin)) for path in pages]  # computed for an admin: never stored
    public = [get(client, path) for path in pages]
    again = [get(client, path) for path in pages]
    staff_again = [get(client, path, headers=admin) for path in pages]

    assert [r.headers["X-Cache"] for r in public + again] == ["MISS"] * 3 + ["HIT"] * 3
    assert [seen(r) for r in public] == [seen(r) for r in again] == [(None, ["Mug"]), (None, ["Mug"]), (None, None)]
    linked = {"id": unstarted.id, "discountPercent": "20.00"}
    assert staff == [seen(r) for r in staff_again] == [
        (linked, ["Gone", "Mug"]), (linked, ["Gone", "Mug"]), (linked, None),
    ]
    assert all("X-Cache" not in r.headers for r in staff_again)


def test_signed_in_customers_are_served_the_public_pages(client, factory):
    customer = factory.headers(factory.user())
    factory.product(name="On Sale")
    factory.product(name="Withdrawn", is_active=False)
    get(client, "/api/v1/products")

    response = get(client, "/api/v1/products", headers=customer)

    assert response.headers["X-Cache"] == "HIT"
    assert [p["name"] for p in response.get_json()] == ["On Sale"]
    assert client.get("/api/v1/products?includeInactive=true", headers=customer).status_code == 403
    assert client.get("/api/v1/products", headers={"Authorization": "Bearer nonsense"}).status_code == 401


def test_personal_routes_never_carry_x_cache(client, factory):
    customer = factory.headers(factory.user())
    for path in ("/api/v1/cart", "/api/v1/orders", "/api/v1/users/me", "/api/v1/users/me/favorites",
                 "/api/v1/notifications", "/api/v1/users/me/addresses", "/api/v1/users/me/payment-methods"):
        for _ in range(2):
            response = client.get(path, headers=customer)
            assert response.status_code == 200, path
            assert "X-Cache" not in response.headers, path


def test_errors_are_not_cached(client, factory):
    product = factory.product(is_active=False)
    assert client.get(f"/api/v1/products/{product.id}").status_code == 404

    product.is_active = True
    factory._save(product)

    assert get(client, f"/api/v1/products/{product.id}").headers["X-Cache"] == "MISS"


def test_pages_showing_offers_expire_when_an_offer_starts_or_ends(app, client, factory, redis_settings):
    factory.offer(valid_from=utcnow() - timedelta(days=1), valid_to=utcnow() + timedelta(seconds=90))
    factory.brand()
    get(client, "/api/v1/products")
    get(client, "/api/v1/brands")

    redis = Redis.from_url(redis_settings["REDIS_URL"])
    ttls = sorted(redis.ttl(key) for key in redis.scan_iter(match=f"{redis_settings['CACHE_KEY_PREFIX']}page:*"))
    assert 0 < ttls[0] <= 90  # products show offers: gone when the offer ends
    assert ttls[1] > 90 and ttls[1] <= app.config["CACHE_TTL_CATEGORIES"]  # brands do not


def test_a_page_computed_while_an_offer_starts_is_not_kept(make_app, redis_settings):
    app = make_app(**redis_settings)
    with app.app_context():
        starts = utcnow() + timedelta(seconds=1)
        offer_id = Factory(app).offer(valid_from=starts, valid_to=starts + timedelta(days=1)).id

    @endpoint("Says whether the offer runs, slowly", cache=("offers",))
    def slow():
        running = db.session.get(Offer, offer_id).is_current(utcnow())
        time.sleep(max(0.0, (starts - utcnow()).total_seconds()) + 0.2)  # finishes after the offer started
        return {"running": running}

    app.add_url_rule("/api/v1/test/slow-offer", "slow_offer", slow)
    client = app.test_client()
    first = client.get("/api/v1/test/slow-offer")
    assert (first.get_json(), first.headers["X-Cache"]) == ({"running": False}, "MISS")
    # Computed before the start but finished after it: already out of date, so never served from the cache.
    assert client.get("/api/v1/test/slow-offer").get_json() == {"running": True}


def counted_view(app: Flask, fail_first: bool = False, seconds: float = 0.3) -> dict[str, int]:
    """A cacheable test-only view at /api/v1/test/counted that counts its runs and takes `seconds`."""
    runs = {"n": 0}
    mutex = threading.Lock()

    @endpoint("Counts its runs", cache=("products",))
    def counted():
        with mutex:
            runs["n"] += 1
            n = runs["n"]
        time.sleep(seconds)
        if fail_first and n == 1:
            raise RuntimeError("the first computation fails")
        return {"run": n}

    app.add_url_rule("/api/v1/test/counted", "counted", counted)
    return runs


@pytest.mark.parametrize("backend", ["postgresql"])
def test_concurrent_misses_on_one_page_compute_it_once(make_app, redis_settings):
    app = make_app(CACHE_LOCK_WAIT_MS=30_000, **redis_settings)
    runs = counted_view(app)

    responses = all_at_once([lambda: app.test_client().get("/api/v1/test/counted") for _ in range(8)])

    assert [r.status_code for r in responses] == [200] * 8
    assert runs["n"] == 1
    assert {r.get_json()["run"] for r in responses} == {1}
    assert sorted(r.headers["X-Cache"] for r in responses) == ["HIT"] * 7 + ["MISS"]


@pytest.mark.parametrize("backend", ["postgresql"])
def test_when_the_computing_request_fails_the_waiting_ones_still_get_an_answer(make_app, redis_settings):
    app = make_app(CACHE_LOCK_WAIT_MS=30_000, **redis_settings)
    runs = counted_view(app, fail_first=True)

    responses = all_at_once([lambda: app.test_client().get("/api/v1/test/counted") for _ in range(8)])

    assert sorted(r.status_code for r in responses) == [200] * 7 + [500]
    assert runs["n"] == 2  # the failed run, then one waiter took the lock over; the rest were served its page
    assert {r.get_json()["run"] for r in responses if r.status_code == 200} == {2}


@pytest.mark.parametrize("backend", ["postgresql"])
def test_a_lock_left_by_a_dead_request_expires(make_app, redis_settings, monkeypatch):
    """A request that dies between taking the stampede lock and letting go of it (its process killed; here
    PageStore.finish, the only thing that lets go, never runs) leaves a lock that expires within CACHE_LOCK_MS.
    Both locks the app takes are checked: the lookup's, and the one a waiter takes over once the first expired.
    (Caught: the app's locks made never to expire, the lookup script's SET and RedisBackend.lock without PX.)"""
    lock_ms = 1500
    app = make_app(CACHE_LOCK_MS=lock_ms, CACHE_LOCK_WAIT_MS=30_000, **redis_settings)
    runs = counted_view(app, seconds=0)
    client = app.test_client()
    redis = Redis.from_url(redis_settings["REDIS_URL"])
    prefix = redis_settings["CACHE_KEY_PREFIX"]
    let_go = PageStore.finish
    monkeypatch.setattr(PageStore, "finish", lambda *_args, **_kwargs: None)

    def lock_left() -> tuple[bytes, int]:
        [lock] = list(redis.scan_iter(match=f"{prefix}lock:*"))
        return lock, redis.pttl(lock)

    # The first request takes the lock in its lookup, computes, and dies before storing the page or letting go.
    assert client.get("/api/v1/test/counted").status_code == 200 and runs["n"] == 1
    first, ttl = lock_left()
    assert 0 < ttl <= lock_ms  # -1 would be a lock that never expires
    assert list(redis.scan_iter(match=f"{prefix}page:*")) == []

    # The next one waits for that lock, takes it over once it expired (RedisBackend.lock), and dies the same way.
    started = time.monotonic()
    assert client.get("/api/v1/test/counted").status_code == 200 and runs["n"] == 2
    waited = time.monotonic() - started
    second, ttl = lock_left()
    assert second == first and 0 < ttl <= lock_ms
    assert waited < lock_ms / 1000 + 5  # the lock's lifetime, not CACHE_LOCK_WAIT_MS (30 s)

    # A request that lives takes over once more, and its page is served from then on.
    monkeypatch.setattr(PageStore, "finish", let_go)
    assert client.get("/api/v1/test/counted").get_json() == {"run": 3}
    assert list(redis.scan_iter(match=f"{prefix}lock:*")) == []
    hit = client.get("/api/v1/test/counted")
    assert hit.headers["X-Cache"] == "HIT" and hit.get_json() == {"run": 3} and runs["n"] == 3


@pytest.fixture
def private_redis(tmp_path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(keep_in=tmp_path).start()  # skips locally, fails in CI, without redis-server
    yield server
    server.stop()


def eventually_hit(client, path: str, seconds: float = 20) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if client.get(path).headers.get("X-Cache") == "HIT":
            return True
        time.sleep(0.2)
    return False


@pytest.mark.parametrize("backend", ["postgresql"])
def test_with_redis_stopped_reads_and_writes_keep_working_and_caching_resumes(make_app, private_redis):
    app = make_app(REDIS_URL=private_redis.url, CACHE_BREAKER_SECONDS=1)
    client = app.test_client()
    with app.app_context():
        factory = Factory(app)
        admin = factory.headers(factory.admin())
        page = f"/api/v1/products/{factory.product(quantity=100).id}"
    get(client, page)
    assert get(client, page).headers["X-Cache"] == "HIT"

    private_redis.stop()
    statuses = []
    for n in range(200):
        if n % 4 == 0:
            response = client.patch(page, json={"description": f"Edition {n}"}, headers=admin)
        else:
            response = client.get(page if n % 2 else "/api/v2/products")
        statuses.append(response.status_code)
        if n % 4 == 0:
            # Served by the database: each write shows on the next read, though Redis never heard of it.
            assert get(client, page).get_json()["description"] == f"Edition {n}"
    assert [s for s in statuses if s >= 500] == [] and set(statuses) == {200}

    private_redis.start()
    assert eventually_hit(client, page)
    assert get(client, page).get_json()["description"] == "Edition 196"


@pytest.mark.parametrize("backend", ["postgresql"])
def test_a_write_redis_missed_is_invalidated_before_the_next_read_from_it(make_app, private_redis):
    app = make_app(REDIS_URL=private_redis.url, CACHE_BREAKER_SECONDS=0)
    client = app.test_client()
    with app.app_context():
        factory = Factory(app)
        admin = factory.headers(factory.admin())
        page = f"/api/v1/products/{factory.product(name='Before').id}"
    get(client, page)

    private_redis.stop()
    assert client.patch(page, json={"name": "After"}, headers=admin).status_code == 200
    private_redis.start()  # back with the old page and the old generations

    assert get(client, page).get_json()["name"] == "After"


def test_cache_warm_fills_the_catalogue_pages_and_clear_empties_them(app, client, factory, redis_settings):
    factory.product()
    redis = Redis.from_url(redis_settings["REDIS_URL"])
    neighbour = f"{redis_settings['CACHE_KEY_PREFIX'][:-1]}-other:page:keep"
    redis.set(neighbour, "not ours")
    runner = app.test_cli_runner()

    warmed = runner.invoke(args=["cache", "warm"])
    assert warmed.exit_code == 0, warmed.output
    assert "MISS /api/v1/products" in warmed.output and "MISS /api/v2/home" in warmed.output
    assert states(client, ["/api/v1/products", "/api/v2/products", "/api/v1/home", "/api/v1/categories"]) == \
        ["HIT"] * 4

    cleared = runner.invoke(args=["cache", "clear"])
    assert cleared.exit_code == 0, cleared.output
    assert "stored pages deleted" in cleared.output
    assert states(client, ["/api/v1/products", "/api/v2/home"]) == ["MISS", "MISS"]
    assert redis.get(neighbour) == b"not ours"
    redis.delete(neighbour)


def test_flask_seed_invalidates_the_catalogue(app, client):
    assert get(client, "/api/v1/products").get_json() == []

    seeded = app.test_cli_runner().invoke(args=["seed"])
    assert seeded.exit_code == 0, seeded.output

    response = get(client, "/api/v1/products")
    assert response.headers["X-Cache"] == "MISS" and int(response.headers["X-Total-Count"]) > 0


def test_caching_can_be_switched_off(make_app, redis_settings):
    app = make_app(CACHE_ENABLED=False, **redis_settings)
    client = app.test_client()
    with app.app_context():
        product_id = Factory(app).product(name="Before").id
    path = f"/api/v1/products/{product_id}"
    assert [client.get(path).headers.get("X-Cache") for _ in range(2)] == [None, None]

    # Renamed behind the app's back, so no invalidation can announce it: only an uncached read can see it.
    with app.app_context(), db.engine.begin() as conn:
        conn.execute(update(Product).where(Product.id == product_id).values(name="After"))
    assert [get(client, path).get_json()["name"], get(client, "/api/v1/products").get_json()[0]["name"]] == [
        "After", "After",
    ]
    redis = shared_redis(redis_settings["REDIS_URL"])
    prefix = redis_settings["CACHE_KEY_PREFIX"]
    assert [key for kind in ("page", "lock") for key in redis.scan_iter(match=f"{prefix}{kind}:*")] == []


def test_a_cached_view_must_name_known_domains():
    with pytest.raises(ValueError, match="unknown cache domains"):
        endpoint("x", cache=("products", "nonsense"))
    with pytest.raises(ValueError, match="first"):
        endpoint("x", cache=("uploads",))
