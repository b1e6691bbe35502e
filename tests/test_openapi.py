"""The generated OpenAPI document and the Swagger UI page that shows it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from flask import Blueprint
from marshmallow import fields

from fantasize.api.endpoint import endpoint
from fantasize.api.render import Shape
from fantasize.platform.openapi import spec_for
from fantasize.schemas.base import CamelSchema, PageQuery

RULE_VARIABLE = re.compile(r"<(?:\w+(?:\(.*?\))?:)?(\w+)>")
CAMEL = re.compile(r"^[a-z][a-zA-Z0-9]*$")
NUMERIC_KEYWORDS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "minLength", "maxLength",
                    "minItems", "maxItems")
HTTP_METHODS = {"get", "put", "post", "delete", "patch", "options", "head", "trace"}


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
        assert ref.startswith("#/components/schemas/")
        assert isinstance(resolve(document, ref), dict)


def test_every_versioned_endpoint_is_documented_and_nothing_else(app, client):
    document = client.get("/api/openapi.json").json
    expected = {(path, method) for path, method, _ in versioned_endpoints(app)}
    documented = {(path, method) for path, method, _ in operations(document)}
    assert ("/api/v1/versions", "get") in expected
    assert documented == expected
    assert not [path for path in document["paths"] if not re.match(r"^/api/v[12](/|$)", path)]


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
            error = operation["responses"][str(status)]["content"]["application/json"]["schema"]
            assert error == {"$ref": "#/components/schemas/Error"}


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
    assert listed["responses"]["200"]["headers"].keys() == {"X-Total-Count", "Link"}
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
