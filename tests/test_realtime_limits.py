"""Sockets under the per-client limits and on the workers that can serve them (issue 13, items 2 and 5).

- A worker that would give each socket one of its few threads (gunicorn gthread) refuses every `/socket.io/`
  request at once (503 REALTIME_UNAVAILABLE) and keeps serving HTTP.
- Connections per client address (SOCKET_CONNECTS_PER_MINUTE), counted at the Engine.IO handshake through the HTTP
  limiter's Redis storage (shared by every instance, memory while Redis is down), the address through PROXY_COUNT.
- A token in the connect payload spends an event.
- A misbehaving socket is logged a line a minute with counts, never a traceback per frame.

Unit tests run in process (Flask's test client: the threading mode, which still serves sockets); the live ones run
gunicorn with a raw websocket client (websocket-client) for what python-socketio would never send.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import subprocess
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
import socketio
import websocket
from flask import Flask

from config import ConfigError, TestingConfig
from fantasize.realtime import realtime_of
from fantasize.realtime.conduct import FAILED, MALFORMED, REFUSED, Conduct, QuietLogger
from tests import js_clients, test_realtime_node
from tests.conftest import database_url
from tests.factories import Factory
from tests.live_server import LiveServer
from tests.support import PrivateRedis, delete_prefix, recorded, shared_redis

HANDSHAKE = "/socket.io/?EIO=4&transport=polling"
REDIS_URL = TestingConfig.TEST_REDIS_URL


def from_ip(address: str, **headers: str) -> dict:
    return {"environ_base": {"REMOTE_ADDR": address}, "headers": headers}


def assert_refused(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.json
    assert body["success"] is False and body["error"]["code"] == code and body["error"]["message"]
    assert body["meta"]["requestId"] == response.headers["X-Request-ID"]
    return body


# Connections per client address, in process


@pytest.mark.parametrize("backend", ["sqlite"])
def test_handshakes_past_the_limit_are_refused_per_address_and_only_handshakes_count(limited):
    app = limited(SOCKET_CONNECTS_PER_MINUTE=2)
    client = app.test_client()
    opened = [client.get(HANDSHAKE, **from_ip("192.0.2.1")) for _ in range(2)]
    assert [r.status_code for r in opened] == [200, 200]
    sid = json.loads(opened[0].get_data(as_text=True)[1:])["sid"]

    refused = client.get(HANDSHAKE, **from_ip("192.0.2.1"))
    assert_refused(refused, 429, "RATE_LIMITED")
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    # Another address has its own budget; the requests of an open long-polling socket are no new connection.
    assert client.get(HANDSHAKE, **from_ip("192.0.2.2")).status_code == 200
    assert client.post(f"{HANDSHAKE}&sid={sid}", data="40", **from_ip("192.0.2.1")).status_code == 200


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_refusal_is_readable_by_a_page_of_an_allowed_origin_only(limited):
    app = limited(SOCKET_CONNECTS_PER_MINUTE=1, CORS_ORIGIN="https://shop.example.com")
    client = app.test_client()
    assert client.get(HANDSHAKE, **from_ip("192.0.2.3")).status_code == 200
    allowed = client.get(HANDSHAKE, **from_ip("192.0.2.3", Origin="https://shop.example.com"))
    assert_refused(allowed, 429, "RATE_LIMITED")
    assert allowed.headers["Access-Control-Allow-Origin"] == "https://shop.example.com"
    foreign = client.get(HANDSHAKE, **from_ip("192.0.2.3", Origin="https://evil.example"))
    assert_refused(foreign, 429, "RATE_LIMITED")
    assert "Access-Control-Allow-Origin" not in foreign.headers


@pytest.mark.parametrize("backend", ["sqlite"])
def test_the_client_address_is_read_through_the_trusted_proxies_only(limited):
    untrusted = limited(SOCKET_CONNECTS_PER_MINUTE=1).test_client()
    # PROXY_COUNT=0: X-Forwarded-For is the client's own writing; the peer address is what counts.
    assert untrusted.get(HANDSHAKE, **from_ip("192.0.2.4", **{"X-Forwarded-For": "203.0.113.1"})).status_code == 200
    assert untrusted.get(HANDSHAKE, **from_ip("192.0.2.4", **{"X-Forwarded-For": "203.0.113.2"})).status_code == 429

    proxied = limited(SOCKET_CONNECTS_PER_MINUTE=1, PROXY_COUNT=1).test_client()
    # One trusted proxy: the address it forwarded is the client, whoever the proxy is.
    assert proxied.get(HANDSHAKE, **from_ip("10.0.0.1", **{"X-Forwarded-For": "203.0.113.3"})).status_code == 200
    assert proxied.get(HANDSHAKE, **from_ip("10.0.0.2", **{"X-Forwarded-For": "203.0.113.3"})).status_code == 429
    assert proxied.get(HANDSHAKE, **from_ip("10.0.0.1", **{"X-Forwarded-For": "203.0.113.4"})).status_code == 200


@pytest.mark.parametrize("backend", ["sqlite"])
def test_connections_are_counted_in_memory_while_redis_is_down(make_app):
    redis = PrivateRedis().start()
    try:
        app = make_app(REDIS_URL=redis.url, SOCKET_CONNECTS_PER_MINUTE=2)
        client = app.test_client()
        assert client.get(HANDSHAKE, **from_ip("192.0.2.5")).status_code == 200
        assert redis.key_count() == 1  # counted in Redis, where every instance sees it
        redis.stop()
        during = [client.get(HANDSHAKE, **from_ip("192.0.2.5")).status_code for _ in range(3)]
    finally:
        redis.stop()
    # Memory starts afresh, but it counts: the third handshake of the outage is refused, none fails.
    assert during == [200, 200, 429]


@pytest.mark.parametrize("backend", ["sqlite"])
def test_socket_bounds_that_would_refuse_everyone_stop_the_app_from_starting(make_app):
    with pytest.raises(ConfigError, match="SOCKET_CONNECTS_PER_MINUTE"):
        make_app(SOCKET_CONNECTS_PER_MINUTE=0)
    with pytest.raises(ConfigError, match="SOCKET_MAX_MESSAGE_BYTES must be at least 8192"):
        make_app(SOCKET_MAX_MESSAGE_BYTES=0)


# The worker


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_gunicorn_thread_worker_refuses_every_socket_request_at_once(app):
    client = app.test_client()
    gunicorn = {"SERVER_SOFTWARE": "gunicorn/23.0.0"}
    for path in (HANDSHAKE, "/socket.io/?EIO=4&transport=websocket", f"{HANDSHAKE}&sid=abc"):
        body = assert_refused(client.get(path, environ_base=gunicorn), 503, "REALTIME_UNAVAILABLE")
        assert "gevent" in body["error"]["message"]
    assert client.get("/api/v1/versions", environ_base=gunicorn).status_code == 200
    # The test client and Flask's development server give each request a thread: they still serve sockets.
    assert client.get(HANDSHAKE).status_code == 200


# A sign-in at connect is an event


def connect(app: Flask, token: str | None = None):
    return app.extensions["socketio"].test_client(app, auth={"token": token} if token else None)


@pytest.mark.parametrize("backend", ["sqlite"])
@pytest.mark.parametrize("signed_in_at_connect", [True, False])
def test_a_sign_in_in_the_connect_payload_spends_an_event(make_app, signed_in_at_connect):
    app = make_app(SOCKET_EVENTS_PER_MINUTE=3)
    with app.app_context():
        factory = Factory(app)
        product = factory.product()
        token = factory.token(factory.user())
        sock = connect(app, token if signed_in_at_connect else None)
        answers = [sock.emit("track_inventory", product.id, callback=True) for _ in range(3)]
    allowed = 2 if signed_in_at_connect else 3
    assert [a.get("productId") for a in answers[:allowed]] == [product.id] * allowed
    assert [a["error"]["code"] for a in answers[allowed:]] == ["RATE_LIMITED"] * (3 - allowed)


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_sign_in_at_connect_past_the_limit_is_refused(make_app):
    app = make_app(SOCKET_EVENTS_PER_MINUTE=1)
    with app.app_context():
        factory = Factory(app)
        token = factory.token(factory.user())
        product = factory.product()
        sock = connect(app, token)
        assert sock.emit("track_inventory", product.id, callback=True)["error"]["code"] == "RATE_LIMITED"
        signed = [e["name"] for e in sock.get_received()]
    assert signed[0] == "authenticated"  # the sign-in took the minute's one event


# Misbehaviour, logged in proportion


def test_a_socket_is_logged_once_a_window_with_the_count_of_what_it_did_meanwhile():
    conduct = Conduct(window=60)
    with recorded("fantasize.realtime") as lines:
        assert conduct.misbehaved("s1", MALFORMED, ValueError("x"), now=0.0) is True
        assert not any(conduct.misbehaved("s1", kind, now=t) for t, kind in
                       [(1.0, MALFORMED), (30.0, REFUSED), (59.9, MALFORMED)])
        assert conduct.misbehaved("s2", REFUSED, now=10.0) is True  # each socket its own
        assert conduct.misbehaved("s1", MALFORMED, now=60.0) is True
        assert conduct.misbehaved("s1", REFUSED, now=61.0) is False
        conduct.forget("s1")
        conduct.forget("s2")  # nothing held since its line: nothing more
    assert [(r.getMessage(), r.sid, r.counts) for r in lines] == [
        ("misbehaving socket", "s1", {MALFORMED: 1}),
        ("misbehaving socket", "s2", {REFUSED: 1}),
        ("misbehaving socket", "s1", {MALFORMED: 3, REFUSED: 1}),
        ("misbehaving socket", "s1", {REFUSED: 1}),
    ]
    assert lines[-1].closed is True and all(r.exc_info is None for r in lines)  # a frame's error is the client's
    assert len(conduct) == 0


def test_a_failing_handler_is_logged_with_its_traceback_once_a_window():
    conduct = Conduct(window=60)
    with recorded("fantasize.realtime") as lines:
        for t in range(100):
            try:
                raise RuntimeError("a bug of ours")
            except RuntimeError as exc:
                conduct.misbehaved("s1", FAILED, exc, now=float(t))
    assert [(r.levelno, r.counts) for r in lines] == [(logging.ERROR, {FAILED: 1}), (logging.ERROR, {FAILED: 60})]
    assert all(r.exc_info and r.exc_info[0] is RuntimeError for r in lines)


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_socket_whose_events_fail_or_are_refused_is_logged_once_with_counts(make_app, monkeypatch):
    from fantasize.realtime import handlers

    app = make_app(SOCKET_EVENTS_PER_MINUTE=5)
    with app.app_context():
        sock = connect(app)

        def broken(*_args):
            raise RuntimeError("a bug of ours")

        monkeypatch.setattr(handlers, "_id_of", broken)
        with recorded("fantasize.realtime") as lines:
            answers = [sock.emit("track_order", 1, callback=True) for _ in range(8)]
            assert len(lines) == 1
            # Engine.IO tells of the socket's end (the test client bypasses Engine.IO, so as it would).
            realtime_of(app).socketio.server.eio.handlers["disconnect"](sock.eio_sid, "client disconnect")
    assert [a["error"]["code"] for a in answers] == ["INTERNAL_ERROR"] * 5 + ["RATE_LIMITED"] * 3
    # The first failure with its traceback; the rest counted, told when the socket went.
    assert [(r.getMessage(), r.counts) for r in lines] == [
        ("socket handler failed", {FAILED: 1}), ("misbehaving socket", {FAILED: 4, REFUSED: 3})]
    assert lines[0].exc_info[0] is RuntimeError and lines[1].closed is True
    assert len(realtime_of(app).conduct) == 0


def test_engineios_own_errors_pass_once_a_window_with_how_many_were_held():
    logger = logging.getLogger("test.quiet")
    logger.setLevel(logging.ERROR)
    quiet = QuietLogger(logger, window=0.5)
    with recorded("test.quiet") as lines:
        for _ in range(500):
            quiet.exception("post request handler error")
        quiet.info("not shown: below the logger's level")
        time.sleep(0.6)
        quiet.error("post request handler error")
    assert [r.getMessage() for r in lines] == [
        "post request handler error",
        "post request handler error (499 more like it in the last minute were not logged)",
    ]


# Live servers


ACCESS_LINE = re.compile(r'"logger": ?"fantasize\.requests"')  # the request line: one per request, by design


def log_lines(path: Path) -> int:
    return len(path.read_text(errors="replace").splitlines()) if path.exists() else 0


def logged_since(path: Path, before: int) -> list[str]:
    """The server's log lines after the first `before`, but for request lines."""
    return [line for line in path.read_text(errors="replace").splitlines()[before:] if not ACCESS_LINE.search(line)]


