"""Request ids, the logs that carry them (JSON, or text for a person in development), and one line per request.

Each HTTP request is logged once, by the app, at its end (logger `fantasize.requests`, INFO): method, path (never
the query string, which may carry a token), route template, status, duration, user id, client address (after
PROXY_COUNT) and request id. gunicorn's own access log is off (gunicorn.conf.py): it knows neither the route nor
the user. The line is written by a WSGI wrapper around everything, Socket.IO's requests included (a websocket's line
comes when it closes, with the socket's lifetime as its duration); Flask's hooks leave the route and user in the
environ for it. Health probes and metric scrapes (QUIET_PATHS) that pass are not logged: machines ask them every
few seconds.
"""

from __future__ import annotations

import functools
import logging
import re
import sys
import time
import uuid
from typing import Any

import orjson
from flask import Flask, Response, g, has_request_context, request
from sqlalchemy import inspect

from config import ConfigError

_CLIENT_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
_STANDARD_ATTRS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
LOG_FORMATS = ("json", "text")
REQUESTS_LOGGER = "fantasize.requests"
requests_log = logging.getLogger(REQUESTS_LOGGER)  # its level decides whether request lines are written
_line_format = "json"  # LOG_FORMAT, set by configure_logging
# What Flask's hooks leave in the WSGI environ for the request line.
ROUTE_KEY, USER_KEY, ID_KEY = "fantasize.route", "fantasize.user_id", "fantasize.request_id"
# Probes and scrapes, asked every few seconds by machines, get no request line unless they fail (5xx).
QUIET_PATHS = ("/health", "/metrics")


def request_id() -> str | None:
    return g.get("request_id") if has_request_context() else None


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:  # the request line names its own (Flask's context is gone)
            record.request_id = request_id()
        return True


def utc_time(at: float, date: bool = True) -> str:
    """`2026-12-07T12:00:01.234Z` (or `12:00:01.234` without the date), UTC, for a log line."""
    seconds = int(at)
    return f"{_utc_seconds(seconds, date)}.{int((at - seconds) * 1000):03d}" + ("Z" if date else "")


@functools.lru_cache(maxsize=4)
def _utc_seconds(seconds: int, date: bool) -> str:
    # Formatted once a second: every request line of that second shares it.
    return time.strftime("%Y-%m-%dT%H:%M:%S" if date else "%H:%M:%S", time.gmtime(seconds))


def json_line(entry: dict[str, Any]) -> str:
    return orjson.dumps(entry, default=str, option=orjson.OPT_NON_STR_KEYS).decode()


def text_line(at: float, level: str, logger: str, message: str, fields: dict[str, Any]) -> str:
    line = f"{utc_time(at, date=False)} {level:<7} {logger} {message}"
    shown = {key: value for key, value in fields.items() if value is not None}
    return line + (" (" + " ".join(f"{key}={value}" for key, value in shown.items()) + ")" if shown else "")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id and any `extra` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": utc_time(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "requestId": getattr(record, "request_id", None),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD_ATTRS and k != "request_id"})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json_line(entry)


class TextFormatter(logging.Formatter):
    """`12:00:01.234 INFO    fantasize.requests GET /api/v1/products 200 (route=... durationMs=3.1)`: for a person."""

    def format(self, record: logging.LogRecord) -> str:
        extras = {k: v for k, v in vars(record).items() if k not in _STANDARD_ATTRS}
        line = text_line(record.created, record.levelname, record.name, record.getMessage(), extras)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the moment of logging (test runners and servers swap it)."""

    def __init__(self) -> None:
        super().__init__()

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def configure_logging(app: Flask) -> None:
    global _line_format
    log_format = str(app.config.get("LOG_FORMAT") or "json").lower()
    if log_format not in LOG_FORMATS:
        raise ConfigError(f"LOG_FORMAT={log_format!r}: use one of {', '.join(LOG_FORMATS)}")
    _line_format = log_format
    handler = StderrHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger("fantasize")
    root.handlers[:] = [handler]
    root.setLevel(app.config["LOG_LEVEL"])
    root.propagate = False
    app.logger.handlers[:] = [handler]
    app.logger.setLevel(app.config["LOG_LEVEL"])


def request_id_for(supplied: str) -> str:
    """The client's X-Request-ID when it is 1-128 characters of `A-Za-z0-9._-`, else a new one (API.md "Errors")."""
    return supplied if _CLIENT_ID.match(supplied) else uuid.uuid4().hex


def assign_request_id() -> None:
    g.request_id = request.environ[ID_KEY] = request_id_for(request.headers.get("X-Request-ID", ""))


def echo_request_id(response: Response) -> Response:
    response.headers["X-Request-ID"] = g.get("request_id") or uuid.uuid4().hex
    return response


def note_for_request_line(response: Response) -> Response:
    """What only Flask knows, left for the request line: the route that matched and who called."""
    environ = request.environ
    rule = request.url_rule
    environ[ROUTE_KEY] = rule.rule if rule is not None else None
    user = g.get("current_user")
    # From the identity map, never `user.id`: after a commit the attributes are expired and reading one is a SELECT.
    identity = inspect(user).identity if user is not None else None
    environ[USER_KEY] = identity[0] if identity else None
    return response


def _write_line(environ: dict[str, Any], status: int, seconds: float) -> None:
    """The request line, in the logs' format, written straight to stderr where the handler writes: a LogRecord, its
    filter, formatter and handler cost some 80 µs a request (more than the whole of monitoring); this costs ~5."""
    method, path = environ.get("REQUEST_METHOD"), environ.get("PATH_INFO", "")
    if status < 500 and path.startswith(QUIET_PATHS):
        return  # a probe or a scrape that passed
    at, message = time.time(), f"{method} {path} {status}"
    fields = {"method": method, "path": path, "route": environ.get(ROUTE_KEY), "status": status,
              "durationMs": round(seconds * 1000, 2), "userId": environ.get(USER_KEY),
              "clientAddress": environ.get("REMOTE_ADDR")}
    request_id = environ.get(ID_KEY)
    if _line_format == "json":
        line = json_line({"time": utc_time(at), "level": "INFO", "logger": REQUESTS_LOGGER, "message": message,
                          "requestId": request_id, **fields})
    else:
        line = text_line(at, "INFO", REQUESTS_LOGGER, message, {**fields, "requestId": request_id})
    sys.stderr.write(line + "\n")


def request_lines(wsgi_app: Any) -> Any:
    """`wsgi_app`, logging one line per request when it has answered (nothing at all while INFO is off)."""

    def logged(environ: dict[str, Any], start_response: Any) -> Any:
        if not requests_log.isEnabledFor(logging.INFO):
            return wsgi_app(environ, start_response)
        started = time.perf_counter()
        answered: list[str] = []

        def remember_status(status: str, headers: Any, exc_info: Any = None) -> Any:
            answered[:] = [status]
            return start_response(status, headers, exc_info) if exc_info else start_response(status, headers)

        try:
            return wsgi_app(environ, remember_status)
        finally:
            _write_line(environ, int(answered[0][:3]) if answered else 500, time.perf_counter() - started)

    return logged


def init_app(app: Flask) -> None:
    configure_logging(app)
    # Registered first so every later hook and error handler can rely on g.request_id.
    app.before_request_funcs.setdefault(None, []).insert(0, assign_request_id)
    app.after_request(echo_request_id)
    app.after_request(note_for_request_line)


def wrap(app: Flask) -> None:
    """Around everything else (the factory calls it last, after Socket.IO's middleware)."""
    app.wsgi_app = request_lines(app.wsgi_app)
