"""Version resolution, the version headers, and v0's deprecation and sunset."""

from fantasize.api.versioning import SUPPORTED_VERSIONS


def test_path_version_wins_over_header_and_query(client):
    response = client.get("/api/v1/versions?version=v2", headers={"API-Version": "v2"})
    assert response.status_code == 200
    assert response.headers["API-Version"] == "v1"
    assert isinstance(response.json, list)


def test_unversioned_path_uses_header_then_query_then_default(client):
    assert client.get("/api/versions", headers={"API-Version": "v2"}).headers["API-Version"] == "v2"
    assert client.get("/api/versions?version=v2").headers["API-Version"] == "v2"
    assert client.get("/api/versions").headers["API-Version"] == "v1"
    assert client.get("/api/versions", headers={"API-Version": "v1"}, query_string={"version": "v2"}).headers[
        "API-Version"
    ] == "v1"


def test_v2_renders_the_envelope(client):
    body = client.get("/api/v2/versions", headers={"X-Request-ID": "abc-123"}).json
    assert body["success"] is True
    assert body["meta"]["version"] == "v2"
    assert body["meta"]["requestId"] == "abc-123"
    assert {v["version"]: v["status"] for v in body["data"]} == {"v0": "sunset", "v1": "stable", "v2": "current"}


def test_unknown_versions_are_400_with_the_supported_list(client):
    for response in (
        client.get("/api/v3/versions"),
        client.get("/api/versions", headers={"API-Version": "banana"}),
        client.get("/api/versions?version=v9"),
    ):
        assert response.status_code == 400
        assert response.json["error"]["code"] == "UNSUPPORTED_VERSION"
        assert response.json["error"]["details"]["supported"] == list(SUPPORTED_VERSIONS)


def test_non_version_first_segment_is_an_unknown_route(client):
    response = client.get("/api/banana/products")
    assert response.status_code == 404
    assert response.json["error"]["code"] == "NOT_FOUND"


V0_HEADERS = ("Deprecation", "Sunset", "Warning", "Link")


def test_v0_after_sunset_is_410_with_every_deprecation_header(client):
    response = client.get("/api/v0/versions")
    assert response.status_code == 410
    assert response.json["error"]["code"] == "VERSION_SUNSET"
    assert response.headers["Deprecation"] == "@1704067200"
    assert response.headers["Sunset"] == "Tue, 31 Dec 2024 23:59:59 GMT"
    assert response.headers["Warning"] == '299 - "API v0 is deprecated. Please migrate to v1 or v2."'
    assert response.headers["Link"] == '</api/docs>; rel="deprecation"'


def test_v0_serves_when_sunset_is_not_enforced(make_app):
    client = make_app(API_V0_ENFORCE_SUNSET=False).test_client()
    response = client.get("/api/v0/versions")
    assert response.status_code == 200
    assert all(name in response.headers for name in V0_HEADERS)
    assert response.headers["API-Version"] == "v0"
    assert isinstance(response.json, list)


def test_request_id_is_echoed_when_safe_and_replaced_otherwise(client):
    assert client.get("/api/versions", headers={"X-Request-ID": "req.42_A-b"}).headers["X-Request-ID"] == "req.42_A-b"
    replaced = client.get("/api/versions", headers={"X-Request-ID": "bad id<script>"}).headers["X-Request-ID"]
    assert replaced != "bad id<script>" and len(replaced) == 32
