"""Swagger UI renders in a real browser (headless Chromium) under the docs page's Content-Security-Policy.

Without Chromium these tests are skipped locally and fail in CI (`.ci/run` installs it).
"""

from __future__ import annotations

import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from config import TestingConfig
from fantasize import create_app
from fantasize.platform.security import DOCS_POLICY, PAGE_POLICIES

CSP_VIOLATION = "Content Security Policy"  # in every violation Chromium logs: "... violates the following ..."


@pytest.fixture(scope="module")
def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        message = "Chromium is not installed (Debian: apt-get install chromium)"
        if TestingConfig.REQUIRE_SERVICES:
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="module")
def docs_url(tmp_path_factory) -> Iterator[str]:
    """/api/docs of an app served by a Werkzeug thread (the docs read no database; it is never migrated)."""
    folder = tmp_path_factory.mktemp("browser")
    app = create_app(TestingConfig, {"SQLALCHEMY_DATABASE_URI": f"sqlite:///{folder / 'unused.db'}"})
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/api/docs"
    server.shutdown()
    thread.join()


def render(chromium: str, url: str, profile: Path) -> tuple[str, str]:
    """The page's DOM once its scripts have run (virtual time, so not a wall-clock wait), and the browser's log."""
    result = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={profile}", "--virtual-time-budget=10000", "--enable-logging=stderr", "--v=0",
         "--dump-dom", url],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout, result.stderr


def test_swagger_ui_renders_the_operations_without_breaking_the_policy(chromium, docs_url, tmp_path):
    dom, log = render(chromium, docs_url, tmp_path / "profile")
    assert 'class="opblock opblock-get' in dom and 'class="opblock opblock-post' in dom
    assert 'data-path="/api/v1/products"' in dom
    assert 'data-path="/api/v2/orders"' in dom
    violations = [line for line in log.splitlines() if CSP_VIOLATION in line]
    assert violations == []
    assert "Uncaught" not in log


def test_the_browser_reports_what_a_policy_refuses(chromium, docs_url, tmp_path, monkeypatch):
    # The check above means something only if a refusal shows in the log: Swagger UI's icons are data: URLs.
    monkeypatch.setitem(PAGE_POLICIES, "docs.index", {**DOCS_POLICY, "img-src": "'self'"})
    _, log = render(chromium, docs_url, tmp_path / "profile")
    assert any(CSP_VIOLATION in line and "img-src" in line for line in log.splitlines())
