"""The OpenAPI 3 document, generated from the `@endpoint` declarations of the versioned routes."""

from __future__ import annotations

import re
from collections import defaultdict
from decimal import Decimal
from http import HTTPStatus
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from apispec.ext.marshmallow.common import resolve_schema_cls
from flask import Flask
from marshmallow import Schema
from werkzeug.routing import Rule

from fantasize.api.endpoint import EndpointSpec
from fantasize.schemas.base import Money

OPENAPI_VERSION = "3.0.3"
DOCUMENTED_VERSIONS = ("v1", "v2")
JSON = "application/json"
ERROR = "Error"
# Our own components; a schema class with one of these names gets a qualified name instead.
RESERVED_NAMES = (ERROR, "EnvelopeMeta", "Pagination", "PageMeta")

_VERSIONED_PATH = re.compile(r"^/api/(v\d+)(?:/|$)")
# Werkzeug's rule syntax: <converter(args):name> or <name>.
_RULE_VARIABLE = re.compile(r"<(?:(?P<converter>\w+)(?:\((?P<args>.*?)\))?:)?(?P<name>\w+)>")
_CONVERTER_SCHEMAS = {
    "int": {"type": "integer"},
    "float": {"type": "number"},
    "uuid": {"type": "string", "format": "uuid"},
}
_MODIFIERS = ("only", "exclude", "load_only", "dump_only")
AUTH_NOTES = {
    "optional": "A bearer token is optional.",
    "user": "Requires a signed-in user.",
    "admin": "Requires an administrator.",
}

DESCRIPTION = """\
The Fantasize shop API. JSON everywhere, camelCase keys, ISO-8601 UTC times, money as decimal strings.

**Versions.** Every route is served under `/api/v0`, `/api/v1` and `/api/v2`; this document lists v1 and v2.
An unversioned path (`/api/...`) speaks the version named by the `API-Version` header, else the `version`
query parameter, else the default (v1); a version in the path wins. Each response carries `API-Version`.
v1 renders bare resources (lists as arrays with `X-Total-Count` and `Link` headers); v2 wraps every success in
`{success, data, meta}` with `meta.pagination` on lists. **v0 is deprecated**: it answers like v1 with
`Deprecation`, `Sunset`, `Warning` and `Link` headers, and `410 Gone` after its sunset date.
`GET /api/v1/versions` lists the versions and their status.

**Errors** always use the `Error` body below, whatever the version.

**Auth.** Send `Authorization: Bearer <accessToken>` (from `POST /api/v1/auth/login`) where an operation
lists `bearerAuth`."""


def spec_for(app: Flask) -> dict[str, Any]:
    """The document for this app, built on first use and kept for the app's life (routes do not change)."""
    document = app.extensions.get("openapi")
    if document is None:
        document = build_spec(app)
        app.extensions["openapi"] = document
    return document


def build_spec(app: Flask) -> dict[str, Any]:
    # Names are chosen once every schema has been seen, so a name never depends on which route came first:
    # the first pass only records which classes share a name.
    census = SchemaNamer(census=True)
    _build(app, census)
    return _build(app, SchemaNamer(shared=census.shared_names()))


def documented_rules(app: Flask) -> list[tuple[Rule, EndpointSpec]]:
    """The v1 and v2 rules whose view carries an `@endpoint` declaration, in path order."""
    found = []
    for rule in app.url_map.iter_rules():
        match = _VERSIONED_PATH.match(rule.rule)
        spec = getattr(app.view_functions.get(rule.endpoint), "endpoint_spec", None)
        if match and match.group(1) in DOCUMENTED_VERSIONS and isinstance(spec, EndpointSpec):
            found.append((rule, spec))
    return sorted(found, key=lambda item: (item[0].rule, item[0].endpoint))


def openapi_path(rule: Rule) -> str:
    return _RULE_VARIABLE.sub(lambda m: "{" + m.group("name") + "}", rule.rule)


