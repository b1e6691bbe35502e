"""The request window and the admin performance endpoints (API.md "Monitoring"), against real PostgreSQL and Redis.

What is proven: the figures after a known set of requests (500s forced through routes the tests register, durations
made known by sleeping or by feeding samples), slow requests and slow SQL (logged with the request id, never a
parameter value), two app instances and two gunicorn workers summed through one Redis, a Redis that is down (requests
unharmed, figures of this process, kept and sent once it is back), monitoring off (no hook at all), and the
endpoints' input checks and access rules.
"""

from __future__ import annotations

import math
import random
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter

import pytest
import requests
from flask import Flask, abort, jsonify
from sqlalchemy import event, text

from config import TestingConfig
from fantasize.extensions import db
from fantasize.platform import monitoring
from fantasize.platform.monitoring import Sample, figures, report
from fantasize.platform.monitoring.window import COARSE_TTL, REDIS_TIMEOUT, Window
from tests.conftest import database_url
from tests.live_server import ROOT, LiveServer, free_port
from tests.support import PrivateRedis, SilentServer, all_at_once, delete_prefix, recorded, shared_redis

METRICS = "/api/admin/performance/metrics"
SLOW = "/api/admin/performance/slow-requests"
SUMMARY = "/api/admin/performance/summary"
SECRET = "hunter2-" + uuid.uuid4().hex  # a parameter value that must never reach a log


def add_test_routes(app: Flask) -> None:
    """Routes whose outcome the tests choose: a plain 200, a view that raises (500 by the error handler), a view
    that answers 503 itself, and one that sleeps `ms` before answering."""

    def ok():
        return jsonify(ok=True)

    def boom():
        raise RuntimeError("forced by the test")

    def unavailable():
        abort(503)

    def sleep(ms: int):
        time.sleep(ms / 1000)
        return jsonify(slept=ms)

    def slow_sql(ms: int):
        # The value is bound as a parameter; it must not appear in what is logged or kept.
        db.session.execute(text("SELECT pg_sleep(:seconds), :secret"), {"seconds": ms / 1000, "secret": SECRET})
        return jsonify(slept=ms)

    app.add_url_rule("/test/ok", "test_ok", ok)
    app.add_url_rule("/test/boom", "test_boom", boom)
    app.add_url_rule("/test/unavailable", "test_unavailable", unavailable)
    app.add_url_rule("/test/sleep/<int:ms>", "test_sleep", sleep)
    app.add_url_rule("/test/sql/<int:ms>", "test_sql", slow_sql)


@pytest.fixture
def build(make_app):
    """Apps with the test routes; 500s are answered by the app's handler, not raised into the test."""

    def make(**overrides):
        app = make_app(PROPAGATE_EXCEPTIONS=False, **overrides)
        add_test_routes(app)
        return app

    return make


@pytest.fixture
def prefix():
    client = shared_redis()
    value = f"test:monitoring:{uuid.uuid4().hex}:"
    yield value
    delete_prefix(client, value)


def on_redis(prefix: str, **overrides):
    return {"REDIS_URL": TestingConfig.TEST_REDIS_URL, "CACHE_KEY_PREFIX": prefix,
            "RATE_LIMIT_KEY_PREFIX": f"{prefix}limits", **overrides}


def admin_headers(app: Flask) -> dict[str, str]:
    from tests.factories import Factory

    with app.app_context():
        factory = Factory(app)
        return factory.headers(factory.admin(username=f"admin-{uuid.uuid4().hex[:8]}"))


def data_of(response) -> dict:
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.json
    assert body["success"] is True
    return body["data"]


def endpoint_count(metrics: dict, endpoint: str) -> int:
    return next((row["count"] for row in metrics["topEndpoints"] if row["endpoint"] == endpoint), 0)


