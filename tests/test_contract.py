"""The contract every route keeps whatever it is sent: text holding a control character is refused by name (422 in
a body, 400 in a query) and never stored, JSON nested too deep is 400, and a path id that cannot be an id is 404
for every method of its route; none of it is ever a 500. The sweeps read the URL map, so a new route is covered."""

from __future__ import annotations

import io
import json
import re
from typing import Any

import pytest
from flask import Flask
from marshmallow import Schema, fields
from sqlalchemy import func, select

from fantasize.extensions import db
from fantasize.models import Address, ContactMessage, Upload, User
from fantasize.schemas.base import CONTROL_CHARACTER_MESSAGE, SURROGATE_MESSAGE
from fantasize.web import MAX_JSON_DEPTH

API = "/api/v1"
NUL = "\x00"
REFUSED = [CONTROL_CHARACTER_MESSAGE]
DEEP = 10_000


def spec_of(app: Flask, rule) -> Any:
    return getattr(app.view_functions[rule.endpoint], "endpoint_spec", None)


def versioned_rules(app: Flask, *mounts: str) -> list:
    """The rules of the API mounted as `mounts` (v0, v1, v2, or api for the unversioned paths)."""
    return [rule for rule in app.url_map.iter_rules() if rule.endpoint.split(".")[0] in mounts]


def filled(rule, value: str = "1") -> str:
    return re.sub(r"<[^>]+>", value, rule.rule)


def row_counts() -> dict[str, int]:
    return {table.name: db.session.scalar(select(func.count()).select_from(table))
            for table in db.metadata.sorted_tables}


def as_json(value: Any) -> Any:
    """`value` as a client reads it back (integer keys of list errors become strings)."""
    return json.loads(json.dumps(value))


def poisoned(schema: Schema) -> tuple[dict, dict]:
    """A body giving every field of `schema` a value with a NUL in it, whatever the field's type (strings for
    integers, money, emails, enums and dates too), and the errors that body must get."""
    body, errors = {}, {}
    for field in schema.load_fields.values():
        body[field.data_key], errors[field.data_key] = poisoned_value(field)
    return body, errors


def poisoned_value(field: fields.Field) -> tuple[Any, Any]:
    if isinstance(field, fields.Nested):
        value, error = poisoned(field.schema)
        return ([value], {0: error}) if field.many else (value, error)
    if isinstance(field, fields.List):
        value, error = poisoned_value(field.inner)
        return [value], {0: error}
    if isinstance(field, (fields.Dict, fields.Raw)) and not isinstance(field, fields.String):
        return {"note": f"kept{NUL}", "list": ["ok", f"x{NUL}"]}, {"note": REFUSED, "list": {1: REFUSED}}
    return f"x{NUL}y", REFUSED


# Text: one rule for every body field and query value


def test_every_write_route_refuses_a_nul_in_any_field_by_name_and_stores_nothing(sweep):
    app, client, headers = sweep
    routes = [(method, rule) for rule in versioned_rules(app, "v1", "v2") if (spec := spec_of(app, rule))
              and spec.body is not None for method in sorted(rule.methods & {"POST", "PUT", "PATCH"})]
    assert len(routes) >= 60 and any(rule.rule == f"{API}/orders" for _, rule in routes)
    before = row_counts()
    for method, rule in routes:
        body, errors = poisoned(spec_of(app, rule).body())
        response = client.open(filled(rule), method=method, headers=headers, json=body)
        assert response.status_code == 422, (method, rule.rule, response.json)
        assert response.json["error"]["code"] == "VALIDATION_ERROR"
        assert response.json["error"]["details"] == as_json(errors), (method, rule.rule)
    assert row_counts() == before


def test_every_query_value_with_a_nul_is_400_naming_the_parameter(sweep):
    app, client, headers = sweep
    rules = [rule for rule in versioned_rules(app, "v1", "v2") if "GET" in rule.methods
             and (spec := spec_of(app, rule)) and spec.query is not None]
    assert len(rules) >= 20 and any(rule.rule == f"{API}/search" for rule in rules)
    for rule in rules:
        names = [field.data_key for field in spec_of(app, rule).query().load_fields.values()]
        query = {**{name: f"a{NUL}" for name in names}, "unlisted": NUL, f"key{NUL}": "1"}
        response = client.get(filled(rule), headers=headers, query_string=query)
        refused_status = spec_of(app, rule).query.refused_status  # 400 (API.md), 422 where an issue asks
        assert response.status_code == refused_status, (rule.rule, response.json)
        assert response.json["error"]["code"] == {400: "BAD_REQUEST", 422: "VALIDATION_ERROR"}[refused_status]
        assert response.json["error"]["details"] == {name: REFUSED for name in query}, rule.rule


@pytest.mark.parametrize("path", ["/search", "/products", "/packages"])
def test_a_nul_in_a_search_is_400(client, path):
    response = client.get(f"{API}{path}?q=%00")
    assert response.status_code == 400
    assert response.json["error"]["details"] == {"q": REFUSED}


