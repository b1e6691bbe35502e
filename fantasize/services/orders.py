"""Orders: placement (frozen prices, all-or-nothing stock, idempotency keys), the status machine, and reads."""

from __future__ import annotations

import hashlib
import json
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, fields
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from operator import attrgetter
from typing import Any

from sqlalchemy import Row, case, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from fantasize.errors import BadRequest, Conflict, InvalidTransition, NotFound, OutOfStock, ValidationFailed
from fantasize.events import OrderStatusChanged, StockChanged, announce
from fantasize.extensions import db
from fantasize.models import Address, Order, OrderLine, OrderStatusChange, Package, PaymentMethod, Product, User
from fantasize.models.base import utcnow
from fantasize.services import cart
from fantasize.services.common import Page, commit, paginate
from fantasize.services.lines import MODELS, ResolvedLine, price_line, resolve_lines, totals
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
class PlacedLine:
    """An order line as its INSERT returned it: the attributes OrderLineSchema reads of an OrderLine."""

    id: int
    product_id: int | None
    package_id: int | None
    name: str
    quantity: int
    unit_price: Decimal
    unit_discount: Decimal
    discount_percent: Decimal | None
    line_total: Decimal
    customizations: list[dict[str, Any]]


@dataclass(frozen=True)
class PlacedChange:
    """The history entry of a placement: the attributes the status-change schemas read."""

    from_status: str | None
    to_status: str
    actor_id: int
    details: dict[str, Any] | None
    created_at: datetime


@dataclass(frozen=True)
class PlacedOrder:
    """An order as placement wrote it, built from the values it inserted rather than read back: the attributes
    the order schemas read of an Order, every one of them as a read of the committed rows would give it."""

    id: int
    user_id: int
    status: str
    is_gift: bool
    gift_message: str | None
    is_anonymous: bool
    shipping_address: dict[str, Any] | None
    payment_summary: dict[str, Any] | None
    subtotal: Decimal
    discount_total: Decimal
    total: Decimal
    lines: list[PlacedLine]
    history: list[PlacedChange]
    created_at: datetime
    updated_at: datetime


# What a placement's answer shows: of each line, the columns its INSERT returns; of the order, the values written.
LINE_COLUMNS = tuple(getattr(OrderLine, field.name) for field in fields(PlacedLine))
ORDER_VALUES = tuple(field.name for field in fields(PlacedOrder) if field.name not in ("id", "lines", "history"))


@dataclass(frozen=True)
class Placement:
    order: Order | PlacedOrder
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


def _earlier(user_id: int, key: str | None, fingerprint: str | None, now: datetime) -> Placement | None:
    """The replay of the order an Idempotency-Key placed in the last 24 hours, if any. An older one loses the
    key, which then starts afresh."""
    earlier = _order_by_key(user_id, key) if key is not None else None
    if earlier is None:
        return None
    if earlier.created_at > now - IDEMPOTENCY_WINDOW:
        return _replay(earlier, fingerprint)
    earlier.idempotency_key = None
    db.session.flush()
    return None


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


def _move_stock(model: type[Product] | type[Package], item_id: int, change: int, now: datetime) -> Row | None:
    """Add `change` to an item's stock in one UPDATE, (quantity, is_active) of the updated row back; a take
    (change < 0) applies only while enough is left, else None."""
    stmt = update(model).where(model.id == item_id)
    if change < 0:
        stmt = stmt.where(model.quantity >= -change)
    stmt = stmt.values(quantity=model.quantity + change, updated_at=now).returning(model.quantity, model.is_active)
    return db.session.execute(stmt.execution_options(synchronize_session=False)).first()


def _take_many(model: type[Product] | type[Package], needs: dict[int, int], now: datetime
               ) -> dict[int, tuple[int, bool]]:
    """Take each item's quantity in one UPDATE for the whole table, from every row that has enough left; the new
    quantity and activity of the rows taken from (a missing id had too little).

    The rows are first locked in id order by the sub-select (FOR UPDATE, not pulled up into the join), and no
    row is updated before that sub-select has locked it, so concurrent orders lock shared rows in one order and
    cannot deadlock. A row a concurrent order changed meanwhile is checked again at its new quantity, as a
    single-row UPDATE is. SQLite has no row locks (its writers take turns) and ignores FOR UPDATE."""
    need = case(needs, value=model.id)
    locked = select(model.id).where(model.id.in_(needs)).order_by(model.id).with_for_update().subquery()
    stmt = (update(model).where(model.id.in_(needs), model.id == locked.c.id, model.quantity >= need)
            .values(quantity=model.quantity - need, updated_at=now)
            .returning(model.id, model.quantity, model.is_active).execution_options(synchronize_session=False))
    return {item_id: (left, active) for item_id, left, active in db.session.execute(stmt)}


def _take_stock(order_id: int, lines: list[ResolvedLine], now: datetime) -> None:
    wanted = _stock_wanted((MODELS[line.item.kind], line.item.id, line.quantity) for line in lines)
    left: dict[StockKey, tuple[int, bool]] = {}
    for model in (Product, Package):  # products first, as every writer does
        needs = {item_id: quantity for (kind, item_id), quantity in wanted if kind is model}
        if needs:
            left.update({(model, item_id): taken for item_id, taken in _take_many(model, needs, now).items()})
    short = [(key, quantity) for key, quantity in wanted if key not in left]
    if short:
        db.session.rollback()  # gives back what the other lines took, and the order row
        raise OutOfStock(details={"items": [
            {f"{NAMES[model]}Id": item_id, "requested": quantity,
             "available": db.session.scalar(select(model.quantity).where(model.id == item_id)) or 0}
            for (model, item_id), quantity in short
        ]})
    for (model, item_id), quantity in wanted:
        remaining, active = left[(model, item_id)]
        announce(StockChanged(NAMES[model], item_id, remaining, remaining + quantity,
                              {"reason": "order_placed", "orderId": order_id}, public=active))


