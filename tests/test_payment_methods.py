"""Payment methods through HTTP: cards checked and reduced to brand and last 4, cash on delivery, ownership,
and a card number and CVV that appear nowhere: not in the database, the logs, a response or an error."""

from __future__ import annotations

import re
from contextlib import contextmanager
from datetime import UTC, datetime

import pytest
from sqlalchemy import event, select

from fantasize.extensions import db
from tests.factories import Factory

API = "/api/v1"
METHODS = f"{API}/users/me/payment-methods"
METHOD_KEYS = {"id", "method", "cardholderName", "brand", "last4", "expMonth", "expYear", "createdAt"}
NEXT_YEAR = datetime.now(UTC).year + 1


def with_check_digit(partial: str) -> str:
    """`partial` plus the digit that makes it pass the Luhn check."""
    total = 0
    for position, char in enumerate(reversed(partial)):
        value = int(char)
        if position % 2 == 0:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return partial + str(-total % 10)


VISA = with_check_digit("453914880343646")


def card(**fields):
    return {"method": "card", "cardNumber": VISA, "cardholderName": "Ada Lovelace", "expMonth": 12,
            "expYear": NEXT_YEAR, "cvv": "123", **fields}


def post(client, headers, body):
    return client.post(METHODS, headers=headers, json=body)


# Cards


def test_a_card_is_kept_as_brand_and_last_four_digits(client, factory):
    headers = factory.headers(factory.user())
    response = post(client, headers, card(cardNumber=f"{VISA[:4]} {VISA[4:8]}-{VISA[8:12]} {VISA[12:]}"))
    assert response.status_code == 201
    body = response.json
    assert set(body) == METHOD_KEYS
    assert body["method"] == "card" and body["brand"] == "visa" and body["last4"] == VISA[-4:]
    assert (body["cardholderName"], body["expMonth"], body["expYear"]) == ("Ada Lovelace", 12, NEXT_YEAR)
    assert client.get(METHODS, headers=headers).json == [body]


@pytest.mark.parametrize("partial, brand", [
    ("411111111111111", "visa"),
    ("4" + "0" * 11, "visa"),  # 13 digits
    ("510000000000000", "mastercard"),
    ("555555555555444", "mastercard"),
    ("222100000000000", "mastercard"),
    ("272099999999999", "mastercard"),
    ("222000000000000", "unknown"),
    ("272100000000000", "unknown"),
    ("37828224631000", "amex"),
    ("34000000000000", "amex"),
    ("601111111111111", "discover"),
    ("650000000000000", "discover"),
    ("644000000000000", "discover"),
    ("649999999999999", "discover"),
    ("643000000000000", "unknown"),
    ("353011133330000", "unknown"),  # JCB
    ("3056930902590", "unknown"),  # Diners Club
    ("50000000000", "unknown"),  # 12 digits, the shortest accepted
    ("620000000000000000", "unknown"),  # 19 digits, the longest accepted
])
def test_the_brand_is_detected_from_the_number(client, factory, partial, brand):
    number = with_check_digit(partial)
    response = post(client, factory.headers(factory.user()), card(cardNumber=number))
    assert response.status_code == 201, response.json
    assert response.json["brand"] == brand and response.json["last4"] == number[-4:]


def test_a_card_expiring_this_month_is_accepted_and_last_month_is_expired(client, factory):
    headers = factory.headers(factory.user())
    now = datetime.now(UTC)
    this_month = post(client, headers, card(expMonth=now.month, expYear=now.year))
    assert this_month.status_code == 201
    last_month = (now.year, now.month - 1) if now.month > 1 else (now.year - 1, 12)
    expired = post(client, headers, card(expMonth=last_month[1], expYear=last_month[0]))
    assert expired.status_code == 422
    assert expired.json["error"]["details"] == {"expYear": ["The card has expired."]}
    assert post(client, headers, card(expMonth=12, expYear=now.year - 1)).status_code == 422


def test_a_luhn_failure_is_invalid_without_repeating_the_number(client, factory):
    wrong = VISA[:-1] + str((int(VISA[-1]) + 1) % 10)
    response = post(client, factory.headers(factory.user()), card(cardNumber=wrong))
    assert response.status_code == 422
    assert response.json["error"]["details"] == {"cardNumber": ["Invalid card number."]}
    assert wrong not in response.get_data(as_text=True)
    assert wrong[-4:] not in response.get_data(as_text=True)


