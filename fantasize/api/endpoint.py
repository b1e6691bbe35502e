"""`@endpoint`: one declaration per view of who may call it, what it reads and what it returns.

The same declaration drives request parsing (body and query schemas), authentication, version-aware
rendering, response caching and the OpenAPI document, so the docs cannot drift from what the view really does.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any

from flask import Response, request
from marshmallow import Schema, ValidationError

from fantasize.api.auth import AUTH_LEVELS, authenticate
from fantasize.api.render import Shape, no_content, render
from fantasize.errors import BadRequest, UnsupportedMediaType, ValidationFailed
from fantasize.platform.cache import pages as page_cache
from fantasize.platform.cache.domains import check_domains
from fantasize.schemas.base import text_error


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


def check_form_text() -> None:
    """The text fields of a multipart body (beside a file) obey the rule of `refused_text` like JSON fields."""
    if request.mimetype != "multipart/form-data":
        return  # the view answers 415
    errors = {}
    for name, value in request.form.items(multi=True):
        message = text_error(name) or text_error(value)
        if message:
            errors[name] = [message]
    if errors:
        raise ValidationFailed(details=errors)


@functools.cache
def schema_instance(schema_cls: type[Schema]) -> Schema:
    """The one instance of an input schema, built on first use: binding a schema's fields costs more than the
    load itself, and `load` keeps no state on the instance, so every request shares it."""
    return schema_cls()


def load_body(schema_cls: type[Schema], partial: bool = False) -> dict[str, Any]:
    data = json_body()
    if not isinstance(data, dict):
        raise BadRequest("The JSON body must be an object")
    try:
        return schema_instance(schema_cls).load(data, partial=partial)
    except ValidationError as exc:
        raise ValidationFailed(details=exc.normalized_messages()) from exc


def load_query(schema_cls: type[Schema]) -> dict[str, Any]:
    try:
        return schema_instance(schema_cls).load(request.args.to_dict())
    except ValidationError as exc:
        raise BadRequest("Invalid query parameters", details=exc.normalized_messages()) from exc


def endpoint(
    summary: str,
    *,
    returns: Shape | None = None,
    many: bool = False,
    status: int = 200,
    body: type[Schema] | None = None,
    query: type[Schema] | None = None,
    auth: str | None = None,
    partial: bool = False,
    tags: tuple[str, ...] = (),
    errors: tuple[int, ...] = (),
    files: tuple[str, ...] = (),
    produces: tuple[str, ...] = (),
    cache: tuple[str, ...] = (),
    also: tuple[Outcome, ...] = (),
    creates: str | None = None,
    uses_database: bool = True,
) -> Callable:
    """Declare a view. `auth` is None, "optional", "user" or "admin"; the view gets `body=` and `args=`.

    `files` names the multipart file fields the view reads itself; `produces` lists the media types of a view
    that returns its own Response (a file) instead of a rendered resource. `cache` makes a public read cacheable
    and names every domain it shows (the first picks the lifetime): a commit to any of them invalidates it.
    `also`, `creates` and `uses_database` only inform the OpenAPI document (see EndpointSpec).
    """
    if auth not in AUTH_LEVELS:
        raise ValueError(f"unknown auth level {auth!r}")
    check_domains(cache)
    spec = EndpointSpec(summary, returns, many, status, body, query, auth, partial, tuple(tags), tuple(errors),
                        tuple(files), tuple(produces), tuple(cache), tuple(also), creates, uses_database)

    def decorate(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Response:
            authenticate(auth)
            if query is not None:
                kwargs["args"] = load_query(query)
            if body is not None:
                kwargs["body"] = load_body(body, partial)
            if files:
                check_form_text()

            def respond() -> Response:
                result = view(*args, **kwargs)
                if isinstance(result, Response):
                    return result
                if status == 204:
                    return no_content()
                return render(result, returns, many=many, status=status)

            return page_cache.serve(spec.cache, respond) if spec.cache else respond()

        wrapper.endpoint_spec = spec
        return wrapper

    return decorate