def ws_url(server: LiveServer) -> str:
    return server.url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"


@pytest.fixture(scope="module")
def redis_settings() -> Iterator[dict[str, str]]:
    redis = shared_redis()
    prefix = f"test:{uuid.uuid4().hex}:"
    yield {"REDIS_URL": REDIS_URL, "SOCKETIO_MESSAGE_QUEUE": REDIS_URL, "CACHE_KEY_PREFIX": prefix,
           "RATE_LIMIT_KEY_PREFIX": f"{prefix}limits"}
    delete_prefix(redis, prefix)


CONNECTS_PER_MINUTE = 4


@pytest.fixture(scope="module")
def pair(tmp_root, redis_settings) -> Iterator[tuple[LiveServer, LiveServer]]:
    """Two gunicorn instances (gevent, one worker each) on one database and one Redis, behind one trusted proxy
    (PROXY_COUNT=1: each test sends its own X-Forwarded-For, so each has a budget of its own)."""
    env = {"DATABASE_URL": database_url("postgresql", tmp_root), "PROXY_COUNT": "1",
           "SOCKET_CONNECTS_PER_MINUTE": str(CONNECTS_PER_MINUTE), **redis_settings}
    servers = [LiveServer(env, workers=1, log_path=tmp_root / f"limits-{name}.log") for name in "ab"]
    try:
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(LiveServer.start, servers))
        yield servers[0], servers[1]
    finally:
        for server in servers:
            server.stop()