@pytest.mark.parametrize("number", [
    "4111 1111 1111 111a", "4111.1111.1111.1111", "", "12345678903", "4" * 20, "１２３４５６７８９０１２",
    "4111111111111111" + " " * 40, 4111111111111111, None,
])
def test_malformed_card_numbers_are_422(client, factory, number):
    response = post(client, factory.headers(factory.user()), card(cardNumber=number))
    assert response.status_code == 422
    assert set(response.json["error"]["details"]) == {"cardNumber"}


@pytest.mark.parametrize("fields, field", [
    ({"expMonth": 0}, "expMonth"),
    ({"expMonth": 13}, "expMonth"),
    ({"expMonth": "12"}, "expMonth"),
    ({"expYear": 27}, "expYear"),
    ({"expYear": "2030"}, "expYear"),
    ({"cvv": "12"}, "cvv"),
    ({"cvv": "12345"}, "cvv"),
    ({"cvv": "12a"}, "cvv"),
    ({"cvv": 123}, "cvv"),
    ({"cardholderName": ""}, "cardholderName"),
    ({"cardholderName": "x" * 101}, "cardholderName"),
    ({"brand": "visa"}, "brand"),
    ({"last4": "1111"}, "last4"),
])
def test_invalid_card_fields_are_422(client, factory, fields, field):
    response = post(client, factory.headers(factory.user()), card(**fields))
    assert response.status_code == 422
    assert set(response.json["error"]["details"]) == {field}


def test_a_four_digit_cvv_is_accepted(client, factory):
    assert post(client, factory.headers(factory.user()), card(cvv="0123")).status_code == 201


@pytest.mark.parametrize("missing", ["cardNumber", "cardholderName", "expMonth", "expYear", "cvv"])
def test_every_card_field_is_required_for_a_card(client, factory, missing):
    body = card()
    del body[missing]
    response = post(client, factory.headers(factory.user()), body)
    assert response.status_code == 422
    assert response.json["error"]["details"] == {missing: ["Missing data for required field."]}


def test_an_invalid_field_is_reported_once_beside_a_missing_one(client, factory):
    body = card(cvv="1")
    del body["cardholderName"]
    response = post(client, factory.headers(factory.user()), body)
    assert response.status_code == 422
    assert response.json["error"]["details"] == {
        "cvv": ["Must be 3 or 4 digits."], "cardholderName": ["Missing data for required field."]}


# Cash on delivery


def test_cash_on_delivery_needs_nothing_else(client, factory):
    headers = factory.headers(factory.user())
    response = post(client, headers, {"method": "cash_on_delivery"})
    assert response.status_code == 201
    body = response.json
    assert body["method"] == "cash_on_delivery"
    assert all(body[key] is None for key in ("cardholderName", "brand", "last4", "expMonth", "expYear"))


@pytest.mark.parametrize("field, value", [
    ("cardNumber", VISA), ("cardholderName", "Ada"), ("expMonth", 12), ("expYear", NEXT_YEAR), ("cvv", "123"),
])
def test_cash_on_delivery_refuses_card_fields(client, factory, field, value):
    response = post(client, factory.headers(factory.user()), {"method": "cash_on_delivery", field: value})
    assert response.status_code == 422
    assert response.json["error"]["details"] == {field: ["Not allowed for cash on delivery."]}


def test_cash_on_delivery_with_a_whole_card_is_422(client, factory):
    headers = factory.headers(factory.user())
    response = post(client, headers, card(method="cash_on_delivery"))
    assert response.status_code == 422
    assert set(response.json["error"]["details"]) == {"cardNumber", "cardholderName", "expMonth", "expYear", "cvv"}
    assert client.get(METHODS, headers=headers).json == []


@pytest.mark.parametrize("body", [{}, {"method": "paypal"}, {"method": None}, {"method": "CARD"}])
def test_the_method_must_be_card_or_cash_on_delivery(client, factory, body):
    response = post(client, factory.headers(factory.user()), body)
    assert response.status_code == 422
    assert "method" in response.json["error"]["details"]


# Listing, deleting, ownership


