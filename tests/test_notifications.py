"""Notifications: the owner's inbox (unread first), marking read, and the order-status subscriber that fills it."""

from __future__ import annotations

from datetime import timedelta

import pytest

from fantasize import events
from fantasize.events import NotificationCreated, OrderStatusChanged
from fantasize.extensions import db
from fantasize.models import Notification
from fantasize.models.base import utcnow
from fantasize.models.orders import ORDER_STATUSES
from fantasize.services.notifications import ORDER_STATUS_TEXTS, notify

NOTIFICATION_KEYS = {"id", "title", "message", "type", "data", "readAt", "createdAt", "isRead"}


def add(user, title="Hello", minutes_ago=0, read=False, **fields):
    """A committed notification created `minutes_ago`, optionally already read."""
    now = utcnow()
    notification = Notification(user_id=user.id, title=title, message=f"{title}!", type="info",
                                created_at=now - timedelta(minutes=minutes_ago), read_at=now if read else None,
                                **fields)
    db.session.add(notification)
    db.session.commit()
    return notification


def titles(response):
    assert response.status_code == 200, response.json
    return [n["title"] for n in response.json]


@pytest.fixture
def delivered():
    seen: list = []

    def record(event):
        seen.append(event)

    events.after_commit(NotificationCreated)(record)
    yield seen
    events.unsubscribe(record)


# The inbox


def test_unread_come_first_then_newest_first(client, factory):
    user = factory.user()
    add(user, "old unread", minutes_ago=30)
    add(user, "new read", minutes_ago=1, read=True)
    add(user, "new unread", minutes_ago=2)
    add(user, "old read", minutes_ago=40, read=True)
    response = client.get("/api/v1/notifications", headers=factory.headers(user))
    assert titles(response) == ["new unread", "old unread", "new read", "old read"]
    assert response.headers["X-Total-Count"] == "4"
    assert [n["isRead"] for n in response.json] == [False, False, True, True]


def test_the_unread_filter(client, factory):
    user = factory.user()
    add(user, "read", read=True)
    add(user, "unread")
    headers = factory.headers(user)
    assert titles(client.get("/api/v1/notifications?unread=true", headers=headers)) == ["unread"]
    assert titles(client.get("/api/v1/notifications?unread=false", headers=headers)) == ["read"]
    assert client.get("/api/v1/notifications?unread=maybe", headers=headers).status_code == 400


def test_the_inbox_is_paginated(client, factory):
    user = factory.user()
    for n in range(5):
        add(user, f"n{n}", minutes_ago=n)
    headers = factory.headers(user)
    assert titles(client.get("/api/v1/notifications?limit=2&page=2", headers=headers)) == ["n2", "n3"]
    body = client.get("/api/v2/notifications?limit=2", headers=headers).json
    assert body["meta"]["pagination"] == {"page": 1, "limit": 2, "total": 5, "pages": 3}


def test_a_notification_renders_every_field(client, factory):
    user = factory.user()
    add(user, "Order #3 shipped", data={"orderId": 3, "status": "shipped"})
    body = client.get("/api/v1/notifications", headers=factory.headers(user)).json[0]
    assert set(body) == NOTIFICATION_KEYS
    assert body["message"] == "Order #3 shipped!" and body["type"] == "info"
    assert body["data"] == {"orderId": 3, "status": "shipped"}
    assert body["readAt"] is None and body["createdAt"].endswith("Z")


def test_users_see_only_their_own_notifications(client, factory):
    owner, other = factory.user(), factory.user()
    add(owner, "mine")
    add(other, "theirs")
    assert titles(client.get("/api/v1/notifications", headers=factory.headers(owner))) == ["mine"]


def test_notifications_need_a_token(client, factory):
    notification = add(factory.user())
    assert client.get("/api/v1/notifications").status_code == 401
    assert client.post(f"/api/v1/notifications/{notification.id}/read").status_code == 401
    assert client.post("/api/v1/notifications/read-all").status_code == 401


