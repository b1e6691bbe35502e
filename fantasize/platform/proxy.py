"""The proxies in front of the app: trust `X-Forwarded-For` / `X-Forwarded-Proto` only through PROXY_COUNT of them."""

from __future__ import annotations

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix


def init_app(app: Flask) -> None:
    # With no proxy (the default) a client could write any X-Forwarded-For it likes, so the headers are ignored
    # and request.remote_addr stays the socket's peer; with N proxies the Nth address from the right is the client.
    hops = app.config["PROXY_COUNT"]
    if hops > 0:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)