def test_the_list_is_the_users_own_in_order_of_creation(client, factory):
    alice, bob = factory.headers(factory.user()), factory.headers(factory.user())
    first = post(client, alice, card()).json
    second = post(client, alice, {"method": "cash_on_delivery"}).json
    post(client, bob, card())
    response = client.get(METHODS, headers=alice)
    assert [entry["id"] for entry in response.json] == [first["id"], second["id"]]
    assert response.headers["X-Total-Count"] == "2"
    v2 = client.get("/api/v2/users/me/payment-methods?limit=1", headers=alice).json
    assert [entry["id"] for entry in v2["data"]] == [first["id"]]
    assert v2["meta"]["pagination"] == {"page": 1, "limit": 1, "total": 2, "pages": 2}


def test_delete_removes_the_method(client, factory):
    headers = factory.headers(factory.user())
    created = post(client, headers, card()).json
    response = client.delete(f"{METHODS}/{created['id']}", headers=headers)
    assert response.status_code == 204 and response.data == b""
    assert client.get(METHODS, headers=headers).json == []
    assert client.delete(f"{METHODS}/{created['id']}", headers=headers).status_code == 404


def test_another_users_method_is_not_found(client, factory):
    owner, stranger = factory.headers(factory.user()), factory.headers(factory.user())
    created = post(client, owner, card()).json
    assert client.delete(f"{METHODS}/{created['id']}", headers=stranger).status_code == 404
    assert client.get(METHODS, headers=owner).json == [created]


@pytest.mark.parametrize("method, path", [("get", ""), ("post", ""), ("delete", "/1")])
def test_payment_methods_need_a_token(client, method, path):
    response = getattr(client, method)(f"{METHODS}{path}", json=card())
    assert response.status_code == 401


# The number and the CVV appear nowhere


SECRET_CVV = "8351"


def database_dump() -> str:
    """Every row of every table, as text."""
    db.session.remove()
    lines = []
    for table in db.metadata.sorted_tables:
        for row in db.session.execute(select(table)):
            lines.append(f"{table.name}: " + " | ".join(str(value) for value in row))
    db.session.remove()
    return "\n".join(lines)


@contextmanager
def sql_sent():
    """Every statement and its parameters, as sent to the database inside the block."""
    sent: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany) -> None:
        sent.append(f"{statement} {parameters!r}")

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(db.engine, "before_cursor_execute", record)


def leaks(text: str, number: str) -> list[str]:
    # The CVV is short, so it counts only as a number of its own, not inside a longer run of digits.
    found = [label for label, value in (("number", number), ("number as typed", f"{number[:4]} {number[4:]}"))
             if value in text]
    if re.search(rf"(?<![0-9]){SECRET_CVV}(?![0-9])", text):
        found.append("cvv")
    return found


SECRET_CARD = with_check_digit("402400716241233")
FAILS_LUHN = SECRET_CARD[:-1] + str((int(SECRET_CARD[-1]) + 3) % 10)


@pytest.mark.parametrize("number, status", [(SECRET_CARD, 201), (FAILS_LUHN, 422)])
def test_the_card_number_and_cvv_appear_nowhere(make_app, capfd, number, status):
    app = make_app(LOG_LEVEL="DEBUG")
    with app.app_context():
        factory = Factory(app)
        # Fixed values, so no random hash or counter can happen to contain the CVV's digits.
        user = factory.user(email="cardholder@example.com", username="cardholder", password_hash="not-a-hash")
        headers = {**factory.headers(user), "X-Request-ID": "card-leak-check"}
        client = app.test_client()
        capfd.readouterr()
        with sql_sent() as sent:
            response = client.post(METHODS, headers=headers,
                                   json=card(cardNumber=f"{number[:4]} {number[4:]}", cvv=SECRET_CVV))
            listed = client.get(METHODS, headers=headers)
            listed_v2 = client.get("/api/v2/users/me/payment-methods", headers=headers)
        assert response.status_code == status, response.json
        captured = capfd.readouterr()
        dump = database_dump()

    for text in (response.get_data(as_text=True), listed.get_data(as_text=True), listed_v2.get_data(as_text=True)):
        assert leaks(text, number) == []
    assert leaks("\n".join(sent), number) == []
    assert leaks(dump, number) == []
    assert leaks(captured.err + captured.out, number) == []
    assert "cardholder@example.com" in dump  # the dump did read the tables
    assert any(statement.startswith("INSERT INTO payment_methods") for statement in sent) == (status == 201)
    if status == 201:
        assert f"| {number[-4:]} |" in dump
        assert '"message":"payment method added"' in captured.err  # the logs were captured
    else:
        assert response.json["error"]["details"] == {"cardNumber": ["Invalid card number."]}
