"""Account schemas: registration, sign-in, passwords, profile edits, admin user changes, and the user as rendered."""

from __future__ import annotations

from datetime import date

from marshmallow import ValidationError, fields, validate

from fantasize.models.base import utcnow
from fantasize.models.users import GENDERS, ROLES
from fantasize.schemas.base import CamelSchema, FullMatch, Id, PageQuery, PlainText, StrictBoolean, UTCDateTime
from fantasize.services.uploads import signed_url

PASSWORD_LENGTH = validate.Length(min=8, max=128)


class EmailAddress(fields.Email):
    """An email address; surrounding spaces are dropped before it is checked (the service lower-cases it)."""

    def _deserialize(self, value, attr, data, **kwargs) -> str:
        return super()._deserialize(value, attr, data, **kwargs).strip()


def _not_in_future(value: date) -> None:
    if value > utcnow().date():
        raise ValidationError("Must not be in the future.")


class ProfileSchema(CamelSchema):
    """What a user may change about themself (`PATCH /users/me`, loaded partially)."""

    username = PlainText(required=True, validate=validate.Length(min=1, max=50))
    phone = fields.String(
        allow_none=True,
        validate=[
            validate.Length(max=20),
            FullMatch(r"\+?[0-9][0-9 ()./-]{4,}", error="Not a valid phone number."),
        ],
    )
    gender = fields.String(allow_none=True, validate=validate.OneOf(GENDERS))
    date_of_birth = fields.Date(allow_none=True, validate=_not_in_future)
    avatar_id = Id(allow_none=True, metadata={"description": "one of your own image uploads; null removes it"})


class RegisterSchema(ProfileSchema):
    class Meta(ProfileSchema.Meta):
        exclude = ("avatar_id",)  # an account has no uploads before it exists

    email = EmailAddress(required=True, validate=validate.Length(max=254))
    password = fields.String(required=True, load_only=True, validate=PASSWORD_LENGTH)


class LoginSchema(CamelSchema):
    email = EmailAddress(required=True, validate=validate.Length(max=254))
    # Bounded so nobody can make the server hash a megabyte; any wrong password is the same 401.
    password = fields.String(required=True, load_only=True, validate=validate.Length(min=1, max=128))


class ChangePasswordSchema(CamelSchema):
    current_password = fields.String(required=True, load_only=True, validate=validate.Length(min=1, max=128))
    new_password = fields.String(required=True, load_only=True, validate=PASSWORD_LENGTH)


class ForgotPasswordSchema(CamelSchema):
    email = EmailAddress(required=True, validate=validate.Length(max=254))


class ResetPasswordSchema(CamelSchema):
    token = fields.String(required=True, load_only=True, validate=validate.Length(min=1, max=2048))
    new_password = fields.String(required=True, load_only=True, validate=PASSWORD_LENGTH)


class UserAdminUpdateSchema(CamelSchema):
    role = fields.String(validate=validate.OneOf(ROLES))
    is_active = StrictBoolean()


class UserListQuery(PageQuery):
    role = fields.String(validate=validate.OneOf(ROLES))
    q = fields.String(validate=validate.Length(min=1, max=100))


class UserSchema(CamelSchema):
    id = fields.Integer()
    email = fields.String()
    username = fields.String()
    role = fields.String()
    phone = fields.String(allow_none=True)
    gender = fields.String(allow_none=True)
    date_of_birth = fields.Date(allow_none=True)
    # Private to the user and admins (the only ones shown a user), so the URL is signed: see services.uploads.
    avatar = fields.Function(lambda user: signed_url(user.avatar) if user.avatar else None,
                             metadata={"type": "string", "nullable": True})
    is_active = fields.Boolean()
    last_login_at = UTCDateTime(allow_none=True)
    created_at = UTCDateTime()
    updated_at = UTCDateTime()


class TokenSchema(CamelSchema):
    access_token = fields.String()
    token_type = fields.String()
    expires_in = fields.Integer()


class SessionSchema(TokenSchema):
    user = fields.Nested(UserSchema)


class MessageSchema(CamelSchema):
    message = fields.String()
