"""What the browser tests share: a Node driver of Debian's headless Chromium (playwright-core, pinned in
tests/node, no browser download) spoken to one JSON command per line, the check that a page loads only the files it
names and nothing inline, the check that a page script only sets text, the policy probe, the clean-report assertion,
and the fixtures both pages' tests have alike. Used by tests/test_live_browser.py (/live) and
tests/test_ops_browser.py (/ops).
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import threading
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from flask import Flask
from flask.testing import FlaskClient

from config import TestingConfig
from fantasize import create_app
from tests.js_clients import NODE_TESTS, node_program
from tests.live_server import ROOT
from tests.support import delete_prefix, shared_redis, skip_or_fail

CHROMIUM = "/usr/bin/chromium"
# The style sheet and script both pages link before their own (fantasize.platform.pages).
SHARED_STATIC = ROOT / "fantasize" / "platform" / "pages" / "static"
SHARED_CSS = "/pages/static/page.css"
SHARED_JS = "/pages/static/page.js"
ASSET_TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
# What a page script never does: it sets text, never HTML, styles or code.
RISKY_IN_SCRIPTS = ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function",
                    ".style.", "setAttribute(\"style")


def policy_header(policy: dict[str, str]) -> str:
    return "; ".join(f"{name} {value}".strip() for name, value in policy.items())


class PageParts(HTMLParser):
    """Every tag with its attributes, and the text inside <script> and <style> elements."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.inline: list[str] = []
        self._inside: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._inside = tag if tag in ("script", "style") else None

    def handle_endtag(self, tag: str) -> None:
        self._inside = None

    def handle_data(self, data: str) -> None:
        if self._inside and data.strip():
            self.inline.append(f"<{self._inside}>{data.strip()[:60]}")


def assert_page_loads_only(client: FlaskClient, path: str, policy: dict[str, str], *, scripts: list[str],
                           linked: list[str]) -> None:
    """The page at `path` answers under exactly `policy` (nothing unsafe), with no inline script, style or event
    handler, and loads exactly `scripts` and `linked` (in order), each served with its type and not the page's
    policy."""
    response = client.get(path)
    assert response.status_code == 200 and response.mimetype == "text/html"
    header = response.headers["Content-Security-Policy"]
    assert header == policy_header(policy) and "unsafe" not in header
    parts = PageParts()
    parts.feed(response.get_data(as_text=True))
    assert parts.inline == []
    assert not [tag for tag, _ in parts.tags if tag == "style"]
    assert not [(tag, name) for tag, attrs in parts.tags for name in attrs if name == "style" or name.startswith("on")]
    assert [attrs.get("src") for tag, attrs in parts.tags if tag == "script"] == scripts
    assert [attrs["href"] for tag, attrs in parts.tags if tag == "link"] == linked
    for url in scripts + linked:
        asset = client.get(url)
        assert asset.status_code == 200 and asset.mimetype == ASSET_TYPES[Path(url).suffix], url
        assert asset.headers["Content-Security-Policy"] != header  # the page's policy is the page's alone
        asset.close()


def assert_sets_text_only(*scripts: Path, also: tuple[str, ...] = ()) -> None:
    """None of the scripts holds a way to write HTML, styles or code (RISKY_IN_SCRIPTS), nor any of `also`."""
    for script in scripts:
        source = script.read_text()
        for risky in RISKY_IN_SCRIPTS + also:
            assert risky not in source, (script.name, risky)


def assert_policy_probe_is_seen(browser: Driver, url: str) -> None:
    """The clean reports mean something only if a violation would show: the driver breaks the policy on purpose."""
    browser.send("open", url=url)
    probe = browser.send("probeCsp")
    assert probe["inlineScriptRan"] is False
    assert {v["directive"] for v in probe["violations"]} == {"script-src-elem", "style-src-attr"}


def find_node() -> str:
    """Node, playwright-core and Chromium, or a skip (a failure in CI, FANTASIZE_REQUIRE_SERVICES)."""
    path = node_program("playwright-core")
    if not os.access(CHROMIUM, os.X_OK):
        skip_or_fail(f"Chromium is not installed at {CHROMIUM} (Debian: apt-get install chromium)")
    return path


