"""The proxies in front of the app: trust `X-Forwarded-For` / `X-Forwarded-Proto` only through PROXY_COUNT of them."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, request
from werkzeug.middleware.proxy_fix import ProxyFix

log = logging.getLogger("fantasize.proxy")


def init_app(app: Flask) -> None:
    app.wsgi_app = behind_proxies(app, app.wsgi_app)
    if app.config["PROXY_COUNT"] == 0 and app.config["ENV_NAME"] == "production":
        warn_once_about_forwarded_requests(app)


def behind_proxies(app: Flask, wsgi_app: Any) -> Any:
    """`wsgi_app` seeing the client's address and scheme as PROXY_COUNT proxies forwarded them (Socket.IO's
    requests, which skip the app's own middleware, go through this too).

    With no proxy (the default) a client could write any X-Forwarded-For it likes, so the headers are ignored
    and REMOTE_ADDR stays the socket's peer; with N proxies the Nth address from the right is the client."""
    hops = app.config["PROXY_COUNT"]
    return ProxyFix(wsgi_app, x_for=hops, x_proto=hops) if hops > 0 else wsgi_app


def warn_once_about_forwarded_requests(app: Flask) -> None:
    """In production with no trusted proxy, say once if requests arrive through one anyway.

    Behind a platform router (Heroku's, say) every request then comes from the router's address, so all clients
    share one rate-limit budget and every log line names the router. Per process: each gunicorn worker warns on
    its first such request, and a header check is all it costs afterwards.
    """
    warned = False

    @app.before_request
    def check_forwarded() -> None:
        nonlocal warned
        if not warned and "X-Forwarded-For" in request.headers:
            warned = True
            log.warning("requests carry X-Forwarded-For but PROXY_COUNT=0: every client counts as the proxy's "
                        "address (one rate-limit budget for all); set PROXY_COUNT to the number of proxies in "
                        "front (1 behind Heroku's router)", extra={"remoteAddr": request.remote_addr})
