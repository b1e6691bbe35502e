"""GET /metrics in process: Prometheus text that parses, requests by route template, the counters that move when
their thing happens (page cache, rate limits, orders, slow SQL), figures read at scrape time (pool, sockets, Redis),
who may read it (METRICS_ALLOW, API keys), and what is left with monitoring off."""

from __future__ import annotations

import json
import uuid

import pytest
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from config import ConfigError, TestingConfig
from fantasize.extensions import db
from fantasize.platform import monitoring
from fantasize.platform.monitoring.prometheus import RequestMetrics, Tally
from fantasize.platform.monitoring.scrape_access import parse_allow
from tests.factories import Factory
from tests.support import PrivateRedis, delete_prefix, shared_redis

API = "/api/v1"
PRODUCT_ROUTE = "/api/v1/products/<int:product_id>"
BOOM_ROUTE = "/test/boom/<int:n>"
METRICS_KEY = "metrics-key-0123456789"
HANDSHAKE = "/socket.io/?EIO=4&transport=polling"


def scrape(client, **kwargs) -> dict[tuple[str, frozenset], float]:
    """Every sample of /metrics by (name, labels); fails unless it is Prometheus text that parses."""
    response = client.get("/metrics", **kwargs)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.headers["Content-Type"] == CONTENT_TYPE_LATEST
    samples = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: dict, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def requests_of(samples: dict, **labels: str) -> float | None:
    return value(samples, "fantasize_http_requests_total", **labels)


def from_ip(address: str, **headers: str) -> dict:
    return {"environ_base": {"REMOTE_ADDR": address}, "headers": headers}


def with_boom_route(app):
    """A route that fails with a 500, registered before the app's first request."""
    def boom(n: int):
        raise RuntimeError(f"boom {n}")

    app.add_url_rule(BOOM_ROUTE, endpoint="test_boom", view_func=boom)
    return app


# What /metrics holds


def test_requests_are_counted_and_timed_by_method_route_template_and_status(make_app):
    app = with_boom_route(make_app())
    with app.app_context():
        products = [Factory(app).product(name=f"Lamp {i}").id for i in range(3)]
    client = app.test_client()
    for product_id in products:
        assert client.get(f"{API}/products/{product_id}").status_code == 200
    assert client.get(f"{API}/products/999999").status_code == 404
    for n in (1, 2):
        assert client.get(f"/test/boom/{n}").status_code == 500
    assert client.get("/no/such/path").status_code == 404
    assert client.post(f"{API}/products", json={}).status_code == 401
    client.get("/metrics")  # a scrape is not a request of the app's

    samples = scrape(client)
    assert requests_of(samples, method="GET", route=PRODUCT_ROUTE, status="200") == 3
    assert requests_of(samples, method="GET", route=PRODUCT_ROUTE, status="404") == 1
    assert requests_of(samples, method="GET", route=BOOM_ROUTE, status="500") == 2
    assert requests_of(samples, method="GET", route=monitoring.UNMATCHED, status="404") == 1
    assert requests_of(samples, method="POST", route=f"{API}/products", status="401") == 1
    # Route templates only: no raw path, no id, and no /metrics, becomes a label.
    routes = {dict(labels).get("route") for name, labels in samples if name == "fantasize_http_requests_total"}
    assert routes == {PRODUCT_ROUTE, BOOM_ROUTE, monitoring.UNMATCHED, f"{API}/products"}
    # The histogram saw the same requests, each within its buckets.
    timed = dict(method="GET", route=PRODUCT_ROUTE, status="200")
    assert value(samples, "fantasize_http_request_duration_seconds_count", **timed) == 3
    assert value(samples, "fantasize_http_request_duration_seconds_bucket", le="+Inf", **timed) == 3
    assert value(samples, "fantasize_http_request_duration_seconds_sum", **timed) > 0
    assert value(samples, "fantasize_monitoring_enabled") == 1
    assert value(samples, "process_resident_memory_bytes") > 0


