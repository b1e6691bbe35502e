"""Schemas for uploads: a stored file as the API renders it, and the signed-URL query of a download."""

from __future__ import annotations

from marshmallow import fields, validate

from fantasize.schemas.base import CamelSchema, QuerySchema
from fantasize.services.uploads import signed_url


class UploadSchema(CamelSchema):
    """Rendered only to the uploader (and admins), so `url` is signed: it works in an <img> tag, for a while."""

    id = fields.Integer()
    stored_name = fields.String()
    url = fields.Function(signed_url, metadata={
        "type": "string",
        "description": "the file's URL, signed: it serves the file without a token until it expires "
                       "(UPLOAD_URL_TTL_SECONDS)",
    })
    mime_type = fields.String()
    size = fields.Integer(metadata={"description": "bytes, as stored (an image without its metadata)"})
    sha256 = fields.String()


class DownloadQuery(QuerySchema):
    """What a signed URL adds to a download's path; both or neither."""

    expires = fields.Integer(metadata={"description": "Unix seconds after which the signature no longer works"})
    signature = fields.String(validate=validate.Length(max=128),
                              metadata={"description": "HMAC-SHA256 (hex) of the stored name and `expires`"})
