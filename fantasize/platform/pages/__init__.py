"""What the browser pages /live (fantasize.realtime.live) and /ops (fantasize.platform.monitoring.ops) share,
served from one place: the base style sheet (variables, layout, forms, buttons, the status pill, alerts), the small
script of helpers both page scripts start from (fetching JSON, the alert, text and time), and the page layout
template both extend. Each page keeps its own script, style sheet and icon for what only it shows.

Both pages' Content-Security-Policy allows scripts and styles from 'self' only: /pages/static/ is this origin.
"""

from __future__ import annotations

from flask import Blueprint, Flask

bp = Blueprint("pages", __name__, static_folder="static", static_url_path="/pages/static",
               template_folder="templates")


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
