"""Rendering a view's result for the resolved version: v0/v1 bare resources, v2 the envelope."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from flask import Response, current_app, g, jsonify, request
from marshmallow import Schema

from fantasize.models import User
from fantasize.services.common import Page
from fantasize.web import Shape, iso_now


def _meta(**extra: Any) -> dict[str, Any]:
    return {"version": g.get("api_version") or "v2", "requestId": g.get("request_id"), "timestamp": iso_now(), **extra}


def _link_header(page: Page) -> str | None:
    links = []
    # Sorted by name, as the page cache keys the query: a page stored for `?b=1&a=2` is right for `?a=2&b=1` too.
    args = dict(sorted(request.args.to_dict().items()))
    for rel, number in (("prev", page.page - 1), ("next", page.page + 1)):
        if 1 <= number <= page.pages:
            query = urlencode({**args, "page": number, "limit": page.limit})
            links.append(f'<{request.base_url}?{query}>; rel="{rel}"')
    return ", ".join(links) or None


# A faster stand-in for `schema_class(many=...).dump(result)`, proven by tests to give the same data.
Dump = Callable[[Any, type[Schema]], Any]


def render(result: Any, shape: Shape | None, *, many: bool = False, status: int = 200,
           dump: Dump | None = None, enveloped: bool = False) -> Response:
    """The response for `result` (a Page, a list or one object) in `shape`, in the version the request resolved.
    `dump`, when given, renders in place of the shape's schema (see fantasize.schemas.product_rows); `enveloped`
    wraps a result that is not a Page in v2's envelope whatever the version."""
    version = g.get("api_version")
    paged = isinstance(result, Page)
    content = result.items if paged else result
    if shape is None:
        data = list(content) if paged else content
    elif dump is not None:
        data = dump(content, shape.schema_for(version))
    else:
        data = shape.schema_for(version)(many=many or paged).dump(content)
    if paged:
        if version == "v2":
            pagination = {"page": result.page, "limit": result.limit, "total": result.total, "pages": result.pages}
            response = jsonify({"success": True, "data": data, "meta": _meta(pagination=pagination)})
        else:
            response = jsonify(data)
            response.headers["X-Total-Count"] = str(result.total)
            link = _link_header(result)
            if link:
                response.headers["Link"] = link
    else:
        response = jsonify({"success": True, "data": data, "meta": _meta()} if version == "v2" or enveloped else data)
    response.status_code = status
    return response


def render_for(viewer: User | None, result: Any, public: Shape, staff: Shape, **kwargs: Any) -> Response:
    """Render what `viewer` may see: administrators get the `staff` shape (inactive links, internal details),
    everyone else the `public` one. The page cache neither serves nor stores an administrator's read, so a staff
    rendering never reaches anyone else."""
    return render(result, staff if viewer is not None and viewer.is_admin else public, **kwargs)


def no_content() -> Response:
    return current_app.response_class(status=204)
