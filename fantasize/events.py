"""Domain events: the one seam between services and everything outside the transaction.

Services `announce()` what happened. Two kinds of subscriber listen:
- `on_announce` subscribers run at once, inside the caller's transaction (writing rows that must live or die
  with the change, such as the owner's Notification of an order status change);
- `after_commit` subscribers run only once the transaction has committed (Socket.IO emits, cache
  invalidation, metrics), so a rolled-back change never announces itself.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session

from fantasize.extensions import db
from fantasize.models.base import utcnow

log = logging.getLogger("fantasize.events")
PENDING_KEY = "fantasize.pending_events"
E = TypeVar("E")


@dataclass(frozen=True)
class OrderStatusChanged:
    order_id: int
    user_id: int
    status: str
    previous_status: str | None
    details: dict[str, Any] | None = None
    actor_id: int | None = None
    at: datetime = field(default_factory=utcnow)


@dataclass(frozen=True)
class StockChanged:
    item_type: str  # "product" | "package"
    item_id: int
    quantity: int
    previous_quantity: int
    details: dict[str, Any] | None = None
    at: datetime = field(default_factory=utcnow)
    # Whether the item is active (public) as the change commits: read from the row the write itself updated, so a
    # deactivation committed before it is seen. Required: an announcer that forgot would tell the public.
    public: bool = field(kw_only=True)


@dataclass(frozen=True)
class NotificationCreated:
    notification_id: int
    user_id: int
    title: str
    message: str
    type: str
    data: dict[str, Any] | None = None
    at: datetime = field(default_factory=utcnow)


@dataclass(frozen=True)
class TokensRevoked:
    """Every token issued to the user so far stopped working (sign-out, password change or reset, deactivation,
    role change): sessions that outlive a request (Socket.IO) must end theirs."""

    user_id: int
    at: datetime = field(default_factory=utcnow)


_on_announce: dict[type, list[Callable[[Any], None]]] = defaultdict(list)
_after_commit: dict[type, list[Callable[[Any], None]]] = defaultdict(list)


def on_announce(event_type: type[E]) -> Callable[[Callable[[E], None]], Callable[[E], None]]:
    def register(fn: Callable[[E], None]) -> Callable[[E], None]:
        if fn not in _on_announce[event_type]:
            _on_announce[event_type].append(fn)
        return fn

    return register


def after_commit(event_type: type[E]) -> Callable[[Callable[[E], None]], Callable[[E], None]]:
    def register(fn: Callable[[E], None]) -> Callable[[E], None]:
        if fn not in _after_commit[event_type]:
            _after_commit[event_type].append(fn)
        return fn

    return register


def unsubscribe(fn: Callable[[Any], None]) -> None:
    for registry in (_on_announce, _after_commit):
        for subscribers in registry.values():
            if fn in subscribers:
                subscribers.remove(fn)


def announce(event: Any) -> None:
    """Record an event in the current transaction; its after-commit subscribers run when it commits."""
    session = db.session()
    if not session.in_transaction():
        session.begin()  # an event belongs to a transaction: its rollback must discard it
    # Recorded first: what its inside subscribers announce in turn (the owner's notification of a status change)
    # reaches after-commit subscribers after it, in the order things happened.
    session.info.setdefault(PENDING_KEY, []).append(event)
    for subscriber in list(_on_announce[type(event)]):
        subscriber(event)


def _dispatch(session: Session) -> None:
    for event in session.info.pop(PENDING_KEY, []):
        for subscriber in list(_after_commit[type(event)]):
            try:
                subscriber(event)
            except Exception:  # a failing emitter must not turn a committed change into an error
                log.exception("event subscriber failed", extra={"event": type(event).__name__})


def _discard(session: Session, _previous_transaction: object = None) -> None:
    session.info.pop(PENDING_KEY, None)


def init_session_events() -> None:
    if not sa_event.contains(db.session, "after_commit", _dispatch):
        sa_event.listen(db.session, "after_commit", _dispatch)
        sa_event.listen(db.session, "after_soft_rollback", _discard)