class SchemaNamer:
    """apispec's schema_name_resolver: the class name without "Schema", qualified by its module when shared.

    A PATCH body (`partial=True`) is its own component ending in "Partial" (nothing required there);
    a nested schema narrowed with only/exclude is written inline rather than named.
    """

    def __init__(self, shared: set[str] | None = None, census: bool = False) -> None:
        self.shared = set(shared or ()) | set(RESERVED_NAMES)
        self.census = census
        self.classes: dict[str, list[type[Schema]]] = defaultdict(list)
        self.calls = 0

    def __call__(self, schema: type[Schema] | Schema) -> str | None:
        cls = resolve_schema_cls(schema)
        if isinstance(schema, Schema) and any(getattr(schema, m) for m in _MODIFIERS):
            return None
        base = base_name(cls)
        if cls not in self.classes[base]:
            self.classes[base].append(cls)
        self.calls += 1
        if self.census:  # a throwaway name, unique per call: apispec asks once per distinct schema
            return f"Census{self.calls}"
        name = self._qualified(cls, base) if base in self.shared else base
        return name + "Partial" if isinstance(schema, Schema) and schema.partial else name

    def shared_names(self) -> set[str]:
        return {name for name, classes in self.classes.items() if len(classes) > 1}

    def _qualified(self, cls: type[Schema], base: str) -> str:
        """The shortest module suffix that tells this class apart from the others of the same name."""
        rivals = [_safe(other.__module__).split(".") for other in self.classes[base] if other is not cls]
        parts = _safe(cls.__module__).split(".")
        for size in range(1, len(parts) + 1):
            if all(rival[-size:] != parts[-size:] for rival in rivals):
                return f"{'.'.join(parts[-size:])}.{base}"
        # Same module and name (classes made at run time): fall back to the order of discovery.
        return f"{'.'.join(parts)}.{base}{self.classes[base].index(cls) + 1}"


def base_name(cls: type[Schema]) -> str:
    name = cls.__name__
    return _safe(name[: -len("Schema")] if name.endswith("Schema") and name != "Schema" else name)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "", name)


def _build(app: Flask, namer: SchemaNamer) -> dict[str, Any]:
    plugin = MarshmallowPlugin(schema_name_resolver=namer)
    spec = APISpec(
        title="Fantasize API",
        version=app.config["APP_VERSION"],
        openapi_version=OPENAPI_VERSION,
        plugins=[plugin],
        info={"description": DESCRIPTION},
    )
    plugin.map_to_openapi_type(Money, "string", "decimal")
    _register_components(spec)
    operation_ids: set[str] = set()
    for rule, endpoint_spec in documented_rules(app):
        version = _VERSIONED_PATH.match(rule.rule).group(1)
        operations = {}
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            operation_id = _unique(operation_ids, f"{rule.endpoint}.{method}".replace(".", "_").lower())
            operations[method.lower()] = _operation(plugin, rule, endpoint_spec, version, operation_id)
        spec.path(path=openapi_path(rule), operations=operations, parameters=_path_parameters(rule))
    document = spec.to_dict()
    return _json_numbers({key: document[key] for key in ("openapi", "info", "paths", "components")})


def _json_numbers(node: Any) -> Any:
    """Decimals (a Range over Decimal fields) as JSON numbers: Flask would write them as strings."""
    if isinstance(node, dict):
        return {key: _json_numbers(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_json_numbers(value) for value in node]
    if isinstance(node, Decimal):
        return int(node) if node == node.to_integral_value() else float(node)
    return node


def _unique(taken: set[str], candidate: str) -> str:
    name, n = candidate, 1
    while name in taken:
        n += 1
        name = f"{candidate}_{n}"
    taken.add(name)
    return name


def _register_components(spec: APISpec) -> None:
    spec.components.security_scheme("bearerAuth", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"})
    spec.components.schema(ERROR, {
        "type": "object",
        "required": ["success", "error", "meta"],
        "properties": {
            "success": {"type": "boolean", "enum": [False]},
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {"type": "string", "example": "VALIDATION_ERROR"},
                    "message": {"type": "string"},
                    "details": {
                        "description": "More about the error; for 422, field name -> list of messages.",
                        "nullable": True,
                    },
                },
            },
            "meta": {
                "type": "object",
                "properties": {"requestId": {"type": "string"}, "timestamp": {"type": "string", "format": "date-time"}},
            },
        },
    })
    meta_properties = {
        "version": {"type": "string", "example": "v2"},
        "requestId": {"type": "string"},
        "timestamp": {"type": "string", "format": "date-time"},
    }
    spec.components.schema("EnvelopeMeta", {"type": "object", "properties": meta_properties})
    spec.components.schema("Pagination", {
        "type": "object",
        "required": ["page", "limit", "total", "pages"],
        "properties": {name: {"type": "integer"} for name in ("page", "limit", "total", "pages")},
    })
    spec.components.schema("PageMeta", {
        "type": "object",
        "properties": {**meta_properties, "pagination": {"$ref": "#/components/schemas/Pagination"}},
    })


