"""Accounts: register, login, logout, passwords, the signed-in user's profile, and admin user management."""

from __future__ import annotations

from flask import Blueprint

from fantasize.api.endpoint import endpoint
from fantasize.schemas.users import (
    ChangePasswordSchema,
    ForgotPasswordSchema,
    LoginSchema,
    MessageSchema,
    ProfileSchema,
    RegisterSchema,
    ResetPasswordSchema,
    SessionSchema,
    TokenSchema,
    UserAdminUpdateSchema,
    UserListQuery,
    UserSchema,
)
from fantasize.services import accounts
from fantasize.web import Shape, current_user

bp = Blueprint("accounts", __name__)

USER = Shape("User", UserSchema)
SESSION = Shape("Session", SessionSchema)
TOKEN = Shape("AccessToken", TokenSchema)
MESSAGE = Shape("Message", MessageSchema)

RESET_REQUESTED = "If an account uses this email, a password reset link is on its way"


@bp.post("/auth/register")
@endpoint("Create a customer account", returns=USER, status=201, body=RegisterSchema, tags=("auth",),
          errors=(400, 409, 415, 422))
def register(body):
    return accounts.register(**body)


@bp.post("/auth/login")
@endpoint("Sign in with email and password", returns=SESSION, body=LoginSchema, tags=("auth",),
          errors=(400, 401, 415, 422))
def login(body):
    return accounts.login(body["email"], body["password"])


@bp.post("/auth/logout")
@endpoint("Sign out everywhere: every token issued so far stops working", status=204, auth="user",
          tags=("auth",), errors=(401,))
def logout():
    accounts.logout(current_user())


@bp.post("/auth/password/forgot")
@endpoint("Mail a password reset link (the same answer whether or not the email has an account)",
          returns=MESSAGE, status=202, body=ForgotPasswordSchema, tags=("auth",), errors=(400, 415, 422))
def forgot_password(body):
    accounts.request_password_reset(body["email"])
    return {"message": RESET_REQUESTED}


@bp.post("/auth/password/reset")
@endpoint("Set a new password with a reset token (400 INVALID_RESET_TOKEN when it is bad, expired or used)",
          status=204, body=ResetPasswordSchema, tags=("auth",), errors=(400, 415, 422))
def reset_password(body):
    accounts.reset_password(body["token"], body["new_password"])


@bp.get("/users/me")
@endpoint("The signed-in user", returns=USER, auth="user", tags=("users",), errors=(401,))
def get_me():
    return current_user()


@bp.patch("/users/me")
@endpoint("Edit the signed-in user's profile", returns=USER, body=ProfileSchema, partial=True, auth="user",
          tags=("users",), errors=(400, 401, 409, 415, 422))
def update_me(body):
    return accounts.update_profile(current_user(), body)


@bp.put("/users/me/password")
@endpoint("Change the password; other sessions end and a fresh token is returned", returns=TOKEN,
          body=ChangePasswordSchema, auth="user", tags=("users",), errors=(400, 401, 415, 422))
def change_password(body):
    return accounts.change_password(current_user(), body["current_password"], body["new_password"])


@bp.get("/users")
@endpoint("List users (filter by role, search email and username)", returns=USER, many=True,
          query=UserListQuery, auth="admin", tags=("users",), errors=(400, 401, 403))
def list_users(args):
    return accounts.list_users(**args)


@bp.patch("/users/<int:user_id>")
@endpoint("Change a user's role or active flag (not your own)", returns=USER, body=UserAdminUpdateSchema,
          partial=True, auth="admin", tags=("users",), errors=(400, 401, 403, 404, 409, 415, 422))
def update_user(user_id, body):
    return accounts.update_user(current_user(), user_id, body)
