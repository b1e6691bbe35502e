"""The cart: lines priced live, merging of identical lines, item and customization checks, owner-only access."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from fantasize.extensions import db
from fantasize.models.base import utcnow

CART = "/api/v1/cart"
LINES = "/api/v1/cart/items"


@pytest.fixture
def shopper(factory):
    user = factory.user()
    return user, factory.headers(user)


def add(client, headers, **body):
    return client.post(LINES, json=body, headers=headers)


def test_a_new_cart_is_empty_with_zero_totals(client, shopper):
    response = client.get(CART, headers=shopper[1])
    assert response.status_code == 200
    assert response.json == {"items": [], "subtotal": "0.00", "discountTotal": "0.00", "total": "0.00"}


def test_an_added_line_carries_its_item_summary_and_live_prices(client, factory, shopper):
    product = factory.product(name="Silver ring", price=Decimal("20.00"), offer=factory.offer(discount_percent=25))
    package = factory.package(name="Gift box", price=Decimal("49.00"))
    _, headers = shopper

    response = add(client, headers, productId=product.id, quantity=2)
    assert response.status_code == 201
    assert response.json == {
        "id": response.json["id"],
        "item": {"id": product.id, "name": "Silver ring", "type": "product", "price": "20.00",
                 "effectivePrice": "15.00"},
        "quantity": 2, "customizations": [], "lineTotal": "30.00",
    }
    assert add(client, headers, packageId=package.id, quantity=1).status_code == 201

    cart = client.get(CART, headers=headers).json
    assert [(line["item"]["type"], line["quantity"], line["lineTotal"]) for line in cart["items"]] == [
        ("product", 2, "30.00"), ("package", 1, "49.00"),
    ]
    assert (cart["subtotal"], cart["discountTotal"], cart["total"]) == ("89.00", "10.00", "79.00")


def test_cart_prices_follow_the_catalogue_until_an_order_is_placed(client, factory, shopper):
    offer = factory.offer(discount_percent=50)
    product = factory.product(price=Decimal("10.00"), offer=offer)
    _, headers = shopper
    add(client, headers, productId=product.id, quantity=3)
    assert client.get(CART, headers=headers).json["total"] == "15.00"

    offer.valid_to = utcnow() - timedelta(seconds=1)
    offer.valid_from = utcnow() - timedelta(days=2)
    product.price = Decimal("12.00")
    db.session.commit()
    cart = client.get(CART, headers=headers).json
    assert (cart["subtotal"], cart["discountTotal"], cart["total"]) == ("36.00", "0.00", "36.00")
    assert cart["items"][0]["item"]["effectivePrice"] == "12.00"


def test_adding_the_same_item_with_the_same_choices_adds_to_its_line(client, factory, shopper):
    colour = factory.customization(name="Colour", type="button",
                                   options=[{"name": "Red", "value": "red"}, {"name": "Blue", "value": "blue"}])
    engraving = factory.customization(name="Engraving", type="text", options=[])
    product = factory.product(customizations=[colour, engraving])
    _, headers = shopper
    red_ada = [{"customizationId": colour.id, "value": "red"}, {"customizationId": engraving.id, "value": "Ada"}]

    first = add(client, headers, productId=product.id, quantity=2, customizations=red_ada)
    again = add(client, headers, productId=product.id, quantity=3, customizations=list(reversed(red_ada)))
    blue = add(client, headers, productId=product.id, quantity=1,
               customizations=[{"customizationId": colour.id, "value": "blue"}])
    plain = add(client, headers, productId=product.id, quantity=1)

    assert again.status_code == 201 and again.json["id"] == first.json["id"] and again.json["quantity"] == 5
    assert len({first.json["id"], blue.json["id"], plain.json["id"]}) == 3
    assert [line["quantity"] for line in client.get(CART, headers=headers).json["items"]] == [5, 1, 1]
    assert first.json["customizations"] == [
        {"customizationId": colour.id, "name": "Colour", "type": "button", "value": "red"},
        {"customizationId": engraving.id, "name": "Engraving", "type": "text", "value": "Ada"},
    ]


def test_a_line_holds_at_most_99(client, factory, shopper):
    product = factory.product()
    _, headers = shopper
    assert add(client, headers, productId=product.id, quantity=60).status_code == 201
    over = add(client, headers, productId=product.id, quantity=40)
    assert over.status_code == 422
    assert "quantity" in over.json["error"]["details"]
    assert add(client, headers, productId=product.id, quantity=39).json["quantity"] == 99
    assert client.get(CART, headers=headers).json["items"][0]["quantity"] == 99


@pytest.mark.parametrize("quantity", [0, 100, -1, "2", 1.5, True, None])
def test_quantity_must_be_an_integer_from_1_to_99(client, factory, shopper, quantity):
    response = add(client, shopper[1], productId=factory.product().id, quantity=quantity)
    assert response.status_code == 422
    assert "quantity" in response.json["error"]["details"]


def test_exactly_one_of_product_and_package(client, factory, shopper):
    product, package = factory.product(), factory.package()
    _, headers = shopper
    assert add(client, headers, quantity=1).status_code == 422
    assert add(client, headers, productId=product.id, packageId=package.id, quantity=1).status_code == 422


def test_missing_or_inactive_items_are_422_naming_the_field(client, factory, shopper):
    _, headers = shopper
    inactive_product = factory.product(is_active=False)
    inactive_package = factory.package(is_active=False)
    for body, field in (
        ({"productId": 999_999}, "productId"),
        ({"productId": inactive_product.id}, "productId"),
        ({"packageId": 999_999}, "packageId"),
        ({"packageId": inactive_package.id}, "packageId"),
    ):
        response = add(client, headers, quantity=1, **body)
        assert response.status_code == 422, body
        assert list(response.json["error"]["details"]) == [field]


def test_unknown_fields_are_refused(client, factory, shopper):
    response = add(client, shopper[1], productId=factory.product().id, quantity=1, price="0.01")
    assert response.status_code == 422
    assert "price" in response.json["error"]["details"]


def choice_error(response) -> dict:
    assert response.status_code == 422, response.json
    return response.json["error"]["details"]["customizations"]["0"]


def test_button_choices_must_be_one_of_the_options(client, factory, shopper):
    size = factory.customization(name="Size", type="button",
                                 options=[{"name": "Small", "value": "S"}, {"name": "Large", "value": "L"}])
    product = factory.product(customizations=[size])
    _, headers = shopper
    ok = add(client, headers, productId=product.id, quantity=1, customizations=[{"customizationId": size.id,
                                                                                 "value": "L"}])
    assert ok.status_code == 201
    for value in ("XL", "Large", 1, ["S"]):
        response = add(client, headers, productId=product.id, quantity=1,
                       customizations=[{"customizationId": size.id, "value": value}])
        assert "value" in choice_error(response), value


def test_text_choices_are_limited_by_max_length_and_kept_verbatim(client, factory, shopper):
    short = factory.customization(type="text", options=[{"name": "maxLength", "value": "10"}])
    default = factory.customization(type="text", options=[])
    product = factory.product(customizations=[short, default])
    _, headers = shopper

    def line(customization, value):
        return add(client, headers, productId=product.id, quantity=1,
                   customizations=[{"customizationId": customization.id, "value": value}])

    assert line(short, "O'Brien").json["customizations"][0]["value"] == "O'Brien"
    assert line(short, "x" * 10).status_code == 201
    assert "value" in choice_error(line(short, "x" * 11))
    assert line(default, "DROP earrings -- 50% off;").json["customizations"][0]["value"] == "DROP earrings -- 50% off;"
    assert line(default, "y" * 100).status_code == 201
    assert "value" in choice_error(line(default, "y" * 101))
    assert "value" in choice_error(line(default, 42))
    assert "value" in choice_error(line(default, ""))


def test_image_choices_must_be_an_upload_of_the_user(client, factory, shopper):
    user, headers = shopper
    photo = factory.customization(type="image", options=[])
    product = factory.product(customizations=[photo])
    mine, theirs = factory.upload(owner_id=user.id), factory.upload(owner_id=factory.user().id)

    def line(value):
        return add(client, headers, productId=product.id, quantity=1,
                   customizations=[{"customizationId": photo.id, "value": value}])

    assert line(mine.id).json["customizations"] == [
        {"customizationId": photo.id, "name": photo.name, "type": "image", "value": mine.id}
    ]
    for value in (theirs.id, 999_999, str(mine.id), True):
        assert "value" in choice_error(line(value)), value


def test_a_customization_must_be_attached_to_the_item(client, factory, shopper):
    attached, other = factory.customization(), factory.customization()
    product = factory.product(customizations=[attached])
    package = factory.package(customizations=[attached])
    _, headers = shopper
    for body in ({"productId": product.id}, {"packageId": package.id}):
        response = add(client, headers, quantity=1, customizations=[{"customizationId": other.id, "value": "Hi"}],
                       **body)
        assert "customizationId" in choice_error(response)
    twice = add(client, headers, productId=product.id, quantity=1, customizations=[
        {"customizationId": attached.id, "value": "a"}, {"customizationId": attached.id, "value": "b"},
    ])
    assert twice.status_code == 422
    assert "customizationId" in twice.json["error"]["details"]["customizations"]["1"]


def test_patch_changes_quantity_and_choices_and_checks_them_again(client, factory, shopper):
    engraving = factory.customization(type="text", options=[{"name": "maxLength", "value": "5"}])
    product = factory.product(price=Decimal("4.00"), customizations=[engraving])
    _, headers = shopper
    line_id = add(client, headers, productId=product.id, quantity=1).json["id"]

    changed = client.patch(f"{LINES}/{line_id}", headers=headers, json={"quantity": 4})
    assert changed.status_code == 200
    assert (changed.json["quantity"], changed.json["lineTotal"]) == (4, "16.00")
    named = client.patch(f"{LINES}/{line_id}", headers=headers,
                         json={"customizations": [{"customizationId": engraving.id, "value": "Ada"}]})
    assert named.json["quantity"] == 4 and named.json["customizations"][0]["value"] == "Ada"
    too_long = client.patch(f"{LINES}/{line_id}", headers=headers,
                            json={"customizations": [{"customizationId": engraving.id, "value": "Lovelace"}]})
    assert too_long.status_code == 422
    assert client.patch(f"{LINES}/{line_id}", headers=headers, json={"quantity": 100}).status_code == 422
    assert client.patch(f"{LINES}/{line_id}", headers=headers, json={"productId": 1}).status_code == 422
    assert client.get(CART, headers=headers).json["items"][0]["customizations"][0]["value"] == "Ada"


def test_removing_a_line_and_emptying_the_cart(client, factory, shopper):
    _, headers = shopper
    first = add(client, headers, productId=factory.product().id, quantity=1).json["id"]
    add(client, headers, productId=factory.product().id, quantity=2)
    add(client, headers, packageId=factory.package().id, quantity=1)

    assert client.delete(f"{LINES}/{first}", headers=headers).status_code == 204
    assert len(client.get(CART, headers=headers).json["items"]) == 2
    assert client.delete(f"{LINES}/{first}", headers=headers).status_code == 404
    assert client.delete(CART, headers=headers).status_code == 204
    assert client.get(CART, headers=headers).json["items"] == []


def test_the_cart_is_the_owners_alone(client, factory, shopper):
    _, headers = shopper
    line_id = add(client, headers, productId=factory.product().id, quantity=1).json["id"]
    other = factory.headers(factory.user())

    assert client.get(CART, headers=other).json["items"] == []
    assert client.patch(f"{LINES}/{line_id}", headers=other, json={"quantity": 2}).status_code == 404
    assert client.delete(f"{LINES}/{line_id}", headers=other).status_code == 404
    client.delete(CART, headers=other)
    assert len(client.get(CART, headers=headers).json["items"]) == 1
    for response in (client.get(CART), client.post(LINES, json={"productId": 1, "quantity": 1}),
                     client.delete(CART), client.delete(f"{LINES}/{line_id}")):
        assert response.status_code == 401


def test_v2_wraps_the_cart_in_the_envelope(client, factory, shopper):
    _, headers = shopper
    add(client, headers, productId=factory.product(price=Decimal("5.00")).id, quantity=2)
    body = client.get("/api/v2/cart", headers=headers).json
    assert body["success"] is True
    assert body["data"]["total"] == "10.00"
