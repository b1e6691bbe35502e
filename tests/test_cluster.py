"""Two instances behind nginx, as deploy/local-cluster runs them (deploy.local_cluster.Cluster: deploy/nginx's
http.conf and server.conf, `hash $remote_addr consistent`, PROXY_COUNT=1), on the suite's PostgreSQL and Redis.

Every loopback client comes from 127.0.0.1 unless it binds another source address; all of 127.0.0.0/8 is this
machine's, so the tests play several clients by connecting from 127.0.0.2, 127.0.0.3, ..., and nginx's access log
(its $upstream_addr, found by request id) says which instance answered each request.
"""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Iterator
from functools import partial
from typing import Any, NamedTuple
from urllib.parse import urlsplit
from uuid import uuid4

import pytest
from flask import Flask

from config import TestingConfig
from deploy.local_cluster import UPSTREAM, Cluster, Instance, nginx_program
from fantasize.platform.request_log import REQUESTS_LOGGER
from tests.conftest import database_url
from tests.js_clients import EXIT_OK, TRANSPORTS, Tracker, node_program
from tests.live_server import free_port
from tests.support import all_at_once, delete_prefix, shared_redis, skip_or_fail

AUTH_LIMIT = 3  # failed sign-ins per client address (RATE_LIMIT_AUTH) for the whole module
WRONG_LOGIN = {"email": "nobody@example.com", "password": "wrong-password"}


class Reply(NamedTuple):
    status: int
    headers: http.client.HTTPMessage
    body: Any


def call(base_url: str, method: str, path: str, address: str = "127.0.0.1", body: Any = None,
         headers: dict[str, str] | None = None) -> Reply:
    """One request from the loopback `address`, with an X-Request-ID of its own unless `headers` names one."""
    target = urlsplit(base_url)
    connection = http.client.HTTPConnection(target.hostname, target.port, timeout=15, source_address=(address, 0))
    headers = {"X-Request-ID": f"cluster-{uuid4().hex}", **(headers or {})}
    payload = None
    if body is not None:
        payload, headers["Content-Type"] = json.dumps(body), "application/json"
    try:
        connection.request(method, path, body=payload, headers=headers)
        response = connection.getresponse()
        data = response.read()
        return Reply(response.status, response.headers, json.loads(data) if data else None)
    finally:
        connection.close()


def request_line(instance: Instance, request_id: str, timeout: float = 5) -> dict[str, Any]:
    """The app's request line (JSON, logger fantasize.requests) for that request, from the instance's log."""
    deadline = time.monotonic() + timeout
    while True:
        for line in instance.log_path.read_text(errors="replace").splitlines():
            # Other lines may name the request too (a slow request's warning): the request line is the logger's.
            if f'"requestId":"{request_id}"' in line and f'"logger":"{REQUESTS_LOGGER}"' in line:
                return json.loads(line)
        if time.monotonic() > deadline:
            pytest.fail(f"no request line for {request_id} in {instance.log_path}")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def shared_settings() -> Iterator[dict[str, str]]:
    """This module's keys on the tests' Redis: the page cache and the rate limits."""
    redis = shared_redis(TestingConfig.TEST_REDIS_URL)
    prefix = f"test:{uuid4().hex}:"
    yield {"REDIS_URL": TestingConfig.TEST_REDIS_URL, "CACHE_KEY_PREFIX": prefix,
           "RATE_LIMIT_KEY_PREFIX": f"{prefix}limits"}
    delete_prefix(redis, prefix)


@pytest.fixture(scope="module")
def node() -> str:
    return node_program()


