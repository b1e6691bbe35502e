"""Notifications: creating them inside the caller's transaction, the owner's inbox, and marking them read."""

from __future__ import annotations

from typing import Any

from sqlalchemy import case, insert, select, update

from fantasize.events import NotificationCreated, OrderStatusChanged, announce
from fantasize.extensions import db
from fantasize.models import Notification, User
from fantasize.models.base import utcnow
from fantasize.models.engagement import NOTIFICATION_TYPES
from fantasize.services.common import Page, commit, get_owned_or_404, paginate
from fantasize.services.orders import details_for_customer

# Per order status (every one of models.orders.ORDER_STATUSES): the notification's type, the title's verb after
# "Order #N", and the message. An order is placed as pending, so "pending" is the placement notice.
ORDER_STATUS_TEXTS: dict[str, tuple[str, str, str]] = {
    "pending": ("info", "placed", "We have received your order #{id} and will confirm it soon."),
    "confirmed": ("success", "confirmed", "Your order #{id} has been confirmed."),
    "processing": ("info", "is being prepared", "We are preparing your order #{id}."),
    "shipped": ("success", "shipped", "Your order #{id} is on its way."),
    "delivered": ("success", "delivered", "Your order #{id} has been delivered."),
    "completed": ("success", "completed", "Your order #{id} is complete. Thank you for shopping with us!"),
    "cancelled": ("warning", "cancelled", "Your order #{id} has been cancelled."),
    "returned": ("warning", "returned", "Your order #{id} has been returned."),
    "rejected": ("error", "rejected", "Sorry, we could not accept your order #{id}."),
}


def notify(user_id: int, title: str, message: str, type: str = "info", data: dict[str, Any] | None = None
           ) -> Notification:
    """Add a notification to the current transaction (the caller commits) and announce it.

    Its NotificationCreated reaches after-commit subscribers (Socket.IO) only once the caller's transaction commits.
    """
    if type not in NOTIFICATION_TYPES:
        raise ValueError(f"notification type must be one of {NOTIFICATION_TYPES}, not {type!r}")
    # One INSERT ... RETURNING of this row alone (the event carries its id), instead of flushing the whole session:
    # an order's placement adds it among rows it writes itself.
    values = {"user_id": user_id, "title": title, "message": message, "type": type, "data": data,
              "created_at": utcnow()}
    notification = db.session.scalars(insert(Notification).returning(Notification), [values]).one()
    announce(NotificationCreated(notification.id, user_id, title, message, type, data, notification.created_at))
    return notification


def notify_order_status(event: OrderStatusChanged) -> Notification:
    """The owner's notification of an order's placement (no previous status) or status change."""
    kind, verb, text = ORDER_STATUS_TEXTS[event.status]
    message = text.format(id=event.order_id)
    tracking = (event.details or {}).get("trackingNumber")
    if tracking:
        message += f" Tracking number: {tracking}."
    # The owner's inbox (and its Socket.IO copy) never holds the administrator's internal notes.
    data = {
        "orderId": event.order_id, "status": event.status, "previousStatus": event.previous_status,
        "details": details_for_customer(event.details),
    }
    return notify(event.user_id, f"Order #{event.order_id} {verb}", message, kind, data)


def list_notifications(user: User, *, page: int, limit: int, unread: bool | None = None) -> Page:
    """The user's notifications, unread ones first, each group newest first; `unread` keeps one group only."""
    stmt = select(Notification).where(Notification.user_id == user.id)
    if unread is not None:
        stmt = stmt.where(Notification.read_at.is_(None) if unread else Notification.read_at.is_not(None))
    unread_first = case((Notification.read_at.is_(None), 0), else_=1)
    stmt = stmt.order_by(unread_first, Notification.created_at.desc(), Notification.id.desc())
    return paginate(stmt, page, limit)


def mark_read(user: User, notification_id: int) -> Notification:
    """Mark one of the user's notifications read; the first reading time stays when it is read again."""
    notification = get_owned_or_404(Notification, notification_id, user.id)
    # Conditional, so two racing requests cannot move the first reading time.
    db.session.execute(
        update(Notification)
        .where(Notification.id == notification.id, Notification.read_at.is_(None))
        .values(read_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    commit()
    return notification


def mark_all_read(user: User) -> int:
    """Mark every unread notification of the user read; returns how many there were."""
    result = db.session.execute(
        update(Notification)
        .where(Notification.user_id == user.id, Notification.read_at.is_(None))
        .values(read_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    commit()
    return result.rowcount
