"""One log line per HTTP request, written by the app (fantasize.platform.request_log), never by gunicorn too."""

from __future__ import annotations

import io
import json
import sys
import uuid
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from config import ConfigError
from tests.conftest import database_url
from tests.factories import Factory
from tests.live_server import LiveServer


@contextmanager
def captured():
    """What the app's handler writes, read from the stream it writes to (stderr at the moment of logging)."""
    stream, saved = io.StringIO(), sys.stderr
    sys.stderr = stream
    try:
        yield stream
    finally:
        sys.stderr = saved


def request_lines(text: str) -> list[dict]:
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    return [line for line in lines if line["logger"] == "fantasize.requests"]


def test_each_request_is_one_json_line_with_route_user_status_and_no_query(make_app):
    app = make_app(LOG_LEVEL="INFO")
    factory = Factory(app)
    with app.app_context():
        user = factory.user()
        headers = factory.headers(user)
        user_id = user.id
    client = app.test_client()
    with captured() as stream:
        signed_in = client.get("/api/v1/users/me?token=do-not-log", headers=headers,
                               environ_base={"REMOTE_ADDR": "203.0.113.7"})
        missing = client.get("/no/such/thing")
    lines = request_lines(stream.getvalue())
    assert len(lines) == 2, lines
    first, second = lines
    assert first["message"] == "GET /api/v1/users/me 200"
    assert first["route"] == "/api/v1/users/me"
    assert first["status"] == signed_in.status_code == 200
    assert first["userId"] == user_id
    assert first["clientAddress"] == "203.0.113.7"
    assert first["requestId"] == signed_in.headers["X-Request-ID"]
    assert first["durationMs"] >= 0
    assert "do-not-log" not in stream.getvalue()  # neither the query string nor the bearer token is written
    assert headers["Authorization"].split()[1] not in stream.getvalue()
    assert second["route"] is None and second["status"] == missing.status_code == 404
    assert second["userId"] is None


@pytest.mark.parametrize("backend", ["sqlite"])
def test_the_client_request_id_is_the_lines_id(make_app):
    app = make_app(LOG_LEVEL="INFO")
    with captured() as stream:
        app.test_client().get("/api/v1/versions", headers={"X-Request-ID": "trace-42"})
    (line,) = request_lines(stream.getvalue())
    assert line["requestId"] == "trace-42"


@pytest.mark.parametrize("backend", ["sqlite"])
def test_above_info_no_line_is_written(make_app):
    app = make_app(LOG_LEVEL="WARNING")
    with captured() as stream:
        app.test_client().get("/api/v1/versions")
    assert request_lines(stream.getvalue()) == []


@pytest.mark.parametrize("backend", ["sqlite"])
def test_probes_and_scrapes_that_pass_get_no_line(make_app):
    app = make_app(LOG_LEVEL="INFO")
    with captured() as stream:
        for path in ("/health", "/health/live", "/metrics", "/api/v1/versions"):
            app.test_client().get(path)
    assert [line["path"] for line in request_lines(stream.getvalue())] == ["/api/v1/versions"]


@pytest.mark.parametrize("backend", ["sqlite"])
def test_text_format_is_for_people(make_app):
    app = make_app(LOG_LEVEL="INFO", LOG_FORMAT="text")
    with captured() as stream:
        app.test_client().get("/api/v1/versions", headers={"X-Request-ID": "trace-7"})
    (line,) = [line for line in stream.getvalue().splitlines() if "fantasize.requests" in line]
    assert not line.startswith("{")
    assert "INFO" in line and "GET /api/v1/versions 200" in line
    assert "route=/api/v1/versions" in line and "requestId=trace-7" in line


@pytest.mark.parametrize("backend", ["sqlite"])
def test_an_unknown_log_format_stops_the_app(make_app):
    with pytest.raises(ConfigError, match="LOG_FORMAT"):
        make_app(LOG_FORMAT="xml")


@pytest.mark.parametrize("backend", ["postgresql"])
def test_gunicorn_writes_one_line_per_request_the_apps_socket_io_included(backend, tmp_root: Path):
    """The live server's whole output for three requests: three request lines, no gunicorn access line."""
    log = tmp_root / f"request-lines-{uuid.uuid4().hex[:8]}.log"
    env = {"DATABASE_URL": database_url("postgresql", tmp_root), "LOG_LEVEL": "INFO"}
    with LiveServer(env, workers=1, log_path=log) as server:
        before = len(log.read_text().splitlines())
        marks = [f"line-{uuid.uuid4().hex[:8]}" for _ in range(2)]
        assert requests.get(f"{server.url}/api/v1/versions", headers={"X-Request-ID": marks[0]}).status_code == 200
        assert requests.get(f"{server.url}/nowhere", headers={"X-Request-ID": marks[1]}).status_code == 404
        handshake = requests.get(f"{server.url}/socket.io/?EIO=4&transport=polling")
        assert handshake.status_code == 200
        server.stop()
    text = "\n".join(log.read_text().splitlines()[before:])
    mentioned = [line for line in text.splitlines() if "/api/v1/versions" in line or "/nowhere" in line
                 or "/socket.io/" in line]
    parsed = [json.loads(line) for line in mentioned]  # a gunicorn access line is not JSON
    # A request's line is written once its response has gone out, so the line of LiveServer.start's last
    # readiness poll (GET /api/v1/versions) may reach the log after `before` was read: set those aside by id.
    readiness = [entry for entry in parsed if entry.get("route") == "/api/v1/versions"
                 and entry.get("requestId") not in marks]
    parsed = [entry for entry in parsed if entry not in readiness]
    assert len(readiness) <= 1, readiness
    assert [entry["logger"] for entry in parsed] == ["fantasize.requests"] * 3, mentioned
    assert [entry["requestId"] for entry in parsed[:2]] == marks
    assert parsed[0]["route"] == "/api/v1/versions" and parsed[1]["status"] == 404
    assert parsed[2]["path"] == "/socket.io/" and parsed[2]["status"] == 200
    assert all(entry["clientAddress"] == "127.0.0.1" for entry in parsed)

