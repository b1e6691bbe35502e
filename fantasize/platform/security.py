"""Security at the edge: the headers on every response (Flask-Talisman) and CORS for the origins in CORS_ORIGIN.

Every response gets a Content-Security-Policy, X-Content-Type-Options: nosniff, X-Frame-Options: DENY and a
Referrer-Policy; with FORCE_HTTPS, plain-HTTP requests are redirected and HTTPS responses carry
Strict-Transport-Security. JSON needs no policy beyond "load nothing, be framed by nobody"; pages that load
scripts (Swagger UI at /api/docs) name their own policy in PAGE_POLICIES.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, Response, current_app, request
from flask_talisman import DENY, Talisman
from werkzeug.datastructures import Headers

EXTENSION = "fantasize.security"

# A JSON (or file) response loads nothing; opened as a document it runs sandboxed, without scripts or forms.
API_POLICY = {
    "default-src": "'none'",
    "frame-ancestors": "'none'",
    "base-uri": "'none'",
    "form-action": "'none'",
    "sandbox": "",
}
# Swagger UI, served from this process: its scripts, styles and the OpenAPI document (and "Try it out" calls)
# come from here; its icons are inline SVG data URLs.
DOCS_POLICY = {
    "default-src": "'none'",
    "script-src": "'self'",
    "style-src": "'self'",
    "img-src": "'self' data:",
    "connect-src": "'self'",
    "frame-ancestors": "'none'",
    "base-uri": "'none'",
    "form-action": "'none'",
}
# /live, the reference Socket.IO client: its own script and style files, and sockets to its own origin only.
LIVE_POLICY = {**DOCS_POLICY, "default-src": "'self'"}
# /ops, the administrators' figures: its own script, style sheet and icon, and JSON requests to its own origin; the
# charts are drawn on canvases by the script, so nothing else (no font, no frame, no socket) is let in.
OPS_POLICY = {**DOCS_POLICY, "img-src": "'self'"}
# Endpoint name -> policy, for the pages that need more than API_POLICY.
PAGE_POLICIES: dict[str, dict[str, str]] = {"docs.index": DOCS_POLICY, "live.page": LIVE_POLICY, "ops.page": OPS_POLICY}
# Probes and scrapers call the instance itself over plain HTTP; a redirect to HTTPS would only fail them.
HTTPS_EXEMPT_PATHS = ("/health", "/metrics")
REFERRER_POLICY = "no-referrer"

CORS_ALLOW_HEADERS = ("Authorization", "Content-Type", "API-Version", "Idempotency-Key", "X-Request-ID")
CORS_EXPOSE_HEADERS = (
    "X-Request-ID", "X-Total-Count", "Link", "API-Version", "X-RateLimit-Limit", "X-RateLimit-Remaining",
    "X-RateLimit-Reset", "Retry-After", "X-Cache", "Idempotent-Replayed", "Deprecation", "Sunset", "Warning",
)
CORS_MAX_AGE_SECONDS = 600


class SecurityHeaders(Talisman):
    """Talisman, with the policy of PAGE_POLICIES for their pages and no HTTPS redirect for HTTPS_EXEMPT_PATHS.

    Talisman's own per-view options live on the view function, which every app in the process shares and which
    Talisman fills in with the first app's settings; looking pages up by endpoint keeps each app's settings its own.

    Talisman works out its options and writes every header value (the policy strings above all) again on each
    request; here both are worked out once per kind of request (endpoint, HTTPS-exempt path) and kept, with the page
    policy they were made from: a policy replaced or changed in PAGE_POLICIES is picked up on the next request. Only
    Strict-Transport-Security, which depends on the request, is still decided per request, by Talisman.
    """

    def __init__(self, app: Flask | None = None, **kwargs: Any) -> None:
        self._kinds: dict[tuple[str | None, bool], _Kind] = {}
        super().__init__(app, **kwargs)

    def _kind(self) -> _Kind:
        endpoint = request.endpoint
        key = (endpoint, request.path.startswith(HTTPS_EXEMPT_PATHS))
        policy = PAGE_POLICIES.get(endpoint or "")
        snapshot = None if policy is None else tuple(policy.items())
        kind = self._kinds.get(key)
        if kind is None or kind.snapshot != snapshot:
            kind = self._kinds[key] = _Kind(snapshot, self._work_out_options(policy, key[1]))
        return kind

    def _work_out_options(self, policy: dict[str, str] | None, https_exempt: bool) -> dict[str, Any]:
        options = dict(super()._get_local_options())
        if policy is not None:
            options["content_security_policy"] = dict(policy)
        if https_exempt:
            options["force_https"] = False
        return options

    def _get_local_options(self) -> dict[str, Any]:
        return self._kind().options  # read-only: Talisman only reads its options

    def _set_response_headers(self, response: Response) -> Response:
        kind = self._kind()
        if kind.options["content_security_policy_nonce_in"]:  # a nonce differs per request: Talisman's own way
            return super()._set_response_headers(response)
        if kind.headers is None:
            # Talisman's own methods write the values, once, into a scratch set; the order is Talisman's.
            scratch, options = Headers(), kind.options
            self._set_feature_policy_headers(scratch, options)
            self._set_permissions_policy_headers(scratch, options)
            self._set_document_policy_headers(scratch, options)
            self._set_frame_options_headers(scratch, options)
            self._set_content_security_policy_headers(scratch, options)
            kind.headers = tuple(scratch.items())
        headers = response.headers
        for name, value in kind.headers:
            headers[name] = value
        self._set_hsts_headers(headers)
        self._set_referrer_policy_headers(headers)
        return response


@dataclass
class _Kind:
    """What SecurityHeaders keeps for one kind of request."""

    snapshot: tuple[tuple[str, str], ...] | None  # the page policy it was made from
    options: dict[str, Any]
    headers: tuple[tuple[str, str], ...] | None = None


@dataclass(frozen=True)
class CorsOrigins:
    """The origins that may call the API from a browser: exact `scheme://host[:port]` matches, or any ("*")."""

    origins: frozenset[str] = frozenset()
    any_origin: bool = False

    def allows(self, origin: str | None) -> bool:
        return bool(origin) and (self.any_origin or origin in self.origins)


def parse_cors_origins(raw: str) -> CorsOrigins:
    """CORS_ORIGIN: comma-separated origins, or "*". A malformed entry raises ValueError, so the app won't start."""
    origins = set()
    for entry in (part.strip() for part in raw.split(",")):
        if not entry:
            continue
        if entry == "*":
            return CorsOrigins(any_origin=True)
        parts = urlsplit(entry.rstrip("/"))
        try:
            number = parts.port
        except ValueError:
            number = -1
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.path or parts.query or parts.fragment \
                or parts.username or parts.password or number == -1:
            raise ValueError(f"CORS_ORIGIN entry {entry!r} is not an origin such as https://shop.example.com")
        # Browsers send the origin serialised in lower case, with the port only when it is not the default.
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        port = f":{number}" if number and number != {"http": 80, "https": 443}[parts.scheme] else ""
        origins.add(f"{parts.scheme}://{host}{port}")
    return CorsOrigins(frozenset(origins))