def test_a_nul_in_a_username_registers_nobody(client):
    response = client.post(f"{API}/auth/register", json={
        "email": "ada@example.com", "password": "s3cret-enough", "username": f"ada{NUL}"})
    assert response.status_code == 422
    assert response.json["error"]["details"] == {"username": REFUSED}
    assert db.session.scalar(select(func.count()).select_from(User)) == 0


def test_a_nul_in_an_address_line_adds_no_address(client, factory):
    response = client.post(f"{API}/users/me/addresses", headers=factory.headers(factory.user()), json={
        "line1": f"1 Main{NUL} Street", "city": "Springfield", "country": "US"})
    assert response.status_code == 422
    assert response.json["error"]["details"] == {"line1": REFUSED}
    assert db.session.scalar(select(func.count()).select_from(Address)) == 0


@pytest.mark.parametrize("character", ["\x01", "\x08", "\x0b", "\x0c", "\x1b", "\x1f"])
def test_the_other_c0_control_characters_are_refused_too(client, character):
    response = client.post(f"{API}/contact", json={
        "name": "Ada", "email": "ada@example.com", "subject": "Hi", "message": f"one{character}two"})
    assert response.status_code == 422
    assert response.json["error"]["details"] == {"message": REFUSED}


def test_an_unpaired_surrogate_is_refused(client):
    # A JSON \ud800 escape decodes to text that no database encoding (UTF-8) can hold.
    response = client.post(f"{API}/contact", data='{"name": "Ada", "email": "ada@example.com", "subject": "Hi", '
                                                  '"message": "half \\ud800 a pair"}', content_type="application/json")
    assert response.status_code == 422
    assert response.json["error"]["details"] == {"message": [SURROGATE_MESSAGE]}
    assert db.session.scalar(select(func.count()).select_from(ContactMessage)) == 0


def test_tab_newline_and_carriage_return_are_kept(client, factory):
    text = "First line\r\nsecond\tcolumn\nthird"
    response = client.post(f"{API}/contact", json={
        "name": "Ada", "email": "ada@example.com", "subject": "Tabs\tand lines", "message": text})
    assert response.status_code == 201, response.json
    assert (response.json["subject"], response.json["message"]) == ("Tabs\tand lines", text)
    address = client.post(f"{API}/users/me/addresses", headers=factory.headers(factory.user()), json={
        "line1": "Flat 2\tBlock B", "city": "Springfield", "country": "US"})
    assert address.status_code == 201 and address.json["line1"] == "Flat 2\tBlock B"
    assert client.get(f"{API}/search", query_string={"q": "silver\tring\r\n"}).status_code == 200


def test_refused_text_is_named_at_any_depth_and_in_object_keys(client, factory):
    engraving = factory.customization(type="text", options=[{"name": "maxLength", "value": "20"}])
    product = factory.product(customizations=[engraving])
    user = factory.user()
    response = client.post(f"{API}/orders", headers=factory.headers(user), json={"items": [
        {"productId": product.id, "quantity": 1},
        {"productId": product.id, "quantity": 1,
         "customizations": [{"customizationId": engraving.id, "value": f"Ada{NUL}"}]}]})
    assert response.status_code == 422
    assert response.json["error"]["details"] == {"items": {"1": {"customizations": {"0": {"value": REFUSED}}}}}
    order = factory.order_of(user, product)
    changed = client.patch(f"{API}/orders/{order.id}/status", headers=factory.headers(factory.admin()), json={
        "status": "confirmed", "details": {f"no{NUL}te": "x", "boxes": [1, {"label": "\x07"}]}})
    assert changed.status_code == 422
    assert changed.json["error"]["details"] == {"details": {f"no{NUL}te": REFUSED,
                                                            "boxes": {"1": {"label": REFUSED}}}}


def test_an_upload_refuses_control_characters_in_its_form_fields(client, factory):
    from tests.test_security import png_bytes

    response = client.post(f"{API}/uploads", headers=factory.headers(factory.user()),
                           content_type="multipart/form-data",
                           data={"file": (io.BytesIO(png_bytes()), "a.png"), "caption": f"me{NUL}"})
    assert response.status_code == 422
    assert response.json["error"]["details"] == {"caption": REFUSED}
    assert db.session.scalar(select(func.count()).select_from(Upload)) == 0


def test_an_idempotency_key_with_a_control_character_is_400(client, factory):
    product = factory.product()
    response = client.post(f"{API}/orders", headers={**factory.headers(factory.user()), "Idempotency-Key": "k\x01"},
                           json={"items": [{"productId": product.id, "quantity": 1}]})
    assert response.status_code == 400
    assert response.json["error"]["code"] == "INVALID_IDEMPOTENCY_KEY"


# JSON nesting


def nested(depth: int, inner: str = "1") -> str:
    return "[" * depth + inner + "]" * depth


