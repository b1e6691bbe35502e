"""Signed tokens: access JWTs (HS256 only) and single-use password-reset tokens.

A token names its user in `sub` and carries the user's token version in `ver`; signing out, a password change or
reset, deactivation and a role change bump the version, which revokes every token issued before. The view checks
the version against the database; the rate limiter, which runs first, checks it through a short in-process cache
of current versions (`session_user_id`).
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import timedelta
from typing import Any

import jwt
from flask import current_app, g
from sqlalchemy.exc import SQLAlchemyError

from fantasize.errors import Unauthorized
from fantasize.models import User
from fantasize.models.base import row_id, utcnow

log = logging.getLogger("fantasize.tokens")

ALGORITHM = "HS256"
_VERSIONS = "fantasize.token_versions"
_MAX_CACHED_VERSIONS = 10_000


def subject_id(subject: object) -> int | None:
    """The user id a token's `sub` names, or None when it is not one (a string of ASCII digits in the id range)."""
    return row_id(subject) if isinstance(subject, str) else None


def _encode(claims: dict[str, Any], lifetime: int) -> str:
    now = utcnow()
    payload = {**claims, "iat": now, "exp": now + timedelta(seconds=lifetime), "jti": uuid.uuid4().hex}
    return jwt.encode(payload, current_app.config["JWT_SECRET"], algorithm=ALGORITHM)


def _decode(token: str, purpose: str) -> dict[str, Any]:
    try:
        claims = jwt.decode(
            token,
            current_app.config["JWT_SECRET"],
            algorithms=[ALGORITHM],  # pinned: "none" and every other algorithm are refused
            options={"require": ["sub", "exp", "iat", "ver"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise Unauthorized("Token has expired", code="TOKEN_EXPIRED") from exc
    except jwt.PyJWTError as exc:
        raise Unauthorized("Invalid token", code="INVALID_TOKEN") from exc
    if claims.get("purpose", "access") != purpose or subject_id(claims["sub"]) is None:
        raise Unauthorized("Invalid token", code="INVALID_TOKEN")
    return claims


def issue_access_token(user: User) -> tuple[str, int]:
    lifetime = current_app.config["JWT_EXPIRES_SECONDS"]
    token = _encode({"sub": str(user.id), "role": user.role, "ver": user.token_version}, lifetime)
    return token, lifetime


def issue_reset_token(user: User) -> str:
    # Bound to the token version, which a successful reset bumps: the token works once.
    lifetime = current_app.config["PASSWORD_RESET_EXPIRES_SECONDS"]
    return _encode({"sub": str(user.id), "ver": user.token_version, "purpose": "reset"}, lifetime)


def user_from_token(token: str, purpose: str = "access") -> User:
    """The active user a token speaks for, if the token is valid and not revoked (older `ver`)."""
    return session_of(token, purpose)[0]


def session_of(token: str, purpose: str = "access") -> tuple[User, int]:
    """The active user a valid, unrevoked token speaks for, and when the token expires (epoch seconds).

    A long-lived connection (a Socket.IO socket) keeps both, to end its session when the token would stop working.
    """
    from fantasize.extensions import db

    claims = _decode(token, purpose)
    user_id = subject_id(claims["sub"])
    user = db.session.get(User, user_id)
    _remember_version(user_id, user)
    if user is None or not user.is_active or claims["ver"] != user.token_version:
        raise Unauthorized("Token has been revoked", code="TOKEN_REVOKED")
    return user, int(claims["exp"])


# Current token versions, per app and per process, for the rate limiter


def _versions() -> dict[int, tuple[float, int | None]]:
    """user id -> (monotonic expiry, the user's current token version; None for a missing or inactive user)."""
    return current_app.extensions.setdefault(_VERSIONS, {})


def _version_of(user: User | None) -> int | None:
    return user.token_version if user is not None and user.is_active else None


def _remember_version(user_id: int, user: User | None) -> None:
    seconds = current_app.config["TOKEN_VERSION_CACHE_SECONDS"]
    if seconds <= 0:
        return
    versions = _versions()
    if len(versions) >= _MAX_CACHED_VERSIONS:
        versions.clear()  # bounded, crudely: the next requests fill it again
    versions[user_id] = (time.monotonic() + seconds, _version_of(user))


def forget_token_version(user_id: int) -> None:
    """Drop a user's cached version (their tokens were just revoked), so this process checks afresh.

    Other processes keep theirs for at most TOKEN_VERSION_CACHE_SECONDS.
    """
    _versions().pop(user_id, None)


def _current_version(user_id: int) -> int | None:
    from fantasize.extensions import db

    cached = _versions().get(user_id)
    if cached is not None and cached[0] > time.monotonic():
        return cached[1]
    user = db.session.get(User, user_id)
    # The session's identity map holds objects weakly: kept alive for the request, the view's own authentication
    # finds this user there afterwards instead of selecting it a second time.
    g.token_user = user
    _remember_version(user_id, user)
    return _version_of(user)


def session_user_id(token: str) -> int | None:
    """The user id of a valid, unrevoked access token, or None; never raises for a bad token.

    For the rate limiter, which runs before the view authenticates: a logged-out or deactivated user's token
    must not keep the signed-in budget. On a cache hit this costs no I/O at all.
    """
    from fantasize.extensions import db

    try:
        claims = _decode(token, "access")
    except Unauthorized:
        return None
    user_id = subject_id(claims["sub"])
    try:
        version = _current_version(user_id)
    except SQLAlchemyError:
        # The database is down: count the caller by address (the smaller budget) rather than fail the request.
        db.session.rollback()
        log.warning("token version unavailable; counting the caller as anonymous", exc_info=True)
        return None
    return user_id if version is not None and claims["ver"] == version else None
