"""The generated OpenAPI document and the Swagger UI page that shows it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Blueprint
from jsonschema.exceptions import ValidationError as SchemaViolation
from marshmallow import ValidationError, fields
from openapi_schema_validator import OAS30Validator
from openapi_spec_validator import validate as validate_spec

from config import TestingConfig
from fantasize import create_app
from fantasize.api.endpoint import endpoint
from fantasize.extensions import db
from fantasize.platform.openapi import RATE_LIMIT_HEADERS, TEXT_PATTERN, spec_for
from fantasize.schemas.base import CamelSchema, FullMatch, PageQuery
from fantasize.web import Shape
from tests.live_server import free_port

RULE_VARIABLE = re.compile(r"<(?:\w+(?:\(.*?\))?:)?(\w+)>")
CAMEL = re.compile(r"^[a-z][a-zA-Z0-9]*$")
NUMERIC_KEYWORDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "minLength", "maxLength",
                    "minItems", "maxItems")
HTTP_METHODS = {"get", "put", "post", "delete", "patch", "options", "head", "trace"}
# The unversioned routes API.md lists besides the API (fantasize.platform.health and monitoring.prometheus).
OPERATIONAL_PATHS = ("/health", "/health/ready", "/health/live", "/metrics")


def versioned_endpoints(app) -> Iterator[tuple[str, str, Any]]:
    """(OpenAPI path, method, endpoint spec) for every /api/v1 and /api/v2 route declared with @endpoint."""
    for rule in app.url_map.iter_rules():
        spec = getattr(app.view_functions[rule.endpoint], "endpoint_spec", None)
        if spec is None or not re.match(r"^/api/v[12](/|$)", rule.rule):
            continue
        path = RULE_VARIABLE.sub(r"{\1}", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            yield path, method.lower(), spec


def walk(node: Any) -> Iterator[Any]:
    yield node
    children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
    for child in children:
        yield from walk(child)


def resolve(document: dict, ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node = document
    for part in ref[2:].split("/"):
        node = node[part]
    return node


def response_object(document: dict, operation: dict, status: int | str) -> dict:
    response = operation["responses"][str(status)]
    return resolve(document, response["$ref"]) if "$ref" in response else response


def conforms(document: dict, path: str, method: str, response) -> None:
    """The response's body is valid against what the document says this operation answers with its status."""
    declared = response_object(document, document["paths"][path][method], response.status_code)
    schema = {**declared["content"]["application/json"]["schema"], "components": document["components"]}
    OAS30Validator(schema).validate(response.json)