@pytest.fixture(scope="module")
def cluster(node, tmp_root, tmp_path_factory, shared_settings) -> Iterator[Cluster]:
    """One cluster for the module, on the tests' migrated database (no `prepare`: the tests write their own rows)."""
    if nginx_program() is None:
        skip_or_fail("nginx is not installed (Debian: apt-get install nginx-light)")
    env = {
        "FLASK_ENV": "testing",
        "JWT_SECRET": TestingConfig.JWT_SECRET,  # tokens minted here (tests.factories) work there
        "DATABASE_URL": database_url("postgresql", tmp_root),
        "SOCKETIO_MESSAGE_QUEUE": TestingConfig.TEST_REDIS_URL,  # testing leaves it off; instances need it
        "RATE_LIMIT_AUTH": f"{AUTH_LIMIT} per 15 minutes",
        "LOG_LEVEL": "INFO",  # the request lines
        **shared_settings,
    }
    state = tmp_path_factory.mktemp("cluster")
    cluster = Cluster(instances=2, port=free_port(), env=env, state_dir=state).start(prepare=False)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def routes(cluster) -> tuple[tuple[str, Instance], tuple[str, Instance]]:
    """A client address nginx sends to each instance: ((address, instance 0), (address, instance 1))."""
    found: dict[int, str] = {}
    for last in range(10, 60):
        address = f"127.0.0.{last}"
        found.setdefault(cluster.instance_for(address).index, address)
        if len(found) == len(cluster.instances):
            return tuple((found[i.index], i) for i in cluster.instances)
    pytest.fail(f"fifty client addresses all hash to the same instances: {found}")


@pytest.fixture
def backend() -> str:
    """PostgreSQL only, the cluster's database (the suite's `backend` runs SQLite too)."""
    return "postgresql"


@pytest.fixture
def app(make_app, shared_settings) -> Iterator[Flask]:
    """The tests' own app writes to the cluster's database and shares its cache, so its writes invalidate pages."""
    application = make_app(**shared_settings)
    with application.app_context():
        yield application


def test_each_client_address_has_its_own_budget_through_nginx(cluster):
    refused_client, other_client = "127.0.0.2", "127.0.0.3"

    replies = [call(cluster.url, "POST", "/api/v1/auth/login", refused_client, WRONG_LOGIN)
               for _ in range(AUTH_LIMIT + 1)]
    other = call(cluster.url, "POST", "/api/v1/auth/login", other_client, WRONG_LOGIN)

    assert [reply.status for reply in replies] == [401] * AUTH_LIMIT + [429]
    assert replies[-1].body["error"]["code"] == "RATE_LIMITED"
    # nginx's own address (127.0.0.1) is every request's peer: had the app counted it, this one would be refused.
    assert other.status == 401 and other.headers["X-RateLimit-Remaining"] == str(AUTH_LIMIT - 1)
    # The app's request line names the client, wherever nginx sent it.
    for reply, address in [(replies[-1], refused_client), (other, other_client)]:
        request_id = reply.headers["X-Request-ID"]
        line = request_line(cluster.instance_of_request(request_id), request_id)
        assert (line["path"], line["status"], line["clientAddress"]) == ("/api/v1/auth/login", reply.status, address)


def test_a_body_over_the_limit_is_refused_by_nginx_in_the_api_error_shape(cluster):
    connection = http.client.HTTPConnection("127.0.0.1", cluster.port, timeout=15)
    try:  # the headers alone: nginx refuses on Content-Length, before any byte of the body (or any instance)
        connection.putrequest("POST", "/api/v1/uploads")
        for name, value in [("Content-Length", str(10 * 1024 * 1024 + 1)), ("Content-Type", "image/png"),
                            ("X-Request-ID", "too-large-1")]:
            connection.putheader(name, value)
        connection.endheaders()
        response = connection.getresponse()
        body = json.loads(response.read())
    finally:
        connection.close()

    assert response.status == 413 and response.headers["Content-Type"] == "application/json"
    assert response.headers["X-Request-ID"] == "too-large-1"
    assert body["success"] is False and body["error"]["code"] == "PAYLOAD_TOO_LARGE"
    assert body["meta"]["requestId"] == "too-large-1"


