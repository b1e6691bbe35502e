"""The HTTP API: one blueprint of domain blueprints, mounted once per version and once unversioned."""

from __future__ import annotations

from flask import Blueprint, Flask

from fantasize.api import (
    accounts,
    addresses,
    admin,
    cart,
    discovery,
    errors,
    integrations,
    meta,
    notifications,
    offers,
    orders,
    performance,
    products,
    realtime,
    reviews,
    site,
    taxonomy,
    uploads,
    versioning,
)
from fantasize.api.converters import IdConverter
from fantasize.web import MOUNTS

DOMAIN_BLUEPRINTS = (
    meta.bp, accounts.bp, addresses.bp, uploads.bp, taxonomy.bp, offers.bp, products.bp, cart.bp, orders.bp,
    reviews.bp, notifications.bp, discovery.bp, admin.bp, performance.bp, realtime.bp, site.bp, integrations.bp,
)


def build_blueprint() -> Blueprint:
    api = Blueprint("api", __name__)
    for child in DOMAIN_BLUEPRINTS:
        api.register_blueprint(child)
    return api


def init_app(app: Flask) -> None:
    versioning.init_app(app)
    errors.init_app(app)
    # Before any route is added: a rule takes its converters from the map when it is added.
    app.url_map.converters["int"] = IdConverter
    api = build_blueprint()
    # Versions share every view; a mount's name tells the resolver which version its paths speak.
    for name, prefix in MOUNTS:
        app.register_blueprint(api, url_prefix=prefix, name=name)
