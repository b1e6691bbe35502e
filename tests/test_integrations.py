"""The inventory integration: API keys with IP allow-lists, and all-or-nothing absolute stock syncs."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask

from config import TestingConfig
from fantasize import create_app, events
from fantasize.extensions import db
from fantasize.models import Product
from fantasize.platform.api_keys import parse_api_keys
from tests.factories import Factory

OPEN_KEY = "open-key-0123456789"
LISTED_KEY = "listed-key-0123456789"
V6_KEY = "v6-key-0123456789"
API_KEYS = f" {OPEN_KEY} , {LISTED_KEY}@10.0.0.0/8|192.168.1.7,{V6_KEY}@2001:db8::/32"
PATH = "/api/v1/integrations/inventory"


@pytest.fixture
def keyed_app(make_app) -> Iterator[Flask]:
    app = make_app(API_KEYS=API_KEYS)
    with app.app_context():
        yield app


@pytest.fixture
def client(keyed_app):
    return keyed_app.test_client()


@pytest.fixture
def factory(keyed_app) -> Factory:
    return Factory(keyed_app)


@pytest.fixture
def received() -> Iterator[list]:
    seen: list = []

    def record(event) -> None:
        seen.append((event.item_type, event.item_id, event.previous_quantity, event.quantity))

    events.after_commit(events.StockChanged)(record)
    yield seen
    events.unsubscribe(record)


def sync(client, items, key=OPEN_KEY, address="127.0.0.1"):
    headers = {"X-API-Key": key} if key is not None else {}
    return client.post(PATH, json={"items": items}, headers=headers, environ_base={"REMOTE_ADDR": address})


def stock(product: Product) -> int:
    return db.session.scalar(db.select(Product.quantity).where(Product.id == product.id))


# API keys


def test_no_key_is_401(client, factory):
    product = factory.product()
    response = sync(client, [{"productId": product.id, "quantity": 1}], key=None)
    assert response.status_code == 401
    assert response.json["error"]["code"] == "INVALID_API_KEY"


@pytest.mark.parametrize("key", ["", "wrong-key", OPEN_KEY.upper(), OPEN_KEY + "x", OPEN_KEY[:-1], LISTED_KEY + "@"])
def test_a_wrong_key_is_401(client, factory, key):
    product = factory.product(quantity=3)
    response = sync(client, [{"productId": product.id, "quantity": 1}], key=key, address="10.0.0.1")
    assert response.status_code == 401
    assert stock(product) == 3


def test_a_bearer_token_is_not_an_api_key(client, factory):
    response = client.post(PATH, json={"items": [{"productId": 1, "quantity": 1}]},
                           headers=factory.headers(factory.admin()))
    assert response.status_code == 401


def test_the_key_is_checked_before_the_body(client):
    response = client.post(PATH, data="not json", content_type="text/plain")
    assert response.status_code == 401


def test_a_key_without_an_allow_list_works_from_anywhere(client, factory):
    product = factory.product(quantity=3)
    for address in ("127.0.0.1", "203.0.113.9", "::1"):
        response = sync(client, [{"productId": product.id, "quantity": 4}], address=address)
        assert response.status_code == 200, response.json
    assert stock(product) == 4


@pytest.mark.parametrize("address", ["10.0.0.1", "10.255.255.254", "192.168.1.7", "::ffff:10.20.30.40"])
def test_a_listed_key_works_from_its_addresses_and_networks(client, factory, address):
    product = factory.product(quantity=3)
    response = sync(client, [{"productId": product.id, "quantity": 9}], key=LISTED_KEY, address=address)
    assert response.status_code == 200, response.json
    assert stock(product) == 9


@pytest.mark.parametrize("address", ["127.0.0.1", "11.0.0.1", "192.168.1.8", "2001:db8::1", "not-an-address"])
def test_a_right_key_from_outside_its_allow_list_is_403_and_changes_nothing(client, factory, address):
    product = factory.product(quantity=3)
    response = sync(client, [{"productId": product.id, "quantity": 9}], key=LISTED_KEY, address=address)
    assert response.status_code == 403
    assert response.json["error"]["code"] == "ADDRESS_NOT_ALLOWED"
    assert stock(product) == 3


def test_ipv6_networks_are_allowed_lists_too(client, factory):
    items = [{"productId": factory.product(quantity=3).id, "quantity": 1}]
    assert sync(client, items, key=V6_KEY, address="2001:db8::5").status_code == 200
    assert sync(client, items, key=V6_KEY, address="10.0.0.1").status_code == 403


def test_keys_are_never_logged(client, factory, capsys):
    product = factory.product()
    sync(client, [{"productId": product.id, "quantity": 1}], key="secret-guess-42")
    sync(client, [{"productId": product.id, "quantity": 1}], key=LISTED_KEY)
    output = capsys.readouterr()
    assert "secret-guess-42" not in output.out + output.err
    assert LISTED_KEY not in output.out + output.err


def test_without_configured_keys_every_call_is_401(make_app):
    app = make_app()
    with app.app_context():
        response = app.test_client().post(PATH, json={"items": [{"productId": 1, "quantity": 1}]},
                                          headers={"X-API-Key": ""})
    assert response.status_code == 401


def test_api_keys_are_parsed_with_their_allow_lists():
    keys = parse_api_keys("k1, k2@10.0.0.0/8|192.168.1.7 ,, k3@10.1.2.3/16")
    assert [len(key.networks) for key in keys] == [0, 2, 1]
    assert [str(network) for network in keys[1].networks] == ["10.0.0.0/8", "192.168.1.7/32"]
    assert str(keys[2].networks[0]) == "10.1.0.0/16"
    assert parse_api_keys("") == ()


@pytest.mark.parametrize("raw", ["secret-one@", "secret-one@10.0.0.0/33", "secret-one@banana", "@10.0.0.1"])
def test_a_malformed_api_keys_setting_stops_the_app_without_showing_the_key(raw):
    with pytest.raises(ValueError) as error:
        create_app(TestingConfig, {"API_KEYS": raw, "SQLALCHEMY_DATABASE_URI": "sqlite://"})
    assert "secret-one" not in str(error.value)


# Stock sync


def test_sync_sets_absolute_stock_by_id_or_sku_and_reports_each_item(client, factory, received):
    ring = factory.product(quantity=3, sku="RING-1")
    mug = factory.product(quantity=7)
    vase = factory.product(quantity=0, sku="VASE-9", is_active=False)
    response = sync(client, [
        {"sku": "RING-1", "quantity": 10}, {"productId": mug.id, "quantity": 7}, {"sku": "VASE-9", "quantity": 2},
    ])
    assert response.status_code == 200, response.json
    assert response.json == {"updated": 2, "unchanged": 1, "items": [
        {"productId": ring.id, "quantity": 10, "previousQuantity": 3},
        {"productId": mug.id, "quantity": 7, "previousQuantity": 7},
        {"productId": vase.id, "quantity": 2, "previousQuantity": 0},
    ]}
    assert (stock(ring), stock(mug), stock(vase)) == (10, 7, 2)
    assert sorted(received) == sorted([("product", ring.id, 3, 10), ("product", vase.id, 0, 2)])


def test_sync_renders_the_envelope_in_v2(client, factory):
    product = factory.product(quantity=1)
    response = client.post("/api/v2/integrations/inventory", json={"items": [{"productId": product.id, "quantity": 0}]},
                           headers={"X-API-Key": OPEN_KEY})
    assert response.json["success"] is True
    assert response.json["data"]["items"] == [{"productId": product.id, "quantity": 0, "previousQuantity": 1}]


def test_unknown_products_are_422_listed_by_item_and_nothing_changes(client, factory, received):
    known = factory.product(quantity=3, sku="KNOWN")
    response = sync(client, [
        {"productId": known.id, "quantity": 50}, {"productId": 999_999, "quantity": 1}, {"sku": "NOPE", "quantity": 1},
    ])
    assert response.status_code == 422
    assert response.json["error"]["details"] == {"items": {
        "1": {"productId": ["No product with id 999999."]},
        "2": {"sku": ["No product with SKU NOPE."]},
    }}
    assert stock(known) == 3
    assert received == []


def test_the_same_product_twice_is_422(client, factory):
    product = factory.product(quantity=3, sku="TWICE")
    response = sync(client, [{"productId": product.id, "quantity": 1}, {"sku": "TWICE", "quantity": 2}])
    assert response.status_code == 422
    assert "1" in response.json["error"]["details"]["items"]
    assert stock(product) == 3


@pytest.mark.parametrize("items", [
    [], [{"productId": 1, "quantity": -1}], [{"productId": 1, "quantity": "5"}], [{"productId": 1, "quantity": 1.5}],
    [{"productId": 1, "quantity": True}], [{"productId": 1}], [{"quantity": 1}],
    [{"productId": 1, "sku": "A", "quantity": 1}], [{"productId": "1", "quantity": 1}],
    [{"productId": 1, "quantity": 1, "price": "9.99"}], [{"productId": 1, "quantity": 1}] * 1001,
])
def test_malformed_items_are_422(client, factory, items):
    factory.product(quantity=3)
    response = sync(client, items)
    assert response.status_code == 422
    assert response.json["error"]["code"] == "VALIDATION_ERROR"


def test_many_items_sync_in_one_call_and_each_change_is_announced(client, factory, received):
    products = [factory.product(quantity=1) for _ in range(20)]
    items = [{"productId": product.id, "quantity": n} for n, product in enumerate(products)]
    response = sync(client, items)
    assert response.status_code == 200
    assert (response.json["updated"], response.json["unchanged"]) == (19, 1)
    assert [stock(product) for product in products] == list(range(20))
    assert len(received) == 19
