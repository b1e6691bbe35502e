"""Schemas for the shop's own pages: contact messages and the site texts."""

from __future__ import annotations

from marshmallow import fields, validate

from fantasize.schemas.base import CamelSchema, PlainText, UTCDateTime
from fantasize.schemas.users import EmailAddress

SITE_TEXT = validate.Length(max=20_000)


class ContactMessageInSchema(CamelSchema):
    name = PlainText(required=True, validate=validate.Length(min=1, max=100))
    email = EmailAddress(required=True, validate=validate.Length(max=254))
    subject = PlainText(required=True, validate=validate.Length(min=1, max=200))
    message = PlainText(required=True, validate=validate.Length(min=1, max=5000))


class ContactMessageSchema(CamelSchema):
    id = fields.Integer()
    name = fields.String()
    email = fields.String()
    subject = fields.String()
    message = fields.String()
    created_at = UTCDateTime()


class SiteTextsSchema(CamelSchema):
    about = fields.String(metadata={"description": "Empty when not set"})
    contact = fields.String(metadata={"description": "Empty when not set"})


class SiteTextsInSchema(CamelSchema):
    """The texts to replace; one left out keeps its current value."""

    about = PlainText(validate=SITE_TEXT)
    contact = PlainText(validate=SITE_TEXT)
