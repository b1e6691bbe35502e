"""/ops, the administrators' page, in a real browser: Debian's headless Chromium driven by playwright-core
through tests/node/ops_browser.js (tests/browser.py), against a gunicorn server (one gevent worker) on PostgreSQL
and Redis with monitoring on and SLOW_REQUEST_THRESHOLD lowered, so that a sign-in (a password hash) is slow.

The page reads the admin performance endpoints, /health and the real-time figures every second here
(`?interval=1`); the tests send requests to the server in between and watch the figures and the charts move,
and check that the page logged nothing to the console and broke nothing of its Content-Security-Policy.

Chromium, Node or tests/node's packages missing: skipped locally, a failure in CI (FANTASIZE_REQUIRE_SERVICES).
With FANTASIZE_UPDATE_SCREENSHOT=1 the first browser test also writes the README's screenshot, docs/ops.png.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterator
from uuid import uuid4

import pytest
import requests

from config import TestingConfig
from fantasize import create_app
from fantasize.platform.security import OPS_POLICY
from tests import browser as shared
from tests.conftest import database_url
from tests.factories import PASSWORD
from tests.live_server import ROOT, LiveServer

DRIVER = shared.NODE_TESTS / "ops_browser.js"
STATIC = ROOT / "fantasize" / "platform" / "monitoring" / "static"
README_SCREENSHOT = ROOT / "docs" / "ops.png"
SLOW_MS = 40  # a sign-in hashes a password (scrypt): far slower than this; a cached read is far faster

on_postgresql = pytest.mark.parametrize("backend", ["postgresql"])

# The fixtures shared with the other page's tests (tests/browser.py), bound here so that pytest finds them.
node = shared.node
page_client = shared.page_client
redis_settings = shared.redis_settings
app = shared.app
browser = shared.browser_fixture(DRIVER, "ops-browser-driver.log")


# The page and its assets, without a browser


def test_the_page_loads_only_its_own_files_and_nothing_inline(page_client):
    shared.assert_page_loads_only(page_client, "/ops", OPS_POLICY, scripts=[shared.SHARED_JS, "/ops/static/ops.js"],
                                  linked=["/ops/static/favicon.svg", shared.SHARED_CSS, "/ops/static/ops.css"])
    policy = shared.policy_header(OPS_POLICY)
    assert "default-src 'none'" in policy and "connect-src 'self'" in policy


def test_the_page_is_served_with_monitoring_off(tmp_path):
    app = create_app(TestingConfig, {"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'unused.db'}",
                                     "ENABLE_PERFORMANCE_MONITORING": False})
    response = app.test_client().get("/ops")
    assert response.status_code == 200
    assert response.headers["Content-Security-Policy"] == shared.policy_header(OPS_POLICY)


def test_the_page_script_only_sets_text_and_keeps_the_token_in_memory():
    shared.assert_sets_text_only(STATIC / "ops.js", shared.SHARED_STATIC / "page.js",
                                 also=("localStorage", "sessionStorage", "document.cookie", "indexedDB", "http://", "https://"))
    # No cookie goes with the API calls either: every call goes through the shared requestJson.
    assert "credentials: \"omit\"" in (shared.SHARED_STATIC / "page.js").read_text()
    assert "fetch(" not in (STATIC / "ops.js").read_text()


# The browser


@pytest.fixture(scope="module")
def live(node, tmp_root, redis_settings) -> Iterator[LiveServer]:
    """gunicorn with one gevent worker, monitoring on and the slow-request threshold lowered."""
    env = {"DATABASE_URL": database_url("postgresql", tmp_root), "ENABLE_PERFORMANCE_MONITORING": "true",
           "SLOW_REQUEST_THRESHOLD": str(SLOW_MS), **redis_settings}
    with LiveServer(env, workers=1, log_path=tmp_root / "ops-browser-server.log") as server:
        yield server


def traffic(server: LiveServer, path: str, count: int) -> None:
    with requests.Session() as session:
        for _ in range(count):
            assert session.get(f"{server.url}{path}", timeout=10).status_code == 200


def sign_in_over_http(server: LiveServer, email: str, request_id: str) -> None:
    """A sign-in from outside the page, under a request id of the test's choosing: slower than SLOW_MS (it hashes
    the password)."""
    answer = requests.post(f"{server.url}/api/v1/auth/login", json={"email": email, "password": PASSWORD},
                           headers={"X-Request-ID": request_id}, timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.headers["X-Request-ID"] == request_id


@on_postgresql
def test_an_admin_sees_the_figures_and_the_charts_move(live, browser, factory, tmp_path):
    admin = factory.admin(email="grace@example.com", username="grace")
    factory.product(name="Moon lamp", quantity=20)

    opened = browser.send("open", url=f"{live.url}/ops?interval=1")
    assert opened["status"] == 200 and opened["title"] == "Fantasize ops"
    assert opened["csp"] == shared.policy_header(OPS_POLICY)
    assert opened["session"] == "signed-out"
    signed_in = browser.send("signIn", email=admin.email, password=PASSWORD)
    assert (signed_in["session"], signed_in["who"], signed_in["alert"]) == ("signed-in", "grace@example.com", None)

    # Dependencies and sockets as /health and the real-time figures report them.
    browser.send("waitText", selector="#health-status", text="healthy")
    checks = browser.send("waitText", selector="#health-checks", text="database", contains=True)["text"]
    assert "redis" in checks and "memory" in checks
    assert browser.send("waitNumber", selector="#sockets-connected", attribute="data-value", min=0)["value"] == 0

    # The page's own sign-in is the first request it saw; now a known burst of reads.
    before = browser.send("waitNumber", selector="#fig-total", attribute="data-value", min=1)["value"]
    rate_before = browser.send("chart", canvas="chart-rate")
    burst = 60
    traffic(live, "/api/v1/products", burst)
    # Counted: the page never reads /api/v1/products itself, so its row holds exactly the test's requests.
    products_row = '#top-endpoints tr:has(td.route:text-is("GET /api/v1/products")) td.count'
    counted = browser.send("waitNumber", selector=products_row, attribute="data-value", min=burst)["value"]
    assert counted == burst
    total = browser.send("waitNumber", selector="#fig-total", attribute="data-value", min=before + burst)["value"]
    assert total >= before + burst
    # Plotted: a new point whose rate has risen by the burst over the minute (60 requests / 60 s = 1 req/s; the
    # page's own readings only add to it, and the server is younger than the window, so nothing has left it).
    browser.send("waitNumber", selector="#chart-rate", attribute="data-points", min=int(rate_before["points"]) + 2)
    risen = float(rate_before["rate"] or 0) + 0.9 * burst / 60
    browser.send("waitNumber", selector="#chart-rate", attribute="data-rate", min=risen)
    for chart in ("chart-rate", "chart-latency", "chart-errors"):
        drawn = browser.send("chart", canvas=chart)
        assert drawn["drawn"] and int(drawn["points"]) >= 3, drawn
        assert "points)" in drawn["label"], drawn
    latency = browser.send("chart", canvas="chart-latency")
    assert float(latency["p99"]) >= float(latency["p50"]) > 0
    assert float(browser.send("chart", canvas="chart-errors")["errors"]) == 0  # nothing failed
    browser.send("waitText", selector="#top-endpoints", text="GET /api/v1/products", contains=True)

    # A slow request made from outside the page is listed, found by its request id (the page's own sign-in is
    # slow too, and its readings may be on a busy machine).
    request_id = f"ops-test-{uuid4().hex}"
    sign_in_over_http(live, admin.email, request_id)
    row = browser.send("waitText", selector=f'#slow-requests tr:has-text("{request_id}")', text=request_id,
                       contains=True)["text"]
    assert "POST /api/v1/auth/login" in row and "200" in row, row
    assert browser.send("waitNumber", selector="#fig-slow", attribute="data-value", min=1)["value"] >= 1

    browser.send("screenshot", path=str(tmp_path / "ops.png"))
    assert (tmp_path / "ops.png").stat().st_size > 20_000
    shared.assert_clean(browser.send("report"))


@on_postgresql
def test_the_readme_screenshot(node, browser, factory, tmp_root, redis_settings, tmp_path):
    """A minute of varied traffic, so the charts have a shape; written to docs/ops.png only on request. A server of
    its own, with the default-like threshold of 150 ms, so that the slow list holds sign-ins rather than the page's
    own readings on a busy machine."""
    if os.environ.get("FANTASIZE_UPDATE_SCREENSHOT") != "1":
        pytest.skip("FANTASIZE_UPDATE_SCREENSHOT=1 writes docs/ops.png")
    admin = factory.admin(email="ops@example.com", username="ops")
    email = admin.email
    products = [factory.product(name=f"Moon lamp {n}", quantity=20).id for n in range(3)]
    # Keys of its own (under the module's prefix, deleted with it): the other tests' figures stay out of the picture.
    env = {"DATABASE_URL": database_url("postgresql", tmp_root), "SLOW_REQUEST_THRESHOLD": "150",
           "REDIS_URL": redis_settings["REDIS_URL"], "CACHE_KEY_PREFIX": f"{redis_settings['CACHE_KEY_PREFIX']}shot:"}
    with LiveServer(env, workers=1, log_path=tmp_root / "ops-screenshot-server.log") as server:
        browser.send("open", url=f"{server.url}/ops?interval=2", width=1280, height=1000)
        browser.send("signIn", email=email, password=PASSWORD)
        stop = threading.Event()

        def load() -> None:
            with requests.Session() as session:
                second = 0
                while not stop.is_set():
                    for _ in range((5, 20, 45, 30, 10, 35, 60, 15)[second % 8]):
                        session.get(f"{server.url}/api/v1/products", timeout=10)
                        session.get(f"{server.url}/api/v1/products/{products[second % 3]}", timeout=10)
                        session.get(f"{server.url}/api/v1/categories", timeout=10)
                    if second % 9 == 4:
                        session.post(f"{server.url}/api/v1/auth/login", json={"email": email, "password": PASSWORD},
                                     timeout=10)
                    second += 1
                    stop.wait(1)

        worker = threading.Thread(target=load, daemon=True)
        worker.start()
        try:
            browser.send("waitNumber", selector="#chart-rate", attribute="data-points", min=36, timeout=150,
                         timeoutMs=140_000)
        finally:
            stop.set()
            worker.join(timeout=30)
        browser.send("screenshot", path=str(tmp_path / "ops.png"))
    README_SCREENSHOT.parent.mkdir(exist_ok=True)
    shutil.copyfile(tmp_path / "ops.png", README_SCREENSHOT)
    shared.assert_clean(browser.send("report"))


@on_postgresql
def test_a_customer_is_refused_and_nothing_is_read(live, browser, factory):
    customer = factory.user(email="ada@example.com")
    browser.send("open", url=f"{live.url}/ops?interval=1")
    refused = browser.send("signIn", email=customer.email, password=PASSWORD)
    assert refused["session"] == "signed-out"
    assert refused["alert"] == "Sign-in refused: ada@example.com is not an administrator."
    wrong = browser.send("signIn", email=customer.email, password="not the password")
    assert wrong["alert"].startswith("Sign-in failed: INVALID_CREDENTIALS")
    time.sleep(1.5)  # a tick would have happened by now
    texts = browser.send("read", selectors=["#dashboard", "#fig-total"])["texts"]
    assert texts == {"#dashboard": None, "#fig-total": None}
    report = browser.send("report")
    assert report["violations"] == [] and report["pageErrors"] == [] and report["failedRequests"] == []
    # Only the wrong password's 401: no figure was asked for with the customer's token.
    assert report["errorResponses"] == [{"url": f"{live.url}/api/v1/auth/login", "status": 401}]


@on_postgresql
def test_a_phone_and_a_session_the_server_ends(live, browser, factory):
    admin = factory.admin()
    browser.send("open", url=f"{live.url}/ops?interval=1", width=390, height=844)
    browser.send("signIn", email=admin.email, password=PASSWORD)
    browser.send("waitText", selector="#health-status", text="healthy")
    layout = browser.send("layout")
    assert layout["scrollWidth"] <= layout["clientWidth"], layout  # no sideways scrolling at 390 px
    assert browser.send("chart", canvas="chart-rate")["drawn"]

    # Every session of the admin ends (sign-out revokes the tokens): the page's next reading is refused.
    token = factory.token(admin)
    ended = requests.post(f"{live.url}/api/v1/auth/logout", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert ended.status_code == 204
    browser.send("waitText", selector="#alert-text", text="Signed out: ", contains=True)
    assert browser.send("read", selectors=["#dashboard"])["texts"]["#dashboard"] is None
    assert browser.send("read", selectors=["#status"])["texts"]["#status"] == "Signed out"


@on_postgresql
def test_a_spent_monitoring_budget_pauses_the_readings_without_ending_the_session(
        node, browser, factory, tmp_root, redis_settings):
    """RATE_LIMIT_MONITORING (production: 1000 per 5 minutes) counts the page's four admin readings per tick: once
    it is spent the page keeps what it shows, says so, and waits for the Retry-After the server sends."""
    admin = factory.admin()
    email = admin.email
    prefix = f"{redis_settings['CACHE_KEY_PREFIX']}limited:"
    env = {"DATABASE_URL": database_url("postgresql", tmp_root), "REDIS_URL": redis_settings["REDIS_URL"],
           "CACHE_KEY_PREFIX": prefix, "RATE_LIMIT_KEY_PREFIX": f"{prefix}limits",
           "RATE_LIMIT_MONITORING": "10 per 5 minutes"}
    with LiveServer(env, workers=1, log_path=tmp_root / "ops-limited-server.log") as server:
        browser.send("open", url=f"{server.url}/ops?interval=1")
        signed_in = browser.send("signIn", email=email, password=PASSWORD)
        assert (signed_in["session"], signed_in["alert"]) == ("signed-in", None)
        browser.send("waitText", selector="#status", text="Rate limited · next reading in ", contains=True)
        shown = browser.send("read", selectors=["#fig-total", "#health-status", "#alert-text"])["texts"]
        assert shown["#fig-total"] not in (None, "–") and shown["#health-status"] == "healthy"
        assert shown["#alert-text"] is None  # still signed in: a limit is not a refusal
        refused = browser.send("report")["errorResponses"]
        assert refused and {answer["status"] for answer in refused} == {429}
        time.sleep(3)  # three intervals: a page that ignored Retry-After would have asked again
        assert browser.send("report")["errorResponses"] == refused


@on_postgresql
def test_with_monitoring_off_the_page_says_so(node, browser, factory, tmp_root, redis_settings):
    admin = factory.admin()
    email = admin.email
    env = {"DATABASE_URL": database_url("postgresql", tmp_root), "REDIS_URL": redis_settings["REDIS_URL"],
           "CACHE_KEY_PREFIX": f"{redis_settings['CACHE_KEY_PREFIX']}off:", "ENABLE_PERFORMANCE_MONITORING": "false"}
    with LiveServer(env, workers=1, log_path=tmp_root / "ops-off-server.log") as server:
        browser.send("open", url=f"{server.url}/ops?interval=1")
        browser.send("signIn", email=email, password=PASSWORD)
        browser.send("waitText", selector="#window-note", text="Monitoring is off on this instance", contains=True)
        browser.send("waitText", selector="#health-status", text="healthy")  # the rest of the page still works
        assert browser.send("read", selectors=["#fig-total"])["texts"]["#fig-total"] == "0"
        shared.assert_clean(browser.send("report"))


def test_the_browser_reports_what_the_policy_refuses(live, browser):
    # The clean reports above mean something only if a violation would show.
    shared.assert_policy_probe_is_seen(browser, f"{live.url}/ops")
