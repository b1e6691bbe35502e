"""API docs: the OpenAPI document at /api/openapi.json and Swagger UI at /api/docs, served from this process."""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Flask, Response, current_app, jsonify, render_template, send_from_directory
from swagger_ui_bundle import swagger_ui_path

from fantasize.errors import NotFound
from fantasize.platform.openapi import spec_for

ASSETS = Path(__file__).resolve().parent / "docs_assets"
# Only what the page loads (and the browsers' source maps): the bundle's own index.html is not ours to serve.
SWAGGER_FILES = frozenset({
    "swagger-ui.css", "swagger-ui.css.map",
    "swagger-ui-bundle.js", "swagger-ui-bundle.js.map",
    "swagger-ui-standalone-preset.js", "swagger-ui-standalone-preset.js.map",
    "favicon-16x16.png", "favicon-32x32.png",
})
OWN_FILES = frozenset({"api-docs.js"})

bp = Blueprint("docs", __name__, template_folder="docs_assets")


@bp.get("/api/openapi.json")
def openapi_json() -> Response:
    return jsonify(spec_for(current_app))


@bp.get("/api/docs")
def index() -> str:
    return render_template("api_docs.html")


@bp.get("/api/docs/static/<filename>")
def asset(filename: str) -> Response:
    if filename in OWN_FILES:
        return send_from_directory(ASSETS, filename)
    if filename in SWAGGER_FILES:
        return send_from_directory(swagger_ui_path, filename)
    raise NotFound(f"No docs asset {filename!r}")


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
