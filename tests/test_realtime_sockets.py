"""Socket handlers and the outbox, in process (Flask-SocketIO's test client, no message queue), on SQLite and
PostgreSQL. Fan-out through Redis, across instances and with real clients is tests/test_realtime.py's."""

from __future__ import annotations

import logging
import threading
import time
from types import SimpleNamespace

import jwt
import psycopg2
import pytest

from fantasize.extensions import db
from fantasize.realtime import realtime_of, sockets
from fantasize.realtime.sockets import Socket
from fantasize.services.tokens import ALGORITHM


@pytest.fixture
def rt(app):
    return realtime_of(app)


def connect(app, token: str | None = None):
    return app.extensions["socketio"].test_client(app, auth={"token": token} if token else None)


def received(app, sock, name: str | None = None) -> list:
    realtime_of(app).outbox.flush()
    events = sock.get_received()
    return [event["args"][0] for event in events if name is None or event["name"] == name]


def test_ids_are_checked_and_every_event_answers_through_its_ack(app, factory):
    user = factory.user()
    sock = connect(app, factory.token(user))
    for bad in (0, -1, True, 1.5, "01", "x", None, 2**31, {"orderId": "a"}, [1], {"orderId": 1, "x": 2}):
        assert sock.emit("track_order", bad, callback=True)["error"]["code"] == "VALIDATION_ERROR", bad
    order = factory.order_of(user, factory.product())
    for good in (order.id, str(order.id), {"orderId": order.id}):
        assert sock.emit("track_order", good, callback=True) == {"orderId": order.id, "status": "pending"}
    assert sock.emit("untrack_order", order.id, callback=True) == {"orderId": order.id}


def test_the_public_cannot_track_what_it_cannot_see(app, factory):
    hidden = factory.product(is_active=False)
    shown = factory.product(quantity=7)
    anonymous = connect(app)
    assert anonymous.emit("track_inventory", hidden.id, callback=True)["error"]["code"] == "NOT_FOUND"
    assert anonymous.emit("track_inventory", shown.id, callback=True) == {"productId": shown.id, "quantity": 7}
    admin = connect(app, factory.token(factory.admin()))
    assert admin.emit("track_inventory", hidden.id, callback=True)["productId"] == hidden.id


@pytest.mark.parametrize("backend", ["postgresql"])
def test_a_product_update_racing_a_deactivation_tells_the_public_nothing(app, factory, client):
    """A product PATCH that sets the stock while another transaction deactivates the product (committing after
    the PATCH began) announces the stock as the row stands when it commits: inactive, so the public room hears
    nothing. Fails against the update reading `is_active` from its row unlocked (the old value, active)."""
    product = factory.product(quantity=5)
    headers = factory.headers(factory.admin())
    anonymous = connect(app)
    assert anonymous.emit("track_inventory", product.id, callback=True)["quantity"] == 5
    received(app, anonymous)
    other = psycopg2.connect(db.engine.url.render_as_string(hide_password=False))
    try:
        with other.cursor() as cur:  # deactivated, not yet committed: the row is locked
            cur.execute("UPDATE products SET is_active = false WHERE id = %s", (product.id,))
        answers: list = []
        patch = threading.Thread(target=lambda: answers.append(
            client.patch(f"/api/v1/products/{product.id}", json={"quantity": 77}, headers=headers)))
        patch.start()
        time.sleep(0.5)  # the PATCH has read what it reads before it waits for the row
        other.commit()
        patch.join(10)
    finally:
        other.close()
    assert answers and answers[0].status_code == 200 and answers[0].json["quantity"] == 77
    assert received(app, anonymous, "inventory_update") == []


def test_a_socket_may_send_so_many_events_a_minute(make_app, factory, monkeypatch):
    """The limit is a sliding minute, through the handlers: refused past it, answered again once the minute
    moved on. (Caught: the limit turned into a lifetime cap, Socket.allow_event never dropping old events.)"""
    clock = {"now": 1000.0}
    # The registry's clock only (not the time module's, which the server's own timers use).
    monkeypatch.setattr(sockets, "time", SimpleNamespace(monotonic=lambda: clock["now"]))
    app = make_app(SOCKET_EVENTS_PER_MINUTE=3)
    with app.app_context():
        product = factory.product()
        sock = connect(app)

        def track() -> dict:
            return sock.emit("track_inventory", product.id, callback=True)

        answers = [track() for _ in range(4)]
        assert [a.get("productId") for a in answers[:3]] == [product.id] * 3
        assert answers[3]["error"]["code"] == "RATE_LIMITED"
        assert received(app, sock, "error")[-1]["code"] == "RATE_LIMITED"
        clock["now"] += 59.9
        assert track()["error"]["code"] == "RATE_LIMITED"  # the minute has not passed yet
        clock["now"] += 0.1
        # A minute after the first three: all three slid out (the refused ones were never counted).
        assert [track().get("productId") for _ in range(3)] == [product.id] * 3
        assert track()["error"]["code"] == "RATE_LIMITED"


