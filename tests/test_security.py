"""Security at the edge: headers on every response, CORS, input hygiene on every write route, HTML cleaning per
field kind, injection-looking text kept verbatim, and uploads that are only what they claim to be."""

from __future__ import annotations

import io
import re
import struct
import zlib
from collections.abc import Iterator

import pytest
from flask import Flask
from flask_talisman import DENY, Talisman
from sqlalchemy import func, select

from config import DevelopmentConfig, ProductionConfig, TestingConfig
from fantasize.extensions import db
from fantasize.models import Product, Upload
from fantasize.platform.security import (
    API_POLICY,
    CORS_ALLOW_HEADERS,
    CORS_EXPOSE_HEADERS,
    DOCS_POLICY,
    PAGE_POLICIES,
    REFERRER_POLICY,
)
from tests.factories import Factory

API = "/api/v1"
SECURITY_HEADERS = ("Content-Security-Policy", "X-Content-Type-Options", "X-Frame-Options", "Referrer-Policy")
PLAIN_TEXTS = ("O'Brien", "Select your size", "DROP earrings -- 50% off;", "A & B", "5 < 6", "I <3 it, 1<2 & 3>2",
               "Robert'); DROP TABLE products;--", "\" OR 1=1 --", "50% &amp; more")


def policy(response) -> dict[str, str]:
    """The Content-Security-Policy as directive -> sources."""
    directives = (part.strip() for part in response.headers["Content-Security-Policy"].split(";"))
    return {name: rest.strip() for name, _, rest in (d.partition(" ") for d in directives if d)}


def assert_security_headers(response) -> None:
    for name in SECURITY_HEADERS:
        assert response.headers.get(name), f"{name} missing on {response.request.path}"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"


# Headers


@pytest.fixture
def failing_app(make_app) -> Iterator[Flask]:
    """An app with one route that breaks, to see a 500 leave with the headers too."""
    app = make_app()

    @app.get("/broken")
    def broken():
        raise RuntimeError("boom")

    with app.app_context():
        yield app


def test_every_kind_of_response_carries_the_security_headers(failing_app):
    client = failing_app.test_client()
    factory = Factory(failing_app)
    upload = client.post(f"{API}/uploads", headers=factory.headers(factory.user()), content_type="multipart/form-data",
                         data={"file": (io.BytesIO(png_bytes()), "a.png")}).json
    responses = {
        "json": client.get(f"{API}/versions"),
        "list": client.get(f"{API}/products"),
        "validation error": client.post(f"{API}/auth/login", json={"email": "nobody"}),
        "unauthorised": client.get(f"{API}/users/me"),
        "not found": client.get(f"{API}/products/987654"),
        "unknown route": client.get("/no/such/page"),
        "method not allowed": client.delete(f"{API}/versions"),
        "unsupported version": client.get("/api/v9/products"),
        "server error": client.get("/broken"),
        "docs": client.get("/api/docs"),
        "docs asset": client.get("/api/docs/static/swagger-ui.css"),
        "openapi": client.get("/api/openapi.json"),
        "file": client.get(upload["url"]),
    }
    for kind, response in responses.items():
        response.close()
        assert response.status_code < 300 or response.is_json, kind
        assert_security_headers(response)
        assert "Strict-Transport-Security" not in response.headers, kind  # FORCE_HTTPS is off in tests
    assert responses["server error"].status_code == 500
    assert responses["file"].mimetype == "image/png"


def test_api_responses_load_nothing_and_cannot_be_framed(client):
    csp = policy(client.get(f"{API}/versions"))
    assert csp["default-src"] == "'none'"
    assert csp["frame-ancestors"] == "'none'"
    assert "sandbox" in csp
    assert policy(client.get("/nope")) == csp


def test_the_docs_page_may_load_only_its_own_scripts_and_styles(client):
    page = client.get("/api/docs")
    csp = policy(page)
    assert csp["script-src"] == "'self'"
    assert "unsafe" not in page.headers["Content-Security-Policy"]
    assert csp["style-src"] == "'self'"
    assert csp["img-src"] == "'self' data:"
    assert csp["connect-src"] == "'self'"
    assert csp["frame-ancestors"] == "'none'"
    html = page.get_data(as_text=True)
    assert "<script>" not in html and "style=" not in html  # nothing inline for the policy to refuse
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert assets and all(asset.startswith("/api/docs/static/") for asset in assets)
    for asset in assets:
        response = client.get(asset)
        response.close()
        assert response.status_code == 200, asset


