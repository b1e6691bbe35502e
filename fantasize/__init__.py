"""Fantasize: the shop backend. `create_app` builds an app; read it as the table of contents."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Flask

import config as config_module
from fantasize import events
from fantasize.extensions import db
from fantasize.platform.json_provider import OrjsonProvider


def create_app(config: type | str | None = None, overrides: dict[str, Any] | None = None, *,
               migrations: bool = True) -> Flask:
    """The app. `migrations=False` (what wsgi.py serves) leaves out Flask-Migrate and Alembic, which only `flask db`
    needs: the release phase migrates, and a serving worker is some 10 MiB smaller without them."""
    app = Flask(__name__, instance_relative_config=True)
    app.json = OrjsonProvider(app)  # Flask's JSON, encoded by orjson
    app.json.sort_keys = False  # keep the schemas' field order
    load_config(app, config, overrides)
    register_platform(app)
    register_extensions(app, migrations)
    register_api(app)
    register_rate_limits(app)
    register_subscribers(app)
    register_realtime(app)
    register_metrics(app)
    register_outer_layers(app)
    register_commands(app)
    return app


def load_config(app: Flask, config: type | str | None, overrides: dict[str, Any] | None) -> None:
    config_class = config if isinstance(config, type) else config_module.config_for(config)
    app.config.from_object(config_class)
    app.config.update(overrides or {})
    Path(app.instance_path).mkdir(parents=True, exist_ok=True)
    if not app.config.get("SQLALCHEMY_DATABASE_URI"):
        app.config["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{Path(app.instance_path) / 'fantasize.db'}"
    if not app.config.get("UPLOAD_FOLDER"):
        app.config["UPLOAD_FOLDER"] = str(Path(app.instance_path) / "uploads")
    if app.config["ENV_NAME"] == "development" and not app.config.get("JWT_SECRET"):
        app.config["JWT_SECRET"] = config_module.instance_secret(Path(app.instance_path))
    if app.config["ENV_NAME"] == "production":
        check_production_config(app.config)


def check_production_config(cfg: dict[str, Any]) -> None:
    """A real JWT_SECRET, SMTP mail and a public address, or a ConfigError naming what is missing."""
    config_module.check_production(cfg)


def register_platform(app: Flask) -> None:
    from fantasize.platform import docs, health, monitoring, pages, proxy, request_log, security
    from fantasize.platform.monitoring import ops

    proxy.init_app(app)
    request_log.init_app(app)
    monitoring.init_app(app)  # its after-request hook, registered early, runs last: it times all the others
    security.init_app(app)
    docs.init_app(app)
    health.init_app(app)  # /health, /health/ready, /health/live
    pages.init_app(app)  # /pages/static: the style sheet, script and layout /live and /ops share
    ops.init_app(app)  # served whether monitoring is on or off: the page says what the endpoints answer


def register_extensions(app: Flask, migrations: bool = True) -> None:
    from fantasize import models  # noqa: F401  (every model registered before migrations look)
    from fantasize.platform import cache as page_cache
    from fantasize.platform.database import configure_engine
    from fantasize.platform.database import init_app as init_database

    configure_engine(app)
    db.init_app(app)
    if migrations:
        from flask_migrate import Migrate

        Migrate(app, db, directory=str(Path(__file__).resolve().parent.parent / "migrations"),
                render_as_batch=True, compare_type=True)
    init_database(app)
    events.init_session_events()
    page_cache.init_app(app)


def register_api(app: Flask) -> None:
    from fantasize import api

    api.init_app(app)


def register_rate_limits(app: Flask) -> None:
    from fantasize.platform import rate_limits

    # After the API: the tiers are read from its views, and a limit is checked once the version is resolved.
    rate_limits.init_app(app)


def register_subscribers(app: Flask) -> None:
    from fantasize import subscribers

    subscribers.init_app(app)


def register_realtime(app: Flask) -> None:
    from fantasize import realtime

    # Last of the layers around the app: Socket.IO's middleware answers /socket.io before Flask sees the request.
    realtime.init_app(app)


def register_metrics(app: Flask) -> None:
    from fantasize.platform.monitoring import prometheus

    # After the layers it reads at scrape time (the page cache's Redis, the pool, real time's sockets).
    prometheus.init_app(app)


def register_outer_layers(app: Flask) -> None:
    from fantasize.platform import health, request_log

    # Liveness probes are answered in front of everything else (health.answer_live_probes).
    app.wsgi_app = health.answer_live_probes(app.wsgi_app)
    # Around everything, Socket.IO's middleware included: one log line per HTTP request.
    request_log.wrap(app)


def register_commands(app: Flask) -> None:
    from fantasize import cli

    cli.init_app(app)
