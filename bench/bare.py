"""Bare Flask, the baseline of `bench/run`: Fantasize's own JSON bodies, built with `jsonify` on every request.

    BENCH_BODIES=bench/results/bodies.json gunicorn -c gunicorn.conf.py bench.bare:app

`bench/run` fetches the bodies from a running Fantasize and writes them, parsed, to the BENCH_BODIES file
(`{"/api/v1/products?limit=100": [...], ...}`, keyed by path and query string). A request looks its path and query
up and answers the parsed value with `jsonify`, so the bytes match Fantasize's while the work per request is
Flask's own: routing, a response object and JSON encoding; no database, Redis or extension. It runs under the same
gunicorn.conf.py, worker class and worker count as Fantasize. Without BENCH_BODIES it serves nothing (404).

`/health/live` is the baseline of the liveness probe: a route of its own that does nothing but answer the probe's
body (Fantasize's, when BENCH_BODIES holds it, else `{"status": "alive"}`), encoded once, as Fantasize does.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from flask import Flask, abort, jsonify, request


def create_app(bodies: dict[str, Any]) -> Flask:
    app = Flask(__name__)
    alive = json.dumps(bodies.get("/health/live", {"status": "alive"}), separators=(",", ":")).encode()

    @app.get("/health/live")
    def live():
        return app.response_class(alive, mimetype="application/json")

    @app.get("/<path:path>")
    def serve(path: str):
        query = request.query_string.decode("latin-1")
        key = f"{request.path}?{query}" if query else request.path
        if key not in bodies:
            abort(404)
        return jsonify(bodies[key])

    return app


def load_bodies(path: str | None) -> dict[str, Any]:
    return json.loads(Path(path).read_text(encoding="utf-8")) if path else {}


app = create_app(load_bodies(os.environ.get("BENCH_BODIES")))