def test_the_headers_are_talismans_own_and_follow_a_page_policy_changed_after_start(client, monkeypatch):
    # SecurityHeaders keeps each kind of request's header values; they must be exactly what Talisman writes.
    expected = Talisman(Flask("plain"), force_https=False, frame_options=DENY, content_security_policy=API_POLICY,
                        referrer_policy=REFERRER_POLICY, session_cookie_secure=False)
    for _ in range(2):  # the second answer comes from what the first one kept
        headers = client.get(f"{API}/versions").headers
        with expected.app.test_request_context("/"):
            talismans = expected._set_response_headers(expected.app.response_class()).headers
        written = [(name, value) for name, value in talismans.items() if name not in ("Content-Type", "Content-Length")]
        assert len(written) >= 5
        assert [(name, headers.get_all(name)) for name, _ in written] == [(name, [value]) for name, value in written]
    assert policy(client.get("/api/docs"))["img-src"] == "'self' data:"
    # A policy replaced after the app has served the page is the one the next answer carries.
    monkeypatch.setitem(PAGE_POLICIES, "docs.index", {**DOCS_POLICY, "img-src": "'self'"})
    assert policy(client.get("/api/docs"))["img-src"] == "'self'"
    PAGE_POLICIES["docs.index"]["img-src"] = "'none'"  # and one changed in place
    assert policy(client.get("/api/docs"))["img-src"] == "'none'"


def test_force_https_redirects_plain_http_and_sends_hsts_over_https(make_app):
    app = make_app(FORCE_HTTPS=True)
    client = app.test_client()
    redirected = client.get(f"{API}/versions?page=2")
    assert redirected.status_code in (301, 302)
    assert redirected.headers["Location"] == "https://localhost/api/v1/versions?page=2"
    secure = client.get(f"{API}/versions", base_url="https://localhost")
    assert secure.status_code == 200
    assert secure.headers["Strict-Transport-Security"].startswith("max-age=")
    assert_security_headers(secure)
    behind_proxy = client.get(f"{API}/versions", headers={"X-Forwarded-Proto": "https"})
    assert behind_proxy.status_code == 200
    for probe in ("/health/live", "/metrics"):  # probes and scrapers talk to the instance over plain HTTP
        assert "Location" not in client.get(probe).headers, probe


def test_without_force_https_nothing_is_redirected_and_no_hsts_is_sent(client):
    response = client.get(f"{API}/versions", base_url="https://localhost")
    assert response.status_code == 200
    assert "Strict-Transport-Security" not in response.headers
    assert client.get(f"{API}/versions").status_code == 200


def test_https_is_forced_in_production_only_by_default(monkeypatch):
    monkeypatch.delenv("FORCE_HTTPS", raising=False)
    assert ProductionConfig.FORCE_HTTPS is True
    assert DevelopmentConfig.FORCE_HTTPS is False
    assert TestingConfig.FORCE_HTTPS is False


# CORS

SHOP = "https://shop.example.com"
LOCAL = "http://localhost:3000"


@pytest.fixture
def cors_client(make_app):
    app = make_app(CORS_ORIGIN=" https://Shop.Example.com/ ,http://localhost:3000")
    with app.app_context():
        yield app.test_client()


def test_an_allowed_origin_is_echoed_with_the_exposed_headers(cors_client):
    for origin in (SHOP, LOCAL):
        response = cors_client.get(f"{API}/products", headers={"Origin": origin})
        assert response.status_code == 200
        assert response.headers["Access-Control-Allow-Origin"] == origin
        exposed = {name.strip() for name in response.headers["Access-Control-Expose-Headers"].split(",")}
        assert set(CORS_EXPOSE_HEADERS) <= exposed
        assert {"X-Request-ID", "X-Total-Count", "Link", "API-Version", "X-RateLimit-Remaining", "Retry-After",
                "X-Cache", "Idempotent-Replayed", "Deprecation", "Sunset"} <= exposed
        assert "Origin" in response.headers["Vary"]
        assert "Access-Control-Allow-Credentials" not in response.headers  # bearer tokens, not cookies