# Marking read


def test_marking_read_sets_read_at_once_and_is_idempotent(client, factory):
    user = factory.user()
    notification_id = add(user).id
    headers = factory.headers(user)
    first = client.post(f"/api/v1/notifications/{notification_id}/read", headers=headers)
    assert first.status_code == 200
    assert first.json["isRead"] is True and first.json["readAt"].endswith("Z")
    again = client.post(f"/api/v1/notifications/{notification_id}/read", headers=headers)
    assert again.status_code == 200
    assert again.json["readAt"] == first.json["readAt"]


def test_another_users_notification_is_404(client, factory):
    owner, other = factory.user(), factory.user()
    notification_id = add(owner).id
    response = client.post(f"/api/v1/notifications/{notification_id}/read", headers=factory.headers(other))
    assert response.status_code == 404
    assert client.post("/api/v1/notifications/999999/read", headers=factory.headers(other)).status_code == 404
    assert client.get("/api/v1/notifications?unread=true", headers=factory.headers(owner)).json[0]["isRead"] is False


def test_read_all_marks_only_the_users_unread_ones_and_counts_them(client, factory):
    user, other = factory.user(), factory.user()
    add(user, "a")
    add(user, "b")
    already = add(user, "c", read=True)
    already_read_at = already.read_at
    add(other, "theirs")
    headers = factory.headers(user)
    response = client.post("/api/v1/notifications/read-all", headers=headers)
    assert response.status_code == 200
    assert response.json == {"updated": 2}
    assert client.get("/api/v1/notifications?unread=true", headers=headers).json == []
    assert client.post("/api/v1/notifications/read-all", headers=headers).json == {"updated": 0}
    assert len(client.get("/api/v1/notifications?unread=true", headers=factory.headers(other)).json) == 1
    db.session.expire_all()
    assert db.session.get(Notification, already.id).read_at == already_read_at


def test_read_all_in_v2_is_enveloped(client, factory):
    user = factory.user()
    add(user)
    body = client.post("/api/v2/notifications/read-all", headers=factory.headers(user)).json
    assert body["success"] is True and body["data"] == {"updated": 1}


# notify() and the order-status subscriber


def test_notify_joins_the_callers_transaction_and_is_delivered_after_commit(client, factory, delivered):
    user = factory.user()
    notification = notify(user.id, "Welcome", "Glad you are here", "success", {"coupon": "HELLO"})
    assert delivered == []
    db.session.commit()
    assert [(e.notification_id, e.user_id, e.title, e.type, e.data) for e in delivered] == [
        (notification.id, user.id, "Welcome", "success", {"coupon": "HELLO"})
    ]
    assert titles(client.get("/api/v1/notifications", headers=factory.headers(user))) == ["Welcome"]


def test_notify_rolled_back_leaves_nothing_and_announces_nothing(client, factory, delivered):
    user = factory.user()
    notify(user.id, "Welcome", "Glad you are here")
    db.session.rollback()
    db.session.commit()
    assert delivered == []
    assert client.get("/api/v1/notifications", headers=factory.headers(user)).json == []


def test_notify_refuses_an_unknown_type(app, factory):
    with pytest.raises(ValueError):
        notify(factory.user().id, "Hi", "there", "urgent")


def test_an_order_status_change_notifies_the_owner_in_the_same_transaction(client, factory, delivered):
    user, admin = factory.user(), factory.admin()
    order = factory.order_of(user, factory.product(), status="confirmed")
    events.announce(OrderStatusChanged(order.id, user.id, "confirmed", "pending", None, admin.id))
    db.session.commit()
    [notification] = client.get("/api/v1/notifications", headers=factory.headers(user)).json
    assert notification["title"] == f"Order #{order.id} confirmed"
    assert notification["message"] == f"Your order #{order.id} has been confirmed."
    assert notification["type"] == "success"
    assert notification["data"] == {"orderId": order.id, "status": "confirmed", "previousStatus": "pending",
                                    "details": None}
    assert [e.notification_id for e in delivered] == [notification["id"]]
    assert client.get("/api/v1/notifications", headers=factory.headers(admin)).json == []


