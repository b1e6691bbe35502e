"""File uploads: storing under a random name and serving them back."""

from __future__ import annotations

from typing import IO

from flask import Blueprint, Response, request, send_file

from fantasize.api.auth import current_user
from fantasize.api.endpoint import endpoint
from fantasize.api.render import Shape
from fantasize.errors import UnsupportedMediaType, ValidationFailed
from fantasize.schemas.uploads import UploadSchema
from fantasize.services import uploads

bp = Blueprint("uploads", __name__)

UPLOAD = Shape("Upload", UploadSchema)
# Stored names are random and a file never changes, so a cached copy never goes stale.
ONE_YEAR = 365 * 24 * 3600


def _the_file() -> tuple[IO[bytes], str | None]:
    """The one file of the multipart field `file`: any other body is 415, no file (or several) 422."""
    if request.mimetype != "multipart/form-data":
        raise UnsupportedMediaType("Send the file as multipart/form-data in the field 'file'")
    files = request.files.getlist("file")
    if len(files) != 1:
        message = "Missing data for required field." if not files else "Send one file."
        raise ValidationFailed(details={"file": [message]})
    return files[0].stream, files[0].filename


@bp.post("/uploads")
@endpoint("Upload a JPEG, PNG, WebP, GIF or PDF (typed by its bytes, never its name or Content-Type) as the "
          "multipart field `file`", returns=UPLOAD, status=201, auth="user", tags=("uploads",),
          errors=(401, 413, 415, 422), files=("file",))
def create_upload():
    stream, client_name = _the_file()
    return uploads.store_upload(current_user(), stream, client_name)


@bp.get("/uploads/<stored_name>")
@endpoint("Download an uploaded file: images inline, PDFs as attachments", tags=("uploads",), errors=(404,),
          produces=uploads.ALLOWED_TYPES)
def get_upload(stored_name) -> Response:
    upload, path = uploads.find_upload(stored_name)
    response = send_file(
        path,
        mimetype=upload.mime_type,
        as_attachment=not upload.mime_type.startswith("image/"),
        download_name=uploads.download_name(upload),
        conditional=True,
        etag=upload.sha256,
        max_age=ONE_YEAR,
    )
    response.cache_control.immutable = True
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
