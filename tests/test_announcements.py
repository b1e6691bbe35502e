"""Announcements and real-time figures for administrators: `POST /admin/announcements`, `GET /admin/realtime/stats`
and `flask announce`, in process (Flask-SocketIO's test client, no message queue), on SQLite and PostgreSQL.

That `flask announce` run as a separate process reaches the clients of a live server is tests/test_realtime.py's;
here the command's own checks, and what it publishes to the message queue.
"""

from __future__ import annotations

import json
import socket
import time
import uuid

import pytest

from config import TestingConfig
from fantasize.platform.openapi import spec_for
from fantasize.realtime import realtime_of
from tests.support import shared_redis
from tests.test_openapi import conforms

ANNOUNCE = "/api/v1/admin/announcements"
STATS = "/api/v1/admin/realtime/stats"
GOOD = {"title": "Maintenance tonight", "message": "The shop pauses 02:00-02:30 UTC.", "type": "maintenance"}


def connect(app, token: str | None = None):
    return app.extensions["socketio"].test_client(app, auth={"token": token} if token else None)


def announcements(app, *socks) -> list[list[dict]]:
    """The system_announcement payloads each socket received since last asked."""
    realtime_of(app).outbox.flush()
    return [[event["args"][0] for event in sock.get_received() if event["name"] == "system_announcement"]
            for sock in socks]


@pytest.fixture
def admin_headers(factory):
    return factory.headers(factory.admin())


# POST /admin/announcements


def test_an_announcement_reaches_every_client_signed_in_or_not(app, client, factory, admin_headers):
    customer = factory.user()
    socks = [connect(app), connect(app, factory.token(customer)), connect(app, factory.token(factory.admin()))]
    announcements(app, *socks)  # what connecting brought (authenticated)

    response = client.post(ANNOUNCE, json=GOOD, headers=admin_headers)

    assert response.status_code == 202, response.json
    sent = response.json
    assert {key: sent[key] for key in ("title", "message", "type")} == GOOD
    assert sent["timestamp"].endswith("Z")
    assert announcements(app, *socks) == [[sent], [sent], [sent]]  # once each, exactly what the answer says
    conforms(spec_for(app), ANNOUNCE, "post", response)


def test_v2_wraps_the_same_payload_in_the_envelope(app, client, admin_headers):
    sock = connect(app)
    response = client.post("/api/v2/admin/announcements", json={"title": "Hi", "message": "All good"},
                           headers=admin_headers)
    assert response.status_code == 202
    assert response.json["success"] is True and response.json["meta"]["version"] == "v2"
    assert response.json["data"]["type"] == "info"  # the default
    assert announcements(app, sock) == [[response.json["data"]]]
    conforms(spec_for(app), "/api/v2/admin/announcements", "post", response)


def test_html_is_removed_from_the_texts_and_plain_text_is_kept_exactly(app, client, admin_headers):
    sock = connect(app)
    response = client.post(ANNOUNCE, headers=admin_headers, json={
        "title": "<b>Sale</b> <script>alert(1)</script>ends <i>soon</i>",
        "message": "5 < 6 & O'Brien's \"DROP earrings -- 50% off\"\ttab\nnewline",
    })
    assert response.status_code == 202, response.json
    assert response.json["title"] == "Sale ends soon"
    assert response.json["message"] == "5 < 6 & O'Brien's \"DROP earrings -- 50% off\"\ttab\nnewline"
    [[heard]] = announcements(app, sock)
    assert heard["title"] == "Sale ends soon"


def test_the_longest_texts_are_accepted(app, client, admin_headers):
    body = {"title": "t" * 200, "message": "m" * 2000, "type": "warning"}
    response = client.post(ANNOUNCE, json=body, headers=admin_headers)
    assert response.status_code == 202, response.json
    assert (len(response.json["title"]), len(response.json["message"])) == (200, 2000)


@pytest.mark.parametrize(("body", "field"), [
    ({"message": "m"}, "title"),
    ({"title": "t"}, "message"),
    ({"title": "", "message": "m"}, "title"),
    ({"title": "t", "message": ""}, "message"),
    ({"title": "t" * 201, "message": "m"}, "title"),
    ({"title": "t", "message": "m" * 2001}, "message"),
    ({"title": "t", "message": "m", "type": "urgent"}, "type"),
    ({"title": "t", "message": "m", "type": None}, "type"),
    ({"title": 12, "message": "m"}, "title"),
    ({"title": ["t"], "message": "m"}, "title"),
    ({"title": "t\x07", "message": "m"}, "title"),
    ({"title": "t", "message": "line\x00"}, "message"),
    ({"title": "<img src=x onerror=alert(1)>", "message": "m"}, "title"),
    ({"title": "t", "message": "m", "audience": "everyone"}, "audience"),
])
def test_an_invalid_announcement_is_422_naming_the_field_and_sends_nothing(app, client, admin_headers, body, field):
    sock = connect(app)
    response = client.post(ANNOUNCE, json=body, headers=admin_headers)
    assert response.status_code == 422, response.json
    assert response.json["error"]["code"] == "VALIDATION_ERROR"
    assert list(response.json["error"]["details"]) == [field]
    assert announcements(app, sock) == [[]]


