"""Uploads: files typed by their bytes, stored under random names in UPLOAD_FOLDER, and found again by that name.

A file reaches its final name only complete (written under a temporary name, then renamed), and leaves again
if its database row cannot be committed, so the folder and the table agree. An image must also be only an image:
it is decoded whole before it is kept, within size bounds read from its header first, and nothing but zero
padding may follow its end (so an image with a page or script appended, a polyglot, is refused).
"""

from __future__ import annotations

import hashlib
import logging
import mmap
import os
import re
import secrets
import tempfile
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import IO

from filetype.match import match
from filetype.types import archive, image
from flask import current_app
from PIL import Image
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


def _png_end(data: mmap.mmap) -> int | None:
    position = 8
    while position + 12 <= len(data):
        length = int.from_bytes(data[position:position + 4], "big")
        kind = data[position + 4:position + 8]
        position += 12 + length  # length, type, data, CRC
        if kind == b"IEND":
            return position if position <= len(data) else None
    return None


def _gif_color_table(flags: int) -> int:
    return 3 << ((flags & 7) + 1) if flags & 0x80 else 0


def _gif_skip_sub_blocks(data: mmap.mmap, position: int) -> int:
    while length := data[position]:
        position += 1 + length
    return position + 1


def _gif_end(data: mmap.mmap) -> int | None:
    try:
        position = 13 + _gif_color_table(data[10])  # header, logical screen descriptor, global colour table
        while True:
            block = data[position]
            if block == 0x3B:  # trailer
                return position + 1
            if block == 0x21:  # extension: label, then sub-blocks
                position = _gif_skip_sub_blocks(data, position + 2)
            elif block == 0x2C:  # image: descriptor, local colour table, LZW code size, then sub-blocks
                position = _gif_skip_sub_blocks(data, position + 10 + _gif_color_table(data[position + 9]) + 1)
            else:
                return None
    except IndexError:
        return None


def _webp_end(data: mmap.mmap) -> int | None:
    end = 8 + int.from_bytes(data[4:8], "little")  # "RIFF", the size of what follows, then that much
    return end if end <= len(data) else None


def _jpeg_end(data: mmap.mmap) -> int | None:
    position, size = 2, len(data)  # after the start-of-image marker
    while position + 1 < size:
        if data[position] != 0xFF:
            return None
        marker = data[position + 1]
        if marker == 0xD9:  # end of image
            return position + 2
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # markers without a length
            position += 2
            continue
        if position + 4 > size:
            return None
        position += 2 + int.from_bytes(data[position + 2:position + 4], "big")
        if marker == 0xDA:
            # Start of scan: entropy-coded data runs to the next marker; FF 00 is an escaped FF byte and the
            # restart markers FF D0-D7 belong to the scan.
            while True:
                position = data.find(b"\xff", position)
                if position < 0 or position + 1 >= size:
                    return None
                following = data[position + 1]
                if following == 0x00 or 0xD0 <= following <= 0xD7:
                    position += 2
                elif following == 0xFF:
                    position += 1
                else:
                    break
    return None


IMAGE_ENDS = {"image/png": _png_end, "image/gif": _gif_end, "image/webp": _webp_end, "image/jpeg": _jpeg_end}


def _not_an_image(message: str) -> ValidationFailed:
    return ValidationFailed("The image cannot be accepted", details={"file": [message]})


def check_image(path: Path, mime: str) -> None:
    """422 unless the file at `path` is a whole image of type `mime`: its end found by its own structure with
    only zero bytes after it, at most MAX_IMAGE_SIDE pixels wide and high and MAX_IMAGE_PIXELS in all (read from
    the header, before anything is decoded: a small file may claim a huge image), and decoded without error."""
    with path.open("rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data:
        end = IMAGE_ENDS[mime](data)
        if end is None:
            raise _not_an_image("The image is truncated or malformed.")
        if data[end:].strip(b"\0"):
            raise _not_an_image("The file has other data after the end of its image.")
    config = current_app.config
    try:
        with Image.open(path, formats=[PILLOW_FORMATS[mime]]) as picture:
            width, height = picture.size
            if max(width, height) > config["MAX_IMAGE_SIDE"] or width * height > config["MAX_IMAGE_PIXELS"]:
                raise _not_an_image(f"Images may be at most {config['MAX_IMAGE_SIDE']} pixels on a side and "
                                    f"{config['MAX_IMAGE_PIXELS']} pixels in all.")
            picture.load()
    except ValidationFailed:
        raise
    except Exception as exc:  # Pillow signals a bad file in many ways: OSError, SyntaxError, DecompressionBombError...
        raise _not_an_image("The image could not be decoded.") from exc


def _write_atomically(stream: IO[bytes], head: bytes, target: Path, limit: int,
                      check: Callable[[Path], None] | None = None) -> tuple[int, str]:
    """Copy `head` and the rest of `stream` to `target`; (size, sha256 hex). Over `limit` bytes is a 413.
    `check` sees the complete file before it takes its final name, and may refuse it by raising."""
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
        if check is not None:
            check(Path(temporary))
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return size, digest.hexdigest()


def store_upload(owner: User, stream: IO[bytes], client_name: str | None) -> Upload:
    """Keep an uploaded file if its bytes say it is an allowed type (415 otherwise), whatever it is called
    or claims to be; empty is 422, over MAX_UPLOAD_MB is 413, an image that is not wholly an image is 422."""
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
    check = (lambda path: check_image(path, kind.mime)) if kind.mime in PILLOW_FORMATS else None
    size, sha256 = _write_atomically(stream, head, target, current_app.config["MAX_UPLOAD_MB"] * 1024 * 1024, check)
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