def test_placing_an_order_notifies_that_it_was_placed(client, factory):
    user = factory.user()
    order = factory.order_of(user, factory.product())
    events.announce(OrderStatusChanged(order.id, user.id, "pending", None))
    db.session.commit()
    [notification] = client.get("/api/v1/notifications", headers=factory.headers(user)).json
    assert notification["title"] == f"Order #{order.id} placed"
    assert notification["type"] == "info"
    assert notification["data"]["previousStatus"] is None


@pytest.mark.parametrize(("status", "kind"), [
    ("processing", "info"), ("shipped", "success"), ("delivered", "success"), ("completed", "success"),
    ("cancelled", "warning"), ("returned", "warning"), ("rejected", "error"),
])
def test_each_status_has_its_title_and_type(client, factory, status, kind):
    user = factory.user()
    order = factory.order_of(user, factory.product(), status=status)
    events.announce(OrderStatusChanged(order.id, user.id, status, "pending"))
    db.session.commit()
    [notification] = client.get("/api/v1/notifications", headers=factory.headers(user)).json
    assert notification["title"].startswith(f"Order #{order.id} ")
    assert notification["type"] == kind


def test_every_order_status_has_a_notification_text():
    assert set(ORDER_STATUS_TEXTS) == set(ORDER_STATUSES)


def test_a_shipping_notice_carries_the_details_and_tracking_number(client, factory):
    user = factory.user()
    order = factory.order_of(user, factory.product(), status="shipped")
    details = {"trackingNumber": "TRK-42", "estimatedDelivery": "2030-01-02"}
    events.announce(OrderStatusChanged(order.id, user.id, "shipped", "processing", details))
    db.session.commit()
    [notification] = client.get("/api/v1/notifications", headers=factory.headers(user)).json
    assert notification["title"] == f"Order #{order.id} shipped"
    assert "TRK-42" in notification["message"]
    assert notification["data"]["details"] == details


def test_a_status_notice_carries_only_the_details_meant_for_the_customer(client, factory, delivered):
    user = factory.user()
    headers = factory.headers(user)
    item = {"productId": factory.product().id, "quantity": 1}
    order_id = client.post("/api/v1/orders", json={"items": [item]}, headers=headers).json["id"]
    admin = factory.headers(factory.admin())
    for status, details in (("confirmed", {"note": "internal"}),
                            ("processing", None),
                            ("shipped", {"trackingNumber": "TRK-9", "estimatedDelivery": "2030-01-02",
                                         "note": "fragile", "carrierAccount": "ACME-0042"})):
        moved = client.patch(f"/api/v1/orders/{order_id}/status", json={"status": status, "details": details},
                             headers=admin)
        assert moved.status_code == 200, moved.json

    inbox = client.get("/api/v1/notifications", headers=headers).json
    assert [n["data"]["details"] for n in inbox] == [
        {"trackingNumber": "TRK-9", "estimatedDelivery": "2030-01-02"}, None, None, None,
    ]
    assert all(set(n["data"]) == {"orderId", "status", "previousStatus", "details"} for n in inbox)
    assert "TRK-9" in inbox[0]["message"]
    # What Socket.IO sends (NotificationCreated) is as clean as what is stored.
    assert [event.data["details"] for event in delivered][-3:] == [
        None, None, {"trackingNumber": "TRK-9", "estimatedDelivery": "2030-01-02"},
    ]


def test_a_rolled_back_status_change_leaves_no_notification(client, factory, delivered):
    user = factory.user()
    order = factory.order_of(user, factory.product(), status="cancelled")
    events.announce(OrderStatusChanged(order.id, user.id, "cancelled", "pending"))
    db.session.rollback()
    db.session.commit()
    assert client.get("/api/v1/notifications", headers=factory.headers(user)).json == []
    assert delivered == []