@pytest.mark.parametrize("method, path", [
    ("POST", "/auth/login"), ("POST", "/auth/register"), ("POST", "/auth/password/forgot"), ("POST", "/orders"),
    ("POST", "/users/me/addresses"), ("PATCH", "/products/1"), ("POST", "/contact"),
])
def test_json_nested_ten_thousand_levels_deep_is_400(sweep, method, path):
    _, client, headers = sweep
    for body in (nested(DEEP), '{"email": ' + nested(DEEP) + "}", "{" + '"a": {' * DEEP + "}" * (DEEP + 1)):
        response = client.open(f"{API}{path}", method=method, headers=headers, data=body,
                               content_type="application/json")
        assert response.status_code == 400, (path, response.get_data(as_text=True)[:200])
        assert response.json["error"]["code"] == "BAD_REQUEST"
        assert str(MAX_JSON_DEPTH) in response.json["error"]["message"]


def test_nesting_is_counted_exactly_and_outside_strings_only(client):
    def contact(name: str):
        return client.post(f"{API}/contact", data='{"name": ' + name + ', "email": "ada@example.com", '
                                                  '"subject": "Hi", "message": "' + "[{" * 500 + '"}',
                           content_type="application/json")

    at_the_bound = contact(nested(MAX_JSON_DEPTH - 1))  # the object is level 1
    assert at_the_bound.status_code == 422  # read, then refused by the schema: a name is not a list
    assert list(at_the_bound.json["error"]["details"]) == ["name"]
    assert contact(nested(MAX_JSON_DEPTH)).status_code == 400
    assert contact('"[[[[ just text"').status_code == 201  # brackets in strings are text, even 1000 of them


@pytest.mark.parametrize("body", ['{"name": [1, 2}', '{"name": ', "[" * 200, '{"a": "' + "[" * 100])
def test_malformed_json_is_still_the_malformed_400(client, body):
    response = client.post(f"{API}/auth/login", data=body, content_type="application/json")
    assert response.status_code == 400
    assert response.json["error"]["message"] in ("Malformed JSON body", f"The JSON body nests arrays and objects "
                                                                         f"deeper than {MAX_JSON_DEPTH} levels")
    if body.count("[") < MAX_JSON_DEPTH:
        assert response.json["error"]["message"] == "Malformed JSON body"


# Path ids

NOT_IDS = ("-716", "false", "0", "9" * 25, "00", "1.5", "1e3", "+1", "%C2%B2", "%D9%A1%D9%A2", "0x1f", "9" * 5000)


def test_a_path_id_that_cannot_be_an_id_is_404_for_every_method_of_every_route(sweep):
    app, client, headers = sweep
    # v0 is past its sunset in tests: 410 for every path, ids or not.
    rules = [rule for rule in versioned_rules(app, "v1", "v2", "api") if "<int:" in rule.rule]
    assert len(rules) >= 120
    for rule in rules:
        for method in sorted(rule.methods):
            for value in NOT_IDS:
                response = client.open(filled(rule, value), method=method, headers=headers)
                response.close()
                assert response.status_code == 404, (method, rule.rule, value, response.status_code)
                if method != "HEAD":
                    assert response.json["error"]["code"] == "NOT_FOUND"


def test_the_largest_id_still_reaches_the_view(client, factory):
    admin = factory.headers(factory.admin())
    for path in (f"{API}/products/{2**63 - 1}", f"{API}/orders/{2**63 - 1}"):
        response = client.get(path, headers=admin)
        assert response.status_code == 404
        assert response.json["error"]["message"] != "No such resource or route"  # the service's own 404
    assert client.get(f"{API}/products/{2**63}").json["error"]["message"] == "No such resource or route"
    address = client.post(f"{API}/users/me/addresses", headers=admin, json={
        "line1": "1 Main Street", "city": "Springfield", "country": "US"}).json
    assert client.delete(f"{API}/users/me/addresses/00{address['id']}", headers=admin).status_code == 204


def test_no_route_puts_another_variable_where_an_id_goes(app):
    # An id matches any one segment (then 404s a non-id), so a variable beside it would never be reached.
    seen: dict[str, set[str]] = {}
    for rule in app.url_map.iter_rules():
        parts = rule.rule.split("/")
        for position, part in enumerate(parts):
            if part.startswith("<"):
                kind = "id" if part.startswith("<int:") else "other"
                seen.setdefault("/".join(parts[:position]), set()).add(kind)
    assert not [prefix for prefix, kinds in seen.items() if kinds == {"id", "other"}]


def test_static_segments_beside_an_id_still_win(client, factory):
    headers = factory.headers(factory.user())
    assert client.get(f"{API}/users/me", headers=headers).status_code == 200
    assert client.post(f"{API}/notifications/read-all", headers=headers).status_code < 300
    response = client.delete(f"{API}/users/me", headers=headers)
    assert response.status_code == 405
