"""The one error family. Services raise these; `fantasize.api.errors` renders every one the same way."""

from __future__ import annotations

from typing import Any


class AppError(Exception):
    status = 500
    code = "INTERNAL_ERROR"
    message = "Internal server error"

    def __init__(self, message: str | None = None, *, details: Any = None, code: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message or self.message)
        self.message = message or self.message
        self.details = details
        self.headers = headers or {}
        if code:
            self.code = code


class BadRequest(AppError):
    status, code, message = 400, "BAD_REQUEST", "The request could not be understood"


class Unauthorized(AppError):
    status, code, message = 401, "UNAUTHORIZED", "Authentication required"


class Forbidden(AppError):
    status, code, message = 403, "FORBIDDEN", "You are not allowed to do this"


class NotFound(AppError):
    status, code, message = 404, "NOT_FOUND", "Resource not found"


class Conflict(AppError):
    status, code, message = 409, "CONFLICT", "The request conflicts with the current state"


class OutOfStock(Conflict):
    code, message = "OUT_OF_STOCK", "Some items are out of stock"


class InvalidTransition(Conflict):
    code, message = "INVALID_TRANSITION", "That status change is not allowed"


class Gone(AppError):
    status, code, message = 410, "GONE", "This resource is gone"


class PayloadTooLarge(AppError):
    status, code, message = 413, "PAYLOAD_TOO_LARGE", "The request body is too large"


class UnsupportedMediaType(AppError):
    status, code, message = 415, "UNSUPPORTED_MEDIA_TYPE", "Unsupported media type"


class ValidationFailed(AppError):
    status, code, message = 422, "VALIDATION_ERROR", "The request did not pass validation"


class ServiceUnavailable(AppError):
    status, code, message = 503, "SERVICE_UNAVAILABLE", "A dependency is unavailable"