def eventually(check, timeout: float = 10.0):
    """Poll `check` until it returns a true value (a flush is due once a second); the last value otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(0.1)


# The maths


def nearest_rank(values: list[float], percent: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(percent / 100 * len(ordered))) - 1]


def test_a_bucket_reports_within_its_stated_bound():
    rng = random.Random(14)
    bound = math.sqrt(figures.RATIO)
    for ms in [rng.uniform(figures.LOWEST_MS * 1.0001, 60_000) for _ in range(5000)] + [0.11, 1.0, 999.9, 1000.0]:
        reported = figures.bucket_value(figures.bucket_of(ms))
        assert 1 / bound - 1e-9 <= reported / ms <= bound + 1e-9, (ms, reported)


def test_percentiles_of_known_durations_are_the_nearest_rank_within_the_bound():
    window = Window(None, "unused:", slow_request_ms=10_000)
    rng = random.Random(7)
    durations = [rng.choice([2, 3, 5]) + rng.random() for _ in range(900)] + [rng.uniform(200, 400)
                                                                                  for _ in range(100)]
    now = time.time()
    for ms in durations:
        window.record(Sample("GET", "/x", 200, ms / 1000, None, now))
    window.close()
    report = window.metrics(300)
    assert report["totalRequests"] == 1000
    for name, percent in (("p50ResponseTime", 50), ("p95ResponseTime", 95), ("p99ResponseTime", 99)):
        exact = nearest_rank(durations, percent)
        assert abs(report[name] - exact) <= exact * 0.025 + 0.01, (name, report[name], exact)
    assert report["averageResponseTime"] == pytest.approx(sum(durations) / len(durations), abs=0.01)
    # Over the span the 10 s slots read cover: 300 s, and up to one slot more.
    assert 1000 / 310 - 0.01 <= report["requestsPerSecond"] <= 1000 / 300 + 0.01


def test_a_percentile_is_the_nearest_rank_of_a_small_set():
    counted = Counter()
    for ms in range(10, 101, 10):  # 10, 20, ... 100 ms
        figures.count(counted, "GET", "/x", 200, ms / 1000, slow=False)
    report = figures.report(counted, 60)
    # Nearest rank: the 5th, the 10th (ceil 9.5) and the 10th (ceil 9.9) of ten.
    assert report["p50ResponseTime"] == pytest.approx(50, rel=0.025)
    assert report["p95ResponseTime"] == pytest.approx(100, rel=0.025)
    assert report["p99ResponseTime"] == pytest.approx(100, rel=0.025)


def test_an_empty_window_reports_zeros():
    report = figures.report({}, 300)
    assert report["totalRequests"] == 0 and report["p99ResponseTime"] == 0 and report["errorRate"] == 0
    assert report["statusCodes"] == {} and report["topEndpoints"] == []


# One instance, no Redis


def test_known_requests_give_the_right_counts_error_rate_percentiles_and_top_endpoints(build):
    app = build()
    headers = admin_headers(app)
    client = app.test_client()
    for _ in range(12):
        assert client.get("/test/ok").status_code == 200
    for _ in range(3):
        assert client.get("/test/boom").status_code == 500
    assert client.get("/test/unavailable").status_code == 503
    for _ in range(4):
        assert client.get("/test/sleep/300").status_code == 200
    assert client.get("/test/no-such-route").status_code == 404
    metrics = data_of(client.get(f"{METRICS}?timeWindow=60000", headers=headers))
    assert metrics["enabled"] is True and metrics["scope"] == "instance"
    assert metrics["totalRequests"] == 21
    assert metrics["statusCodes"] == {"200": 16, "404": 1, "500": 3, "503": 1}
    assert metrics["errorRate"] == pytest.approx(4 / 21 * 100, abs=0.01)
    top = {row["endpoint"]: row for row in metrics["topEndpoints"]}
    assert [row["endpoint"] for row in metrics["topEndpoints"]][:3] == [
        "GET /test/ok", "GET /test/sleep/<int:ms>", "GET /test/boom"]
    assert top["GET /test/ok"]["count"] == 12
    assert top["GET /test/sleep/<int:ms>"]["count"] == 4
    assert top["GET /test/sleep/<int:ms>"]["averageResponseTime"] >= 300
    assert top["GET <unmatched>"]["count"] == 1  # the raw path is never a label
    # 4 of 21 requests slept 300 ms: the p95 and p99 are among them, the median is not.
    assert metrics["p95ResponseTime"] >= 300 * 0.975 and metrics["p99ResponseTime"] >= 300 * 0.975
    assert metrics["p50ResponseTime"] < 300 * 0.975
    assert metrics["slowRequests"] == 0  # the default threshold is 1000 ms
    assert 21 / 70 - 0.01 <= metrics["requestsPerSecond"] <= 21 / 60 + 0.01


def test_every_mount_answers_success_and_data(build):
    app = build()
    headers = admin_headers(app)
    client = app.test_client()
    for prefix in ("/api", "/api/v1", "/api/v2"):  # v0 is past its sunset: 410 like every v0 path
        for path in ("/admin/performance/metrics", "/admin/performance/slow-requests", "/admin/performance/summary"):
            body = client.get(prefix + path, headers=headers).json
            assert body["success"] is True and "data" in body, (prefix, path, body)
    summary = data_of(client.get(SUMMARY, headers=headers))
    assert set(summary) >= {"last5Minutes", "lastHour", "last24Hours", "memory", "uptime", "slowQueries"}
    # The 9 requests above, in each of the three windows.
    assert [summary[name]["totalRequests"] for name in ("last5Minutes", "lastHour", "last24Hours")] == [9, 9, 9]
    assert summary["memory"]["rssBytes"] > 10_000_000 and 0 < summary["memory"]["systemUsagePercent"] <= 100
    assert summary["uptime"] > 0


def test_slow_requests_are_kept_newest_first_and_logged_with_their_request_id(build):
    app = build(SLOW_REQUEST_THRESHOLD=150)
    headers = admin_headers(app)
    client = app.test_client()
    with recorded("fantasize.monitoring") as records:
        client.get("/test/sleep/200", headers={"X-Request-ID": "slow-one"})
        client.get("/test/ok", headers={"X-Request-ID": "fast-one"})
        client.get("/test/sleep/250?token=do-not-keep", headers={"X-Request-ID": "slow-two"})
    slow = data_of(client.get(f"{SLOW}?limit=10", headers=headers))
    assert [entry["requestId"] for entry in slow] == ["slow-two", "slow-one"]
    assert slow[0]["route"] == "/test/sleep/<int:ms>" and slow[0]["path"] == "/test/sleep/250"
    assert slow[0]["method"] == "GET" and slow[0]["status"] == 200 and slow[0]["durationMs"] >= 250
    assert slow[0]["timestamp"] > slow[1]["timestamp"]
    assert "do-not-keep" not in str(slow)
    assert [entry["requestId"] for entry in data_of(client.get(f"{SLOW}?limit=1", headers=headers))] == ["slow-two"]
    warnings = [record.getMessage() for record in records if record.levelname == "WARNING"]
    assert len(warnings) == 2
    assert "slow-one" in warnings[0] and "/test/sleep/<int:ms>" in warnings[0] and " 200 " in warnings[0]
    assert "do-not-keep" not in " ".join(warnings)
    metrics = data_of(client.get(METRICS, headers=headers))
    assert metrics["slowRequests"] == 2


@pytest.mark.parametrize("backend", ["postgresql"])
def test_slow_sql_is_logged_with_the_request_id_and_without_its_parameters(build):
    app = build(SLOW_QUERY_THRESHOLD=100)
    heard = []
    monitoring.on_slow_query(app, lambda statement, seconds, rid: heard.append((statement, seconds, rid)))
    headers = admin_headers(app)
    client = app.test_client()
    with recorded("fantasize.monitoring") as records:
        assert client.get("/test/sql/1", headers={"X-Request-ID": "quick-sql"}).status_code == 200
        assert client.get("/test/sql/200", headers={"X-Request-ID": "slow-sql"}).status_code == 200
    lines = [record.getMessage() for record in records if record.name == "fantasize.monitoring.sql"]
    assert len(lines) == 1, lines
    assert "slow-sql" in lines[0] and "pg_sleep" in lines[0] and SECRET not in lines[0]
    assert [(rid, seconds >= 0.2) for _, seconds, rid in heard] == [("slow-sql", True)]
    queries = data_of(client.get(SUMMARY, headers=headers))["slowQueries"]
    assert [query["requestId"] for query in queries] == ["slow-sql"]
    assert "pg_sleep" in queries[0]["statement"] and queries[0]["durationMs"] >= 200
    assert SECRET not in str(queries)


# Several instances through Redis


def test_two_instances_on_one_redis_are_both_counted(build, prefix):
    first, second = build(**on_redis(prefix)), build(**on_redis(prefix))
    headers = admin_headers(first)
    for app, number in ((first, 5), (second, 7)):
        client = app.test_client()
        for _ in range(number):
            assert client.get("/test/ok").status_code == 200
        assert client.get("/test/boom").status_code == 500
        assert client.get("/test/sleep/200").status_code == 200
    both = first.test_client()

    def summed():
        metrics = data_of(both.get(f"{METRICS}?timeWindow=60000", headers=headers))
        return metrics if endpoint_count(metrics, "GET /test/ok") == 12 else None

    metrics = eventually(summed)
    assert metrics, "the second instance's requests never reached the first's figures"
    assert metrics["scope"] == "cluster"
    assert endpoint_count(metrics, "GET /test/boom") == 2
    assert metrics["statusCodes"]["500"] == 2
    # The second instance reads the same figures (its own flush went to the same keys).
    other = data_of(second.test_client().get(f"{METRICS}?timeWindow=60000", headers=headers))
    assert endpoint_count(other, "GET /test/ok") == 12
    redis = shared_redis()
    coarse = [key for key in redis.scan_iter(match=f"{prefix}monitoring:300:*")]
    assert coarse and all(24 * 3600 < redis.ttl(key) <= COARSE_TTL for key in coarse)


def test_slow_requests_of_every_instance_are_listed(build, prefix):
    first, second = (build(**on_redis(prefix, SLOW_REQUEST_THRESHOLD=100)) for _ in range(2))
    headers = admin_headers(first)
    first.test_client().get("/test/sleep/150", headers={"X-Request-ID": "from-first"})
    second.test_client().get("/test/sleep/150", headers={"X-Request-ID": "from-second"})
    client = first.test_client()

    def listed():
        ids = {entry["requestId"] for entry in data_of(client.get(SLOW, headers=headers))}
        return ids if ids == {"from-first", "from-second"} else None

    assert eventually(listed)


def test_a_dead_redis_harms_no_request_and_the_endpoints_report_this_process(build):
    closed = f"redis://127.0.0.1:{free_port()}/0"
    app = build(REDIS_URL=closed, CACHE_KEY_PREFIX="test:dead:")
    headers = admin_headers(app)
    client = app.test_client()
    with recorded("fantasize.monitoring") as records:
        for _ in range(6):
            assert client.get("/test/ok").status_code == 200
        monitoring.window_of(app).tick()  # fails quietly
        monitoring.window_of(app).tick()
        started = time.monotonic()
        metrics = data_of(client.get(f"{METRICS}?timeWindow=60000", headers=headers))
        assert time.monotonic() - started < 5
    assert metrics["scope"] == "instance"
    assert endpoint_count(metrics, "GET /test/ok") == 6
    complaints = [record for record in records if record.levelname == "WARNING"]
    assert 1 <= len(complaints) <= 2, [record.getMessage() for record in complaints]  # once a minute per kind


def test_what_a_dead_redis_missed_is_sent_once_it_is_back(build, tmp_path):
    server = PrivateRedis().start()
    try:
        app = build(REDIS_URL=server.url, CACHE_KEY_PREFIX="test:back:")
        window = monitoring.window_of(app)
        window.close()  # the test ticks by hand
        client = app.test_client()
        for _ in range(4):
            client.get("/test/ok")
        server.stop()
        window.tick()  # Redis is gone: kept in process
        for _ in range(3):
            client.get("/test/ok")
        window.tick()
        server.start()
        for _ in range(3):  # the first write may meet the connection the old server dropped
            window.tick()
            if not window._unsent:
                break
            time.sleep(0.2)
        from redis import Redis

        stored = Redis.from_url(server.url)
        keys = list(stored.scan_iter(match="test:back:monitoring:300:*"))
        total = sum(int(stored.hget(key, "r:GET /test/ok") or 0) for key in keys)
        assert total == 7
    finally:
        server.stop()


@pytest.mark.parametrize("backend", ["postgresql"])
def test_a_gunicorn_with_two_workers_counts_both(app, factory, prefix, tmp_root):
    env = {"DATABASE_URL": database_url("postgresql", tmp_root), "REDIS_URL": TestingConfig.TEST_REDIS_URL,
           "CACHE_KEY_PREFIX": prefix, "RATE_LIMIT_KEY_PREFIX": f"{prefix}limits"}
    headers = factory.headers(factory.admin())
    with LiveServer(env, workers=2, log_path=tmp_root / "monitoring-workers.log") as server:
        pids, sent = set(), 0
        deadline = time.monotonic() + 30
        while len(pids) < 2 and time.monotonic() < deadline:
            # A new connection each time: gunicorn's workers take turns accepting.
            with requests.Session() as session:
                answer = session.get(f"{server.url}/api/v1/admin/realtime/stats", headers=headers, timeout=10)
            assert answer.status_code == 200, answer.text
            pids.add(answer.json()["instance"]["pid"])
            sent += 1
        assert len(pids) == 2, "one worker answered every request"

        def counted():
            answer = requests.get(f"{server.url}{METRICS}?timeWindow=60000", headers=headers, timeout=10)
            metrics = answer.json()["data"]
            return metrics if endpoint_count(metrics, "GET /api/v1/admin/realtime/stats") == sent else None

        metrics = eventually(counted)
        assert metrics, f"not every worker's {sent} requests were counted"
        assert metrics["scope"] == "cluster"


# Off, input, access


def test_monitoring_off_registers_nothing_and_the_endpoints_say_so(build):
    app = build(ENABLE_PERFORMANCE_MONITORING=False)
    assert monitoring.state(app) is None and monitoring.window_of(app) is None
    hooks = [*app.before_request_funcs.get(None, []), *app.after_request_funcs.get(None, []),
             *app.teardown_request_funcs.get(None, [])]
    assert not [hook for hook in hooks if hook.__module__ == monitoring.__name__]
    with app.app_context():  # nothing else in the app times statements
        assert not list(db.engine.dispatch.before_cursor_execute)
        assert not list(db.engine.dispatch.after_cursor_execute)
    headers = admin_headers(app)
    client = app.test_client()
    client.get("/test/ok")
    metrics = data_of(client.get(METRICS, headers=headers))
    assert metrics["enabled"] is False and metrics["totalRequests"] == 0
    assert data_of(client.get(SLOW, headers=headers)) == []
    summary = data_of(client.get(SUMMARY, headers=headers))
    assert summary["enabled"] is False and summary["memory"]["rssBytes"] > 0


def test_monitoring_on_times_statements_and_hooks_requests(build):
    app = build()
    hooks = [*app.before_request_funcs.get(None, []), *app.after_request_funcs.get(None, [])]
    assert [hook for hook in hooks if hook.__module__ == monitoring.__name__]
    before, after = monitoring.state(app).statement_events
    with app.app_context():
        assert event.contains(db.engine, "before_cursor_execute", before)
        assert event.contains(db.engine, "after_cursor_execute", after)


@pytest.mark.parametrize("query", ["timeWindow=abc", "timeWindow=999", "timeWindow=86400001", "timeWindow=1.5",
                                   "timeWindow=", "timeWindow=1e9", "timeWindow=99999999999999999999999"])
def test_a_nonsense_time_window_is_refused(build, query):
    app = build()
    response = app.test_client().get(f"{METRICS}?{query}", headers=admin_headers(app))
    assert response.status_code == 422, response.json  # the 422 (API.md says 400 for query values)
    assert response.json["error"]["code"] == "VALIDATION_ERROR" and "timeWindow" in response.json["error"]["details"]


@pytest.mark.parametrize("query", ["limit=0", "limit=101", "limit=ten", "limit=-1"])
def test_a_nonsense_limit_is_refused(build, query):
    app = build()
    response = app.test_client().get(f"{SLOW}?{query}", headers=admin_headers(app))
    assert response.status_code == 422 and "limit" in response.json["error"]["details"]


@pytest.mark.parametrize("path", [METRICS, SLOW, SUMMARY, "/api/v1/admin/performance/summary"])
def test_only_administrators_see_the_figures(build, path):
    app = build()
    from tests.factories import Factory

    with app.app_context():
        factory = Factory(app)
        customer = factory.headers(factory.user())
    client = app.test_client()
    assert client.get(path).status_code == 401
    assert client.get(path, headers=customer).status_code == 403


def test_made_up_methods_count_under_one_label(build):
    app = build()
    client = app.test_client()
    for number in range(5):
        client.open("/test/ok", method=f"BREW{number}")
    metrics = data_of(client.get(METRICS, headers=admin_headers(app)))
    assert [row["endpoint"] for row in metrics["topEndpoints"]] == ["OTHER <unmatched>"]
    assert endpoint_count(metrics, "OTHER <unmatched>") == 5


def test_a_hung_redis_costs_the_endpoints_one_timeout_then_nothing(build):
    with SilentServer() as silent:
        app = build(REDIS_URL=silent.url, CACHE_KEY_PREFIX="test:hung:", SLOW_REQUEST_THRESHOLD=60_000)
        headers = admin_headers(app)
        client = app.test_client()
        for _ in range(3):
            assert client.get("/test/ok").status_code == 200
        window = monitoring.window_of(app)
        started = time.monotonic()
        assert window.metrics(300)["scope"] == "instance"
        first = time.monotonic() - started
        started = time.monotonic()
        with app.test_request_context():
            report.summary(app)
            window.recent(window.slow_requests, 10)
        paused = time.monotonic() - started
        summary = data_of(client.get(SUMMARY, headers=headers))
    assert summary["last5Minutes"]["scope"] == "instance" and summary["lastHour"]["totalRequests"] == 3
    # The first read waits out the timeout (twice: one retry); the next ones, paused, do not ask Redis at all.
    assert REDIS_TIMEOUT <= first < 2 * 2 * REDIS_TIMEOUT + 1, first
    assert paused < REDIS_TIMEOUT, paused


def test_concurrent_requests_ticks_and_reads_lose_nothing():
    # Threads switch as often as the interpreter allows, so an unguarded read-modify-write would lose counts.
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        _concurrent_requests_ticks_and_reads()
    finally:
        sys.setswitchinterval(previous)


def _concurrent_requests_ticks_and_reads() -> None:
    window = Window(None, "unused:", slow_request_ms=10_000)
    window.close()  # ticked below, by hand, while the threads record
    done = threading.Event()
    errors = []

    def record(number: int) -> None:
        try:
            for index in range(5000):
                window.record(Sample("GET", f"/r{number}", 200 + index % 3, 0.001 * (index % 50 + 1), None,
                                     time.time()))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def read() -> None:
        while not done.is_set():
            try:
                window.tick()
                window.metrics(300)
            except Exception as exc:  # pragma: no cover - reported below
                errors.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    all_at_once([lambda number=number: record(number) for number in range(4)])
    done.set()
    reader.join()
    assert errors == []
    window.tick()
    report = window.metrics(300)
    assert report["totalRequests"] == 20_000
    assert sorted(row["count"] for row in report["topEndpoints"]) == [5000] * 4


def test_while_redis_is_away_at_most_an_hour_of_figures_waits_for_it():
    window = Window(f"redis://127.0.0.1:{free_port()}/0", "unused:", slow_request_ms=10_000)
    window.close()
    now = time.time()
    for slot in range(400):  # 400 slots of 10 s, the oldest over an hour ago
        window.record(Sample("GET", "/x", 200, 0.01, None, now - slot * 10))
    with recorded("fantasize.monitoring") as records:
        window.tick(now)
    assert len(window._unsent) == 360 and window.dropped_slots == 40
    assert min(window._unsent) >= now - 3600 - 10  # the newest hour is what is kept
    assert len([record for record in records if record.levelname == "WARNING"]) == 1
    # This process's own day is whole all the same.
    assert window.metrics(86_400)["totalRequests"] == 400 and window.metrics(86_400)["scope"] == "instance"


def test_the_rate_of_a_short_window_is_over_the_time_it_covers():
    window = Window(None, "unused:", slow_request_ms=10_000)
    window.close()
    now = int(time.time()) // 10 * 10 + 5  # 5 s into a 10 s slot
    for _ in range(30):
        window.record(Sample("GET", "/x", 200, 0.01, None, now - 4))
    # A 1 s window reads the whole current slot, 5 s of it so far: 30 requests over 5 s, not over 1 s.
    assert window.metrics(1, now)["totalRequests"] == 30
    assert window.metrics(1, now)["requestsPerSecond"] == 6.0


@pytest.mark.parametrize("backend", ["postgresql"])
def test_a_worker_that_stops_sends_its_last_figures_first(app, prefix, tmp_root):
    env = {"DATABASE_URL": database_url("postgresql", tmp_root), "REDIS_URL": TestingConfig.TEST_REDIS_URL,
           "CACHE_KEY_PREFIX": prefix, "RATE_LIMIT_KEY_PREFIX": f"{prefix}limits"}
    server = LiveServer(env, workers=1, log_path=tmp_root / "monitoring-exit.log").start()
    try:
        with requests.Session() as session:
            for _ in range(5):
                assert session.get(f"{server.url}/test-exit-unmatched", timeout=10).status_code == 404
    finally:
        server.stop()  # at once: the last requests are younger than a flush
    redis = shared_redis()
    keys = list(redis.scan_iter(match=f"{prefix}monitoring:300:*"))
    assert sum(int(redis.hget(key, "r:GET <unmatched>") or 0) for key in keys) == 5


@pytest.mark.parametrize("backend", ["postgresql"])
def test_slow_statements_of_every_instance_are_in_the_summary(build, prefix):
    first, second = (build(**on_redis(prefix, SLOW_QUERY_THRESHOLD=100)) for _ in range(2))
    headers = admin_headers(first)
    assert second.test_client().get("/test/sql/150", headers={"X-Request-ID": "sql-elsewhere"}).status_code == 200
    client = first.test_client()

    def listed():
        queries = data_of(client.get(SUMMARY, headers=headers))["slowQueries"]
        return queries if [query["requestId"] for query in queries] == ["sql-elsewhere"] else None

    queries = eventually(listed)
    assert queries, "the other instance's slow statement never reached this one's summary"
    assert "pg_sleep" in queries[0]["statement"] and SECRET not in str(queries)


def test_a_flush_is_one_pipelined_write(prefix, monkeypatch):
    from redis.connection import AbstractConnection

    from tests.test_redis_budget import _command_names

    window = Window(TestingConfig.TEST_REDIS_URL, f"{prefix}monitoring:", slow_request_ms=5)
    window.close()
    now = time.time()
    for index in range(60):
        window.record(Sample("GET", f"/r{index % 3}", 200, 0.001 * (index % 10 + 1), f"id-{index}", now - index))
    window.note_query("SELECT 1", 0.5, None)
    window.redis.ping()  # the connection's handshake is not the flush's
    writes: list[list[str]] = []
    send = AbstractConnection.send_packed_command

    def counted(self, command, check_health=True):
        writes.append(_command_names(command))
        return send(self, command, check_health)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", counted)
    window.tick(now)
    assert len(writes) == 1, writes
    assert writes[0][0] == "MULTI" and writes[0][-1] == "EXEC" and "HINCRBY" in writes[0] and "ZADD" in writes[0]
    monkeypatch.undo()
    assert window.metrics(300, now)["totalRequests"] == 60 and window.metrics(300, now)["scope"] == "cluster"


def test_counters_are_locked_under_threads_and_not_under_gevent():
    """The request path's counters take a real lock where threads may interleave, and none under gevent's
    monkey-patching, where a greenlet only yields on I/O (no I/O happens while one is held)."""
    probe = ("from fantasize.platform.monitoring import counting_lock; "
             "print(type(counting_lock()).__name__)")
    plain = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT)
    patched = subprocess.run([sys.executable, "-c", "from gevent import monkey; monkey.patch_all(); " + probe],
                             capture_output=True, text=True, check=True, cwd=ROOT)
    assert plain.stdout.strip() == "lock"
    assert patched.stdout.strip() == "nullcontext"
