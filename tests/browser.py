"""What the browser tests share: a Node driver of Debian's headless Chromium (playwright-core, pinned in
tests/node, no browser download) spoken to one JSON command per line, the check that a page loads nothing inline,
and the clean-report assertion. Used by tests/test_live_browser.py (/live) and tests/test_ops_browser.py (/ops).
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import threading
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from tests.live_server import ROOT
from tests.support import skip_or_fail

NODE_TESTS = ROOT / "tests" / "node"
CHROMIUM = "/usr/bin/chromium"


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


def find_node() -> str:
    """Node, playwright-core and Chromium, or a skip (a failure in CI, FANTASIZE_REQUIRE_SERVICES)."""
    path = shutil.which("node")
    if path is None:
        skip_or_fail("Node.js is not installed (Debian: apt-get install nodejs)")
    if not (NODE_TESTS / "node_modules" / "playwright-core" / "package.json").is_file():
        skip_or_fail("playwright-core is not installed: run `make tests/node/node_modules/.installed`")
    if not os.access(CHROMIUM, os.X_OK):
        skip_or_fail(f"Chromium is not installed at {CHROMIUM} (Debian: apt-get install chromium)")
    return path


class Driver:
    """A Node driver script in tests/node: one command per line in, one answer per line out."""

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


def assert_clean(report: dict[str, Any]) -> None:
    """Nothing in the console, no uncaught error, no refused or failed request, no policy violation."""
    assert report["violations"] == []
    assert report["console"] == []
    assert report["pageErrors"] == []
    assert report["failedRequests"] == []
    assert report["errorResponses"] == []