def test_the_event_limit_is_a_sliding_minute():
    """Socket.allow_event across the window: each event counts for exactly 60 s from when it was sent, so a
    long-lived socket gets back one event per event that slid out, never a lifetime cap nor a fixed window.
    (Caught: the limit turned into a lifetime cap, no event ever dropped from `sent`.)"""
    sock = Socket("sid")
    for at in (0.0, 10.0, 20.0):
        assert sock.allow_event(3, now=at)
    assert not sock.allow_event(3, now=20.0)
    assert not sock.allow_event(3, now=59.999)  # the event at 0 still counts
    assert sock.allow_event(3, now=60.0)  # it slid out: one place, no more
    assert not sock.allow_event(3, now=60.0)
    assert not sock.allow_event(3, now=69.9)
    assert sock.allow_event(3, now=70.0)  # the event at 10 slid out
    assert not sock.allow_event(3, now=75.0)
    # Refused events are not counted: at 80 the event at 20 slides out, whatever was refused since.
    assert sock.allow_event(3, now=80.0)
    assert not sock.allow_event(3, now=80.5)
    # Long after, the whole budget is back, for as long as the socket lives.
    for start in (1_000.0, 10_000.0, 100_000.0):
        assert [sock.allow_event(3, now=start + step) for step in (0, 1, 2, 3)] == [True, True, True, False]
    assert len(sock.sent) == 3  # what is kept is bounded by the limit, whatever the socket sent


def test_a_partly_slid_window_frees_one_place_per_event_that_left_it():
    """A window partly slid: events sent at different times leave it one by one, in the order they were sent.
    (Caught: a lifetime cap, and a fixed window that forgets every event once the oldest is a minute old.)"""
    sock = Socket("sid")
    assert all(sock.allow_event(2, now=at) for at in (100.0, 130.0))
    assert not sock.allow_event(2, now=159.0)
    assert sock.allow_event(2, now=160.5)  # 100 slid out; 130 and 160.5 now count
    assert not sock.allow_event(2, now=189.9)
    assert sock.allow_event(2, now=190.0)  # 130 slid out
    assert not sock.allow_event(2, now=220.4)  # 160.5 still counts
    assert sock.allow_event(2, now=220.5)


def test_an_expired_token_ends_the_session_at_the_next_event(app, factory):
    user = factory.user()
    order = factory.order_of(user, factory.product())
    now = int(time.time())
    token = jwt.encode({"sub": str(user.id), "ver": user.token_version, "iat": now, "exp": now + 2},
                       app.config["JWT_SECRET"], algorithm=ALGORITHM)
    sock = connect(app, token)
    assert sock.emit("track_order", order.id, callback=True)["orderId"] == order.id
    time.sleep(2.1)
    assert sock.emit("track_order", order.id, callback=True)["error"]["code"] == "UNAUTHENTICATED"
    assert received(app, sock, "auth_error") == [{"message": "Token has expired"}]


def test_signing_in_as_someone_else_leaves_the_first_users_rooms(app, factory, client):
    """The first user's order moves (the PATCH succeeds, and a tracker that stayed hears it), and the socket that
    signed in as someone else hears nothing of it. (Caught: a refused PATCH, wrong URL or body, which emits
    nothing and so passed whatever the rooms.)"""
    first, second, admin = factory.user(), factory.user(), factory.admin()
    order = factory.order_of(first, factory.product())
    sock = connect(app, factory.token(first))
    assert sock.emit("track_order", order.id, callback=True) == {"orderId": order.id, "status": "pending"}
    stayed = connect(app, factory.token(first))  # the first user's other socket: their room and the order's
    assert stayed.emit("track_order", order.id, callback=True) == {"orderId": order.id, "status": "pending"}
    assert sock.emit("authenticate", factory.token(second), callback=True)["userId"] == second.id
    received(app, sock)
    received(app, stayed)
    answer = client.patch(f"/api/v1/orders/{order.id}/status", json={"status": "confirmed"},
                          headers=factory.headers(admin))
    assert answer.status_code == 200, answer.json
    assert answer.json["status"] == "confirmed"
    assert [update["orderId"] for update in received(app, stayed, "order_status_update")] == [order.id]
    assert received(app, sock) == []


