"""Signed tokens: access JWTs (HS256 only) and single-use password-reset tokens."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import jwt
from flask import current_app

from fantasize.errors import Unauthorized
from fantasize.models import User
from fantasize.models.base import utcnow

ALGORITHM = "HS256"


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
    if claims.get("purpose", "access") != purpose or not str(claims["sub"]).isdigit():
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
    from fantasize.extensions import db

    claims = _decode(token, purpose)
    user = db.session.get(User, int(claims["sub"]))
    if user is None or not user.is_active or claims["ver"] != user.token_version:
        raise Unauthorized("Token has been revoked", code="TOKEN_REVOKED")
    return user
