"""GET /ops: the administrators' page over the monitoring figures, built like /live (fantasize.realtime.live).

A static page, its script and its style sheet, all served from here (no CDN), under the page's own
Content-Security-Policy (fantasize.platform.security OPS_POLICY, found by the endpoint name "ops.page"): scripts,
styles and requests to this origin only, nothing inline. The page holds no data of its own: signed in as an
administrator (POST /api/v1/auth/login; the token stays in the page's memory, never in storage or a cookie), it
polls every few seconds what the API already answers:

- GET /api/admin/performance/metrics?timeWindow=60000: the figures over the last minute; each reading is one
  point of the page's charts (request rate, p50/p99, error rate), kept in memory for the last few minutes. The
  points are rolling figures (each covers the minute before it was read), not per-interval counts.
- GET /api/admin/performance/slow-requests?limit=10 and /summary: the latest slow requests, longer windows,
  memory, uptime and slow SQL statements.
- GET /health: the dependencies; GET /api/v1/admin/realtime/stats: the connected sockets.

The page is served whether or not ENABLE_PERFORMANCE_MONITORING is on: with it off, the page says so (the endpoints
answer `enabled: false`). Four of the readings are counted by the monitoring rate-limit tier (RATE_LIMIT_MONITORING,
apart from the admin routes that change the shop): on a 429 the page waits for the Retry-After the server sends.
"""

from __future__ import annotations

from flask import Blueprint, Flask, render_template

bp = Blueprint("ops", __name__, static_folder="static", static_url_path="/ops/static", template_folder="templates")


@bp.get("/ops")
def page() -> str:
    return render_template("ops.html")


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