def operations(document: dict) -> Iterator[tuple[str, str, dict]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in HTTP_METHODS:
                yield path, method, operation


def test_the_document_is_structurally_valid_openapi_3(client):
    document = client.get("/api/openapi.json").json
    assert document["openapi"].startswith("3.")
    assert document["info"]["title"] and document["info"]["version"]
    assert "deprecated" in document["info"]["description"]
    numeric = [(key, node[key]) for node in walk(document) if isinstance(node, dict) for key in NUMERIC_KEYWORDS
               if key in node]
    assert numeric and all(isinstance(value, (int, float)) for _, value in numeric), numeric
    operation_ids = [operation["operationId"] for _, _, operation in operations(document)]
    assert len(operation_ids) == len(set(operation_ids))
    for path, method, operation in operations(document):
        declared = [p for p in document["paths"][path].get("parameters", []) + operation.get("parameters", [])
                    if p["in"] == "path"]
        assert sorted(p["name"] for p in declared) == sorted(re.findall(r"{(\w+)}", path)), (path, method)
        assert all(p["required"] is True for p in declared)
        assert operation["responses"], (path, method)
        assert operation["summary"] and operation["tags"]


def test_every_reference_points_at_a_component(client):
    document = client.get("/api/openapi.json").json
    refs = [node["$ref"] for node in walk(document) if isinstance(node, dict) and "$ref" in node]
    assert refs
    for ref in refs:
        assert re.match(r"^#/components/(schemas|responses|headers)/", ref), ref
        assert isinstance(resolve(document, ref), dict)


def test_an_independent_validator_accepts_the_document(client):
    # One document (/api/openapi.json) describes every documented version; there are no per-version documents.
    document = client.get("/api/openapi.json").json
    assert {path.split("/")[2] for path in document["paths"] if path.startswith("/api/")} == {"v1", "v2"}
    validate_spec(document)  # openapi-spec-validator: OpenAPI 3.0 and its ECMA-262 patterns


def test_patterns_are_ecma_262_and_the_server_checks_the_same_rule(client):
    document = client.get("/api/openapi.json").json
    patterns = {node["pattern"] for node in walk(document) if isinstance(node, dict)
                and isinstance(node.get("pattern"), str)}
    assert len(patterns) >= 2
    for pattern in patterns:
        # Anchored for ECMA-262 ($ ends the text there), and nothing that only Python understands.
        assert pattern.startswith("^") and pattern.endswith("$"), pattern
        assert not re.search(r"\\[AZdwsbB]|\(\?P|\(\?#|\(\?<[=!]", pattern), pattern
    cvv = document["components"]["schemas"]["PaymentMethodIn"]["properties"]["cvv"]["pattern"]
    register = document["paths"]["/api/v1/auth/register"]["post"]["requestBody"]["content"]["application/json"]
    phone = register["schema"]["properties"]["phone"]["pattern"]
    assert document["components"]["schemas"]["ProfilePartial"]["properties"]["phone"]["pattern"] == phone
    assert re.search(cvv, "1234") and not re.search(cvv, "12345") and not re.search(cvv, "\u0661\u0662\u0663")
    assert re.search(phone, "+1 (555) 010-0100") and not re.search(phone, "call me")
    # Free text the API reads says what the input schemas refuse: C0 controls other than tab, newline and CR.
    assert document["components"]["schemas"]["BrandIn"]["properties"]["name"]["pattern"] == TEXT_PATTERN
    search = {p["name"]: p for p in document["paths"]["/api/v1/search"]["get"]["parameters"]}
    assert search["q"]["schema"]["pattern"] == TEXT_PATTERN
    assert re.search(TEXT_PATTERN, "tab\tnew\nline\r") and not re.search(TEXT_PATTERN, "nul\x00")
    assert not re.search(TEXT_PATTERN, "escape\x1b") and not re.search(TEXT_PATTERN, "vt\x0b")
    rule = FullMatch(r"[0-9]{3,4}", error="no")
    assert rule.regex.pattern == "^(?:[0-9]{3,4})$"
    assert rule("123") == "123"
    for bad in ("123\n", "\n123", "12", "\u0661\u0662\u0663"):
        with pytest.raises(ValidationError):
            rule(bad)


def test_phone_and_cvv_refuse_a_trailing_newline(client, factory):
    headers = factory.headers(factory.user())
    response = client.patch("/api/v1/users/me", json={"phone": "+1 555 0100\n"}, headers=headers)
    assert response.status_code == 422 and "phone" in response.json["error"]["details"]
    assert client.patch("/api/v1/users/me", json={"phone": "+1 555 0100"}, headers=headers).status_code == 200
    card = {"method": "card", "cardNumber": "4242 4242 4242 4242", "cardholderName": "A B", "expMonth": 12,
            "expYear": 2099}
    response = client.post("/api/v1/users/me/payment-methods", json={**card, "cvv": "123\n"}, headers=headers)
    assert response.status_code == 422 and "cvv" in response.json["error"]["details"]
    assert client.post("/api/v1/users/me/payment-methods", json={**card, "cvv": "123"},
                       headers=headers).status_code == 201


def test_every_versioned_endpoint_is_documented_and_nothing_else(app, client):
    document = client.get("/api/openapi.json").json
    expected = {(path, method) for path, method, _ in versioned_endpoints(app)}
    documented = {(path, method) for path, method, _ in operations(document)}
    assert ("/api/v1/versions", "get") in expected
    assert documented == expected | {(path, "get") for path in OPERATIONAL_PATHS}
    assert not [path for path in document["paths"]
                if not re.match(r"^/api/v[12](/|$)", path) and path not in OPERATIONAL_PATHS]


def test_property_and_query_parameter_names_are_camel_case(client):
    document = client.get("/api/openapi.json").json
    names = [name for node in walk(document) if isinstance(node, dict) and isinstance(node.get("properties"), dict)
             for name in node["properties"]]
    names += [p["name"] for _, _, operation in operations(document) for p in operation.get("parameters", [])
              if p["in"] == "query"]
    assert names
    assert [name for name in names if not CAMEL.match(name)] == []


def test_responses_follow_each_versions_shape(app, client):
    document = client.get("/api/openapi.json").json
    v1 = document["paths"]["/api/v1/versions"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert v1 == {"type": "array", "items": {"$ref": "#/components/schemas/Version"}}
    v2 = document["paths"]["/api/v2/versions"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert v2["properties"]["data"] == v1
    assert set(v2["required"]) == {"success", "data", "meta"}
    for path, method, spec in versioned_endpoints(app):
        operation = document["paths"][path][method]
        if spec.auth in ("user", "admin"):
            assert operation["security"] == [{"bearerAuth": []}]
            assert "401" in operation["responses"]
        if spec.auth == "admin":
            assert "403" in operation["responses"]
        if spec.body is not None:
            assert {"400", "422"} <= set(operation["responses"])
        for status in spec.errors:
            error = response_object(document, operation, status)["content"]["application/json"]["schema"]
            assert error == {"$ref": "#/components/schemas/Error"}


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_the_performance_endpoints_are_documented_and_answer_the_envelope_in_every_version(client, factory, version):
    """API.md "Monitoring": `{"success": true, "data": ...}` in v1 too (declared `enveloped`), and the document
    says so: each answer is valid against it."""
    document = client.get("/api/openapi.json").json
    headers = factory.headers(factory.admin())
    client.get("/api/v1/versions")  # something to count
    for name, query in (("metrics", "?timeWindow=60000"), ("slow-requests", "?limit=5"), ("summary", "")):
        path = f"/api/{version}/admin/performance/{name}"
        operation = document["paths"][path]["get"]
        schema = response_object(document, operation, 200)["content"]["application/json"]["schema"]
        assert set(schema["required"]) == {"success", "data", "meta"}, (path, schema)
        assert {"401", "403"} <= set(operation["responses"])
        response = client.get(path + query, headers=headers)
        assert response.status_code == 200 and response.json["success"] is True
        conforms(document, path, "get", response)
        if query:
            assert "422" in operation["responses"]  # the 422 for these parameters (refused_status)
            refused = client.get(f"{path}?{query[1:].split('=')[0]}=nonsense", headers=headers)
            assert refused.status_code == 422
            conforms(document, path, "get", refused)


def test_each_operation_declares_the_statuses_its_declaration_implies(app, client):
    document = client.get("/api/openapi.json").json
    for path, method, spec in versioned_endpoints(app):
        responses = document["paths"][path][method]["responses"]
        where = (path, method)
        if "{" in path:
            assert "404" in responses, where  # no such row, or a value that cannot be an id
        assert responses["429"] == {"$ref": "#/components/responses/TooManyRequests"}, where
        assert responses["414"] == {"$ref": "#/components/responses/UriTooLong"}, where
        if spec.body is not None or spec.files:
            assert {"400", "413", "415", "422"} <= set(responses), where
        if spec.query is not None:
            assert str(spec.query.refused_status) in responses, where
        assert ("503" in responses) is spec.uses_database, where
        success = responses[str(spec.status)]
        assert set(RATE_LIMIT_HEADERS) <= set(success.get("headers", {})), where
    assert "503" not in document["paths"]["/api/v1/versions"]["get"]["responses"]
    components = document["components"]["responses"]
    assert {name for name, header in components["TooManyRequests"]["headers"].items() if header["required"]} == {
        "Retry-After", *RATE_LIMIT_HEADERS}
    assert components["ServiceUnavailable"]["headers"]["Retry-After"]["required"] is True
    for version in ("v1", "v2"):
        placed = document["paths"][f"/api/{version}/orders"]["post"]["responses"]
        assert placed["200"]["headers"]["Idempotent-Replayed"]["required"] is True
        assert placed["200"]["content"] == placed["201"]["content"]
        liked = document["paths"][f"/api/{version}/users/me/favorites/products/{{product_id}}"]["put"]["responses"]
        assert {"200", "201"} <= set(liked) and liked["200"]["content"] == liked["201"]["content"]


def test_without_rate_limits_no_operation_promises_a_429(make_app):
    document = make_app(RATELIMIT_ENABLED=False).test_client().get("/api/openapi.json").json
    assert not [path for path, _, operation in operations(document) if "429" in operation["responses"]]


def test_a_real_429_carries_the_documented_headers(make_app):
    app = make_app(RATE_LIMIT_MAX_REQUESTS=1)
    client = app.test_client()
    document = client.get("/api/openapi.json").json
    assert client.get("/api/v1/versions").status_code == 200
    refused = client.get("/api/v1/versions")
    assert refused.status_code == 429
    declared = response_object(document, document["paths"]["/api/v1/versions"]["get"], 429)
    for name in declared["headers"]:
        assert int(refused.headers[name]) >= 0, name
    conforms(document, "/api/v1/versions", "get", refused)


def test_the_integration_declares_its_api_key(client):
    document = client.get("/api/openapi.json").json
    scheme = document["components"]["securitySchemes"]["apiKeyAuth"]
    assert scheme == {"type": "apiKey", "in": "header", "name": "X-API-Key"}
    for version in ("v1", "v2"):
        assert document["paths"][f"/api/{version}/integrations/inventory"]["post"]["security"] == [{"apiKeyAuth": []}]


def test_create_operations_link_to_what_uses_their_result(app, client):
    document = client.get("/api/openapi.json").json
    ids = {operation["operationId"]: (path, operation) for path, _, operation in operations(document)}
    linked = {}
    for path, method, operation in operations(document):
        for status, response in operation["responses"].items():
            for link in response.get("links", {}).values():
                assert status == "201", (path, method)
                target_path, _ = ids[link["operationId"]]
                assert target_path.split("/")[2] == path.split("/")[2]  # same version
                (name, expression), = link["parameters"].items()
                assert "{" + name + "}" in target_path
                assert expression.startswith("$response.body#/data/" if "/v2/" in path else "$response.body#/")
                linked.setdefault((path, method), set()).add(target_path)
    for version in ("v1", "v2"):
        prefix = f"/api/{version}"
        for create, target in [
            ("/products", "/products/{product_id}"), ("/packages", "/packages/{package_id}/reviews"),
            ("/categories", "/categories/{category_id}/subcategories"),
            ("/categories/{category_id}/subcategories", "/subcategories/{subcategory_id}"),
            ("/brands", "/brands/{brand_id}"), ("/materials", "/materials/{material_id}"),
            ("/offers", "/offers/{offer_id}"), ("/customizations", "/customizations/{customization_id}"),
            ("/users/me/addresses", "/users/me/addresses/{address_id}"),
            ("/users/me/payment-methods", "/users/me/payment-methods/{payment_method_id}"),
            ("/cart/items", "/cart/items/{line_id}"), ("/orders", "/orders/{order_id}/history"),
            ("/products/{product_id}/reviews", "/reviews/{review_id}"), ("/uploads", "/uploads/{stored_name}"),
            ("/auth/register", "/users/{user_id}"),
        ]:
            assert prefix + target in linked.get((prefix + create, "post"), set()), (version, create)


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_following_the_links_of_a_create_reaches_the_resource(client, factory, version):
    document = client.get("/api/openapi.json").json
    headers = factory.headers(factory.admin())
    created = client.post(f"/api/{version}/categories", json={"name": "Linked"}, headers=headers)
    assert created.status_code == 201
    links = document["paths"][f"/api/{version}/categories"]["post"]["responses"]["201"]["links"]
    ids = {operation["operationId"]: (path, method) for path, method, operation in operations(document)}
    reads = 0
    for link in links.values():
        path, method = ids[link["operationId"]]
        if method != "get":
            continue
        (name, expression), = link["parameters"].items()
        value = created.json
        for part in expression.removeprefix("$response.body#/").split("/"):
            value = value[part]
        response = client.get(path.replace("{" + name + "}", str(value)), headers=headers)
        assert response.status_code == 200
        conforms(document, path, "get", response)
        reads += 1
    assert reads == 1


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_customization_options_keep_their_documented_shape(client, factory, version):
    document = client.get("/api/openapi.json").json
    headers = factory.headers(factory.admin())
    base = f"/api/{version}/customizations"
    created = client.post(base, json={"name": "Engraving", "type": "button",
                                      "options": [{"name": "Gold", "value": "gold"}]}, headers=headers)
    assert created.status_code == 201
    conforms(document, base, "post", created)
    ident = (created.json["data"] if version == "v2" else created.json)["id"]
    # A PATCH replaces the options whole: each still needs its name and value.
    refused = client.patch(f"{base}/{ident}", json={"options": [{"name": "Silver"}]}, headers=headers)
    assert refused.status_code == 422
    assert refused.json["error"]["details"] == {"options": {"0": {"value": ["Missing data for required field."]}}}
    changed = client.patch(f"{base}/{ident}", json={"options": [{"name": "Silver", "value": "silver"}]},
                           headers=headers)
    assert changed.status_code == 200
    conforms(document, base + "/{customization_id}", "patch", changed)
    listed = client.get(base)
    assert listed.status_code == 200
    conforms(document, base, "get", listed)


def test_the_error_component_describes_the_real_error_body(client):
    document = client.get("/api/openapi.json").json
    error = document["components"]["schemas"]["Error"]
    body = client.get("/api/v1/no-such-route").json
    assert set(error["required"]) <= set(body)
    assert set(error["properties"]["error"]["required"]) <= set(body["error"])
    assert set(body["meta"]) <= set(error["properties"]["meta"]["properties"])


class ProbeSchema(CamelSchema):
    probe_id = fields.Integer()
    display_name = fields.String(required=True)


class ProbeV2Schema(ProbeSchema):
    created_at = fields.String()


class ProbeInSchema(CamelSchema):
    display_name = fields.String(required=True)
    shelf_life_days = fields.Integer(required=True)


class OtherProbeSchema(CamelSchema):
    """Same class name as ProbeSchema, as if written in another module."""

    colour_code = fields.String()


OtherProbeSchema.__name__ = OtherProbeSchema.__qualname__ = "ProbeSchema"
OtherProbeSchema.__module__ = "tests.elsewhere.probes"


def probe_blueprint() -> Blueprint:
    bp = Blueprint("probe", __name__)

    @bp.get("/probes")
    @endpoint("List probes", returns=Shape("Probe", ProbeSchema, ProbeV2Schema), many=True, query=PageQuery,
              tags=("probes",))
    def list_probes(args):
        return []

    @bp.patch("/probes/<int:probe_id>")
    @endpoint("Change a probe", returns=Shape("Probe", ProbeSchema), body=ProbeInSchema, partial=True,
              auth="admin", tags=("probes",), errors=(404,))
    def update_probe(probe_id, body):
        return None

    @bp.get("/other-probes/<slug>")
    @endpoint("Show another probe", returns=Shape("OtherProbe", OtherProbeSchema), tags=("probes",))
    def get_other_probe(slug):
        return None

    return bp


def test_schemas_are_named_by_class_without_collisions_and_patch_bodies_require_nothing(make_app):
    app = make_app()
    for version in ("v1", "v2"):
        app.register_blueprint(probe_blueprint(), url_prefix=f"/api/{version}", name=f"{version}_probe")
    document = app.test_client().get("/api/openapi.json").json
    schemas = document["components"]["schemas"]
    listed = document["paths"]["/api/v1/probes"]["get"]
    assert listed["responses"]["200"]["headers"].keys() == {"X-Total-Count", "Link", *RATE_LIMIT_HEADERS}
    assert listed["responses"]["200"]["content"]["application/json"]["schema"]["items"]["$ref"].endswith(
        "/test_openapi.Probe")
    v2_listed = document["paths"]["/api/v2/probes"]["get"]["responses"]["200"]["content"]["application/json"]
    assert v2_listed["schema"]["properties"]["data"]["items"] == {"$ref": "#/components/schemas/ProbeV2"}
    assert v2_listed["schema"]["properties"]["meta"] == {"$ref": "#/components/schemas/PageMeta"}
    assert set(schemas["ProbeV2"]["properties"]) == {"probeId", "displayName", "createdAt"}
    assert set(schemas["test_openapi.Probe"]["properties"]) == {"probeId", "displayName"}
    assert set(schemas["probes.Probe"]["properties"]) == {"colourCode"}
    assert [p["name"] for p in listed["parameters"]] == ["page", "limit"]

    patch = document["paths"]["/api/v1/probes/{probe_id}"]
    assert patch["parameters"] == [{"in": "path", "name": "probe_id", "required": True, "schema": {"type": "integer"}}]
    body = patch["patch"]["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/ProbeInPartial"}
    assert "required" not in schemas["ProbeInPartial"]
    assert set(schemas["ProbeInPartial"]["properties"]) == {"displayName", "shelfLifeDays"}
    assert {"400", "401", "403", "404", "415", "422"} <= set(patch["patch"]["responses"])
    assert document["paths"]["/api/v1/other-probes/{slug}"]["parameters"][0]["schema"] == {"type": "string"}


def test_the_document_is_built_once_per_app(app, client):
    first = client.get("/api/openapi.json")
    assert first.status_code == 200
    assert first.mimetype == "application/json"
    assert spec_for(app) is spec_for(app)
    assert client.get("/api/openapi.json").json == first.json


def test_swagger_ui_is_served_from_local_assets_without_inline_script(client):
    page = client.get("/api/docs")
    assert page.status_code == 200
    assert page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert 'data-spec-url="/api/openapi.json"' in html
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", html, re.S)
    assert scripts and all('src="' in attributes and not body.strip() for attributes, body in scripts)
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert len(assets) >= 4
    expected_types = {".css": "text/css", ".js": "javascript", ".png": "image/png"}
    for url in assets:
        assert url.startswith("/api/docs/static/"), url
        response = client.get(url)
        assert response.status_code == 200, url
        assert expected_types[url[url.rindex("."):]] in response.mimetype, (url, response.mimetype)
        response.close()


def test_only_the_docs_own_assets_are_served(client):
    for name in ("index.html", "swagger-initializer.js", "..%2Fdocs.py", "nope.js"):
        response = client.get(f"/api/docs/static/{name}")
        assert response.status_code == 404
        assert response.json["error"]["code"] == "NOT_FOUND"


# The operational routes: health probes and Prometheus metrics


def test_the_operational_routes_are_documented_in_a_tag_of_their_own(client):
    document = client.get("/api/openapi.json").json
    for path in OPERATIONAL_PATHS:
        assert set(document["paths"][path]) == {"get"}, path
        operation = document["paths"][path]["get"]
        assert operation["tags"] == ["operations"] and operation["summary"], path
    assert not [path for path, _, operation in operations(document)
                if "operations" in operation["tags"] and path not in OPERATIONAL_PATHS]
    responses = {path: set(document["paths"][path]["get"]["responses"]) for path in OPERATIONAL_PATHS}
    assert responses == {"/health": {"200", "503", "414"}, "/health/ready": {"200", "503", "414"},
                         "/health/live": {"200", "414"}, "/metrics": {"200", "404", "414"}}
    metrics = document["paths"]["/metrics"]["get"]
    assert set(metrics["responses"]["200"]["content"]) == {"text/plain"}
    refused = metrics["responses"]["404"]["content"]["application/json"]["schema"]
    assert refused == {"$ref": "#/components/schemas/Error"}
    # A key is one way in (an allowed address is the other): optional, and the document's own scheme.
    assert metrics["security"] == [{"apiKeyAuth": []}, {}]
    assert document["components"]["securitySchemes"]["apiKeyAuth"]["name"] == "X-API-Key"
    # No probe is rate-limited, so none promises a 429 or its headers.
    assert not [node for path in OPERATIONAL_PATHS for node in walk(document["paths"][path])
                if isinstance(node, dict) and ("429" in node or "X-RateLimit-Limit" in node)]


def test_the_health_bodies_admit_no_field_the_probes_do_not_write(client):
    document = client.get("/api/openapi.json").json
    schemas = document["components"]["schemas"]
    for name in ("Health", "HealthChecks", "DatabaseCheck", "RedisCheck", "MemoryCheck", "MemoryDetails",
                 "Ready", "ReadyChecks", "MigrationsCheck", "Live"):
        assert schemas[name]["additionalProperties"] is False, name
    health = document["paths"]["/health"]["get"]["responses"]
    assert health["503"]["content"]["application/json"]["schema"]["allOf"][1]["properties"]["status"]["enum"] == [
        "unhealthy"]


@pytest.mark.parametrize("backend", ["postgresql"])
def test_real_probe_answers_conform_to_the_document(make_app):
    # Memory is degraded at 100 % only (never), so the whole is healthy: the database and Redis both answer.
    app = make_app(REDIS_URL=TestingConfig.TEST_REDIS_URL, HEALTH_MEMORY_DEGRADED_PERCENT=100)
    client = app.test_client()
    document = client.get("/api/openapi.json").json
    health = client.get("/health")
    assert health.status_code == 200 and health.json["status"] == "healthy", health.json
    assert {check["status"] for check in health.json["checks"].values()} == {"healthy"}
    conforms(document, "/health", "get", health)
    ready = client.get("/health/ready")
    assert ready.status_code == 200 and ready.json["status"] == "ready", ready.json
    conforms(document, "/health/ready", "get", ready)
    live = client.get("/health/live")
    assert live.status_code == 200
    conforms(document, "/health/live", "get", live)

    degraded = make_app(HEALTH_MEMORY_DEGRADED_PERCENT=1).test_client().get("/health")
    assert degraded.status_code == 200 and degraded.json["status"] == "degraded", degraded.json
    assert degraded.json["checks"]["redis"]["status"] == "skipped"  # no REDIS_URL
    conforms(document, "/health", "get", degraded)


def test_probe_answers_with_a_dead_database_conform_to_the_document(tmp_root):
    dead = free_port()  # nobody listens there: what a stopped server looks like to a new connection
    app = create_app(TestingConfig, {"UPLOAD_FOLDER": str(tmp_root / "uploads"), "HEALTH_CHECK_TIMEOUT_MS": 300,
                                     "SQLALCHEMY_DATABASE_URI": f"postgresql://postgres@127.0.0.1:{dead}/none",
                                     "REDIS_URL": f"redis://127.0.0.1:{dead}/0"})
    try:
        client = app.test_client()
        document = client.get("/api/openapi.json").json
        health = client.get("/health")
        assert health.status_code == 503 and health.json["status"] == "unhealthy", health.json
        assert health.json["checks"]["redis"]["status"] == "unhealthy"
        conforms(document, "/health", "get", health)
        ready = client.get("/health/ready")
        assert ready.status_code == 503 and ready.json["status"] == "not ready", ready.json
        assert "current" not in ready.json["checks"]["migrations"]
        conforms(document, "/health/ready", "get", ready)
        # A body that claims another status than its code's does not pass: the document ties them.
        declared = response_object(document, document["paths"]["/health"]["get"], 200)
        with pytest.raises(SchemaViolation, match="unhealthy"):
            OAS30Validator({**declared["content"]["application/json"]["schema"],
                            "components": document["components"]}).validate(health.json)
    finally:
        with app.app_context():
            db.engine.dispose()


def test_metrics_answers_prometheus_text_to_allowed_callers_and_the_documented_404_to_others(make_app):
    app = make_app(METRICS_ALLOW="127.0.0.1/32")
    client = app.test_client()
    document = client.get("/api/openapi.json").json
    allowed = client.get("/metrics", environ_base={"REMOTE_ADDR": "127.0.0.1"})
    assert allowed.status_code == 200
    assert allowed.mimetype in document["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert b"# TYPE " in allowed.data
    refused = client.get("/metrics", environ_base={"REMOTE_ADDR": "203.0.113.9"})
    assert refused.status_code == 404
    conforms(document, "/metrics", "get", refused)