@dataclass(frozen=True)
class Draft:
    """A placement checked and priced, before anything is written."""

    lines: list[ResolvedLine]
    order: dict[str, Any]  # the order row's values, but for the key and fingerprint
    line_rows: list[dict[str, Any]]  # the lines' values, but for the order id
    cart_line_ids: list[int]  # the cart lines it orders (none for `items`)


def _draft(user: User, data: dict[str, Any], now: datetime) -> Draft:
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
    order = {
        "user_id": user.id, "status": "pending", "address_id": address.id if address else None,
        "payment_method_id": payment.id if payment else None, "shipping_address": _address_snapshot(address),
        "payment_summary": _payment_summary(payment), "is_gift": data.get("is_gift", False),
        "gift_message": data.get("gift_message"), "is_anonymous": data.get("is_anonymous", False),
        "subtotal": sums.subtotal, "discount_total": sums.discount_total, "total": sums.total,
        "created_at": now, "updated_at": now,
    }
    line_rows = [
        {"product_id": line.item.id if line.item.kind == "product" else None,
         "package_id": line.item.id if line.item.kind == "package" else None,
         "name": line.item.name, "quantity": line.quantity, "unit_price": price.unit_price,
         "unit_discount": price.unit_discount, "discount_percent": price.discount_percent,
         "line_total": price.line_total, "customizations": line.customizations}
        for line, price in zip(lines, prices, strict=True)
    ]
    return Draft(lines, order, line_rows, cart_line_ids)


def _write_order(draft: Draft, user_id: int, key: str | None, fingerprint: str | None,
                 now: datetime) -> int | Placement:
    """The new order's id, its row inserted before any stock is touched (so a repeat of the key never takes
    stock twice); or the replay of the order the key already placed.

    The INSERT is tried first, the key looked up only when it is taken: on PostgreSQL a concurrent request with
    the same key waits on the unique index until the first commits, then fails here and replays it. Nothing was
    written before this row, so the rollback loses nothing."""
    row = {**draft.order, "idempotency_key": key, "request_hash": fingerprint}
    for _ in range(2):  # the key is taken: by an order to replay, or by one past the window that gives it up
        try:
            return db.session.execute(insert(Order).values(**row).returning(Order.id)).scalar_one()
        except IntegrityError:
            db.session.rollback()
        replay = _earlier(user_id, key, fingerprint, now)
        if replay is not None:
            return replay
        if key is None:
            break
    raise Conflict("The order could not be placed; try again")


def _write_lines(order_id: int, line_rows: list[dict[str, Any]]) -> list[PlacedLine]:
    """One INSERT for every line (render_nulls: lines of products and of packages share one column list). The
    answer shows the rows it returns in id order, as a later read does, whatever order RETURNING gives them in."""
    written = db.session.execute(insert(OrderLine).returning(*LINE_COLUMNS),
                                 [{"order_id": order_id, **row} for row in line_rows],
                                 execution_options={"render_nulls": True})
    return sorted((PlacedLine(**row._mapping) for row in written), key=attrgetter("id"))


def place_order(user: User, data: dict[str, Any], idempotency_key: str | None = None) -> Placement:
    """Place an order from `items` or from the cart, in one transaction: prices frozen, stock taken for every
    line or none, the cart's ordered lines removed. With an Idempotency-Key, a repeat within 24 hours gets the
    first order back (`replayed`) and never takes stock again.

    A fixed handful of statements whatever the number of lines: the items' terms, the order row, one stock
    UPDATE per table, the lines, the history entry and the owner's notification. The answer is built from what
    was written, not read back."""
    key = _checked_key(idempotency_key)
    fingerprint = request_hash(data) if key is not None else None
    user_id, now = user.id, utcnow()
    try:
        draft = _draft(user, data, now)
    except ValidationFailed:
        # A key already used answers with its order (or its 422) even when the request no longer checks out:
        # its cart was emptied by that order, an item was withdrawn since.
        replay = _earlier(user_id, key, fingerprint, now)
        if replay is not None:
            return replay
        raise
    written = _write_order(draft, user_id, key, fingerprint, now)
    if isinstance(written, Placement):
        return written
    order_id = written
    _take_stock(order_id, draft.lines, now)
    lines = _write_lines(order_id, draft.line_rows)
    db.session.execute(insert(OrderStatusChange).values(order_id=order_id, from_status=None, to_status="pending",
                                                        actor_id=user_id, created_at=now))
    cart.remove_ordered_lines(draft.cart_line_ids)
    announce(OrderStatusChanged(order_id, user_id, "pending", None, None, user_id))
    commit("The order could not be placed; try again")
    history = [PlacedChange(None, "pending", user_id, None, now)]
    order = PlacedOrder(id=order_id, lines=lines, history=history, **{name: draft.order[name] for name in ORDER_VALUES})
    return Placement(order, replayed=False)


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
        moved = _move_stock(model, item_id, quantity, now)
        announce(StockChanged(NAMES[model], item_id, moved.quantity, moved.quantity - quantity,
                              {"reason": f"order_{status}", "orderId": order.id}, public=moved.is_active))


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
