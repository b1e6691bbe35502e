"""What the platform and the API share about an HTTP request, below both layers.

The error body every layer answers with, the clock it stamps, the caller's token and user, the decoded JSON body,
where the API versions are mounted, and the declaration a view makes of itself (read by the page cache, the rate
limiter and the OpenAPI document). `fantasize.platform` and `fantasize.realtime` import from here, never from
`fantasize.api`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from itertools import accumulate
from typing import TYPE_CHECKING, Any

from flask import Response, g, jsonify, request
from marshmallow import Schema

from fantasize.errors import BadRequest, Unauthorized, UnsupportedMediaType
from fantasize.models.base import utcnow

if TYPE_CHECKING:
    from fantasize.models import User

# Where the API's one blueprint is mounted: once per version and once unversioned (the default version).
MOUNTS = (("v0", "/api/v0"), ("v1", "/api/v1"), ("v2", "/api/v2"), ("api", "/api"))


def iso_now() -> str:
    return utcnow().isoformat(timespec="milliseconds").replace("+00:00", "Z")


# Codes for the HTTP errors Flask and Werkzeug raise themselves.
HTTP_CODES = {
    400: "BAD_REQUEST", 401: "UNAUTHORIZED", 403: "FORBIDDEN", 404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED",
    409: "CONFLICT", 410: "GONE", 413: "PAYLOAD_TOO_LARGE", 415: "UNSUPPORTED_MEDIA_TYPE",
    422: "VALIDATION_ERROR", 429: "RATE_LIMITED", 503: "SERVICE_UNAVAILABLE",
}


def error_response(status: int, code: str, message: str, details: Any = None,
                   headers: dict[str, str] | None = None) -> Response:
    error: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    response = jsonify({
        "success": False,
        "error": error,
        "meta": {"requestId": g.get("request_id"), "timestamp": iso_now()},
    })
    response.status_code = status
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def bearer_token() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if not header:
        return None
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Use 'Authorization: Bearer <token>'", code="INVALID_TOKEN")
    return token.strip()


def current_user() -> User | None:
    return g.get("current_user")


# Arrays and objects nested deeper than this are refused before decoding: no request of this API needs a tenth of
# it, and the decoder recurses once per level.
MAX_JSON_DEPTH = 64
TOO_DEEP = f"The JSON body nests arrays and objects deeper than {MAX_JSON_DEPTH} levels"
# A JSON string, escapes included: brackets inside one are text, not structure.
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_A_BRACKET = bytes(sorted(set(range(256)) - set(b"[]{}")))
_BRACKET_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")  # +1 and -1 as signed bytes
_DEEP_RUN = re.compile(rb"[\[{]{%d}" % (MAX_JSON_DEPTH + 1))


def json_too_deep(raw: bytes) -> bool:
    """Whether the brackets of `raw`, outside its strings, nest deeper than MAX_JSON_DEPTH: the deepest point the
    decoder would reach, valid JSON or not, judged from the bytes in C-speed passes (no recursion at all)."""
    if raw.count(b"[") + raw.count(b"{") <= MAX_JSON_DEPTH:
        return False  # the usual body: too few brackets to nest that deep
    brackets = _JSON_STRING.sub(b"", raw).translate(None, _NOT_A_BRACKET)
    if _DEEP_RUN.search(brackets):  # the usual attack, a long run of openings, found without counting
        return True
    depths = accumulate(memoryview(brackets.translate(_BRACKET_STEPS)).cast("b"))
    return max(depths, default=0) > MAX_JSON_DEPTH


def json_body() -> Any:
    """The request's JSON body, decoded: 415 when it is not JSON, 400 when it is empty, malformed or too deep."""
    if request.mimetype != "application/json" and not request.mimetype.endswith("+json"):
        raise UnsupportedMediaType("Send the body as application/json")
    raw = request.get_data(cache=True)
    if not raw.strip():
        raise BadRequest("A JSON body is required")
    if json_too_deep(raw):
        raise BadRequest(TOO_DEEP, details={"maxDepth": MAX_JSON_DEPTH})
    try:
        return json.loads(raw)
    except RecursionError as exc:  # not expected below MAX_JSON_DEPTH; a 400 all the same, never a 500
        raise BadRequest(TOO_DEEP, details={"maxDepth": MAX_JSON_DEPTH}) from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest("Malformed JSON body", details={"position": getattr(exc, "pos", None)}) from exc


@dataclass(frozen=True)
class Shape:
    """How one resource renders per version: v2 falls back to v1 when it has no schema of its own."""

    name: str
    v1: type[Schema]
    v2: type[Schema] | None = None

    def schema_for(self, version: str | None) -> type[Schema]:
        return self.v2 if version == "v2" and self.v2 is not None else self.v1


@dataclass(frozen=True)
class Outcome:
    """Another success a view answers with, in the same shape as its main one (for the OpenAPI document)."""

    status: int
    description: str
    headers: tuple[tuple[str, str], ...] = ()  # (name, description) of headers this answer always carries


@dataclass(frozen=True)
class EndpointSpec:
    summary: str
    returns: Shape | None
    many: bool
    status: int
    body: type[Schema] | None
    query: type[Schema] | None
    auth: str | None
    partial: bool
    tags: tuple[str, ...] = field(default_factory=tuple)
    errors: tuple[int, ...] = field(default_factory=tuple)
    # Views that read multipart files or answer with a file (not JSON) say so here, for the OpenAPI document.
    files: tuple[str, ...] = field(default_factory=tuple)
    produces: tuple[str, ...] = field(default_factory=tuple)
    # The catalogue domains a cacheable public read shows (fantasize.platform.cache); empty: never cached.
    cache: tuple[str, ...] = field(default_factory=tuple)
    # For the OpenAPI document: other successes (an idempotent replay), the path parameter a create operation's
    # result fills in elsewhere (its links; derived from the resource's name when None), and whether the view
    # needs the database (503 while it is down).
    also: tuple[Outcome, ...] = field(default_factory=tuple)
    creates: str | None = None
    uses_database: bool = True
    # Answers `{success, data, meta}` in every version, as v2 does (the admin performance endpoints, API.md).
    enveloped: bool = False