def test_connections_past_the_limit_are_refused_across_two_instances(pair):
    a, b = pair
    caller = {"X-Forwarded-For": "203.0.113.50"}
    answers = [requests.get(f"{server.url}{HANDSHAKE}", headers=caller, timeout=10) for server in (a, b, a, b)]
    assert [r.status_code for r in answers] == [200] * CONNECTS_PER_MINUTE

    # Both instances count one budget: the fifth connection of the minute is refused wherever it goes, on either
    # transport and from python-socketio too.
    for server in (a, b):
        refused = requests.get(f"{server.url}{HANDSHAKE}", headers=caller, timeout=10)
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "RATE_LIMITED" and refused.json()["success"] is False
        assert 1 <= int(refused.headers["Retry-After"]) <= 60
    with pytest.raises(websocket.WebSocketBadStatusException) as raw:
        websocket.create_connection(ws_url(b), header=[f"X-Forwarded-For: {caller['X-Forwarded-For']}"], timeout=10)
    assert raw.value.status_code == 429 and b"RATE_LIMITED" in raw.value.resp_body
    client = socketio.Client(reconnection=False)
    with pytest.raises(socketio.exceptions.ConnectionError):
        client.connect(a.url, headers=caller, transports=["polling"], wait_timeout=10)
    client.shutdown()

    # Another address still connects.
    other = requests.get(f"{a.url}{HANDSHAKE}", headers={"X-Forwarded-For": "203.0.113.51"}, timeout=10)
    assert other.status_code == 200


