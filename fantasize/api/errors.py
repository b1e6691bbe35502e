"""The one error body of API.md, for every error the app can produce (ours, Flask's and unexpected ones)."""

from __future__ import annotations

import logging

from flask import Flask, Response
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException

from fantasize.errors import AppError
from fantasize.web import HTTP_CODES, error_response

log = logging.getLogger("fantasize.errors")

def _app_error(exc: AppError) -> Response:
    return error_response(exc.status, exc.code, exc.message, exc.details, exc.headers)


def _http_error(exc: HTTPException) -> Response:
    status = exc.code or 500
    if status < 400:  # redirects raised as exceptions (trailing slashes) stay redirects
        return exc.get_response()
    headers = {}
    if status == 405 and getattr(exc, "valid_methods", None):
        headers["Allow"] = ", ".join(sorted(exc.valid_methods))
    message = "No such resource or route" if status == 404 else exc.description or exc.name
    return error_response(status, HTTP_CODES.get(status, "HTTP_ERROR"), message, headers=headers)


def _database_unavailable(exc: OperationalError | PoolTimeout) -> Response:
    # The database is down, unreachable or (embedded SQLite) busy with another writer, or every pooled connection
    # is held by requests waiting on it (PoolTimeout, after DB_POOL_TIMEOUT_MS): a dependency problem the client
    # may retry, not a bug in the request.
    orig = getattr(exc, "orig", None)
    log.error("database unavailable", extra={"errorType": type(orig or exc).__name__})
    return error_response(503, "SERVICE_UNAVAILABLE", "The database is unavailable, try again shortly",
                          headers={"Retry-After": "1"})


def _unexpected(exc: Exception) -> Response:
    log.exception("unhandled error", extra={"errorType": type(exc).__name__})
    return error_response(500, "INTERNAL_ERROR", "Internal server error")


def init_app(app: Flask) -> None:
    app.register_error_handler(AppError, _app_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(OperationalError, _database_unavailable)
    app.register_error_handler(PoolTimeout, _database_unavailable)
    app.register_error_handler(Exception, _unexpected)
