"""File uploads: storing under a random name and serving them back."""

from __future__ import annotations

from typing import IO

from flask import Blueprint, Response, request, send_file

from fantasize.api.endpoint import endpoint
from fantasize.errors import UnsupportedMediaType, ValidationFailed
from fantasize.schemas.uploads import DownloadQuery, UploadSchema
from fantasize.services import uploads
from fantasize.web import Shape, current_user

bp = Blueprint("uploads", __name__)

UPLOAD = Shape("Upload", UploadSchema)
# Stored names are random and a file never changes, so a cached copy of a public one never goes stale.
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
          errors=(401, 413, 415, 422), files=("file",), creates="stored_name")
def create_upload():
    stream, client_name = _the_file()
    return uploads.store_upload(current_user(), stream, client_name)


@bp.get("/uploads/<stored_name>")
@endpoint("Download an uploaded file: images inline, PDFs as attachments. A catalogue image (of an active "
          "product, package or category) is public; any other upload is served only to its owner and admins, by "
          "bearer token or through the signed `url` of its JSON, and is 404 to anyone else",
          auth="optional", query=DownloadQuery, tags=("uploads",), errors=(400, 401, 404),
          produces=uploads.ALLOWED_TYPES)
def get_upload(stored_name, args) -> Response:
    served = uploads.open_upload(stored_name, current_user(), args.get("expires"), args.get("signature"))
    response = send_file(
        served.path,
        mimetype=served.upload.mime_type,
        as_attachment=not served.upload.mime_type.startswith("image/"),
        download_name=served.download_name,
        conditional=served.public,
        etag=served.upload.sha256 if served.public else False,
        max_age=ONE_YEAR if served.public else None,
    )
    if served.public:
        response.cache_control.immutable = True
    else:
        # Kept by no cache, shared or the browser's: the next fetch asks again, with a token or a fresh signature.
        response.cache_control.no_cache = None
        response.cache_control.public = False
        response.cache_control.private = True
        response.cache_control.no_store = True
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