@pytest.mark.parametrize("backend", ["sqlite"])
def test_methods_a_client_makes_up_count_under_one_label(make_app):
    app = make_app()
    client = app.test_client()
    for method in ("BREW", "PROPFIND", "X-SPRAY"):
        client.open("/no/such/path", method=method)
    samples = scrape(client)
    counted = {labels: v for (name, labels), v in samples.items() if name == "fantasize_http_requests_total"}
    assert counted == {frozenset({"method": "OTHER", "route": monitoring.UNMATCHED, "status": "404"}.items()): 3}
    (listener,) = [listener for listener in monitoring.state(app).listeners if isinstance(listener, RequestMetrics)]
    assert list(listener._children) == [("OTHER", monitoring.UNMATCHED, 404)]  # the cache of children is bounded too


@pytest.mark.parametrize("backend", ["sqlite"])
def test_labelled_children_are_resolved_once_per_method_route_and_status(make_app, monkeypatch):
    # .labels() builds a key and takes a lock each call: the request path uses children resolved once.
    app = make_app()
    (listener,) = [listener for listener in monitoring.state(app).listeners if isinstance(listener, RequestMetrics)]
    resolved = []
    for metric in (listener.requests, listener.latency):
        original = metric.labels
        monkeypatch.setattr(metric, "labels", lambda *labels, _original=original: (resolved.append(labels),
                                                                                    _original(*labels))[1])
    client = app.test_client()
    for _ in range(5):
        client.get(f"{API}/versions")
    client.get("/no/such/path")
    assert len(resolved) == 4  # (counter, histogram) x two label sets
    assert requests_of(scrape(client), method="GET", route=f"{API}/versions", status="200") == 5


def test_the_tally_shows_what_observing_each_request_would_have_shown():
    """Counts and latencies are kept as plain numbers per request and added to the metrics' own values at the
    scrape (prometheus.Tally): the exposition is exactly that of a counter increment and a histogram observation per
    request, bucket edges, +Inf and repeated flushes included."""
    durations = [0.0, 0.004, 0.005, 0.0051, 0.3, 1.0, 1.0000001, 9.99, 10.0, 42.0, 0.02, 0.02]
    statuses = [200, 200, 404, 200, 500, 200, 200, 503, 200, 200, 200, 201]
    deferred_registry, direct_registry = CollectorRegistry(), CollectorRegistry()
    tally = Tally()
    deferred, direct = RequestMetrics(deferred_registry, tally), RequestMetrics(direct_registry, Tally())
    for number, (seconds, status) in enumerate(zip(durations, statuses, strict=True)):
        deferred(monitoring.Sample("GET", "/api/v1/products/<int:product_id>", status, seconds, None, 0.0))
        labels = ("GET", "/api/v1/products/<int:product_id>", str(status))
        direct.requests.labels(*labels).inc()
        direct.latency.labels(*labels).observe(seconds)
        if number % 5 == 4:
            tally.apply()  # flushes in between add up
    tally.apply()
    assert generate_latest(deferred_registry) == generate_latest(direct_registry)
    tally.apply()  # nothing pending: nothing added twice
    assert generate_latest(deferred_registry) == generate_latest(direct_registry)


@pytest.mark.parametrize("backend", ["sqlite"])
def test_each_app_counts_its_own_requests(make_app):
    # One registry per app: two apps in one process neither collide nor see each other's requests.
    first, second = make_app(), make_app()
    first.test_client().get(f"{API}/versions")
    for _ in range(2):
        second.test_client().get(f"{API}/versions")
    labels = dict(method="GET", route=f"{API}/versions", status="200")
    assert requests_of(scrape(first.test_client()), **labels) == 1
    assert requests_of(scrape(second.test_client()), **labels) == 2


