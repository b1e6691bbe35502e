"""`@endpoint`: one declaration per view of who may call it, what it reads and what it returns.

The same declaration drives request parsing (body and query schemas), authentication, version-aware
rendering, response caching and the OpenAPI document, so the docs cannot drift from what the view really does.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from flask import Response, request
from marshmallow import Schema, ValidationError

from fantasize.api.auth import AUTH_LEVELS, authenticate
from fantasize.api.render import no_content, render
from fantasize.errors import BadRequest, ValidationFailed
from fantasize.platform.cache import pages as page_cache
from fantasize.platform.cache.domains import check_domains
from fantasize.schemas.base import text_error
from fantasize.web import EndpointSpec, Outcome, Shape, json_body


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
        if getattr(schema_cls, "refused_status", 400) == 422:
            raise ValidationFailed("Invalid query parameters", details=exc.normalized_messages()) from exc
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
    enveloped: bool = False,
) -> Callable:
    """Declare a view. `auth` is None, "optional", "user" or "admin"; the view gets `body=` and `args=`.

    `files` names the multipart file fields the view reads itself; `produces` lists the media types of a view
    that returns its own Response (a file) instead of a rendered resource. `cache` makes a public read cacheable
    and names every domain it shows (the first picks the lifetime): a commit to any of them invalidates it.
    `also`, `creates` and `uses_database` only inform the OpenAPI document (see EndpointSpec). `enveloped` answers
    v2's `{success, data, meta}` in every version.
    """
    if auth not in AUTH_LEVELS:
        raise ValueError(f"unknown auth level {auth!r}")
    check_domains(cache)
    spec = EndpointSpec(summary, returns, many, status, body, query, auth, partial, tuple(tags), tuple(errors),
                        tuple(files), tuple(produces), tuple(cache), tuple(also), creates, uses_database,
                        enveloped)

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
                return render(result, returns, many=many, status=status, enveloped=enveloped)

            return page_cache.serve(spec.cache, respond) if spec.cache else respond()

        wrapper.endpoint_spec = spec
        return wrapper

    return decorate
