"""Who listens to which domain event (fantasize.events): the wiring, in one place."""

from __future__ import annotations

from flask import Flask

from fantasize import events
from fantasize.services import notifications


def init_app(app: Flask) -> None:
    """Subscribe the app's event handlers (idempotent: subscribing twice keeps one)."""
    # Inside the transaction: the owner's notification lives or dies with the status change itself.
    events.on_announce(events.OrderStatusChanged)(notifications.notify_order_status)