@pytest.mark.parametrize("origin", [
    "https://evil.example.com", "https://shop.example.com.evil.com", "http://shop.example.com",
    "https://shop.example.com:8443", "http://localhost:3001", "null",
])
def test_any_other_origin_gets_no_cors_headers(cors_client, origin):
    response = cors_client.get(f"{API}/products", headers={"Origin": origin})
    assert response.status_code == 200
    assert "Access-Control-Allow-Origin" not in response.headers
    assert "Access-Control-Expose-Headers" not in response.headers
    assert "Origin" in response.headers["Vary"]


def test_a_preflight_is_answered_before_authentication(cors_client):
    response = cors_client.options(f"{API}/products", headers={
        "Origin": SHOP, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type, idempotency-key",
    })
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == SHOP
    methods = {name.strip() for name in response.headers["Access-Control-Allow-Methods"].split(",")}
    assert {"GET", "POST"} <= methods and "DELETE" not in methods
    allowed = {name.strip().lower() for name in response.headers["Access-Control-Allow-Headers"].split(",")}
    assert {name.lower() for name in CORS_ALLOW_HEADERS} == allowed
    assert {"authorization", "content-type", "api-version", "idempotency-key", "x-request-id"} <= allowed
    assert int(response.headers["Access-Control-Max-Age"]) > 0
    assert_security_headers(response)
    item = cors_client.options(f"{API}/products/1", headers={"Origin": SHOP, "Access-Control-Request-Method": "PATCH"})
    assert {"GET", "PATCH", "DELETE"} <= set(item.headers["Access-Control-Allow-Methods"].replace(" ", "").split(","))


def test_a_preflight_from_another_origin_is_not_allowed(cors_client):
    response = cors_client.options(f"{API}/products", headers={
        "Origin": "https://evil.example.com", "Access-Control-Request-Method": "POST"})
    assert response.status_code == 204
    assert not any(name.startswith("Access-Control-Allow") for name, _ in response.headers)


def test_a_preflight_to_an_unknown_route_is_404(cors_client):
    response = cors_client.options("/api/v1/nothing-here", headers={"Origin": SHOP,
                                                                     "Access-Control-Request-Method": "GET"})
    assert response.status_code == 404
    assert "Access-Control-Allow-Methods" not in response.headers


def test_without_cors_origin_no_origin_is_allowed(client):
    response = client.get(f"{API}/products", headers={"Origin": SHOP})
    assert "Access-Control-Allow-Origin" not in response.headers


def test_a_star_allows_every_origin(make_app):
    client = make_app(CORS_ORIGIN="*").test_client()
    assert client.get(f"{API}/versions", headers={"Origin": SHOP}).headers["Access-Control-Allow-Origin"] == "*"


@pytest.mark.parametrize("value", ["shop.example.com", "https://shop.example.com/path", "ftp://shop.example.com",
                                   "https://", "https://shop.example.com:https"])
def test_a_malformed_cors_origin_stops_the_app(make_app, value):
    with pytest.raises(ValueError, match="CORS_ORIGIN"):
        make_app(CORS_ORIGIN=value)


# Input hygiene on every write route


def body_routes(app: Flask) -> list[tuple[str, str]]:
    """(method, path) of every v1 route that reads a JSON body, path variables filled with 1."""
    routes = []
    for rule in app.url_map.iter_rules():
        spec = getattr(app.view_functions[rule.endpoint], "endpoint_spec", None)
        if not rule.rule.startswith(f"{API}/") or spec is None or spec.body is None:
            continue
        for method in sorted(rule.methods & {"POST", "PUT", "PATCH"}):
            routes.append((method, re.sub(r"<[^>]+>", "1", rule.rule)))
    return routes


def test_every_write_route_refuses_unknown_fields_and_bodies_that_are_not_json_objects(sweep):
    app, client, headers = sweep
    routes = body_routes(app)
    assert len(routes) >= 30 and ("POST", f"{API}/products") in routes and ("POST", f"{API}/orders") in routes
    cases = (
        ({"json": {"unknownSweepField": 1}}, 422),
        ({"json": [{"name": "x"}]}, 400),
        ({"data": '{"name": ', "content_type": "application/json"}, 400),
        ({"data": "name=x", "content_type": "text/plain"}, 415),
    )
    for method, path in routes:
        for kwargs, expected in cases:
            response = client.open(path, method=method, headers=headers, **kwargs)
            assert response.status_code == expected, (method, path, kwargs, response.json)
            assert response.json["success"] is False
            if expected == 422:
                assert "unknownSweepField" in response.json["error"]["details"], (method, path)


