"""What reaches clients, and when: after the change commits, in the order it happened, never in the request's way.

The domain's after-commit subscribers (fantasize.events) only queue a job here; one background worker per process
(a greenlet under gevent, a daemon thread otherwise) emits it. So a slow or dead Redis never delays or fails the
HTTP request that committed, and a rolled-back change (an order refused for stock) emits nothing, because its
events never reach the after-commit subscribers at all.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from queue import Full
from typing import TYPE_CHECKING, Any

from flask import current_app

from fantasize import events
from fantasize.models.base import iso_utc
from fantasize.realtime.sockets import admin_inventory_room, inventory_room, order_room, user_room
from fantasize.services.orders import details_for_customer

if TYPE_CHECKING:
    from fantasize.realtime import Realtime

# What an inventory tracker (anyone) may learn of why stock moved: never an order id or who moved it.
PUBLIC_STOCK_DETAILS = ("reason", "change", "delta")


# Jobs waiting at most. While the message queue is slow or away each emit waits out its timeout, so the jobs of a
# busy shop would pile up without end: past this, newer ones are dropped and counted (clients catch up on their
# next track_* answer; revocations are caught by the sweep).
CAPACITY = 10_000


class Outbox:
    def __init__(self, realtime: Realtime, capacity: int = CAPACITY) -> None:
        self.realtime = realtime
        self.capacity = capacity
        self.dropped = 0  # jobs refused because `capacity` were waiting
        self._queue: Any = None
        self._lock = threading.Lock()

    def put(self, job: Callable[[], None]) -> None:
        try:
            self._ensure().put_nowait(job)
        except Full:  # gevent's queue raises the standard library's Full too
            self.dropped += 1
            self.realtime.quiet_log.warning("real-time outbox full: events dropped while emits are slow",
                                            extra={"capacity": self.capacity, "dropped": self.dropped})

    def _ensure(self) -> Any:
        if self._queue is None:
            with self._lock:
                if self._queue is None:
                    socketio = self.realtime.socketio
                    self._queue = socketio.server.eio.create_queue(self.capacity)  # gevent's, or the standard one
                    socketio.start_background_task(self._work)
        return self._queue

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            try:
                with self.realtime.app.app_context():
                    job()
            except Exception:  # an emit that fails is logged; the change it reports has committed regardless
                self.realtime.quiet_log.exception("real-time emit failed")
            finally:
                self._queue.task_done()

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every queued job ran (a `flask` command before it exits, tests); False on timeout."""
        if self._queue is None:
            return True
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks:
            if time.monotonic() >= deadline:
                return False
            self.realtime.socketio.sleep(0.01)
        return True


# Payloads (API.md "Real time")


def order_status_payload(event: events.OrderStatusChanged) -> dict[str, Any]:
    # Whoever tracks an order (its owner, or an admin) hears what the owner may see of the details.
    return {"orderId": event.order_id, "status": event.status, "previousStatus": event.previous_status,
            "details": details_for_customer(event.details), "timestamp": iso_utc(event.at)}


def inventory_payload(event: events.StockChanged) -> dict[str, Any]:
    shown = {key: event.details[key] for key in PUBLIC_STOCK_DETAILS if key in (event.details or {})}
    return {"productId": event.item_id, "quantity": event.quantity, "previousQuantity": event.previous_quantity,
            "details": shown or None, "timestamp": iso_utc(event.at)}


def notification_payload(event: events.NotificationCreated) -> dict[str, Any]:
    return {"id": event.notification_id, "title": event.title, "message": event.message, "type": event.type,
            "data": event.data, "timestamp": iso_utc(event.at)}


def announcement_payload(title: str, message: str, type: str, at: datetime) -> dict[str, Any]:
    return {"title": title, "message": message, "type": type, "timestamp": iso_utc(at)}


# After-commit subscribers


def _realtime() -> Realtime | None:
    return current_app.extensions.get("fantasize.realtime")


def _emit(realtime: Realtime, event: str, payload: dict[str, Any], to: str | list[str] | None = None) -> None:
    realtime.socketio.emit(event, payload, to=to)


def on_order_status(event: events.OrderStatusChanged) -> None:
    realtime = _realtime()
    if realtime is not None:
        rooms = [order_room(event.order_id), user_room(event.user_id)]
        realtime.outbox.put(partial(_emit, realtime, "order_status_update", order_status_payload(event), rooms))


def on_stock(event: events.StockChanged) -> None:
    realtime = _realtime()
    if realtime is not None and event.item_type == "product":
        # An inactive product does not exist for the public: only signed-in admins tracking it hear it then.
        rooms = [admin_inventory_room(event.item_id)]
        if event.public:
            rooms.append(inventory_room(event.item_id))
        realtime.outbox.put(partial(_emit, realtime, "inventory_update", inventory_payload(event), rooms))


def on_notification(event: events.NotificationCreated) -> None:
    realtime = _realtime()
    if realtime is not None:
        realtime.outbox.put(partial(_emit, realtime, "real_time_notification", notification_payload(event),
                                    user_room(event.user_id)))


def on_tokens_revoked(event: events.TokensRevoked) -> None:
    from fantasize.realtime import guard

    realtime = _realtime()
    if realtime is not None:
        realtime.outbox.put(partial(guard.revoked, realtime, event.user_id))


def subscribe() -> None:
    """Listen on the events seam, after commit only (idempotent)."""
    events.after_commit(events.OrderStatusChanged)(on_order_status)
    events.after_commit(events.StockChanged)(on_stock)
    events.after_commit(events.NotificationCreated)(on_notification)
    events.after_commit(events.TokensRevoked)(on_tokens_revoked)


def announce(realtime: Realtime, title: str, message: str, type: str, *, wait: bool = False) -> dict[str, Any]:
    """`system_announcement` to every client of every instance. `wait`: emit now (a `flask` command about to exit)."""
    payload = announcement_payload(title, message, type, datetime.now(UTC))
    if wait:
        _emit(realtime, "system_announcement", payload)
    else:
        realtime.outbox.put(partial(_emit, realtime, "system_announcement", payload))
    return payload
