"""`@endpoint`: one declaration per view of who may call it, what it reads and what it returns.

The same declaration drives request parsing (body and query schemas), authentication, version-aware
rendering, response caching and the OpenAPI document, so the docs cannot drift from what the view really does.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import Response, request
from marshmallow import Schema, ValidationError

from fantasize.api.auth import AUTH_LEVELS, authenticate
from fantasize.api.render import Shape, no_content, render
from fantasize.errors import BadRequest, UnsupportedMediaType, ValidationFailed
from fantasize.platform.cache import pages as page_cache
from fantasize.platform.cache.domains import check_domains


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


def _json_body() -> Any:
    if request.mimetype != "application/json" and not request.mimetype.endswith("+json"):
        raise UnsupportedMediaType("Send the body as application/json")
    raw = request.get_data(cache=True)
    if not raw.strip():
        raise BadRequest("A JSON body is required")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest("Malformed JSON body", details={"position": getattr(exc, "pos", None)}) from exc


def load_body(schema_cls: type[Schema], partial: bool = False) -> dict[str, Any]:
    data = _json_body()
    if not isinstance(data, dict):
        raise BadRequest("The JSON body must be an object")
    try:
        return schema_cls().load(data, partial=partial)
    except ValidationError as exc:
        raise ValidationFailed(details=exc.normalized_messages()) from exc


def load_query(schema_cls: type[Schema]) -> dict[str, Any]:
    try:
        return schema_cls().load(request.args.to_dict())
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
) -> Callable:
    """Declare a view. `auth` is None, "optional", "user" or "admin"; the view gets `body=` and `args=`.

    `files` names the multipart file fields the view reads itself; `produces` lists the media types of a view
    that returns its own Response (a file) instead of a rendered resource. `cache` makes a public read cacheable
    and names every domain it shows (the first picks the lifetime): a commit to any of them invalidates it.
    """
    if auth not in AUTH_LEVELS:
        raise ValueError(f"unknown auth level {auth!r}")
    check_domains(cache)
    spec = EndpointSpec(summary, returns, many, status, body, query, auth, partial, tuple(tags), tuple(errors),
                        tuple(files), tuple(produces), tuple(cache))

    def decorate(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Response:
            authenticate(auth)
            if query is not None:
                kwargs["args"] = load_query(query)
            if body is not None:
                kwargs["body"] = load_body(body, partial)

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
