"""The OpenAPI 3 document, generated from the `@endpoint` declarations of the versioned routes, plus the
unversioned operational routes (health probes, Prometheus metrics), described by the table _OPERATIONAL below."""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from http import HTTPStatus
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from apispec.ext.marshmallow.common import resolve_schema_cls
from flask import Flask
from marshmallow import Schema
from werkzeug.routing import Rule

from fantasize.platform.api_keys import HEADER as API_KEY_HEADER
from fantasize.platform.rate_limits import EXEMPT_PATHS
from fantasize.schemas.base import Money, camelcase
from fantasize.schemas.health import HealthSchema, LiveSchema, ReadySchema
from fantasize.web import EndpointSpec

OPENAPI_VERSION = "3.0.3"
DOCUMENTED_VERSIONS = ("v1", "v2")
JSON = "application/json"
ERROR = "Error"
# Our own components; a schema class with one of these names gets a qualified name instead.
RESERVED_NAMES = (ERROR, "EnvelopeMeta", "Pagination", "PageMeta")
# Error responses with headers of their own are shared components (the others are written inline).
SHARED_ERRORS = {414: "UriTooLong", 429: "TooManyRequests", 503: "ServiceUnavailable"}
RATE_LIMIT_HEADERS = {
    "X-RateLimit-Limit": "Requests allowed in the current window of the strictest limit that applies",
    "X-RateLimit-Remaining": "Requests left in that window",
    "X-RateLimit-Reset": "When that window ends, in Unix seconds",
}
# Text the API accepts: no C0 control character but tab, newline and carriage return (as ECMA-262 and Python read it).
TEXT_PATTERN = r"^[^\u0000-\u0008\u000B\u000C\u000E-\u001F]*$"
RETRY_AFTER = {"description": "Seconds to wait before trying again", "required": True,
               "schema": {"type": "integer", "minimum": 0}}

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
lists `bearerAuth`, and `X-API-Key` where it lists `apiKeyAuth`.

**Operations.** `GET /health`, `/health/ready`, `/health/live` and `/metrics` are unversioned (tag
`operations`): they are never rate-limited and never cached.

