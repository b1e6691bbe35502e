"""Who is calling: bearer-token authentication and the user/admin checks views declare."""

from __future__ import annotations

from flask import g

from fantasize.errors import Forbidden, Unauthorized
from fantasize.models import User
from fantasize.services.tokens import user_from_token
from fantasize.web import bearer_token

AUTH_LEVELS = (None, "optional", "user", "admin")


def authenticate(level: str | None) -> User | None:
    """Sets g.current_user for the level a view asks for; raises 401/403 when the caller falls short."""
    token = bearer_token() if level else None
    if token is None:
        if level in ("user", "admin"):
            raise Unauthorized(headers={"WWW-Authenticate": "Bearer"})
        g.current_user = None
        return None
    user = user_from_token(token)
    if level == "admin" and not user.is_admin:
        raise Forbidden("Administrators only")
    g.current_user = user
    return user


