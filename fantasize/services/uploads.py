"""Uploads: files typed by their bytes, stored under random names in UPLOAD_FOLDER, and found again by that name.

A file reaches its final name only complete (written under a temporary name, then renamed), and leaves again
if its database row cannot be committed, so the folder and the table agree. An image must also be only an image:
it is decoded whole before it is kept, within size bounds read from its header first, and nothing but zero
padding may follow its end (so an image with a page or script appended, a polyglot, is refused). It is kept
without its metadata (EXIF, XMP, comments), pixels untouched.

Catalogue images are public; every other upload is served only to its owner and admins (see `open_upload`).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import mmap
import os
import re
import secrets
import tempfile
import time
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING
from urllib.parse import urlencode

from filetype.match import match
from filetype.types import archive, image
from flask import current_app
from sqlalchemy import or_, select

from fantasize.errors import NotFound, PayloadTooLarge, UnsupportedMediaType, ValidationFailed
from fantasize.extensions import db
from fantasize.models import Category, Package, PackageImage, Product, ProductImage, Upload, User
from fantasize.services import images
from fantasize.services.common import commit

if TYPE_CHECKING:
    from PIL import Image

log = logging.getLogger("fantasize.uploads")

# The only types accepted, recognised by their magic bytes; an APNG is a PNG and matches as one here.
MATCHERS = (image.Jpeg(), image.Png(), image.Webp(), image.Gif(), archive.Pdf())
ALLOWED_TYPES = tuple(matcher.mime for matcher in MATCHERS)
EXTENSIONS = tuple(matcher.extension for matcher in MATCHERS)
STORED_NAME = re.compile(rf"[0-9a-f]{{32}}\.(?:{'|'.join(EXTENSIONS)})")
SNIFF_BYTES = 8192  # what filetype reads at most
CHUNK_BYTES = 64 * 1024
MAX_NAME_LENGTH = 255
# Pillow's name for each image type, so an image is decoded only as the type its bytes were recognised as.
PILLOW_FORMATS = {"image/jpeg": "JPEG", "image/png": "PNG", "image/webp": "WEBP", "image/gif": "GIF"}


def safe_original_name(name: str | None) -> str | None:
    """The client's file name as a record only: its last path segment, without control or format characters,
    at most 255 characters (the extension kept). None when nothing usable is left."""
    if not name:
        return None
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(char for char in base if not unicodedata.category(char).startswith("C")).strip()
    if base in ("", ".", ".."):
        return None
    if len(base) > MAX_NAME_LENGTH:
        stem, dot, extension = base.rpartition(".")
        keep = f"{dot}{extension}" if stem and len(extension) < 16 else ""
        base = base[: MAX_NAME_LENGTH - len(keep)] + keep
    return base


def _not_an_image(message: str) -> ValidationFailed:
    return ValidationFailed("The image cannot be accepted", details={"file": [message]})


def check_image(path: Path, mime: str) -> int | None:
    """422 unless the file at `path` is a whole image of type `mime`: its end found by its own structure with
    only zero bytes after it, at most MAX_IMAGE_SIDE pixels wide and high and MAX_IMAGE_PIXELS in all (read from
    the header, before anything is decoded: a small file may claim a huge image), and decoded without error.
    Answers the image's EXIF orientation, if it has one."""
    with path.open("rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data:
        end = images.image_end(data, mime)
        if end is None:
            raise _not_an_image("The image is truncated or malformed.")
        if data[end:].strip(b"\0"):
            raise _not_an_image("The file has other data after the end of its image.")
    from PIL import Image  # here, not at import: a serving worker that never takes an upload never loads Pillow

    config = current_app.config
    try:
        with Image.open(path, formats=[PILLOW_FORMATS[mime]]) as picture:
            width, height = picture.size
            if max(width, height) > config["MAX_IMAGE_SIDE"] or width * height > config["MAX_IMAGE_PIXELS"]:
                raise _not_an_image(f"Images may be at most {config['MAX_IMAGE_SIDE']} pixels on a side and "
                                    f"{config['MAX_IMAGE_PIXELS']} pixels in all.")
            picture.load()
            return _orientation(picture)
    except ValidationFailed:
        raise
    except Exception as exc:  # Pillow signals a bad file in many ways: OSError, SyntaxError, DecompressionBombError...
        raise _not_an_image("The image could not be decoded.") from exc


def _orientation(picture: Image.Image) -> int | None:
    from PIL import ExifTags

    try:
        return picture.getexif().get(ExifTags.Base.Orientation)
    except Exception:  # unreadable EXIF is dropped with the rest; it does not make the image unacceptable
        return None


def keep_image(path: Path, mime: str) -> None:
    """Check the image at `path` (see `check_image`), then rewrite it without its metadata: EXIF (GPS positions
    of customers' photos), XMP, comments. The pixels are not re-encoded; see fantasize.services.images."""
    orientation = check_image(path, mime)
    data = path.read_bytes()
    try:
        kept = images.without_metadata(data, mime, orientation)
    except (images.Malformed, IndexError) as exc:  # not expected of a checked image, but never a 500
        raise _not_an_image("The image is truncated or malformed.") from exc
    if kept != data:
        with path.open("wb") as out:
            out.write(kept)
            out.flush()
            os.fsync(out.fileno())


def _write_atomically(stream: IO[bytes], head: bytes, target: Path, limit: int,
                      finish: Callable[[Path], None] | None = None) -> tuple[int, str]:
    """Copy `head` and the rest of `stream` to `target`; (size, sha256 hex) of what is kept. Over `limit` bytes
    is a 413. `finish` sees the complete file before it takes its final name, and may refuse it by raising or
    rewrite it."""
    descriptor, temporary = tempfile.mkstemp(dir=target.parent, prefix=".incoming-", suffix=".part")
    size = 0
    try:
        with os.fdopen(descriptor, "wb") as out:
            chunk = head
            while chunk:
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLarge(f"Files may be at most {current_app.config['MAX_UPLOAD_MB']} MB",
                                          details={"maxBytes": limit})
                out.write(chunk)
                chunk = stream.read(CHUNK_BYTES)
            out.flush()
            os.fsync(out.fileno())
        if finish is not None:
            finish(Path(temporary))
        with open(temporary, "rb") as kept:  # measured once final, as `finish` may have rewritten it
            size, digest = os.fstat(kept.fileno()).st_size, hashlib.file_digest(kept, "sha256").hexdigest()
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return size, digest


def store_upload(owner: User, stream: IO[bytes], client_name: str | None) -> Upload:
    """Keep an uploaded file if its bytes say it is an allowed type (415 otherwise), whatever it is called
    or claims to be; empty is 422, over MAX_UPLOAD_MB is 413, an image that is not wholly an image is 422.
    An image is kept without its metadata, so `size` and `sha256` describe the file as stored."""
    head = stream.read(SNIFF_BYTES)
    if not head:
        raise ValidationFailed("The file is empty", details={"file": ["The file is empty."]})
    kind = match(head, matchers=MATCHERS)
    if kind is None:
        raise UnsupportedMediaType("Only JPEG, PNG, WebP, GIF and PDF files are accepted",
                                   details={"allowed": list(ALLOWED_TYPES)})
    folder = Path(current_app.config["UPLOAD_FOLDER"])
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{secrets.token_hex(16)}.{kind.extension}"
    finish = (lambda path: keep_image(path, kind.mime)) if kind.mime in PILLOW_FORMATS else None
    size, sha256 = _write_atomically(stream, head, target, current_app.config["MAX_UPLOAD_MB"] * 1024 * 1024, finish)
    upload = Upload(owner_id=owner.id, stored_name=target.name, original_name=safe_original_name(client_name),
                    mime_type=kind.mime, size=size, sha256=sha256)
    db.session.add(upload)
    try:
        commit()
    except BaseException:
        db.session.rollback()
        target.unlink(missing_ok=True)
        raise
    log.info("upload stored", extra={"userId": owner.id, "uploadId": upload.id, "mimeType": upload.mime_type,
                                     "size": upload.size})
    return upload


# Who may fetch a file.
#
# An image shown in the public catalogue (of an active product, package or category) is public. Any other upload
# (customers' customization images and PDFs, avatars, images of inactive items) is served only to its owner and
# to admins: by bearer token, or through a signed URL: `?expires=<unix seconds>&signature=<HMAC-SHA256 hex>`,
# which the upload's JSON gives those who may see it, so that an <img> tag works without a token. Anyone else,
# an expired or wrong signature included, gets the same 404 as for a name that does not exist: whether a private
# file exists is itself private (as for every owner-only row, see services.common.get_owned_or_404).


def _url_key() -> bytes:
    # Derived from the app's secret for this one use, so no signature here is ever worth anything elsewhere.
    return hmac.digest(current_app.config["JWT_SECRET"].encode(), b"fantasize upload URL signatures", "sha256")


def _signature(stored_name: str, expires: int) -> str:
    return hmac.digest(_url_key(), f"{stored_name}|{expires}".encode(), "sha256").hex()


def signed_url(upload: Upload, lifetime: int | None = None) -> str:
    """The upload's URL with an expiry and a signature: it serves the file to whoever holds it, for `lifetime`
    seconds (UPLOAD_URL_TTL_SECONDS by default). Give it only to those who may see the file."""
    if lifetime is None:
        lifetime = current_app.config["UPLOAD_URL_TTL_SECONDS"]
    expires = int(time.time()) + lifetime
    return f"{upload.url}?{urlencode({'expires': expires, 'signature': _signature(upload.stored_name, expires)})}"


def _signed(stored_name: str, expires: int | None, signature: str | None) -> bool:
    if expires is None or signature is None or expires <= time.time():
        return False
    # Bytes, not str: compare_digest refuses non-ASCII strings, and a signature is whatever the client sent.
    return hmac.compare_digest(_signature(stored_name, expires).encode(), signature.encode())


def is_public(upload: Upload) -> bool:
    """Whether the public catalogue shows the upload: an image of an active product, package or category."""
    shown = or_(
        select(ProductImage.upload_id).join(Product)
        .where(ProductImage.upload_id == upload.id, Product.is_active).exists(),
        select(PackageImage.upload_id).join(Package)
        .where(PackageImage.upload_id == upload.id, Package.is_active).exists(),
        select(Category.id).where(Category.image_id == upload.id, Category.is_active).exists(),
    )
    return bool(db.session.scalar(select(shown)))


@dataclass(frozen=True)
class Served:
    """An upload the caller may fetch, its file, and whether it is public (cacheable by anyone) or private."""

    upload: Upload
    path: Path
    public: bool

    @property
    def download_name(self) -> str:
        """The file's name for the Content-Disposition header, with the extension of what the file really is (a
        PDF sent as x.exe downloads as x.pdf). The client's original name only when private: the public, who
        see catalogue images, never learn what the uploader's file was called."""
        stem, extension = self.upload.stored_name.rsplit(".", 1)
        if self.upload.original_name and not self.public:
            stem = Path(self.upload.original_name).stem or stem
        return f"{stem}.{extension}"


def open_upload(stored_name: str, viewer: User | None, expires: int | None = None,
                signature: str | None = None) -> Served:
    """The upload called `stored_name` if `viewer` (None: anonymous) may fetch it: when it is public, the
    signature is right and unexpired, or the viewer owns it or is an admin. 404 otherwise, as for no upload."""
    upload, path = find_upload(stored_name)
    if is_public(upload):
        return Served(upload, path, public=True)
    allowed = _signed(upload.stored_name, expires, signature) or (
        viewer is not None and (viewer.is_admin or viewer.id == upload.owner_id))
    if not allowed:
        raise NotFound("No such file")
    return Served(upload, path, public=False)


def find_upload(stored_name: str) -> tuple[Upload, Path]:
    """The upload and its file. Only names of the stored-name shape are looked up, so no client string ever
    becomes a path; an unknown name, or a row whose file is gone, is 404."""
    upload = None
    if STORED_NAME.fullmatch(stored_name):
        upload = db.session.scalar(select(Upload).where(Upload.stored_name == stored_name))
    if upload is None:
        raise NotFound("No such file")
    path = Path(current_app.config["UPLOAD_FOLDER"]) / upload.stored_name
    if not path.is_file():
        log.warning("upload row without its file", extra={"uploadId": upload.id})
        raise NotFound("No such file")
    return upload, path