**Limits.** Rate-limited operations list a `429` response; their responses carry `X-RateLimit-Limit`,
`X-RateLimit-Remaining` and `X-RateLimit-Reset`, and a `429` adds `Retry-After`. An operation that needs the
database answers `503` with `Retry-After` while it is unavailable."""


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
    entries = []
    for rule, endpoint_spec in documented_rules(app):
        version = _VERSIONED_PATH.match(rule.rule).group(1)
        methods = {method: _unique(operation_ids, f"{rule.endpoint}.{method}".replace(".", "_").lower())
                   for method in sorted(rule.methods - {"HEAD", "OPTIONS"})}
        entries.append(Entry(rule, endpoint_spec, version, methods, app.view_functions[rule.endpoint]))
    limited = bool(app.config.get("RATELIMIT_ENABLED"))
    for entry in entries:
        links = _links(entry, entries)
        operations = {method.lower(): _operation(plugin, entry, operation_id, limited, links)
                      for method, operation_id in entry.methods.items()}
        spec.path(path=openapi_path(entry.rule), operations=operations, parameters=_path_parameters(entry.rule))
    for path, operation in _operational_operations(plugin, app, operation_ids):
        spec.path(path=path, operations={"get": operation})
    document = spec.to_dict()
    document = _json_numbers({key: document[key] for key in ("openapi", "info", "paths", "components")})
    _refuse_control_characters(document)
    return document


@dataclass(frozen=True)
class Entry:
    """One documented rule: its declaration, version, operation id per method and view function."""

    rule: Rule
    spec: EndpointSpec
    version: str
    methods: dict[str, str]
    view: Any

    @property
    def path_parameters(self) -> list[str]:
        return [match.group("name") for match in _RULE_VARIABLE.finditer(self.rule.rule)]


# The unversioned operational routes (fantasize.platform.health, fantasize.platform.monitoring.prometheus): plain
# views, not `@endpoint` ones, so described here by Flask endpoint name. Each is documented when the app serves it.
OPERATIONS_TAG = "operations"
PROMETHEUS_TEXT = "text/plain"
_OPERATIONAL = {
    "health.health": ("/health", "Health: the database, Redis and this worker's memory", HealthSchema,
                      {200: ("healthy", "degraded"), 503: ("unhealthy",)}),
    "health.ready": ("/health/ready", "Readiness: the database answers and is migrated for this code", ReadySchema,
                     {200: ("ready",), 503: ("not ready",)}),
    "health.live": ("/health/live", "Liveness: the process serves requests (no I/O)", LiveSchema, {200: None}),
}
_PROBE_NOTES = ("Never rate-limited; answers `Cache-Control: no-store`. A dependency that hangs is reported "
                "unhealthy within HEALTH_CHECK_TIMEOUT_MS (+1 s at most).")
_METRICS_NOTES = ("Prometheus text exposition (format 0.0.4) of this app's request, cache, rate-limit, real-time and "
                  "process figures. Open to the addresses of METRICS_ALLOW (after PROXY_COUNT proxies) and to a "
                  "valid API key (API_KEYS), sent as `X-API-Key` or as `Authorization: Bearer <key>`; anyone else "
                  "gets 404, as for a route that does not exist. Never rate-limited.")


def _operational_operations(plugin: MarshmallowPlugin, app: Flask,
                            operation_ids: set[str]) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for endpoint, (path, summary, schema, statuses) in _OPERATIONAL.items():
        if endpoint not in app.view_functions:
            continue
        body = plugin.converter.resolve_nested_schema(schema)
        responses: dict[str, Any] = {}
        for status, values in statuses.items():
            narrowed = body if values is None else {
                "allOf": [body, {"type": "object", "properties": {"status": {"type": "string", "enum": list(values)}}}]}
            responses[str(status)] = {"description": HTTPStatus(status).phrase, "content": {JSON: {"schema": narrowed}}}
        responses["414"] = {"$ref": f"#/components/responses/{SHARED_ERRORS[414]}"}
        found.append((path, {"operationId": _unique(operation_ids, endpoint.replace(".", "_") + "_get"),
                             "summary": summary, "description": _PROBE_NOTES, "tags": [OPERATIONS_TAG],
                             "responses": responses}))
    if "metrics" in app.view_functions:
        found.append(("/metrics", {
            "operationId": _unique(operation_ids, "metrics_get"),
            "summary": "Prometheus metrics",
            "description": _METRICS_NOTES,
            "tags": [OPERATIONS_TAG],
            # An allowed address needs no key: the key is one way in, not a requirement.
            "security": [{"apiKeyAuth": []}, {}],
            "responses": {
                "200": {"description": "OK", "content": {PROMETHEUS_TEXT: {"schema": {"type": "string"}}}},
                "404": {"description": "Not Found: neither an allowed address nor a valid API key (code NOT_FOUND)",
                        "content": {JSON: {"schema": {"$ref": f"#/components/schemas/{ERROR}"}}}},
                "414": {"$ref": f"#/components/responses/{SHARED_ERRORS[414]}"},
            },
        }))
    return found


def _refuse_control_characters(document: dict[str, Any]) -> None:
    """Every free-text string the API reads (request bodies, query values) gets TEXT_PATTERN: the input schemas
    refuse those characters in any field (fantasize.schemas.base.refused_text). Strings with a format, an enum or
    a pattern of their own are constrained already. A component also shown in responses gets it too, which is
    just as true there: such text is never stored."""
    components = document["components"]["schemas"]
    seen: set[str] = set()
    pending: list[Any] = []
    for item in document["paths"].values():
        for operation in item.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            pending += [p["schema"] for p in operation.get("parameters", []) if p.get("in") == "query"]
            pending += [media["schema"] for name, media in operation.get("requestBody", {}).get("content", {}).items()
                        if name == JSON]
    while pending:
        node = pending.pop()
        if isinstance(node, list):
            pending.extend(node)
            continue
        if not isinstance(node, dict):
            continue
        ref = node.get("$ref", "")
        if ref.startswith("#/components/schemas/"):
            name = ref.rsplit("/", 1)[1]
            if name not in seen:
                seen.add(name)
                pending.append(components[name])
            continue
        if node.get("type") == "string" and not {"format", "enum", "pattern"} & set(node):
            node["pattern"] = TEXT_PATTERN
        for key in ("properties", "additionalProperties"):
            if isinstance(node.get(key), dict):
                pending.extend(node[key].values() if key == "properties" else [node[key]])
        pending += [node[key] for key in ("items", "anyOf", "allOf", "oneOf", "not") if key in node]


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
    spec.components.security_scheme("apiKeyAuth", {"type": "apiKey", "in": "header", "name": API_KEY_HEADER})
    for name, description in RATE_LIMIT_HEADERS.items():
        spec.components.header(name, {"description": description, "schema": {"type": "integer", "minimum": 0}})
    error_content = {JSON: {"schema": {"$ref": f"#/components/schemas/{ERROR}"}}}
    spec.components.response(SHARED_ERRORS[429], {
        "description": "Too Many Requests: a rate limit is used up (code RATE_LIMITED)",
        "headers": {"Retry-After": RETRY_AFTER,
                    **{name: {"description": description, "required": True,
                              "schema": {"type": "integer", "minimum": 0}}
                       for name, description in RATE_LIMIT_HEADERS.items()}},
        "content": error_content,
    })
    # The HTTP server refuses an over-long request line before the app sees it (gunicorn: HTML; gevent: no body).
    spec.components.response(SHARED_ERRORS[414], {
        "description": "URI Too Long: the request line is longer than the HTTP server accepts (4094 bytes under "
                       "gunicorn); the server answers this itself, without the Error body",
    })
    spec.components.response(SHARED_ERRORS[503], {
        "description": "Service Unavailable: the database is down or busy (code SERVICE_UNAVAILABLE)",
        "headers": {"Retry-After": RETRY_AFTER},
        "content": error_content,
    })
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


def _operation(plugin: MarshmallowPlugin, entry: Entry, operation_id: str, limited: bool,
               links: dict[str, Any]) -> dict[str, Any]:
    rule, spec, version = entry.rule, entry.spec, entry.version
    operation: dict[str, Any] = {
        "operationId": operation_id,
        "summary": spec.summary,
        "tags": list(spec.tags) or [rule.endpoint.split(".")[1]],
    }
    notes = []
    api_key_header = getattr(entry.view, "api_key_header", None)
    if spec.auth:
        notes.append(AUTH_NOTES[spec.auth])
        # An empty requirement makes the token optional.
        operation["security"] = [{"bearerAuth": []}] + ([{}] if spec.auth == "optional" else [])
    elif api_key_header:
        notes.append(f"Requires an API key in the {api_key_header} header.")
        operation["security"] = [{"apiKeyAuth": []}]
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
    rate_limited = limited and not _exempt_from_limits(rule)
    success = _success(plugin, spec, version)
    if rate_limited:
        success.setdefault("headers", {}).update(
            {name: {"$ref": f"#/components/headers/{name}"} for name in RATE_LIMIT_HEADERS})
    operation["responses"] = {str(spec.status): {**success, "links": links} if links else success}
    for outcome in spec.also:  # the same body, maybe with headers of its own
        headers = {name: {"description": text, "required": True, "schema": {"type": "string"}}
                   for name, text in outcome.headers}
        operation["responses"][str(outcome.status)] = {
            **success, "description": outcome.description, "headers": {**success.get("headers", {}), **headers}}
    for status in _error_statuses(entry, rate_limited):
        if status in SHARED_ERRORS:
            operation["responses"][str(status)] = {"$ref": f"#/components/responses/{SHARED_ERRORS[status]}"}
            continue
        operation["responses"][str(status)] = {
            "description": HTTPStatus(status).phrase,
            "content": {JSON: {"schema": {"$ref": f"#/components/schemas/{ERROR}"}}},
        }
    return operation


def _exempt_from_limits(rule: Rule) -> bool:
    """Whether the rate limiter lets every request of this rule through (see rate_limits.exempt_request)."""
    return any(rule.rule == prefix or rule.rule.startswith(prefix + "/") for prefix in EXEMPT_PATHS)


def _created_parameter(entry: Entry) -> tuple[str, str] | None:
    """(path parameter, response field) through which a create operation's result is addressed elsewhere.

    Declared with `creates=` (a parameter named `*_id` takes the resource's `id`, another its camelCase
    namesake), else derived: a 201 resource with an `id` fills the parameter named after the resource
    (`SubCategory` -> `subcategory_id`, `PaymentMethod` -> `payment_method_id`).
    """
    spec = entry.spec
    if spec.status != 201 or spec.returns is None or spec.many:
        return None
    if spec.creates:
        return spec.creates, "id" if spec.creates.endswith("_id") else camelcase(spec.creates)
    if "id" not in spec.returns.schema_for(entry.version)().fields:
        return None
    return spec.returns.name.lower() + "_id", "id"


def _links(source: Entry, entries: list[Entry]) -> dict[str, Any]:
    """OpenAPI links from a create operation to every operation of its version that takes what it made."""
    created = _created_parameter(source)
    if created is None:
        return {}
    parameter, field_name = created
    wanted = parameter.replace("_", "")
    pointer = f"/data/{field_name}" if source.version == "v2" else f"/{field_name}"
    links = {}
    for target in entries:
        if target.version != source.version:
            continue
        names = [name for name in target.path_parameters if name.replace("_", "") == wanted]
        if not names:
            continue
        for operation_id in target.methods.values():
            links[operation_id] = {
                "operationId": operation_id,
                "parameters": {names[0]: f"$response.body#{pointer}"},
            }
    return links


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
    if version == "v2" or (spec.enveloped and not paginated):
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


def _error_statuses(entry: Entry, rate_limited: bool) -> list[int]:
    """What an operation can answer besides its successes: declared errors, and those its declaration implies."""
    spec = entry.spec
    statuses = set(spec.errors) | {414}  # any request line can be too long for the HTTP server
    if spec.body is not None or spec.files:
        statuses |= {400, 413, 415, 422}  # malformed or too deep, too large, not the declared type, fails the schema
    if spec.query is not None:
        statuses.add(getattr(spec.query, "refused_status", 400))  # a bad query value
    if entry.path_parameters:
        statuses.add(404)  # no such row, or a value that cannot be an id
    if spec.auth:
        statuses.add(401)  # optional auth still refuses a bad token
    if spec.auth == "admin":
        statuses.add(403)
    if rate_limited:
        statuses.add(429)
    if spec.uses_database:
        statuses.add(503)
    return sorted(statuses)
