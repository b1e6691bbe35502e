"""The address book through HTTP: CRUD, the one-default rules, the cap, country codes and owner isolation."""

from __future__ import annotations

import pytest

API = "/api/v1"
ADDRESSES = f"{API}/users/me/addresses"
ADDRESS_KEYS = {"id", "line1", "line2", "city", "state", "country", "postalCode", "isDefault", "createdAt",
                "updatedAt"}


def address(**fields):
    return {"line1": "1 Main Street", "city": "Springfield", "country": "US", **fields}


def add(client, headers, **fields):
    response = client.post(ADDRESSES, headers=headers, json=address(**fields))
    assert response.status_code == 201, response.json
    return response.json


def book(client, headers):
    return client.get(ADDRESSES, headers=headers).json


def default_ids(client, headers):
    return [entry["id"] for entry in book(client, headers) if entry["isDefault"]]


# Create, read, update, delete


def test_an_address_is_added_and_rendered_whole(client, factory):
    headers = factory.headers(factory.user())
    response = client.post(ADDRESSES, headers=headers, json={
        "line1": "221B Baker Street", "line2": "Flat B", "city": "London", "state": "Greater London",
        "country": "gb", "postalCode": "NW1 6XE",
    })
    assert response.status_code == 201
    body = response.json
    assert set(body) == ADDRESS_KEYS
    assert body["country"] == "GB"
    assert (body["line1"], body["line2"], body["city"], body["state"], body["postalCode"]) == (
        "221B Baker Street", "Flat B", "London", "Greater London", "NW1 6XE")
    assert body["createdAt"].endswith("Z")
    assert book(client, headers) == [body]


def test_optional_fields_may_be_left_out(client, factory):
    body = add(client, factory.headers(factory.user()))
    assert body["line2"] is None and body["state"] is None and body["postalCode"] is None


@pytest.mark.parametrize("text", ["O'Brien House", "DROP earrings -- 50% off;", "Select your size", "Straße 名前 😀"])
def test_text_round_trips_exactly(client, factory, text):
    headers = factory.headers(factory.user())
    created = add(client, headers, line1=text, line2=text, city=text[:100], state=text)
    assert (created["line1"], created["line2"], created["state"]) == (text, text, text)
    assert book(client, headers)[0]["line1"] == text


def test_patch_changes_only_the_fields_given(client, factory):
    headers = factory.headers(factory.user())
    created = add(client, headers, postalCode="12345")
    response = client.patch(f"{ADDRESSES}/{created['id']}", headers=headers,
                            json={"city": "Shelbyville", "country": "ca", "line2": "Unit 4"})
    assert response.status_code == 200
    assert response.json["city"] == "Shelbyville" and response.json["country"] == "CA"
    assert response.json["line2"] == "Unit 4"
    assert response.json["line1"] == created["line1"] and response.json["postalCode"] == "12345"
    cleared = client.patch(f"{ADDRESSES}/{created['id']}", headers=headers, json={"line2": None, "postalCode": None})
    assert cleared.json["line2"] is None and cleared.json["postalCode"] is None


def test_delete_removes_the_address(client, factory):
    headers = factory.headers(factory.user())
    created = add(client, headers)
    response = client.delete(f"{ADDRESSES}/{created['id']}", headers=headers)
    assert response.status_code == 204
    assert response.data == b""
    assert book(client, headers) == []
    assert client.delete(f"{ADDRESSES}/{created['id']}", headers=headers).status_code == 404


def test_the_list_is_paginated_with_the_default_first_then_by_id(client, factory):
    headers = factory.headers(factory.user())
    ids = [add(client, headers, line1=f"{n} Main Street")["id"] for n in range(5)]
    client.patch(f"{ADDRESSES}/{ids[3]}", headers=headers, json={"isDefault": True})
    assert [entry["id"] for entry in book(client, headers)] == [ids[3], ids[0], ids[1], ids[2], ids[4]]
    page = client.get(f"{ADDRESSES}?page=2&limit=2", headers=headers)
    assert [entry["id"] for entry in page.json] == [ids[1], ids[2]]
    assert page.headers["X-Total-Count"] == "5"


def test_v2_wraps_the_list_in_the_envelope(client, factory):
    headers = factory.headers(factory.user())
    created = add(client, headers)
    body = client.get("/api/v2/users/me/addresses", headers=headers).json
    assert body["success"] is True
    assert body["data"] == [created]
    assert body["meta"]["pagination"]["total"] == 1


# Exactly one default


def test_the_first_address_becomes_the_default_even_when_not_asked(client, factory):
    headers = factory.headers(factory.user())
    first = add(client, headers, isDefault=False)
    second = add(client, headers)
    assert first["isDefault"] is True and second["isDefault"] is False
    assert default_ids(client, headers) == [first["id"]]


def test_adding_a_default_clears_the_old_one(client, factory):
    headers = factory.headers(factory.user())
    first = add(client, headers)
    second = add(client, headers, isDefault=True)
    assert second["isDefault"] is True
    assert default_ids(client, headers) == [second["id"]]
    assert {entry["id"]: entry["isDefault"] for entry in book(client, headers)} == {
        first["id"]: False, second["id"]: True}


def test_patching_isdefault_true_moves_the_default(client, factory):
    headers = factory.headers(factory.user())
    ids = [add(client, headers)["id"] for _ in range(3)]
    response = client.patch(f"{ADDRESSES}/{ids[2]}", headers=headers, json={"isDefault": True})
    assert response.status_code == 200 and response.json["isDefault"] is True
    assert default_ids(client, headers) == [ids[2]]
    again = client.patch(f"{ADDRESSES}/{ids[2]}", headers=headers, json={"isDefault": True})
    assert again.status_code == 200
    assert default_ids(client, headers) == [ids[2]]


