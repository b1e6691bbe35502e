"""Orders: placement (frozen prices, all-or-nothing stock, idempotency keys), the status machine, and reads."""

from __future__ import annotations

import hashlib
import json
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from fantasize.errors import BadRequest, Conflict, InvalidTransition, NotFound, OutOfStock, ValidationFailed
from fantasize.events import OrderStatusChanged, StockChanged, announce
from fantasize.extensions import db
from fantasize.models import Address, Order, OrderLine, OrderStatusChange, Package, PaymentMethod, Product, User
from fantasize.models.base import utcnow
from fantasize.services import cart
from fantasize.services.common import Page, commit, paginate
from fantasize.services.lines import ResolvedLine, item_type, price_line, resolve_lines, totals
from fantasize.services.products import NAMES

# The only moves an order may make; a status missing as a key is terminal.
TRANSITIONS: dict[str, frozenset[str]] = {
    "pending": frozenset({"confirmed", "rejected", "cancelled"}),
    "confirmed": frozenset({"processing", "cancelled"}),
    "processing": frozenset({"shipped", "cancelled"}),
    "shipped": frozenset({"delivered", "returned"}),
    "delivered": frozenset({"completed", "returned"}),
}
RESTOCKING = frozenset({"cancelled", "rejected", "returned"})
OWNER_CANCELLABLE = frozenset({"pending", "confirmed"})

# The keys of a status change's `details` meant for the order's owner (DOMAIN.md: `{trackingNumber,
# estimatedDelivery}`); anything else an administrator writes there is internal.
CUSTOMER_DETAILS = ("trackingNumber", "estimatedDelivery")

IDEMPOTENCY_WINDOW = timedelta(hours=24)
IDEMPOTENCY_KEY = re.compile(r"[\x20-\x7e]{1,255}")

ORDER_LOADS = (selectinload(Order.lines), selectinload(Order.history))
StockKey = tuple[type[Product] | type[Package], int]


@dataclass(frozen=True)
class Placement:
    order: Order
    replayed: bool


def _fetch(order_id: int) -> Order:
    return db.session.scalars(select(Order).where(Order.id == order_id).options(*ORDER_LOADS)).one()


def details_for_customer(details: dict[str, Any] | None) -> dict[str, Any] | None:
    """What the order's owner may see of a status change's details: the keys meant for them (None: nothing)."""
    shown = {key: details[key] for key in CUSTOMER_DETAILS if key in details} if details else {}
    return shown or None


# Placement


def _checked_key(key: str | None) -> str | None:
    if key is not None and not IDEMPOTENCY_KEY.fullmatch(key):
        raise BadRequest("Idempotency-Key must be 1 to 255 printable ASCII characters", code="INVALID_IDEMPOTENCY_KEY")
    return key


def request_hash(data: dict[str, Any]) -> str:
    """The fingerprint of a parsed order body: the same request in any key order hashes alike."""
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _order_by_key(user_id: int, key: str) -> Order | None:
    return db.session.scalar(select(Order).where(Order.user_id == user_id, Order.idempotency_key == key))


def _replay(order: Order, fingerprint: str | None) -> Placement:
    if order.request_hash != fingerprint:
        raise ValidationFailed(
            "This Idempotency-Key was already used for a different order request", code="IDEMPOTENCY_KEY_REUSED",
            details={"Idempotency-Key": ["Already used with another body; use a new key for a new order."]},
        )
    return Placement(_fetch(order.id), replayed=True)


def _own(model: type[Address] | type[PaymentMethod], user: User, ident: int | None, field: str) -> Any:
    if ident is None:
        return None
    obj = db.session.get(model, ident)
    if obj is None or obj.user_id != user.id:
        noun = "address" if model is Address else "payment method"
        raise ValidationFailed(details={field: [f"No {noun} {ident} of yours."]})
    return obj


def _address_snapshot(address: Address | None) -> dict[str, Any] | None:
    if address is None:
        return None
    return {"line1": address.line1, "line2": address.line2, "city": address.city, "state": address.state,
            "country": address.country, "postalCode": address.postal_code}


def _payment_summary(method: PaymentMethod | None) -> dict[str, Any] | None:
    if method is None:
        return None
    return {"method": method.method, "brand": method.brand, "last4": method.last4}


def _stock_wanted(lines: Iterable[tuple[type[Product] | type[Package], int, int]]) -> list[tuple[StockKey, int]]:
    """Quantities summed per item, products by id then packages by id: every writer locks rows in one order."""
    wanted: dict[StockKey, int] = defaultdict(int)
    for model, item_id, quantity in lines:
        wanted[(model, item_id)] += quantity
    return sorted(wanted.items(), key=lambda entry: (entry[0][0] is Package, entry[0][1]))


