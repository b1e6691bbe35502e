"""One error format for everything: our errors, Flask's own 404/405/413, body and query parsing, and crashes."""

from __future__ import annotations

import json

import pytest
from marshmallow import fields, validate
from sqlalchemy.exc import OperationalError

from fantasize.api.endpoint import endpoint
from fantasize.schemas.base import CamelSchema, Money, PageQuery, StrictInteger


class EchoBody(CamelSchema):
    name = fields.String(required=True, validate=validate.Length(max=10))
    price = Money(required=True)
    stock_count = StrictInteger(load_default=0)


@pytest.fixture
def probe_client(make_app):
    """An app with two extra probe routes that exercise the shared request machinery."""
    app = make_app(MAX_CONTENT_LENGTH=1024)

    @endpoint("echo", body=EchoBody, query=PageQuery)
    def echo(body, args):
        return {"name": body["name"], "price": str(body["price"]), "stockCount": body["stock_count"], **args}

    def crash():
        raise RuntimeError("secret internals: password=hunter2")

    def database_down():
        raise OperationalError("SELECT 1", {}, Exception("could not connect to server"))

    app.add_url_rule("/api/v1/probe", "probe", echo, methods=["POST"])
    app.add_url_rule("/api/v1/database-down", "database_down", database_down)
    app.add_url_rule("/api/v1/crash", "crash", crash)
    return app.test_client()


def assert_error(response, status, code):
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.json
    assert body["success"] is False
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    assert body["meta"]["requestId"] == response.headers["X-Request-ID"]
    assert body["meta"]["timestamp"].endswith("Z")
    return body["error"]


def test_valid_body_passes(probe_client):
    response = probe_client.post("/api/v1/probe?limit=5", json={"name": "O'Brien", "price": "19.90"})
    assert response.status_code == 200
    assert response.json == {"name": "O'Brien", "price": "19.90", "stockCount": 0, "page": 1, "limit": 5}


@pytest.mark.parametrize(
    "data, content_type, status, code",
    [
        ("{not json", "application/json", 400, "BAD_REQUEST"),
        ("", "application/json", 400, "BAD_REQUEST"),
        ("[1, 2]", "application/json", 400, "BAD_REQUEST"),
        ('"text"', "application/json", 400, "BAD_REQUEST"),
        ("name=x", "application/x-www-form-urlencoded", 415, "UNSUPPORTED_MEDIA_TYPE"),
        ('{"name": "x", "price": 1}', "text/plain", 415, "UNSUPPORTED_MEDIA_TYPE"),
        ('{"name": "x", "price": 1, "admin": true}', "application/json", 422, "VALIDATION_ERROR"),
        ('{"name": 5, "price": 1}', "application/json", 422, "VALIDATION_ERROR"),
        ('{"name": "x", "price": -1}', "application/json", 422, "VALIDATION_ERROR"),
        ('{"name": "x", "price": "1.999"}', "application/json", 422, "VALIDATION_ERROR"),
        ('{"name": "x", "price": "NaN"}', "application/json", 422, "VALIDATION_ERROR"),
        ('{"name": "x", "price": 1, "stockCount": "5"}', "application/json", 422, "VALIDATION_ERROR"),
        ('{"name": "x", "price": 1, "stockCount": true}', "application/json", 422, "VALIDATION_ERROR"),
        ('{"name": "much too long a name", "price": 1}', "application/json", 422, "VALIDATION_ERROR"),
        ('{"price": 1}', "application/json", 422, "VALIDATION_ERROR"),
    ],
)
def test_bad_bodies_get_the_error_format(probe_client, data, content_type, status, code):
    response = probe_client.post("/api/v1/probe", data=data, content_type=content_type)
    assert_error(response, status, code)


def test_validation_details_name_the_fields_in_camel_case(probe_client):
    error = assert_error(
        probe_client.post("/api/v1/probe", json={"name": 5, "price": "abc", "stockCount": "x", "extra": 1}),
        422, "VALIDATION_ERROR",
    )
    assert set(error["details"]) == {"name", "price", "stockCount", "extra"}


@pytest.mark.parametrize("query", ["page=0", "limit=101", "limit=abc", "page=-3"])
def test_bad_query_values_are_400(probe_client, query):
    error = assert_error(
        probe_client.post(f"/api/v1/probe?{query}", json={"name": "x", "price": 1}), 400, "BAD_REQUEST"
    )
    assert error["details"]


def test_oversized_body_is_413(probe_client):
    response = probe_client.post("/api/v1/probe", data="x" * 5000, content_type="application/json")
    assert_error(response, 413, "PAYLOAD_TOO_LARGE")


def test_unknown_route_and_wrong_method(client):
    assert_error(client.get("/api/v1/no-such-thing"), 404, "NOT_FOUND")
    assert_error(client.get("/nowhere"), 404, "NOT_FOUND")
    response = client.delete("/api/v1/versions")
    assert_error(response, 405, "METHOD_NOT_ALLOWED")
    assert "GET" in response.headers["Allow"]


def test_crash_is_500_without_internals_and_logged_with_the_request_id(probe_client, capfd):
    response = probe_client.get("/api/v1/crash", headers={"X-Request-ID": "crash-1"})
    error = assert_error(response, 500, "INTERNAL_ERROR")
    assert "hunter2" not in response.get_data(as_text=True)
    assert "details" not in error
    lines = [json.loads(line) for line in capfd.readouterr().err.splitlines() if line.startswith("{")]
    crash = [entry for entry in lines if entry["logger"] == "fantasize.errors"]
    assert crash and crash[0]["requestId"] == "crash-1" and crash[0]["level"] == "ERROR"
    assert "RuntimeError" in crash[0]["exception"]


def test_database_outage_is_503_with_retry_after(probe_client):
    response = probe_client.get("/api/v1/database-down")
    assert_error(response, 503, "SERVICE_UNAVAILABLE")
    assert response.headers["Retry-After"] == "1"
    assert "could not connect" not in response.get_data(as_text=True)