def cors_origins(app: Flask) -> CorsOrigins:
    """The app's parsed CORS_ORIGIN (for HTTP here, and for Socket.IO's allowed origins)."""
    return app.extensions[EXTENSION]


def _answer_preflight() -> Response | None:
    """A CORS preflight to a known route gets 204 here, before authentication, rate limits or caching look at it;
    the allow headers are added only for an allowed origin (see _add_cors_headers)."""
    if request.method != "OPTIONS" or "Access-Control-Request-Method" not in request.headers:
        return None
    if request.url_rule is None:
        return None  # an unknown route stays a 404
    response = current_app.make_default_options_response()
    response.status_code = 204
    del response.headers["Content-Type"]  # no body, so no type
    if cors_origins(current_app).allows(request.headers.get("Origin")):
        response.headers["Access-Control-Allow-Methods"] = response.headers["Allow"]
        response.headers["Access-Control-Allow-Headers"] = ", ".join(CORS_ALLOW_HEADERS)
        response.headers["Access-Control-Max-Age"] = str(CORS_MAX_AGE_SECONDS)
    return response


def _add_cors_headers(response: Response) -> Response:
    allowed = cors_origins(current_app)
    if allowed.origins:
        response.vary.add("Origin")  # the answer differs by origin, so shared caches must keep them apart
    origin = request.headers.get("Origin")
    if allowed.allows(origin):
        response.headers["Access-Control-Allow-Origin"] = "*" if allowed.any_origin else origin
        response.headers["Access-Control-Expose-Headers"] = ", ".join(CORS_EXPOSE_HEADERS)
    return response


def init_app(app: Flask) -> None:
    force_https = app.config["FORCE_HTTPS"]
    # One Talisman per app, not an unbound one in extensions.py: Talisman keeps its settings (and the app) on
    # itself, so a shared instance would give every app the settings of the last one bound.
    app.extensions["talisman"] = SecurityHeaders(
        app,
        force_https=force_https,
        strict_transport_security=force_https,
        session_cookie_secure=force_https,
        frame_options=DENY,
        content_security_policy=API_POLICY,
        referrer_policy=REFERRER_POLICY,
        x_content_type_options=True,
    )
    app.extensions[EXTENSION] = parse_cors_origins(app.config.get("CORS_ORIGIN") or "")
    app.before_request(_answer_preflight)
    app.after_request(_add_cors_headers)