def _move_stock(model: type[Product] | type[Package], item_id: int, change: int, now: datetime) -> int | None:
    """Add `change` to an item's stock in one UPDATE, the new quantity back; a take (change < 0) applies only
    while enough is left, else None."""
    stmt = update(model).where(model.id == item_id)
    if change < 0:
        stmt = stmt.where(model.quantity >= -change)
    stmt = stmt.values(quantity=model.quantity + change, updated_at=now).returning(model.quantity)
    return db.session.scalar(stmt.execution_options(synchronize_session=False))


def _take_stock(order_id: int, lines: list[ResolvedLine], now: datetime) -> None:
    wanted = _stock_wanted((type(line.item), line.item.id, line.quantity) for line in lines)
    left: dict[StockKey, int | None] = {key: _move_stock(*key, -quantity, now) for key, quantity in wanted}
    short = [(key, quantity) for key, quantity in wanted if left[key] is None]
    if short:
        db.session.rollback()  # gives back what the other lines took, and the order row
        raise OutOfStock(details={"items": [
            {f"{NAMES[model]}Id": item_id, "requested": quantity,
             "available": db.session.scalar(select(model.quantity).where(model.id == item_id)) or 0}
            for (model, item_id), quantity in short
        ]})
    for (model, item_id), quantity in wanted:
        announce(StockChanged(NAMES[model], item_id, left[(model, item_id)], left[(model, item_id)] + quantity,
                              {"reason": "order_placed", "orderId": order_id}))


def place_order(user: User, data: dict[str, Any], idempotency_key: str | None = None) -> Placement:
    """Place an order from `items` or from the cart, in one transaction: prices frozen, stock taken for every
    line or none, the cart's ordered lines removed. With an Idempotency-Key, a repeat within 24 hours gets the
    first order back (`replayed`) and never takes stock again."""
    key = _checked_key(idempotency_key)
    fingerprint = request_hash(data) if key is not None else None
    user_id, now = user.id, utcnow()
    if key is not None:
        earlier = _order_by_key(user_id, key)
        if earlier is not None:
            if earlier.created_at > now - IDEMPOTENCY_WINDOW:
                return _replay(earlier, fingerprint)
            earlier.idempotency_key = None  # expired: the key starts afresh
            db.session.flush()

    if "items" in data:
        cart_line_ids, requested, field = [], data["items"], "items"
    else:
        cart_line_ids, requested = cart.lines_to_order(user)
        field = "cart"
        if not requested:
            raise ValidationFailed("The cart is empty", details={"cart": ["The cart is empty; add items first."]})
    lines = resolve_lines(user, requested, field)
    address = _own(Address, user, data.get("address_id"), "addressId")
    payment = _own(PaymentMethod, user, data.get("payment_method_id"), "paymentMethodId")
    prices = [price_line(line.item, line.quantity, now) for line in lines]
    sums = totals(prices)

    order = Order(
        user_id=user_id, status="pending", address_id=address.id if address else None,
        payment_method_id=payment.id if payment else None, shipping_address=_address_snapshot(address),
        payment_summary=_payment_summary(payment), is_gift=data.get("is_gift", False),
        gift_message=data.get("gift_message"), is_anonymous=data.get("is_anonymous", False),
        subtotal=sums.subtotal, discount_total=sums.discount_total, total=sums.total,
        idempotency_key=key, request_hash=fingerprint,
    )
    db.session.add(order)
    try:
        # Inserted before any stock is touched: on PostgreSQL a concurrent request with the same key waits
        # here on the unique index until this one commits, then fails and replays it.
        db.session.flush()
    except IntegrityError:
        db.session.rollback()
        winner = _order_by_key(user_id, key) if key is not None else None
        if winner is None:
            raise Conflict("The order could not be placed; try again") from None
        return _replay(winner, fingerprint)

    order_id = order.id
    _take_stock(order_id, lines, now)
    db.session.add_all([
        OrderLine(
            order_id=order_id, name=line.item.name, quantity=line.quantity, unit_price=price.unit_price,
            unit_discount=price.unit_discount, discount_percent=price.discount_percent, line_total=price.line_total,
            customizations=line.customizations, **{f"{item_type(line.item)}_id": line.item.id},
        )
        for line, price in zip(lines, prices, strict=True)
    ])
    db.session.add(OrderStatusChange(order_id=order_id, from_status=None, to_status="pending", actor_id=user_id))
    cart.remove_ordered_lines(cart_line_ids)
    announce(OrderStatusChanged(order_id, user_id, "pending", None, None, user_id))
    commit("The order could not be placed; try again")
    return Placement(_fetch(order_id), replayed=False)