@pytest.mark.parametrize("backend", ["sqlite"])
def test_slow_statements_reported_to_the_listeners_are_counted(make_app):
    app = make_app()
    listeners = monitoring.state(app).slow_query_listeners
    assert listeners, "nothing listens for slow statements"
    for listener in listeners:
        listener("SELECT pg_sleep(?)", 0.4, "req-1")
        listener("UPDATE products SET quantity = ?", 0.3, None)
    assert value(scrape(app.test_client()), "fantasize_slow_queries_total") == 2


@pytest.mark.parametrize("backend", ["postgresql"])
def test_a_slow_statement_in_a_request_is_counted(make_app):
    if not hasattr(monitoring, "watch_statements"):
        pytest.skip("the slow-SQL detector (issue 14's request-window part) is not in this tree yet")
    app = make_app(SLOW_QUERY_THRESHOLD=100)

    def sleepy():
        db.session.execute(text("SELECT pg_sleep(0.25)"))
        db.session.execute(text("SELECT 1"))
        return {"slept": True}

    app.add_url_rule("/test/sleepy", endpoint="test_sleepy", view_func=sleepy)
    client = app.test_client()
    assert client.get("/test/sleepy").status_code == 200
    assert value(scrape(client), "fantasize_slow_queries_total") == 1


@pytest.mark.parametrize("backend", ["postgresql"])
def test_database_pool_figures_are_read_when_scraped(make_app):
    app = make_app(DB_POOL_SIZE=3)
    client = app.test_client()
    with app.app_context():
        idle = scrape(client)
        assert value(idle, "fantasize_db_pool_size") == 3
        assert value(idle, "fantasize_db_pool_checked_out") == 0
        assert value(idle, "fantasize_db_pool_overflow") == 0  # QueuePool's own figure is negative until full
        held = [db.engine.connect() for _ in range(4)]  # the pool's 3 and one overflow
        for connection in held:
            connection.execute(text("SELECT 1"))
        busy = scrape(client)
        for connection in held:
            connection.close()
    assert value(busy, "fantasize_db_pool_checked_out") == 4
    assert value(busy, "fantasize_db_pool_overflow") == 1


@pytest.mark.parametrize("backend", ["sqlite"])
def test_socket_clients_and_rooms_are_read_when_scraped(make_app):
    app = make_app()
    with app.app_context():
        factory = Factory(app)
        user = factory.user()
        order_id = factory.order_of(user, factory.product()).id
        token = factory.token(user)
    socketio = app.extensions["socketio"]
    anonymous = socketio.test_client(app)
    signed_in = socketio.test_client(app, auth={"token": token})
    assert signed_in.emit("track_order", order_id, callback=True)["orderId"] == order_id
    samples = scrape(app.test_client())
    assert value(samples, "fantasize_socketio_connected_clients") == 2
    assert value(samples, "fantasize_socketio_rooms", kind="user") == 1
    assert value(samples, "fantasize_socketio_rooms", kind="order") == 1
    assert value(samples, "fantasize_socketio_rooms", kind="inventory") == 0
    anonymous.disconnect()
    signed_in.disconnect()
    assert value(scrape(app.test_client()), "fantasize_socketio_connected_clients") == 0


# The counters, on real PostgreSQL and Redis


@pytest.fixture
def on_redis(make_app):
    """Apps on the tests' Redis (page cache and limits) under a key prefix of this test's."""
    client = shared_redis()
    prefix = f"test:prom:{uuid.uuid4().hex}:"
    yield lambda **settings: make_app(REDIS_URL=TestingConfig.TEST_REDIS_URL, CACHE_KEY_PREFIX=prefix,
                                      RATE_LIMIT_KEY_PREFIX=f"{prefix}limits", **settings)
    delete_prefix(client, prefix)


