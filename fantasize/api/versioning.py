"""API version resolution (path, then `API-Version` header, then `?version=`) and v0's deprecation headers."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from flask import Flask, Response, current_app, g, request
from werkzeug.http import http_date

from fantasize.errors import BadRequest, Gone

SUPPORTED_VERSIONS = ("v0", "v1", "v2")
CURRENT_VERSION = "v2"
# Unversioned platform endpoints under /api: they never take part in version resolution.
PLATFORM_PREFIXES = ("/api/docs", "/api/openapi.json", "/api/admin/performance")

_PATH_VERSION = re.compile(r"^/api/(v\d+)(?:/|$)")
_VERSION_VALUE = re.compile(r"^v?(\d+)$")


@dataclass(frozen=True)
class VersionInfo:
    version: str
    status: str
    deprecated_at: datetime | None
    sunset: datetime | None


def version_catalogue(now: datetime | None = None) -> list[VersionInfo]:
    cfg = current_app.config
    now = now or datetime.now(UTC)
    sunset = max(cfg["API_V0_SUNSET"], cfg["API_V0_DEPRECATED_AT"])
    return [
        VersionInfo("v0", "sunset" if now >= sunset else "deprecated", cfg["API_V0_DEPRECATED_AT"], sunset),
        VersionInfo("v1", "stable", None, None),
        VersionInfo("v2", "current", None, None),
    ]


def _unsupported(value: str) -> BadRequest:
    return BadRequest(
        f"API version {value!r} is not supported",
        code="UNSUPPORTED_VERSION",
        details={"supported": list(SUPPORTED_VERSIONS)},
    )


def _normalise(value: str) -> str:
    match = _VERSION_VALUE.match(value.strip().lower())
    version = f"v{int(match.group(1))}" if match else None
    if version not in SUPPORTED_VERSIONS:
        raise _unsupported(value)
    return version


def is_api_path(path: str) -> bool:
    return (path == "/api" or path.startswith("/api/")) and not path.startswith(PLATFORM_PREFIXES)


def resolve_version() -> str | None:
    """The version this request speaks, or None outside the versioned API."""
    path = request.path
    if not is_api_path(path):
        return None
    match = _PATH_VERSION.match(path)
    if match:
        if match.group(1) not in SUPPORTED_VERSIONS:
            raise _unsupported(match.group(1))
        return match.group(1)
    if request.headers.get("API-Version"):
        return _normalise(request.headers["API-Version"])
    if request.args.get("version"):
        return _normalise(request.args["version"])
    return current_app.config["API_DEFAULT_VERSION"]


def _v0_headers() -> dict[str, str]:
    v0 = version_catalogue()[0]
    return {
        "Deprecation": f"@{int(v0.deprecated_at.timestamp())}",
        "Sunset": http_date(v0.sunset),
        "Warning": '299 - "API v0 is deprecated. Please migrate to v1 or v2."',
        "Link": '</api/docs>; rel="deprecation"',
    }


def before_request() -> None:
    g.api_version = None
    g.api_version = resolve_version()
    if g.api_version == "v0" and current_app.config["API_V0_ENFORCE_SUNSET"]:
        v0 = version_catalogue()[0]
        if v0.status == "sunset":
            raise Gone(
                f"API v0 was retired on {v0.sunset.isoformat().replace('+00:00', 'Z')}; use v1 or v2",
                code="VERSION_SUNSET",
            )


def after_request(response: Response) -> Response:
    version = g.get("api_version")
    if version:
        response.headers["API-Version"] = version
        if version == "v0":
            for name, value in _v0_headers().items():
                response.headers[name] = value
    return response


def init_app(app: Flask) -> None:
    app.before_request(before_request)
    app.after_request(after_request)