# Status changes


def _refuse(current: str, to: str) -> InvalidTransition:
    allowed = sorted(TRANSITIONS.get(current, ()))
    return InvalidTransition(f"An order cannot go from {current} to {to}",
                             details={"from": current, "to": to, "allowed": allowed})


def _give_back(order: Order, status: str, now: datetime) -> None:
    wanted = _stock_wanted(
        (Product, line.product_id, line.quantity) if line.product_id is not None
        else (Package, line.package_id, line.quantity)
        for line in order.lines
    )
    for (model, item_id), quantity in wanted:
        left = _move_stock(model, item_id, quantity, now)
        announce(StockChanged(NAMES[model], item_id, left, left - quantity,
                              {"reason": f"order_{status}", "orderId": order.id}))


def _move(order: Order, to: str, actor: User, details: dict[str, Any] | None) -> Order:
    """Apply one move of the machine. The UPDATE is conditional on the status read, so of two racing moves
    only one applies (the other is 409) and stock is given back at most once."""
    current, order_id, owner_id, actor_id = order.status, order.id, order.user_id, actor.id
    if to not in TRANSITIONS.get(current, ()):
        raise _refuse(current, to)
    now = utcnow()
    moved = db.session.execute(
        update(Order).where(Order.id == order_id, Order.status == current).values(status=to, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    if moved.rowcount != 1:
        db.session.rollback()
        raise _refuse(db.session.scalar(select(Order.status).where(Order.id == order_id)), to)
    db.session.add(OrderStatusChange(order_id=order_id, from_status=current, to_status=to, actor_id=actor_id,
                                     details=details))
    announce(OrderStatusChanged(order_id, owner_id, to, current, details, actor_id))
    if to in RESTOCKING:
        _give_back(order, to, now)
    commit()
    return _fetch(order_id)


def _visible_order(viewer: User, order_id: int) -> Order:
    """The order if the viewer owns it or is an admin; anyone else's order does not exist for them."""
    order = db.session.get(Order, order_id, options=ORDER_LOADS)
    if order is None or (order.user_id != viewer.id and not viewer.is_admin):
        raise NotFound(f"Order {order_id} not found")
    return order


def cancel_order(viewer: User, order_id: int) -> Order:
    """The owner cancels while the order is pending or confirmed; an admin whenever the machine allows."""
    order = _visible_order(viewer, order_id)
    if not viewer.is_admin and order.status not in OWNER_CANCELLABLE:
        raise InvalidTransition(f"A {order.status} order can no longer be cancelled",
                                details={"from": order.status, "to": "cancelled"})
    return _move(order, "cancelled", viewer, None)


def change_status(admin: User, order_id: int, status: str, details: dict[str, Any] | None = None) -> Order:
    order = db.session.get(Order, order_id, options=ORDER_LOADS)
    if order is None:
        raise NotFound(f"Order {order_id} not found")
    return _move(order, status, admin, details)


# Reading


def get_order(viewer: User, order_id: int) -> Order:
    return _visible_order(viewer, order_id)


def order_history(viewer: User, order_id: int) -> list[OrderStatusChange]:
    """Every status change, oldest first (the machine allows only a handful, so the list is not paginated)."""
    return _visible_order(viewer, order_id).history


def _start_of(day: Any) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def list_orders(viewer: User, args: dict[str, Any]) -> Page:
    """Newest first: a customer's own orders, or for an admin everyone's; filters narrow either."""
    stmt = select(Order).options(*ORDER_LOADS).order_by(Order.created_at.desc(), Order.id.desc())
    if not viewer.is_admin:
        stmt = stmt.where(Order.user_id == viewer.id)
    if args.get("status"):
        stmt = stmt.where(Order.status == args["status"])
    if args.get("user_id") is not None:
        stmt = stmt.where(Order.user_id == args["user_id"])
    if args.get("date_from"):
        stmt = stmt.where(Order.created_at >= _start_of(args["date_from"]))
    if args.get("date_to"):
        stmt = stmt.where(Order.created_at < _start_of(args["date_to"] + timedelta(days=1)))
    return paginate(stmt, args["page"], args["limit"])