@pytest.mark.parametrize("backend", ["postgresql"])
def test_page_cache_hits_and_misses_are_counted(on_redis):
    app = on_redis()
    with app.app_context():
        product_id = Factory(app).product(name="Cached Lamp").id
    client = app.test_client()
    states = [client.get(f"{API}/products/{product_id}").headers["X-Cache"] for _ in range(3)]
    states.append(client.get(f"{API}/products").headers["X-Cache"])
    assert states == ["MISS", "HIT", "HIT", "MISS"]
    samples = scrape(client)
    assert value(samples, "fantasize_page_cache_requests_total", result="hit") == 2
    assert value(samples, "fantasize_page_cache_requests_total", result="miss") == 2
    assert value(samples, "fantasize_redis_up") == 1


@pytest.mark.parametrize("backend", ["postgresql"])
def test_redis_up_says_whether_redis_answers_at_the_scrape(make_app):
    redis_server = PrivateRedis().start()
    try:
        app = make_app(REDIS_URL=redis_server.url, CACHE_REDIS_TIMEOUT_MS=200)
        client = app.test_client()
        assert value(scrape(client), "fantasize_redis_up") == 1
        redis_server.stop()
        assert value(scrape(client), "fantasize_redis_up") == 0
        redis_server.start()
        assert value(scrape(client), "fantasize_redis_up") == 1
    finally:
        redis_server.stop()


@pytest.mark.parametrize("backend", ["postgresql"])
def test_rate_limit_rejections_are_counted_for_requests_and_socket_connections(on_redis):
    app = on_redis(RATE_LIMIT_MAX_REQUESTS=2, SOCKET_CONNECTS_PER_MINUTE=1, METRICS_ALLOW="192.0.2.10")
    client = app.test_client()
    statuses = [client.get(f"{API}/versions", **from_ip("192.0.2.10")).status_code for _ in range(4)]
    assert statuses == [200, 200, 429, 429]
    handshakes = [client.get(HANDSHAKE, **from_ip("192.0.2.11")).status_code for _ in range(2)]
    assert handshakes == [200, 429]
    # /metrics is exempt from the limits: it answers although 192.0.2.10 is over them, as often as asked.
    for _ in range(3):
        samples = scrape(client, **from_ip("192.0.2.10"))
    assert value(samples, "fantasize_rate_limit_rejections_total", kind="http") == 2
    assert value(samples, "fantasize_rate_limit_rejections_total", kind="socket") == 1


@pytest.mark.parametrize("backend", ["postgresql"])
def test_orders_placed_and_status_changes_are_counted_once_committed(on_redis):
    app = on_redis()
    with app.app_context():
        factory = Factory(app)
        shopper = factory.headers(factory.user())
        admin = factory.headers(factory.admin())
        product_id = factory.product(quantity=10).id
    client = app.test_client()
    placed = [client.post(f"{API}/orders", json={"items": [{"productId": product_id, "quantity": 1}]},
                          headers=shopper) for _ in range(2)]
    assert [r.status_code for r in placed] == [201, 201]
    # Refused before commit: no order, nothing counted.
    assert client.post(f"{API}/orders", json={"items": [{"productId": product_id, "quantity": 99}]},
                       headers=shopper).status_code == 409
    order_id = placed[0].json["id"]
    for status in ("confirmed", "processing"):
        assert client.patch(f"{API}/orders/{order_id}/status", json={"status": status},
                            headers=admin).status_code == 200
    assert client.patch(f"{API}/orders/{placed[1].json['id']}/status", json={"status": "cancelled"},
                        headers=admin).status_code == 200
    samples = scrape(client)
    assert value(samples, "fantasize_orders_placed_total") == 2
    changes = {dict(labels)["status"]: v for (name, labels), v in samples.items()
               if name == "fantasize_order_status_changes_total" and v}
    assert changes == {"confirmed": 1, "processing": 1, "cancelled": 1}


# Who may read it