HOSTILE_VALUES = ("' OR '1'='1", "1; DROP TABLE products;--", "<script>alert(1)</script>", "../../etc/passwd",
                  "%00", "99999999999999999999", "-1", "1e309", "NaN", "", "\u202e")


def test_no_route_answers_500_to_hostile_path_and_query_values(sweep):
    app, client, headers = sweep
    # Logging out would leave the rest of the sweep unauthenticated.
    rules = [rule for rule in app.url_map.iter_rules()
             if rule.rule.startswith(f"{API}/") and not rule.rule.endswith("/auth/logout")]
    for rule in rules:
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            for value in ("99999999999999999999", "9223372036854775807", "0"):
                path = re.sub(r"<[^>]+>", value, rule.rule)
                response = client.open(path, method=method, headers=headers, json={})
                response.close()
                assert response.status_code < 500, (method, path)
        spec = getattr(app.view_functions[rule.endpoint], "endpoint_spec", None)
        if "GET" in rule.methods and spec is not None:
            path = re.sub(r"<[^>]+>", "1", rule.rule)
            keys = [field.data_key for field in spec.query().fields.values()] if spec.query else []
            for value in HOSTILE_VALUES:
                response = client.get(path, headers=headers, query_string={**dict.fromkeys(keys, value),
                                                                           "page": value, "q": value})
                response.close()
                assert response.status_code < 500, (path, value)


# Text kept exactly, HTML cleaned by field kind


def test_plain_text_and_sql_looking_text_round_trip_exactly(client, factory):
    admin = factory.headers(factory.admin())
    subcategory = factory.subcategory()
    brand = factory.brand()
    for n, text in enumerate(PLAIN_TEXTS):
        product = client.post(f"{API}/products", headers=admin, json={
            "name": f"{text} #{n}", "description": text, "price": "9.90", "quantity": 1, "brandId": brand.id,
            "subCategoryId": subcategory.id})
        assert product.status_code == 201, product.json
        assert (product.json["name"], product.json["description"]) == (f"{text} #{n}", text)
        fetched = client.get(f"{API}/products/{product.json['id']}").json
        assert (fetched["name"], fetched["description"]) == (f"{text} #{n}", text)
        message = client.post(f"{API}/contact", json={"name": text, "email": "a@example.com", "subject": text,
                                                      "message": text})
        assert message.status_code == 201
        assert (message.json["name"], message.json["subject"], message.json["message"]) == (text, text, text)
    # Bound parameters everywhere: the table is still there and the search finds the text as text.
    assert db.session.scalar(select(func.count()).select_from(Product)) == len(PLAIN_TEXTS)
    found = client.get(f"{API}/products", query_string={"q": "DROP TABLE products;--"}).json
    assert [item["name"] for item in found] == ["Robert'); DROP TABLE products;-- #6"]
    assert client.get(f"{API}/products", query_string={"q": "' OR '1'='1"}).json == []
    searched = client.get(f"{API}/search", query_string={"q": "\" OR 1=1 --"}).json
    assert searched["products"][0]["name"] == "\" OR 1=1 -- #7"


def test_a_username_with_quotes_and_sql_words_round_trips(client, factory):
    user = factory.user()
    for text in PLAIN_TEXTS:
        response = client.patch(f"{API}/users/me", json={"username": text}, headers=factory.headers(user))
        assert response.status_code == 200 and response.json["username"] == text


@pytest.mark.parametrize("sent, kept", [
    ("<script>alert(1)</script>Hi", "Hi"),
    ("<b>x</b>", "x"),
    ("Tom &amp; <i>Jerry</i>", "Tom & Jerry"),
    ('<img src=x onerror="alert(1)">Photo', "Photo"),
    ("<a href=\"javascript:alert(1)\">click</a> me", "click me"),
    ("&lt;script&gt;alert(1)&lt;/script&gt;<b>!</b>", "!"),
    ("5 < 6 <b>but</b> 7 > 6", "5 < 6 but 7 > 6"),
    ("<style>body{}</style>Plain", "Plain"),
])
def test_plain_text_fields_lose_every_tag(client, factory, sent, kept):
    admin = factory.headers(factory.admin())
    brand = client.post(f"{API}/brands", json={"name": sent}, headers=admin)
    assert brand.status_code == 201 and brand.json["name"] == kept
    product = factory.product()
    review = client.post(f"{API}/products/{product.id}/reviews", json={"rating": 4, "comment": sent},
                         headers=factory.headers(factory.user()))
    assert review.status_code == 201 and review.json["comment"] == kept
    texts = client.put(f"{API}/site", json={"about": sent}, headers=admin)
    assert texts.json["about"] == kept


