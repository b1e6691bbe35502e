"""Accounts: registration, sign-in and sign-out, passwords and their reset, profiles, and admin user changes."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from typing import Any
from urllib.parse import urlencode

from flask import current_app
from sqlalchemy import or_, select
from sqlalchemy.orm import selectinload

from fantasize.errors import BadRequest, Conflict, Unauthorized, ValidationFailed
from fantasize.events import TokensRevoked, announce
from fantasize.extensions import db
from fantasize.models import Upload, User
from fantasize.models.base import utcnow
from fantasize.services.common import Page, commit, get_or_404, paginate
from fantasize.services.mail import send_mail_later
from fantasize.services.passwords import hash_password, verify_password
from fantasize.services.tokens import forget_token_version, issue_access_token, issue_reset_token, user_from_token

log = logging.getLogger("fantasize.accounts")

BAD_CREDENTIALS = "Invalid email or password"


@dataclass(frozen=True)
class AccessToken:
    access_token: str
    expires_in: int
    token_type: str = "Bearer"


@dataclass(frozen=True)
class Session:
    access_token: str
    expires_in: int
    user: User
    token_type: str = "Bearer"


def normalise_email(email: str) -> str:
    """The stored form: trimmed and lower-cased, so the unique index is case-insensitive in effect."""
    return email.strip().lower()


def _user_by_email(email: str) -> User | None:
    return db.session.scalar(select(User).where(User.email == normalise_email(email)))


def _check_unique(email: str | None = None, phone: str | None = None, exclude: User | None = None) -> None:
    for column, value, field in ((User.email, email, "email"), (User.phone, phone, "phone")):
        if value is None:
            continue
        stmt = select(User.id).where(column == value)
        if exclude is not None:
            stmt = stmt.where(User.id != exclude.id)
        if db.session.scalar(stmt) is not None:
            raise Conflict(f"An account with this {field} already exists", details={field: ["Already in use."]})


def _revoke_tokens(user: User) -> None:
    # Incremented in SQL, not in Python, so concurrent revocations never collapse into one.
    user.token_version = User.token_version + 1
    db.session.flush()
    forget_token_version(user.id)  # the rate limiter's cached version is stale now
    announce(TokensRevoked(user.id))  # once committed, open sockets signed in with those tokens lose their session


def _issue(user: User) -> AccessToken:
    token, lifetime = issue_access_token(user)
    return AccessToken(token, lifetime)


@lru_cache(maxsize=1)
def _decoy_hash() -> str:
    return hash_password(secrets.token_urlsafe(16))


def register(*, email: str, password: str, username: str, phone: str | None = None, gender: str | None = None,
             date_of_birth: date | None = None, role: str = "customer") -> User:
    email = normalise_email(email)
    _check_unique(email=email, phone=phone)
    user = User(email=email, username=username, password_hash=hash_password(password), role=role, phone=phone,
                gender=gender, date_of_birth=date_of_birth)
    db.session.add(user)
    # A racing registration with the same email or phone passes the check above and loses here, also as 409.
    commit("An account with this email or phone already exists")
    return user


def login(email: str, password: str) -> Session:
    user = _user_by_email(email)
    # Hash even for an unknown email, so the response time does not tell which emails have accounts.
    password_ok = verify_password(user.password_hash if user else _decoy_hash(), password)
    if user is None or not password_ok:
        raise Unauthorized(BAD_CREDENTIALS, code="INVALID_CREDENTIALS")
    if not user.is_active:
        # Only someone who knows the password learns this, so it reveals nothing to a guesser.
        raise Unauthorized("This account is disabled", code="ACCOUNT_DISABLED")
    user.last_login_at = utcnow()
    commit()
    token = _issue(user)
    return Session(token.access_token, token.expires_in, user)


def logout(user: User) -> None:
    """Sign out everywhere: every token issued to the user so far stops working."""
    _revoke_tokens(user)
    commit()


def change_password(user: User, current_password: str, new_password: str) -> AccessToken:
    """Set a new password, end every other session, and hand back a token for this one."""
    if not verify_password(user.password_hash, current_password):
        raise ValidationFailed("The current password is wrong",
                               details={"currentPassword": ["Does not match your password."]})
    user.password_hash = hash_password(new_password)
    _revoke_tokens(user)
    token = _issue(user)
    commit()
    return token


def reset_link(token: str) -> str:
    base = current_app.config["PUBLIC_BASE_URL"].rstrip("/")
    return f"{base}/reset-password?{urlencode({'token': token})}"


def request_password_reset(email: str) -> None:
    """Mail a reset link to an active account; says nothing about whether the account exists.

    The mail leaves after this returns (send_mail_later): waiting on the mail server here would make the answer
    for a known address slower than for an unknown one, and tell which addresses have accounts.
    """
    user = _user_by_email(email)
    if user is None or not user.is_active:
        return
    minutes = current_app.config["PASSWORD_RESET_EXPIRES_SECONDS"] // 60
    body = (
        f"Hello {user.username},\n\n"
        f"Someone asked to reset the password of your Fantasize account. Open this link within {minutes} minutes "
        f"to choose a new one; it works once:\n\n{reset_link(issue_reset_token(user))}\n\n"
        "If it was not you, ignore this message: your password stays as it is.\n"
    )
    # A failing mail server is logged by the sender, and the caller gets the same 202 either way.
    send_mail_later(user.email, "Reset your Fantasize password", body)


def reset_password(token: str, new_password: str) -> None:
    """Set a new password from a reset token; the token then stops working, and so does every session."""
    try:
        user = user_from_token(token, purpose="reset")
    except Unauthorized as exc:
        raise BadRequest("This reset link is invalid, expired or already used",
                         code="INVALID_RESET_TOKEN") from exc
    user.password_hash = hash_password(new_password)
    _revoke_tokens(user)
    commit()


def _check_avatar(user: User, upload_id: int) -> None:
    """An avatar is one of the user's own image uploads. Someone else's is 422 with the same words as a missing
    one, so the answer does not tell which upload ids exist."""
    mime_type = db.session.scalar(select(Upload.mime_type).where(Upload.id == upload_id, Upload.owner_id == user.id))
    if mime_type is None:
        raise ValidationFailed(details={"avatarId": [f"No upload {upload_id} of yours."]})
    if not mime_type.startswith("image/"):
        raise ValidationFailed(details={"avatarId": [f"Upload {upload_id} is not an image."]})


def update_profile(user: User, changes: dict[str, Any]) -> User:
    """Change what a user may change about themself; `avatar_id` must be one of their own images (None: none)."""
    if changes.get("phone") is not None:
        _check_unique(phone=changes["phone"], exclude=user)
    if changes.get("avatar_id") is not None:
        _check_avatar(user, changes["avatar_id"])
    for name, value in changes.items():
        setattr(user, name, value)
    commit("An account with this phone already exists")
    return user


def list_users(*, page: int, limit: int, role: str | None = None, q: str | None = None) -> Page:
    stmt = select(User).options(selectinload(User.avatar)).order_by(User.id)
    if role:
        stmt = stmt.where(User.role == role)
    if q:
        stmt = stmt.where(or_(User.email.icontains(q, autoescape=True), User.username.icontains(q, autoescape=True)))
    return paginate(stmt, page, limit)


def update_user(admin: User, user_id: int, changes: dict[str, Any]) -> User:
    """An admin changes a user's role or active flag; never their own, so an admin cannot lock themself out."""
    user = get_or_404(User, user_id, "User")
    if user.id == admin.id and (changes.get("role", user.role) != "admin" or changes.get("is_active") is False):
        raise Conflict("You cannot demote or deactivate yourself", code="SELF_CHANGE")
    revoke = (changes.get("is_active") is False and user.is_active) or changes.get("role", user.role) != user.role
    for name, value in changes.items():
        setattr(user, name, value)
    if revoke:
        # Old tokens carry the old role claim, and a deactivated user's sessions must end now.
        _revoke_tokens(user)
    commit()
    return user
