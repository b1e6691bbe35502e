"""Uploads: files typed by their bytes, stored under random names in UPLOAD_FOLDER, and found again by that name.

A file reaches its final name only complete (written under a temporary name, then renamed), and leaves again
if its database row cannot be committed, so the folder and the table agree.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import secrets
import tempfile
import unicodedata
from pathlib import Path
from typing import IO

from filetype.match import match
from filetype.types import archive, image
from flask import current_app
from sqlalchemy import select

from fantasize.errors import NotFound, PayloadTooLarge, UnsupportedMediaType, ValidationFailed
from fantasize.extensions import db
from fantasize.models import Upload, User
from fantasize.services.common import commit

log = logging.getLogger("fantasize.uploads")

# The only types accepted, recognised by their magic bytes; an APNG is a PNG and matches as one here.
MATCHERS = (image.Jpeg(), image.Png(), image.Webp(), image.Gif(), archive.Pdf())
ALLOWED_TYPES = tuple(matcher.mime for matcher in MATCHERS)
EXTENSIONS = tuple(matcher.extension for matcher in MATCHERS)
STORED_NAME = re.compile(rf"[0-9a-f]{{32}}\.(?:{'|'.join(EXTENSIONS)})")
SNIFF_BYTES = 8192  # what filetype reads at most
CHUNK_BYTES = 64 * 1024
MAX_NAME_LENGTH = 255


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


def _write_atomically(stream: IO[bytes], head: bytes, target: Path, limit: int) -> tuple[int, str]:
    """Copy `head` and the rest of `stream` to `target`; (size, sha256 hex). Over `limit` bytes is a 413."""
    descriptor, temporary = tempfile.mkstemp(dir=target.parent, prefix=".incoming-", suffix=".part")
    digest, size = hashlib.sha256(), 0
    try:
        with os.fdopen(descriptor, "wb") as out:
            chunk = head
            while chunk:
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLarge(f"Files may be at most {current_app.config['MAX_UPLOAD_MB']} MB",
                                          details={"maxBytes": limit})
                digest.update(chunk)
                out.write(chunk)
                chunk = stream.read(CHUNK_BYTES)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return size, digest.hexdigest()


def store_upload(owner: User, stream: IO[bytes], client_name: str | None) -> Upload:
    """Keep an uploaded file if its bytes say it is an allowed type (415 otherwise), whatever it is called
    or claims to be; empty is 422, over MAX_UPLOAD_MB is 413."""
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
    size, sha256 = _write_atomically(stream, head, target, current_app.config["MAX_UPLOAD_MB"] * 1024 * 1024)
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


def download_name(upload: Upload) -> str:
    """The original name with the extension of what the file really is (a PDF sent as x.exe downloads as x.pdf)."""
    stem, extension = upload.stored_name.rsplit(".", 1)
    if upload.original_name:
        stem = Path(upload.original_name).stem or stem
    return f"{stem}.{extension}"


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