def test_a_limit_is_counted_exactly_across_both_instances(cluster):
    # One client as nginx forwards it (X-Forwarded-For naming it, which PROXY_COUNT=1 trusts), its requests sent
    # straight to both instances at once, four each.
    client = "127.0.0.9"
    calls = [partial(call, instance.url, "POST", "/api/v1/auth/login", body=WRONG_LOGIN,
                     headers={"X-Forwarded-For": client, "X-Request-ID": f"exact-{n}-{uuid4().hex}"})
             for n, instance in enumerate(list(cluster.instances) * 4)]

    replies = all_at_once(calls)

    statuses = [reply.status for reply in replies]
    assert sorted(statuses) == [401] * AUTH_LIMIT + [429] * (len(calls) - AUTH_LIMIT), statuses
    assert sorted(r.headers["X-RateLimit-Remaining"] for r in replies if r.status == 401) == ["0", "1", "2"]
    for instance in cluster.instances:  # each instance counted the client, not the caller's own address
        mine = [r for r, c in zip(replies, calls, strict=True) if c.args[0] == instance.url]
        lines = [request_line(instance, r.headers["X-Request-ID"]) for r in mine]
        assert [line["clientAddress"] for line in lines] == [client] * 4


def test_a_write_through_one_instance_invalidates_the_cached_read_on_the_other(cluster, routes, factory):
    (writer, writer_instance), (reader, reader_instance) = routes
    admin = {"Authorization": f"Bearer {factory.token(factory.admin())}"}
    product = factory.product(name="Before", quantity=10)
    page = f"/api/v1/products/{product.id}"

    def read() -> Reply:
        reply = call(cluster.url, "GET", page, reader)
        assert reply.status == 200, reply.body
        assert cluster.instance_of_request(reply.headers["X-Request-ID"]) is reader_instance
        return reply

    assert read().headers["X-Cache"] == "MISS"
    assert read().headers["X-Cache"] == "HIT"
    changed = call(cluster.url, "PATCH", page, writer, {"name": "After"}, admin)
    assert changed.status == 200, changed.body
    assert cluster.instance_of_request(changed.headers["X-Request-ID"]) is writer_instance

    after = read()

    assert after.headers["X-Cache"] == "MISS" and after.body["name"] == "After"


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_the_js_client_through_nginx_hears_a_change_made_through_the_other_instance(cluster, routes, node, factory,
                                                                                     transport):
    (holder_address, holder), (writer, writer_instance) = routes
    customer, admin = factory.user(), factory.admin()
    order = factory.order_of(customer, factory.product())
    client = Tracker(node, cluster.url, factory.token(customer), order.id, transport, local_address=holder_address)
    try:
        assert client.wait_for("tracking") == {"orderId": order.id, "status": "pending"}
        assert client.events("connect")[0]["transport"] == transport

        moved = call(cluster.url, "PATCH", f"/api/v1/orders/{order.id}/status", writer, {"status": "confirmed"},
                     {"Authorization": f"Bearer {factory.token(admin)}"})
        assert moved.status == 200, moved.body
        assert cluster.instance_of_request(moved.headers["X-Request-ID"]) is writer_instance

        assert client.finish() == EXIT_OK, client.lines
    finally:
        client.stop()
    [update] = client.events("order_status_update")
    assert (update["orderId"], update["status"], update["previousStatus"]) == (order.id, "confirmed", "pending")
    # Every request of the socket (the websocket's one upgrade, or each long-poll) went to the holder.
    socket_ports = set()
    deadline = time.monotonic() + 5
    while not socket_ports and time.monotonic() < deadline:  # a websocket's line is written when it closes
        socket_ports = {int(port) for line in cluster.nginx_log.read_text().splitlines()
                        if line.startswith(f"{holder_address} ") and "/socket.io/" in line
                        for port in UPSTREAM.findall(line)}
        time.sleep(0.05)
    assert socket_ports == {holder.port}