def _path_parameters(rule: Rule) -> list[dict[str, Any]]:
    return [
        {
            "in": "path",
            "name": match.group("name"),
            "required": True,
            "schema": dict(_CONVERTER_SCHEMAS.get(match.group("converter") or "default", {"type": "string"})),
        }
        for match in _RULE_VARIABLE.finditer(rule.rule)
    ]


def _operation(plugin: MarshmallowPlugin, rule: Rule, spec: EndpointSpec, version: str,
               operation_id: str) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": operation_id,
        "summary": spec.summary,
        "tags": list(spec.tags) or [rule.endpoint.split(".")[1]],
    }
    notes = []
    if spec.auth:
        notes.append(AUTH_NOTES[spec.auth])
        # An empty requirement makes the token optional.
        operation["security"] = [{"bearerAuth": []}] + ([{}] if spec.auth == "optional" else [])
    if spec.partial:
        notes.append("Send only the fields to change.")
    if notes:
        operation["description"] = " ".join(notes)
    if spec.query is not None:
        operation["parameters"] = [{"in": "query", "schema": spec.query()}]
    if spec.body is not None:
        body = spec.body(partial=True) if spec.partial else spec.body()
        operation["requestBody"] = {"required": True, "content": {JSON: {"schema": body}}}
    if spec.files:
        form = {"type": "object", "required": list(spec.files),
                "properties": {name: {"type": "string", "format": "binary"} for name in spec.files}}
        operation["requestBody"] = {"required": True, "content": {"multipart/form-data": {"schema": form}}}
    operation["responses"] = {str(spec.status): _success(plugin, spec, version)}
    for status in _error_statuses(spec):
        operation["responses"][str(status)] = {
            "description": HTTPStatus(status).phrase,
            "content": {JSON: {"schema": {"$ref": f"#/components/schemas/{ERROR}"}}},
        }
    return operation


def _is_paginated(spec: EndpointSpec) -> bool:
    return spec.many and spec.query is not None and {"page", "limit"} <= set(spec.query().fields)


def _success(plugin: MarshmallowPlugin, spec: EndpointSpec, version: str) -> dict[str, Any]:
    description = HTTPStatus(spec.status).phrase
    if spec.status == 204:
        return {"description": description}
    if spec.produces:
        return {"description": description,
                "content": {media: {"schema": {"type": "string", "format": "binary"}} for media in spec.produces}}
    if spec.returns is None:
        data: dict[str, Any] = {}
    else:
        data = plugin.converter.resolve_nested_schema(spec.returns.schema_for(version)())
        if spec.many:
            data = {"type": "array", "items": data}
    paginated = _is_paginated(spec)
    response: dict[str, Any] = {"description": description}
    if version == "v2":
        meta = "PageMeta" if paginated else "EnvelopeMeta"
        data = {
            "type": "object",
            "required": ["success", "data", "meta"],
            "properties": {
                "success": {"type": "boolean", "enum": [True]},
                "data": data,
                "meta": {"$ref": f"#/components/schemas/{meta}"},
            },
        }
    elif paginated:
        response["headers"] = {
            "X-Total-Count": {"description": "Items in the whole list", "schema": {"type": "integer"}},
            "Link": {"description": "Next and prev pages (RFC 8288)", "schema": {"type": "string"}},
        }
    if spec.cache:
        response.setdefault("headers", {})["X-Cache"] = {
            "description": "HIT: served from the page cache; MISS: computed (absent for administrators)",
            "schema": {"type": "string", "enum": ["HIT", "MISS"]},
        }
    response["content"] = {JSON: {"schema": data}}
    return response


def _error_statuses(spec: EndpointSpec) -> list[int]:
    statuses = set(spec.errors)
    if spec.body is not None:
        statuses |= {400, 415, 422}  # malformed JSON, not JSON, fails the schema
    if spec.query is not None:
        statuses.add(400)  # a bad query value
    if spec.auth:
        statuses.add(401)  # optional auth still refuses a bad token
    if spec.auth == "admin":
        statuses.add(403)
    return sorted(statuses)
