"""/live, the reference browser client, in a real browser: Debian's headless Chromium, driven by playwright-core
(pinned in tests/node, no browser download) through tests/node/live_browser.js, against a gunicorn server (one
gevent worker) on PostgreSQL with the Redis message queue.

The driver answers one JSON command per line (see its header); these tests send the commands, act on the server
over HTTP in between (an admin moves the order, announces, the user signs out) and assert what the page shows, and
that the page logged nothing to the console and broke nothing of its Content-Security-Policy.

Chromium, Node or tests/node's packages missing: skipped locally, a failure in CI (FANTASIZE_REQUIRE_SERVICES).
With FANTASIZE_UPDATE_SCREENSHOT=1 the first test also writes the README's screenshot, docs/live.png.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from config import TestingConfig
from fantasize.platform.security import LIVE_POLICY
from tests import browser as shared
from tests.conftest import database_url
from tests.factories import PASSWORD
from tests.live_server import ROOT, LiveServer
from tests.support import skip_or_fail

DRIVER = shared.NODE_TESTS / "live_browser.js"
STATIC = ROOT / "fantasize" / "realtime" / "static"
VENDORED = STATIC / "vendor" / "socket.io"
PACKAGE = shared.NODE_TESTS / "node_modules" / "socket.io-client"
README_SCREENSHOT = ROOT / "docs" / "live.png"

on_postgresql = pytest.mark.parametrize("backend", ["postgresql"])

# The fixtures shared with the other page's tests (tests/browser.py), bound here so that pytest finds them.
node = shared.node
page_client = shared.page_client
redis_settings = shared.redis_settings
app = shared.app
browser = shared.browser_fixture(DRIVER, "live-browser-driver.log")


# The page and its assets, without a browser


def test_the_page_loads_only_its_own_files_and_nothing_inline(page_client):
    shared.assert_page_loads_only(
        page_client, "/live", LIVE_POLICY,
        scripts=[shared.SHARED_JS, "/live/static/vendor/socket.io/socket.io.min.js", "/live/static/live.js"],
        linked=["/live/static/favicon.svg", shared.SHARED_CSS, "/live/static/live.css"])


def test_the_page_script_only_sets_text():
    shared.assert_sets_text_only(STATIC / "live.js", shared.SHARED_STATIC / "page.js")


def test_the_shipped_socket_io_client_is_the_pinned_npm_package():
    pinned = json.loads((shared.NODE_TESTS / "package.json").read_text())["dependencies"]["socket.io-client"]
    shipped = (VENDORED / "socket.io.min.js").read_bytes()
    note = (VENDORED / "README.md").read_text()
    assert f"version **{pinned}**" in note
    assert hashlib.sha256(shipped).hexdigest() in note
    assert shipped.startswith(f"/*!\n * Socket.IO v{pinned}\n".encode())
    if not (PACKAGE / "package.json").is_file():
        skip_or_fail("socket.io-client is not installed: run `make tests/node/node_modules/.installed`")
    assert json.loads((PACKAGE / "package.json").read_text())["version"] == pinned
    assert shipped == (PACKAGE / "dist" / "socket.io.min.js").read_bytes()
    assert (VENDORED / "LICENSE").read_bytes() == (PACKAGE / "LICENSE").read_bytes()


# The browser


@pytest.fixture(scope="module")
def live(node, tmp_root, redis_settings) -> Iterator[LiveServer]:
    """gunicorn with one gevent worker (long-polling needs every request of a socket on one process), the Redis
    message queue set explicitly (testing leaves it off)."""
    env = {"DATABASE_URL": database_url("postgresql", tmp_root),
           "SOCKETIO_MESSAGE_QUEUE": TestingConfig.TEST_REDIS_URL, **redis_settings}
    with LiveServer(env, workers=1, log_path=tmp_root / "live-browser-server.log") as server:
        yield server


def api(server: LiveServer, method: str, path: str, token: str, **options: Any) -> requests.Response:
    return requests.request(method, f"{server.url}/api/v1{path}", headers={"Authorization": f"Bearer {token}"},
                            timeout=10, **options)


@on_postgresql
def test_a_customer_signs_in_and_sees_their_order_move_live(live, browser, factory, tmp_path):
    customer = factory.user(email="ada@example.com", username="ada")
    lamp = factory.product(name="Moon lamp", quantity=20)
    older = factory.order_of(customer, lamp, status="delivered")
    order = factory.order_of(customer, lamp)
    factory.order_of(factory.user(), lamp)  # someone else's: not offered
    admin_token = factory.token(factory.admin())

    opened = browser.send("open", url=f"{live.url}/live")
    assert opened["status"] == 200 and opened["title"] == "Fantasize live"
    assert opened["csp"] == shared.policy_header(LIVE_POLICY)
    signed_in = browser.send("signIn", email=customer.email, password=PASSWORD)
    assert (signed_in["session"], signed_in["who"], signed_in["alert"]) == ("signed-in", "ada@example.com", None)
    offered = browser.send("waitText", selector="#order-select", text=f"#{older.id} · delivered", contains=True)["text"]
    assert f"#{order.id} · pending" in offered
    assert offered.count("#") == 2
    tracked = browser.send("track", orderId=order.id)
    assert (tracked["status"], tracked["alert"]) == ("pending", None)
    browser.send("waitText", selector="#connection", text="Connected · websocket")  # upgraded from long-polling

    moved = api(live, "PATCH", f"/orders/{order.id}/status", admin_token,
                json={"status": "confirmed", "details": {"estimatedDelivery": "2026-12-09", "note": "staff only"}})
    assert moved.status_code == 200, moved.text

    browser.send("waitText", selector="#order-status", text="confirmed")
    browser.send("waitText", selector="#order-change", text="Changed from pending", contains=True)
    details = browser.send("waitText", selector="#order-details", text="2026-12-09", contains=True)["text"]
    assert "staff only" not in details  # internal details never reach a customer
    browser.send("waitText", selector="#order-select", text=f"#{order.id} · confirmed", contains=True)
    browser.send("waitText", selector="#notifications", text=f"Order #{order.id}", contains=True)
    announced = api(live, "POST", "/admin/announcements", admin_token,
                    json={"title": "Maintenance tonight", "message": "Checkout pauses 02:00-02:15 UTC.",
                          "type": "maintenance"})
    assert announced.status_code < 300, announced.text
    browser.send("waitText", selector="#announcements", text="Maintenance tonight", contains=True)
    browser.send("waitText", selector="#log", text="order_status_update", contains=True)

    browser.send("screenshot", path=str(tmp_path / "live.png"))
    assert (tmp_path / "live.png").stat().st_size > 10_000
    if os.environ.get("FANTASIZE_UPDATE_SCREENSHOT") == "1":
        README_SCREENSHOT.parent.mkdir(exist_ok=True)
        shutil.copyfile(tmp_path / "live.png", README_SCREENSHOT)
    shared.assert_clean(browser.send("report"))


@on_postgresql
def test_a_phone_on_long_polling_with_a_pasted_token(live, browser, factory, tmp_path):
    customer = factory.user()
    order = factory.order_of(customer, factory.product(), status="processing")
    admin_token = factory.token(factory.admin())

    opened = browser.send("open", url=f"{live.url}/live?transport=polling", width=390, height=844)
    assert opened["connection"] == "Connected · polling"
    signed_in = browser.send("useToken", token=factory.token(customer))
    assert (signed_in["session"], signed_in["who"], signed_in["alert"]) == ("signed-in", customer.email, None)
    assert browser.send("track", orderId=order.id)["status"] == "processing"

    moved = api(live, "PATCH", f"/orders/{order.id}/status", admin_token,
                json={"status": "shipped", "details": {"trackingNumber": "1Z-LIVE-42"}})
    assert moved.status_code == 200, moved.text
    browser.send("waitText", selector="#order-status", text="shipped")
    browser.send("waitText", selector="#order-details", text="1Z-LIVE-42", contains=True)

    layout = browser.send("layout")
    assert layout["scrollWidth"] <= layout["clientWidth"], layout  # no sideways scrolling at 390 px
    assert browser.send("read", selectors=["#connection"])["texts"]["#connection"] == "Connected · polling"
    browser.send("screenshot", path=str(tmp_path / "live-phone.png"))
    shared.assert_clean(browser.send("report"))


@on_postgresql
def test_refusals_and_a_session_the_server_ends_are_shown(live, browser, factory):
    customer = factory.user()
    order = factory.order_of(customer, factory.product())
    browser.send("open", url=f"{live.url}/live")

    refused = browser.send("signIn", email=customer.email, password="not the password")
    assert refused["session"] == "signed-out" and refused["alert"].startswith("Sign-in failed: INVALID_CREDENTIALS")
    forged = browser.send("useToken", token="not.a.token")
    assert forged["session"] == "signed-out" and forged["alert"].startswith("Token refused: UNAUTHENTICATED")

    browser.send("signIn", email=customer.email, password=PASSWORD)
    assert browser.send("track", orderId=order.id)["status"] == "pending"
    assert api(live, "POST", "/auth/logout", factory.token(customer)).status_code == 204

    browser.send("waitText", selector="#alert-text", text="Signed out by the server: Token has been revoked")
    texts = browser.send("read", selectors=["#orders-card", "#tracked", "#email"])["texts"]
    assert texts["#orders-card"] is None and texts["#tracked"] is None  # hidden: nothing tracked any more
    assert texts["#email"] == ""  # the sign-in form is back
    browser.send("waitText", selector="#log", text="auth_error", contains=True)

    report = browser.send("report")
    assert report["violations"] == [] and report["pageErrors"] == [] and report["failedRequests"] == []
    # The one wrong password is a 401, which Chromium logs as a failed resource; nothing else reaches the console.
    assert report["errorResponses"] == [{"url": f"{live.url}/api/v1/auth/login", "status": 401}]
    assert [m["type"] for m in report["console"]] == ["error"]
    assert "status of 401" in report["console"][0]["text"]


def test_the_browser_reports_what_the_policy_refuses(live, browser):
    # The clean reports above mean something only if a violation would show.
    shared.assert_policy_probe_is_seen(browser, f"{live.url}/live")