def test_descriptions_keep_a_small_safe_subset_of_html(client, factory):
    admin = factory.headers(factory.admin())
    sent = ('<p>Solid <b>silver</b>, <em>hand</em>made<br><i>i</i><strong>s</strong></p>'
            '<ul><li>one</li></ul><ol><li>two</li></ol>'
            '<a href="https://maker.example/about" target="_blank" onclick="steal()">maker</a> '
            '<a href="javascript:alert(1)">bad</a> <a href="mailto:shop@example.com">mail</a>'
            '<script>alert(1)</script><img src=x onerror=alert(1)><iframe src="https://evil.example"></iframe>'
            '<p style="color:red" class="x">styled</p><h1>Big</h1>')
    kept = ('<p>Solid <b>silver</b>, <em>hand</em>made<br><i>i</i><strong>s</strong></p>'
            '<ul><li>one</li></ul><ol><li>two</li></ol>'
            '<a href="https://maker.example/about" rel="noopener noreferrer">maker</a> '
            '<a rel="noopener noreferrer">bad</a> <a href="mailto:shop@example.com" rel="noopener noreferrer">mail</a>'
            '<p>styled</p>Big')
    category = client.post(f"{API}/categories", json={"name": "Rings", "description": sent}, headers=admin)
    assert category.status_code == 201 and category.json["description"] == kept
    material = client.post(f"{API}/materials", json={"name": "Silver", "description": sent}, headers=admin)
    assert material.json["description"] == kept
    changed = client.patch(f"{API}/products/{factory.product().id}", json={"description": sent}, headers=admin)
    assert changed.status_code == 200 and changed.json["description"] == kept
    package = client.patch(f"{API}/packages/{factory.package().id}", json={"description": sent}, headers=admin)
    assert package.status_code == 200 and package.json["description"] == kept


def test_a_value_that_is_only_markup_is_422(client, factory):
    response = client.post(f"{API}/contact", json={
        "name": "<img src=x onerror=alert(1)>", "email": "a@example.com", "subject": "Hi", "message": "Hello"})
    assert response.status_code == 422
    assert response.json["error"]["details"] == {"name": ["Contains no text once its HTML is removed."]}


def test_lengths_are_judged_on_the_text_as_sent(client, factory):
    admin = factory.headers(factory.admin())
    wrapped = "<b>" + "x" * 95 + "</b>"  # 102 characters sent, 95 after cleaning; brand names hold 100
    response = client.post(f"{API}/brands", json={"name": wrapped}, headers=admin)
    assert response.status_code == 422
    assert "name" in response.json["error"]["details"]


def test_free_text_inside_cart_choices_and_status_details_is_cleaned(client, factory):
    engraving = factory.customization(type="text", options=[{"name": "maxLength", "value": "20"}])
    product = factory.product(customizations=[engraving])
    user = factory.user()
    line = client.post(f"{API}/cart/items", headers=factory.headers(user), json={
        "productId": product.id, "quantity": 1,
        "customizations": [{"customizationId": engraving.id, "value": "<b>Ada</b> & Co"}]})
    assert line.status_code == 201, line.json
    assert line.json["customizations"][0]["value"] == "Ada & Co"
    admin = factory.headers(factory.admin())
    order = factory.order_of(user, product)
    changed = client.patch(f"{API}/orders/{order.id}/status", headers=admin, json={
        "status": "confirmed",
        "details": {"note": "<script>x()</script>Packed <i>today</i>", "boxes": [2, "<b>A</b>"]}})
    assert changed.status_code == 200, changed.json
    history = client.get(f"{API}/orders/{order.id}/history", headers=admin).json
    assert history[-1]["details"] == {"note": "Packed today", "boxes": [2, "A"]}


# Bodies and uploads


