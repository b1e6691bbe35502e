"""What the API says about itself: the supported versions."""

from __future__ import annotations

from flask import Blueprint
from marshmallow import fields

from fantasize.api.endpoint import endpoint
from fantasize.api.versioning import version_catalogue
from fantasize.schemas.base import CamelSchema, UTCDateTime
from fantasize.web import Shape

bp = Blueprint("meta", __name__)


class VersionSchema(CamelSchema):
    version = fields.String()
    status = fields.String()
    deprecated_at = UTCDateTime(allow_none=True)
    sunset = UTCDateTime(allow_none=True)


VERSION = Shape("Version", VersionSchema)


@bp.get("/versions")
@endpoint("List the API versions and their status", returns=VERSION, many=True, tags=("meta",), uses_database=False)
def list_versions():
    return version_catalogue()