def test_unsetting_the_default_hands_it_to_the_most_recent_other_address(client, factory):
    headers = factory.headers(factory.user())
    first, _, third = (add(client, headers) for _ in range(3))
    response = client.patch(f"{ADDRESSES}/{first['id']}", headers=headers, json={"isDefault": False})
    assert response.status_code == 200 and response.json["isDefault"] is False
    assert default_ids(client, headers) == [third["id"]]


def test_the_only_address_stays_the_default(client, factory):
    headers = factory.headers(factory.user())
    only = add(client, headers)
    response = client.patch(f"{ADDRESSES}/{only['id']}", headers=headers, json={"isDefault": False})
    assert response.status_code == 200 and response.json["isDefault"] is True
    assert default_ids(client, headers) == [only["id"]]


def test_deleting_the_default_promotes_the_most_recent_remaining_address(client, factory):
    headers = factory.headers(factory.user())
    first, second, third = (add(client, headers) for _ in range(3))
    assert client.delete(f"{ADDRESSES}/{first['id']}", headers=headers).status_code == 204
    assert default_ids(client, headers) == [third["id"]]
    assert client.delete(f"{ADDRESSES}/{third['id']}", headers=headers).status_code == 204
    assert default_ids(client, headers) == [second["id"]]


def test_deleting_another_address_keeps_the_default(client, factory):
    headers = factory.headers(factory.user())
    first, second = add(client, headers), add(client, headers)
    assert client.delete(f"{ADDRESSES}/{second['id']}", headers=headers).status_code == 204
    assert default_ids(client, headers) == [first["id"]]


def test_defaults_are_per_user(client, factory):
    alice, bob = factory.headers(factory.user()), factory.headers(factory.user())
    alices = add(client, alice)
    bobs = add(client, bob)
    add(client, bob, isDefault=True)
    assert default_ids(client, alice) == [alices["id"]]
    assert bobs["id"] not in default_ids(client, bob)


# The cap


def test_a_user_holds_at_most_twenty_addresses(client, factory):
    headers = factory.headers(factory.user())
    for n in range(20):
        add(client, headers, line1=f"{n} Main Street")
    response = client.post(ADDRESSES, headers=headers, json=address())
    assert response.status_code == 409
    assert response.json["error"]["code"] == "ADDRESS_LIMIT"
    assert client.get(ADDRESSES, headers=headers).headers["X-Total-Count"] == "20"
    other = factory.headers(factory.user())
    assert client.post(ADDRESSES, headers=other, json=address()).status_code == 201


# Validation


@pytest.mark.parametrize("country", ["XX", "ZZ", "USA", "U", "", "1A", "XK", 12, None])
def test_country_must_be_an_iso_alpha_2_code(client, factory, country):
    response = client.post(ADDRESSES, headers=factory.headers(factory.user()), json=address(country=country))
    assert response.status_code == 422
    assert set(response.json["error"]["details"]) == {"country"}


@pytest.mark.parametrize("country, stored", [("us", "US"), ("De", "DE"), ("ax", "AX"), ("ZW", "ZW")])
def test_country_codes_are_upper_cased(client, factory, country, stored):
    assert add(client, factory.headers(factory.user()), country=country)["country"] == stored


@pytest.mark.parametrize("fields, field", [
    ({"line1": ""}, "line1"),
    ({"line1": "x" * 201}, "line1"),
    ({"line1": None}, "line1"),
    ({"city": "x" * 101}, "city"),
    ({"line2": "x" * 201}, "line2"),
    ({"state": "x" * 101}, "state"),
    ({"postalCode": "x" * 21}, "postalCode"),
    ({"isDefault": "yes"}, "isDefault"),
    ({"userId": 1}, "userId"),
])
def test_invalid_fields_are_422(client, factory, fields, field):
    response = client.post(ADDRESSES, headers=factory.headers(factory.user()), json=address(**fields))
    assert response.status_code == 422
    assert set(response.json["error"]["details"]) == {field}


@pytest.mark.parametrize("missing", ["line1", "city", "country"])
def test_required_fields_are_required(client, factory, missing):
    body = address()
    del body[missing]
    response = client.post(ADDRESSES, headers=factory.headers(factory.user()), json=body)
    assert response.status_code == 422
    assert response.json["error"]["details"] == {missing: ["Missing data for required field."]}


def test_patch_validates_what_it_is_given(client, factory):
    headers = factory.headers(factory.user())
    created = add(client, headers)
    response = client.patch(f"{ADDRESSES}/{created['id']}", headers=headers, json={"country": "QQ"})
    assert response.status_code == 422
    assert book(client, headers)[0]["country"] == "US"


# Owner isolation


def test_another_users_address_is_not_found(client, factory):
    owner, stranger = factory.headers(factory.user()), factory.headers(factory.user())
    created = add(client, owner)
    url = f"{ADDRESSES}/{created['id']}"
    assert client.patch(url, headers=stranger, json={"city": "Nowhere"}).status_code == 404
    assert client.delete(url, headers=stranger).status_code == 404
    assert book(client, stranger) == []
    assert book(client, owner) == [created]


def test_an_unknown_address_is_not_found(client, factory):
    headers = factory.headers(factory.user())
    assert client.patch(f"{ADDRESSES}/999999", headers=headers, json={"city": "x"}).status_code == 404
    assert client.delete(f"{ADDRESSES}/999999", headers=headers).status_code == 404


@pytest.mark.parametrize("method, path", [
    ("get", ""), ("post", ""), ("patch", "/1"), ("delete", "/1"),
])
def test_the_address_book_needs_a_token(client, method, path):
    response = getattr(client, method)(f"{ADDRESSES}{path}", json=address())
    assert response.status_code == 401
    assert response.json["error"]["code"] == "UNAUTHORIZED"