class Driver:
    """A Node driver script in tests/node: one command per line in, one answer per line out. A context manager:
    closed (the browser with it) on leaving."""

    def __init__(self, node: str, script: Path, log_path: Path) -> None:
        self.log = open(log_path, "ab")  # noqa: SIM115  (closed by close())
        self.process = subprocess.Popen(
            [node, str(script)], cwd=NODE_TESTS, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log,
            text=True, env={**os.environ, "CHROMIUM": CHROMIUM},
        )
        self.answers: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.sent = 0
        ready = self._next(timeout=60)
        if not ready.get("ready"):
            self.close()
            pytest.fail(f"the browser did not start: {ready.get('error')}")

    def _read(self) -> None:
        for line in self.process.stdout:
            self.answers.put(line)
        self.answers.put(None)

    def _next(self, timeout: float) -> dict[str, Any]:
        try:
            line = self.answers.get(timeout=timeout)
        except queue.Empty:
            pytest.fail(f"the browser driver said nothing for {timeout} s")
        if line is None:
            pytest.fail(f"the browser driver exited with {self.process.wait()}")
        return json.loads(line)

    def send(self, cmd: str, *, check: bool = True, timeout: float = 60, **fields: Any) -> dict[str, Any]:
        self.sent += 1
        self.process.stdin.write(json.dumps({"id": self.sent, "cmd": cmd, **fields}) + "\n")
        self.process.stdin.flush()
        answer = self._next(timeout)
        assert answer.get("id") == self.sent, answer
        if check:
            assert answer["ok"], f"{cmd}: {answer.get('error')}"
        return answer

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                self.send("close", check=False, timeout=20)
                self.process.wait(timeout=20)
            except (OSError, subprocess.TimeoutExpired, pytest.fail.Exception):
                self.process.kill()
                self.process.wait()
        self.log.close()

    def __enter__(self) -> Driver:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def assert_clean(report: dict[str, Any]) -> None:
    """Nothing in the console, no uncaught error, no refused or failed request, no policy violation."""
    assert report["violations"] == []
    assert report["console"] == []
    assert report["pageErrors"] == []
    assert report["failedRequests"] == []
    assert report["errorResponses"] == []


# The fixtures both pages' test modules use alike. A test module binds each to a module attribute of the same name
# (`node = shared.node`), which is how pytest finds a fixture for the module's tests.


@pytest.fixture(scope="module")
def node() -> str:
    return find_node()


@pytest.fixture(scope="module")
def page_client(tmp_path_factory) -> FlaskClient:
    """An app on an unused SQLite file: the pages and their assets read no database."""
    folder = tmp_path_factory.mktemp("page")
    app = create_app(TestingConfig, {"SQLALCHEMY_DATABASE_URI": f"sqlite:///{folder / 'unused.db'}"})
    return app.test_client()


@pytest.fixture(scope="module")
def redis_settings() -> Iterator[dict[str, str]]:
    """The test Redis under a cache prefix of the module's own, deleted afterwards."""
    redis = shared_redis(TestingConfig.TEST_REDIS_URL)
    prefix = f"test:{uuid4().hex}:"
    yield {"REDIS_URL": TestingConfig.TEST_REDIS_URL, "CACHE_KEY_PREFIX": prefix}
    delete_prefix(redis, prefix)


@pytest.fixture
def app(make_app, redis_settings) -> Iterator[Flask]:
    """The tests' own app writes to the server's database (emptied after each test) and shares its cache prefix."""
    application = make_app(**redis_settings)
    with application.app_context():
        yield application


def browser_fixture(script: Path, log_name: str) -> Any:
    """The module's `browser` fixture: the driver `script` in Chromium, once the module's `live` server runs, its
    errors logged to `log_name` under the test run's folder."""

    @pytest.fixture(scope="module")
    def browser(node, live, tmp_root) -> Iterator[Driver]:
        with Driver(node, script, tmp_root / log_name) as driver:
            yield driver

    return browser