node = test_realtime_node.node  # the fixture: Node.js, or a skip (a failure in CI) without it or socket.io-client
REFUSED_JS = """
const { io } = require("socket.io-client");
const socket = io(process.argv[1], { reconnection: false, transports: ["polling"],
                                     extraHeaders: { "X-Forwarded-For": process.argv[2] } });
socket.on("connect", () => { console.log(JSON.stringify({ connected: true })); process.exit(0); });
socket.on("connect_error", (err) => {
  console.log(JSON.stringify({ message: err.message, status: err.description, body: err.context.responseText }));
  process.exit(0);
});
"""


def test_the_javascript_client_reads_a_refused_connection_as_the_readme_says(pair, node):
    a, b = pair
    address = "203.0.113.70"

    def js_connect(server: LiveServer) -> dict:
        done = subprocess.run([node, "-e", REFUSED_JS, server.url, address], cwd=js_clients.NODE_TESTS,
                              capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    assert [js_connect(server) for server in (a, b, a, b)] == [{"connected": True}] * CONNECTS_PER_MINUTE
    refused = js_connect(b)
    assert refused["message"] == "xhr poll error" and refused["status"] == 429
    assert json.loads(refused["body"])["error"]["code"] == "RATE_LIMITED"


@pytest.mark.parametrize("backend", ["postgresql"])
def test_a_socket_flooding_events_past_its_limit_is_logged_in_proportion_and_keeps_its_worker_serving(
        pair, tmp_root, factory):
    """1,500 events on one socket: the first SOCKET_EVENTS_PER_MINUTE are answered, the rest refused
    (RATE_LIMITED) and counted, in one line (and its closing line), never a line each."""
    a, _ = pair
    product = factory.product(quantity=3)
    log = tmp_root / "limits-a.log"
    ws = websocket.create_connection(ws_url(a), header=["X-Forwarded-For: 203.0.113.60"], timeout=10)
    try:
        assert ws.recv().startswith("0{")
        ws.send("40")
        assert ws.recv().startswith("40{")
        before = log_lines(log)
        for n in range(1500):
            ws.send(f'42{n + 1}["track_inventory",{product.id}]')
        answers, deadline = {}, time.monotonic() + 60
        while len(answers) < 1500:  # every event is acknowledged, answered or refused
            assert time.monotonic() < deadline
            frame = ws.recv()
            if frame.startswith("43"):
                ack = re.match(r"43(\d+)", frame)
                answers[int(ack.group(1))] = json.loads(frame[len(ack.group(0)):])[0]
    finally:
        ws.close()
    answered = [n for n, body in answers.items() if body == {"productId": product.id, "quantity": 3}]
    refused = [n for n, body in answers.items() if body.get("error", {}).get("code") == "RATE_LIMITED"]
    assert sorted(answered) == list(range(1, 61)) and len(refused) == 1440
    assert requests.get(f"{a.url}/api/v1/products", timeout=5).status_code == 200
    time.sleep(1)  # the socket's closing line
    lines = logged_since(log, before)
    assert len(lines) <= 2 and "Traceback" not in "\n".join(lines), "\n".join(lines[:20])
    held = [json.loads(line) for line in lines if "misbehaving socket" in line]
    assert sum(entry["counts"].get(REFUSED, 0) for entry in held) == 1440


def closed_within(ws: websocket.WebSocket, seconds: float) -> bool:
    """True when the server ends the connection within `seconds` (whatever it sent before), False when it stays
    open and silent."""
    ws.settimeout(seconds)
    try:
        while True:
            ws.recv()
    except websocket.WebSocketTimeoutException:
        return False
    except (websocket.WebSocketException, OSError):
        return True


MALFORMED_FRAMES = ('42["track_inventory"', "4x", "49", '42{"a":1}', "42[1", "4-", "42[]", "42[{}]", "x", "",
                    "b4AAA", "6", '45-["track_inventory",{"_placeholder":true,"num":0}]')


@pytest.mark.parametrize("number", range(len(MALFORMED_FRAMES)))
def test_a_malformed_frame_closes_its_socket_with_one_line_and_the_worker_serves_on(pair, tmp_root, number):
    """Frames whose Engine.IO or Socket.IO packet does not parse, or is not a client's (bad JSON, unknown packet
    types, events that are not a list or have no name, binary): the socket is closed at the first, and 200 more
    sent before the close took effect add nothing to the one line it leaves; no traceback."""
    a, _ = pair
    log = tmp_root / "limits-a.log"
    frame, address = MALFORMED_FRAMES[number], f"203.0.113.{100 + number}"  # a connection budget each
    ws = websocket.create_connection(ws_url(a), header=[f"X-Forwarded-For: {address}"], timeout=10)
    before = log_lines(log)
    try:
        assert ws.recv().startswith("0{")
        ws.send("40")
        assert ws.recv().startswith("40{")
        with contextlib.suppress(websocket.WebSocketException, OSError):  # the close may come while sending
            for _ in range(201):
                ws.send(frame)
        assert closed_within(ws, 10)
    finally:
        ws.close()
    assert requests.get(f"{a.url}/api/v1/products", timeout=5).status_code == 200
    lines = logged_since(log, before)
    assert len(lines) == 1, "\n".join(lines[:60])
    assert json.loads(lines[0])["message"].startswith("socket input refused")


def test_malformed_long_polling_posts_are_refused_with_one_line(pair, tmp_root):
    a, _ = pair
    log = tmp_root / "limits-a.log"
    caller = {"X-Forwarded-For": "203.0.113.61"}
    opened = requests.get(f"{a.url}{HANDSHAKE}", headers=caller, timeout=10)
    sid = json.loads(opened.text[1:])["sid"]
    before = log_lines(log)
    with requests.Session() as session:
        answers = [session.post(f"{a.url}{HANDSHAKE}&sid={sid}", data=body, headers=caller, timeout=10).status_code
                   for body in ["x", "4", "\x1e\x1e", "4["] * 75]
    # The first refused body closes the socket; the rest name a session that is gone.
    assert answers[0] == 400 and all(400 <= status < 500 for status in answers), answers
    lines = logged_since(log, before)
    assert sum("socket input refused" in line for line in lines) == 1, "\n".join(lines[:60])
    assert len(lines) <= 3 and "Traceback" not in "\n".join(lines), "\n".join(lines[:60])


def test_a_gthread_server_refuses_sockets_and_keeps_answering_http(tmp_root, redis_settings):
    env = {"DATABASE_URL": database_url("postgresql", tmp_root), "GUNICORN_WORKER_CLASS": "gthread",
           "GUNICORN_THREADS": "2", **redis_settings}
    held = []
    with LiveServer(env, workers=1, log_path=tmp_root / "limits-gthread.log") as server:
        try:
            for _ in range(2):  # two idle anonymous websockets: before the fix, they held both threads
                try:
                    held.append(websocket.create_connection(ws_url(server), timeout=5))
                except websocket.WebSocketBadStatusException as refused:
                    assert refused.status_code == 503, refused
                    body = json.loads(refused.resp_body)
                    assert body["success"] is False and body["error"]["code"] == "REALTIME_UNAVAILABLE"
            polling = requests.get(f"{server.url}{HANDSHAKE}", timeout=5)
            started = time.monotonic()
            products = requests.get(f"{server.url}/api/v1/products", timeout=5)
            took = time.monotonic() - started
        finally:
            for ws in held:
                ws.close()
    assert held == []
    assert polling.status_code == 503 and polling.json()["error"]["code"] == "REALTIME_UNAVAILABLE"
    assert products.status_code == 200 and took < 5
