"""GET /live: the reference browser client of the real-time API (API.md "Real time").

A static page, its script and its style sheet, with the Socket.IO browser client served from here as well
(static/vendor/socket.io, see its README). Everything the page shows comes from the API and the socket, under
the page's own Content-Security-Policy (fantasize.platform.security LIVE_POLICY, found by the endpoint name
"live.page"): scripts, styles and sockets from this origin only, nothing inline.
"""

from __future__ import annotations

from flask import Blueprint, Flask, render_template

bp = Blueprint("live", __name__, static_folder="static", static_url_path="/live/static", template_folder="templates")


@bp.get("/live")
def page() -> str:
    return render_template("live.html")


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
