"""Schemas for uploads: a stored file as the API renders it."""

from __future__ import annotations

from marshmallow import fields

from fantasize.schemas.base import CamelSchema


class UploadSchema(CamelSchema):
    id = fields.Integer()
    stored_name = fields.String()
    url = fields.String()
    mime_type = fields.String()
    size = fields.Integer(metadata={"description": "bytes"})
    sha256 = fields.String()