def test_status_update_then_notification_in_order_with_the_customers_details_only(app, factory, client):
    user, admin = factory.user(), factory.admin()
    order = factory.order_of(user, factory.product())
    sock = connect(app, factory.token(user))
    sock.emit("track_order", order.id)
    received(app, sock)
    answer = client.patch(f"/api/v1/orders/{order.id}/status", headers=factory.headers(admin),
                          json={"status": "confirmed", "details": {"trackingNumber": "TN-1", "note": "fragile"}})
    assert answer.status_code == 200
    realtime_of(app).outbox.flush()
    events = sock.get_received()
    # One copy although the socket is in both the order's room and its owner's.
    assert [event["name"] for event in events] == ["order_status_update", "real_time_notification"]
    update = events[0]["args"][0]
    assert update["details"] == {"trackingNumber": "TN-1"}
    assert update["previousStatus"] == "pending" and update["status"] == "confirmed"
    assert update["timestamp"].endswith("Z")


def test_inventory_updates_carry_no_order_id(app, factory, client):
    user = factory.user()
    product = factory.product(quantity=5)
    sock = connect(app)
    sock.emit("track_inventory", product.id)
    received(app, sock)
    answer = client.post("/api/v1/orders", headers=factory.headers(user),
                         json={"items": [{"productId": product.id, "quantity": 2}]})
    assert answer.status_code == 201, answer.json
    [update] = received(app, sock, "inventory_update")
    assert update["productId"] == product.id
    assert (update["quantity"], update["previousQuantity"]) == (3, 5)
    assert update["details"] == {"reason": "order_placed"}


def test_an_emit_that_fails_never_fails_the_request(app, factory, client, rt, monkeypatch, caplog):
    """An emit that raises is logged, and the request that committed the change answers regardless. A queue that
    hangs rather than fails (which catches an emit made in the request's way) is tests/test_realtime_outage.py's."""
    product = factory.product(quantity=5)

    def broken(*_args, **_kwargs):
        raise ConnectionError("Redis is away")

    monkeypatch.setattr(rt.socketio, "emit", broken)
    with caplog.at_level(logging.ERROR, logger="fantasize.realtime"):
        answer = client.patch(f"/api/v1/products/{product.id}/stock", json={"quantity": 9},
                              headers=factory.headers(factory.admin()))
        assert rt.outbox.flush()
    assert answer.status_code == 200 and answer.json["quantity"] == 9
    assert "real-time emit failed" in caplog.text


@pytest.mark.parametrize("backend", ["sqlite"])
def test_the_outbox_keeps_a_bounded_backlog_and_says_so_once(app, rt, caplog):
    """While emits hang (a message queue that never answers), at most `capacity` jobs wait; newer ones are dropped
    and counted, and a minute's drops are one log line, as are a minute's failed emits. Fails against an unbounded
    outbox (every job kept) and against a warning per drop."""
    release = threading.Event()
    rt.outbox.capacity = 5
    rt.outbox.put(lambda: release.wait(10))  # the worker takes it and hangs, as an emit to a silent Redis does
    deadline = time.monotonic() + 5
    while rt.outbox._queue.qsize() and time.monotonic() < deadline:
        time.sleep(0.01)
    with caplog.at_level(logging.WARNING, logger="fantasize.realtime"):
        for _ in range(50):
            rt.outbox.put(lambda: None)
        assert rt.outbox._queue.qsize() == 5 and rt.outbox.dropped == 45
        release.set()
        assert rt.outbox.flush()
        for _ in range(3):
            rt.outbox.put(lambda: 1 / 0)
        assert rt.outbox.flush()
    assert caplog.text.count("real-time outbox full") == 1
    assert caplog.text.count("real-time emit failed") == 1


def test_a_disconnected_socket_is_forgotten(app, factory, rt):
    sock = connect(app, factory.token(factory.user()))
    assert len(rt.registry) == 1
    sock.disconnect()
    assert len(rt.registry) == 0


@pytest.mark.parametrize(("origin", "allowed"), [
    (None, True),  # not a browser
    ("http://localhost", True),  # the app's own origin (the test client's Host)
    ("https://shop.example.com", True),  # CORS_ORIGIN
    ("http://127.0.0.1:5000", True),  # PUBLIC_BASE_URL's
    ("https://evil.example", False),
    ("null", False),
])
def test_sockets_open_from_the_apps_own_origin_and_cors_origins_only(make_app, origin, allowed):
    app = make_app(CORS_ORIGIN="https://shop.example.com", PUBLIC_BASE_URL="http://127.0.0.1:5000")
    headers = {"Origin": origin} if origin else {}
    answer = app.test_client().get("/socket.io/?EIO=4&transport=polling", headers=headers)
    assert answer.status_code == (200 if allowed else 400), answer.data
    if allowed and origin:
        assert answer.headers["Access-Control-Allow-Origin"] == origin
