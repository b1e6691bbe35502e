"""The signed-in user's notifications."""

from __future__ import annotations

from flask import Blueprint

from fantasize.api.endpoint import endpoint
from fantasize.schemas.engagement import NotificationQuery, NotificationSchema, ReadAllSchema
from fantasize.services import notifications
from fantasize.web import Shape, current_user

bp = Blueprint("notifications", __name__)

NOTIFICATION = Shape("Notification", NotificationSchema)
READ_ALL = Shape("ReadAllResult", ReadAllSchema)


@bp.get("/notifications")
@endpoint("The signed-in user's notifications: unread first, then newest first (filter with unread=true|false)",
          returns=NOTIFICATION, many=True, query=NotificationQuery, auth="user", tags=("notifications",),
          errors=(401,))
def list_notifications(args):
    return notifications.list_notifications(current_user(), **args)


@bp.post("/notifications/<int:notification_id>/read")
@endpoint("Mark a notification read (again is harmless: the first reading time stays)", returns=NOTIFICATION,
          auth="user", tags=("notifications",), errors=(401, 404))
def mark_notification_read(notification_id):
    return notifications.mark_read(current_user(), notification_id)


@bp.post("/notifications/read-all")
@endpoint("Mark every unread notification read; answers how many there were", returns=READ_ALL, auth="user",
          tags=("notifications",), errors=(401,))
def mark_all_notifications_read():
    return {"updated": notifications.mark_all_read(current_user())}