def png_bytes(width: int = 1, height: int = 1, data: bytes | None = None) -> bytes:
    """A PNG of an RGB image; `data` replaces its compressed pixel rows (to make a broken one)."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    if data is None:  # only real pixel rows are built: a "bomb" header must not cost its claimed size here
        data = zlib.compress(b"".join(b"\x00" + b"\x10\x20\x30" * width for _ in range(height)))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


GIF = bytes.fromhex("47494638396101000100800000000000ffffff21f90401000000002c00000000010001000002024401003b")
PAGE = b"<html><body><script>alert(document.cookie)</script></body></html>"


@pytest.fixture
def uploader(make_app, tmp_path):
    app = make_app(UPLOAD_FOLDER=str(tmp_path / "files"), MAX_IMAGE_PIXELS=10_000)
    with app.app_context():
        factory = Factory(app)
        client = app.test_client()
        headers = factory.headers(factory.user())

        def send(content: bytes, name: str = "photo.png", content_type: str = "image/png"):
            return client.post(f"{API}/uploads", headers=headers, content_type="multipart/form-data",
                               data={"file": (io.BytesIO(content), name, content_type)})

        yield client, send, tmp_path / "files"


@pytest.mark.parametrize("content, name, content_type", [
    (PAGE, "photo.png", "image/png"),
    (b"#!/bin/sh\nrm -rf /\n", "photo.gif", "image/gif"),
    (b"<svg onload=alert(1) xmlns='http://www.w3.org/2000/svg'/>", "logo.svg", "image/svg+xml"),
], ids=["page-as-png", "script-as-gif", "svg"])
def test_files_spoofing_an_image_type_are_415(uploader, content, name, content_type):
    _, send, folder = uploader
    response = send(content, name, content_type)
    assert response.status_code == 415
    assert not folder.exists() or not any(folder.iterdir())


@pytest.mark.parametrize("content", [
    GIF + PAGE,  # a whole GIF with a page after it: a polyglot
    png_bytes() + b"\x00" * 16 + PAGE,
    b"GIF89a" + PAGE,  # a GIF header over a page
    png_bytes()[:40],  # truncated
    png_bytes(data=b"\x78\x9c not zlib at all"),  # well-formed chunks, undecodable pixels
    png_bytes(width=20_000, height=1),  # wider than MAX_IMAGE_SIDE
    png_bytes(width=200, height=100),  # more pixels than MAX_IMAGE_PIXELS (10 000 here)
    png_bytes(width=60_000, height=60_000, data=zlib.compress(b"\x00" * 1000)),  # a tiny file claiming 3.6 Gpx
], ids=["gif-polyglot", "png-polyglot", "gif-header-page", "truncated", "corrupt", "too-wide", "too-many-pixels",
        "bomb"])
def test_images_that_are_not_wholly_images_are_422_and_not_kept(uploader, content):
    _, send, folder = uploader
    response = send(content, "photo.gif")
    assert response.status_code == 422, response.json
    assert list(response.json["error"]["details"]) == ["file"]
    assert not folder.exists() or not any(folder.iterdir())
    assert db.session.scalar(select(Upload)) is None


def test_a_kept_image_is_served_as_its_sniffed_type_and_never_as_a_page(uploader):
    client, send, _ = uploader
    created = send(GIF + b"\x00" * 8, "page.html", "text/html")  # zero padding after the image is tolerated
    assert created.status_code == 201, created.json
    response = client.get(created.json["url"])
    response.close()
    assert response.mimetype == "image/gif"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in policy(response)


@pytest.mark.parametrize("name", ["..%2F..%2Fetc%2Fpasswd", "%2e%2e%2fconfig.py", "....//....//etc/passwd",
                                  "..\\..\\config.py", "%00"])
def test_traversal_names_are_404(uploader, name):
    client, _, _ = uploader
    response = client.get(f"{API}/uploads/{name}")
    assert response.status_code == 404
    assert response.json["error"]["code"] == "NOT_FOUND"


def test_bodies_over_max_content_length_are_413_in_the_common_format(make_app, tmp_path):
    app = make_app(MAX_CONTENT_LENGTH=2048, UPLOAD_FOLDER=str(tmp_path / "files"))
    with app.app_context():
        client = app.test_client()
        factory = Factory(app)
        json_route = client.post(f"{API}/contact", json={"name": "A", "email": "a@example.com", "subject": "S",
                                                         "message": "x" * 4096})
        upload = client.post(f"{API}/uploads", headers=factory.headers(factory.user()),
                             content_type="multipart/form-data",
                             data={"file": (io.BytesIO(png_bytes() + b"\x00" * 4096), "big.png")})
        for response in (json_route, upload):
            assert response.status_code == 413
            assert response.json["success"] is False
            assert response.json["error"]["code"] == "PAYLOAD_TOO_LARGE"
            assert_security_headers(response)