@pytest.mark.parametrize("backend", ["sqlite"])
def test_metrics_answer_only_allowed_addresses_or_api_keys_and_404_to_anyone_else(make_app):
    app = make_app(API_KEYS=f"{METRICS_KEY},limited-key-0123456789@198.51.100.0/24")
    client = app.test_client()
    assert scrape(client)  # the test client's 127.0.0.1: loopback is allowed by default
    assert scrape(client, environ_base={"REMOTE_ADDR": "::1"})
    assert scrape(client, environ_base={"REMOTE_ADDR": "::ffff:127.0.0.1"})  # a dual-stack socket's IPv4 client
    refused = client.get("/metrics", **from_ip("203.0.113.7"))
    assert refused.status_code == 404
    assert refused.json["success"] is False and refused.json["error"]["code"] == "NOT_FOUND"
    assert refused.json["meta"]["requestId"]
    assert client.get("/metrics", **from_ip("203.0.113.7", **{"X-API-Key": "wrong"})).status_code == 404
    # A valid key opens it from anywhere its own allow-list permits, in either header.
    assert scrape(client, **from_ip("203.0.113.7", **{"X-API-Key": METRICS_KEY}))
    assert scrape(client, **from_ip("203.0.113.7", Authorization=f"Bearer {METRICS_KEY}"))
    assert client.get("/metrics", **from_ip("203.0.113.7", **{"X-API-Key": "limited-key-0123456789"})) \
        .status_code == 404
    assert scrape(client, **from_ip("198.51.100.9", **{"X-API-Key": "limited-key-0123456789"}))


@pytest.mark.parametrize("backend", ["sqlite"])
def test_behind_a_proxy_the_forwarded_client_is_judged_not_the_proxy(make_app):
    client = make_app(PROXY_COUNT=1).test_client()
    # The proxy itself is on loopback; what counts is the client it forwards for.
    assert client.get("/metrics", headers={"X-Forwarded-For": "203.0.113.8"}).status_code == 404
    assert client.get("/metrics", headers={"X-Forwarded-For": "127.0.0.1"}).status_code == 200
    # A client cannot talk its way in with a header of its own: only the last hop (the proxy's) is trusted.
    spoofed = client.get("/metrics", headers={"X-Forwarded-For": "127.0.0.1, 203.0.113.8"})
    assert spoofed.status_code == 404


@pytest.mark.parametrize("backend", ["sqlite"])
def test_metrics_allow_opens_the_networks_it_names(make_app):
    client = make_app(METRICS_ALLOW="10.0.0.0/8, 192.0.2.5").test_client()
    assert client.get("/metrics", **from_ip("10.20.30.40")).status_code == 200
    assert client.get("/metrics", **from_ip("192.0.2.5")).status_code == 200
    assert client.get("/metrics", **from_ip("192.0.2.6")).status_code == 404
    assert client.get("/metrics").status_code == 404  # loopback is the default, not always allowed


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_bad_metrics_allow_entry_stops_the_app_naming_it(make_app):
    with pytest.raises(ConfigError, match="'10.0.0.300/8'"):
        make_app(METRICS_ALLOW="127.0.0.1/8,10.0.0.300/8")
    with pytest.raises(ConfigError, match="'localhost'"):
        parse_allow("localhost")
    assert parse_allow(" , ::1 ,") == parse_allow("::1")


# Monitoring off


@pytest.mark.parametrize("backend", ["sqlite"])
def test_with_monitoring_off_metrics_hold_only_what_is_read_when_scraped(make_app):
    app = make_app(ENABLE_PERFORMANCE_MONITORING=False)
    client = app.test_client()
    client.get(f"{API}/versions")
    samples = scrape(client)
    names = {name for name, _labels in samples}
    assert not [name for name in names if name.startswith("fantasize_http_")]
    assert "fantasize_page_cache_requests_total" not in names
    assert "fantasize_orders_placed_total" not in names
    assert value(samples, "fantasize_monitoring_enabled") == 0
    assert value(samples, "fantasize_socketio_connected_clients") == 0
    assert value(samples, "process_resident_memory_bytes") > 0
    assert json.dumps(sorted(names))  # and it is still Prometheus text: scrape() parsed it