@pytest.mark.parametrize(("data", "content_type", "status"), [
    ("{not json", "application/json", 400),
    ('["a list"]', "application/json", 400),
    ("title=t&message=m", "application/x-www-form-urlencoded", 415),
])
def test_a_body_that_is_not_a_json_object_is_refused(app, client, admin_headers, data, content_type, status):
    sock = connect(app)
    response = client.post(ANNOUNCE, data=data, content_type=content_type, headers=admin_headers)
    assert response.status_code == status, response.json
    assert announcements(app, sock) == [[]]


def test_only_administrators_may_announce(app, client, factory):
    sock = connect(app)
    anonymous = client.post(ANNOUNCE, json=GOOD)
    assert anonymous.status_code == 401 and anonymous.headers["WWW-Authenticate"] == "Bearer"
    customer = client.post(ANNOUNCE, json=GOOD, headers=factory.headers(factory.user()))
    assert customer.status_code == 403 and customer.json["error"]["code"] == "FORBIDDEN"
    bad_token = client.post(ANNOUNCE, json=GOOD, headers={"Authorization": "Bearer not-a-token"})
    assert bad_token.status_code == 401
    assert announcements(app, sock) == [[]]


def test_every_version_serves_the_same_view_and_the_document_lists_v1_and_v2(app, client, admin_headers):
    unversioned = client.post("/api/admin/announcements", json=GOOD, headers=admin_headers)
    assert unversioned.status_code == 202 and unversioned.json["title"] == GOOD["title"]  # the default, v1
    asked_v2 = client.post("/api/admin/announcements", json=GOOD, headers={**admin_headers, "API-Version": "v2"})
    assert asked_v2.status_code == 202 and asked_v2.json["data"]["title"] == GOOD["title"]
    paths = spec_for(app)["paths"]
    for version in ("v1", "v2"):
        operation = paths[f"/api/{version}/admin/announcements"]["post"]
        assert {"202", "401", "403", "422"} <= set(operation["responses"])
        assert operation["requestBody"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/AnnouncementIn"}
        assert set(paths[f"/api/{version}/admin/realtime/stats"]["get"]["responses"]) >= {"200", "401", "403"}


def test_announcements_count_against_the_admin_rate_limit(make_app, factory):
    app = make_app(RATE_LIMIT_ADMIN="2 per 5 minutes")
    with app.app_context():
        client, headers = app.test_client(), factory.headers(factory.admin())
        answers = [client.post(ANNOUNCE, json=GOOD, headers=headers) for _ in range(3)]
    assert [a.status_code for a in answers] == [202, 202, 429]
    assert answers[0].headers["X-RateLimit-Limit"] == "2"


# GET /admin/realtime/stats


def stats(client, headers) -> dict:
    response = client.get(STATS, headers=headers)
    assert response.status_code == 200, response.json
    return response.json


def test_with_nobody_connected_the_figures_are_zero(app, client, admin_headers):
    figures = stats(client, admin_headers)
    assert figures["messageQueue"] is None and figures["complete"] is True
    here = figures["instance"]
    assert figures["instances"] == [here]
    assert here["asyncMode"] == "threading"
    assert (here["connectedClients"], here["authenticatedClients"], here["authenticatedUsers"]) == (0, 0, 0)
    assert here["rooms"] == {kind: {"rooms": 0, "members": 0} for kind in ("user", "order", "inventory")}
    assert "userIds" not in here


def test_the_figures_count_sockets_users_and_rooms(app, client, factory, admin_headers):
    first, second, admin = factory.user(), factory.user(), factory.admin()
    product, other_product = factory.product(quantity=3), factory.product(quantity=4)
    order = factory.order_of(first, product)
    anonymous = connect(app)
    first_phone, first_laptop = connect(app, factory.token(first)), connect(app, factory.token(first))
    second_sock, admin_sock = connect(app, factory.token(second)), connect(app, factory.token(admin))
    assert first_phone.emit("track_order", order.id, callback=True)["orderId"] == order.id
    assert admin_sock.emit("track_order", order.id, callback=True)["orderId"] == order.id
    for sock, item in ((anonymous, product), (second_sock, product), (anonymous, other_product)):
        assert sock.emit("track_inventory", item.id, callback=True)["productId"] == item.id

    response = client.get(STATS, headers=admin_headers)
    assert response.status_code == 200
    conforms(spec_for(app), STATS, "get", response)
    here = response.json["instance"]
    assert (here["connectedClients"], here["authenticatedClients"], here["authenticatedUsers"]) == (5, 4, 3)
    assert here["rooms"] == {
        "user": {"rooms": 3, "members": 4},  # first's two sockets share one room
        "order": {"rooms": 1, "members": 2},
        "inventory": {"rooms": 2, "members": 3},
    }
    assert response.json["total"] == {
        "instances": 1, "connectedClients": 5, "authenticatedClients": 4, "authenticatedUsers": 3,
        "rooms": {"user": {"members": 4}, "order": {"members": 2}, "inventory": {"members": 3}},
    }

    first_laptop.disconnect()
    anonymous.disconnect()
    admin_sock.emit("untrack_order", order.id, callback=True)
    here = stats(client, admin_headers)["instance"]
    assert (here["connectedClients"], here["authenticatedClients"], here["authenticatedUsers"]) == (3, 3, 3)
    assert here["rooms"]["order"] == {"rooms": 1, "members": 1}
    assert here["rooms"]["inventory"] == {"rooms": 1, "members": 1}


def test_v2_wraps_the_figures_in_the_envelope(app, client, admin_headers):
    connect(app)
    response = client.get("/api/v2/admin/realtime/stats", headers=admin_headers)
    assert response.status_code == 200 and response.json["success"] is True
    assert response.json["data"]["total"]["connectedClients"] == 1
    conforms(spec_for(app), "/api/v2/admin/realtime/stats", "get", response)


def test_only_administrators_see_the_figures(client, factory):
    assert client.get(STATS).status_code == 401
    assert client.get(STATS, headers=factory.headers(factory.user())).status_code == 403


# flask announce


def test_announce_without_a_message_queue_fails_and_points_at_the_http_route(app, runner):
    sock = connect(app)
    result = runner.invoke(args=["announce", "Hello", "Everyone"])
    assert result.exit_code == 1, result.output
    assert "only reach the clients of running servers through Redis" in result.output
    assert "POST /api/v1/admin/announcements" in result.output
    assert announcements(app, sock) == [[]]  # not even this process's own clients: it says nothing was sent


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_announce_fails_clearly_when_redis_refuses_and_never_shows_its_password(make_app):
    app = make_app(SOCKETIO_MESSAGE_QUEUE=f"redis://:hunter2-secret@127.0.0.1:{closed_port()}/0")
    started = time.monotonic()
    result = app.test_cli_runner().invoke(args=["announce", "Hello", "Everyone"])
    assert result.exit_code == 1, result.output
    assert "is unreachable" in result.output and "Nothing was sent" in result.output
    assert "hunter2" not in result.output
    assert time.monotonic() - started < 5


def test_announce_gives_up_quickly_on_a_redis_that_never_answers(make_app):
    with socket.socket() as silent:  # accepts connections (the kernel's backlog) but never replies
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        app = make_app(SOCKETIO_MESSAGE_QUEUE=f"redis://127.0.0.1:{silent.getsockname()[1]}/0")
        started = time.monotonic()
        result = app.test_cli_runner().invoke(args=["announce", "Hello", "Everyone"])
        elapsed = time.monotonic() - started
    assert result.exit_code == 1, result.output
    assert "is unreachable" in result.output and "Timeout" in result.output
    assert elapsed < 5


@pytest.mark.parametrize(("args", "named"), [
    (["t" * 201, "m"], "TITLE"),
    (["t", "m" * 2001], "MESSAGE"),
    (["", "m"], "TITLE"),
    (["t\x1b[2J", "m"], "TITLE"),
    (["<script>x</script>", "m"], "TITLE"),
    (["t", "m", "--type", "urgent"], "--type"),
])
def test_announce_checks_its_arguments_with_the_routes_schema_before_anything_else(runner, args, named):
    result = runner.invoke(args=["announce", *args])
    assert result.exit_code == 2, result.output
    assert named in result.output
    assert "message queue" not in result.output.lower()  # refused before the queue is even looked at


def test_announce_publishes_the_cleaned_payload_on_the_message_queue(make_app):
    redis = shared_redis()
    prefix = f"test:announce:{uuid.uuid4().hex}:"
    app = make_app(SOCKETIO_MESSAGE_QUEUE=TestingConfig.TEST_REDIS_URL, CACHE_KEY_PREFIX=prefix)
    channel = redis.pubsub()
    channel.subscribe(f"{prefix}socketio")  # the servers' channel (pub/sub ignores the database number)
    try:
        assert channel.get_message(timeout=5)["type"] == "subscribe"  # listening before anything is sent
        result = app.test_cli_runner().invoke(
            args=["announce", "<em>Back</em> soon", "Deploying v2 & more", "--type", "warning"])
        assert result.exit_code == 0, result.output
        message = channel.get_message(timeout=5)
    finally:
        channel.close()
    assert message is not None, "nothing was published"
    published = json.loads(message["data"])
    assert (published["method"], published["event"], published["room"]) == ("emit", "system_announcement", None)
    [payload] = published["data"]
    assert {key: payload[key] for key in ("title", "message", "type")} == {
        "title": "Back soon", "message": "Deploying v2 & more", "type": "warning"}
    assert payload["timestamp"] in result.output
