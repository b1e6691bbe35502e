"""The signed-in user's cart: lines of products or packages with customization choices, priced whenever read."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import joinedload

from fantasize.errors import NotFound, ValidationFailed
from fantasize.extensions import db
from fantasize.models import Cart, CartItem, Package, Product, User
from fantasize.models.base import utcnow
from fantasize.services.common import commit
from fantasize.services.lines import (
    MAX_LINES,
    MAX_QUANTITY,
    LinePrice,
    ResolvedLine,
    item_type,
    price_line,
    requested_choices,
    resolve_line,
    totals,
)

# A rendered line needs its item and that item's offer; load them with the lines.
LINE_LOADS = (
    joinedload(CartItem.product).joinedload(Product.offer),
    joinedload(CartItem.package).joinedload(Package.offer),
)


@dataclass(frozen=True)
class ItemSummary:
    id: int
    name: str
    type: str
    price: Decimal
    effective_price: Decimal


@dataclass(frozen=True)
class PricedCartLine:
    id: int
    item: ItemSummary
    quantity: int
    customizations: list[dict[str, Any]]
    line_total: Decimal


@dataclass(frozen=True)
class CartView:
    items: list[PricedCartLine]
    subtotal: Decimal
    discount_total: Decimal
    total: Decimal


def _priced(line: CartItem, now: datetime) -> tuple[PricedCartLine, LinePrice]:
    item = line.product or line.package
    price = price_line(item, line.quantity, now)
    summary = ItemSummary(item.id, item.name, item_type(item), item.price, price.effective_price)
    return PricedCartLine(line.id, summary, line.quantity, line.customizations, price.line_total), price


def _lines_of(user: User) -> list[CartItem]:
    stmt = select(CartItem).join(Cart).where(Cart.user_id == user.id).options(*LINE_LOADS).order_by(CartItem.id)
    return list(db.session.scalars(stmt).unique())


def get_cart(user: User) -> CartView:
    """The user's cart at today's prices (an offer that ends changes it; nothing is frozen before ordering)."""
    now = utcnow()
    priced = [_priced(line, now) for line in _lines_of(user)]
    sums = totals(price for _, price in priced)
    return CartView([line for line, _ in priced], sums.subtotal, sums.discount_total, sums.total)


def _line_view(line_id: int) -> PricedCartLine:
    line = db.session.scalars(select(CartItem).where(CartItem.id == line_id).options(*LINE_LOADS)).unique().one()
    return _priced(line, utcnow())[0]


def _own_line(user: User, line_id: int) -> CartItem:
    line = db.session.scalar(select(CartItem).join(Cart).where(CartItem.id == line_id, Cart.user_id == user.id))
    if line is None:
        raise NotFound(f"Cart line {line_id} not found")
    return line


def _cart_for(user: User) -> Cart:
    cart = db.session.scalar(select(Cart).where(Cart.user_id == user.id))
    if cart is None:
        cart = Cart(user_id=user.id)
        db.session.add(cart)
        db.session.flush()
    return cart


def _same_line(line: CartItem, wanted: ResolvedLine) -> bool:
    item = line.product_id if wanted.item.kind == "product" else line.package_id
    return item == wanted.item.id and requested_choices(line.customizations) == requested_choices(
        wanted.customizations)


def add_line(user: User, data: dict[str, Any]) -> PricedCartLine:
    """Add an item; the same item with the same choices adds to its existing line (at most 99 in a line)."""
    wanted = resolve_line(user, data)
    cart = _cart_for(user)
    existing = next((line for line in cart.items if _same_line(line, wanted)), None)
    if existing is not None:
        quantity = existing.quantity + wanted.quantity
        if quantity > MAX_QUANTITY:
            raise ValidationFailed(details={"quantity": [
                f"The cart already holds {existing.quantity} of this; a line holds at most {MAX_QUANTITY}."]})
        # Added in SQL, so two concurrent adds both count; the CHECK refuses (409) one that overshoots.
        existing.quantity = CartItem.quantity + wanted.quantity
        line = existing
    else:
        if len(cart.items) >= MAX_LINES:
            raise ValidationFailed(details={"cart": [f"A cart holds at most {MAX_LINES} lines."]})
        line = CartItem(cart=cart, quantity=wanted.quantity, customizations=wanted.customizations,
                        **{f"{wanted.item.kind}_id": wanted.item.id})
        db.session.add(line)
    commit("The cart changed at the same time; try again")
    return _line_view(line.id)


def update_line(user: User, line_id: int, changes: dict[str, Any]) -> PricedCartLine:
    """Change a line's quantity or choices; the whole line is checked again against its item."""
    line = _own_line(user, line_id)
    wanted = resolve_line(user, {
        "product_id": line.product_id,
        "package_id": line.package_id,
        "quantity": changes.get("quantity", line.quantity),
        "customizations": changes.get("customizations", requested_choices(line.customizations)),
    })
    line.quantity = wanted.quantity
    line.customizations = wanted.customizations
    commit()
    return _line_view(line_id)


def remove_line(user: User, line_id: int) -> None:
    db.session.delete(_own_line(user, line_id))
    commit()


def clear_cart(user: User) -> None:
    in_cart = CartItem.cart_id.in_(select(Cart.id).where(Cart.user_id == user.id))
    db.session.execute(delete(CartItem).where(in_cart).execution_options(synchronize_session=False))
    commit()


def lines_to_order(user: User) -> tuple[list[int], list[dict[str, Any]]]:
    """The cart's line ids and the lines as an order request would give them."""
    lines = db.session.execute(
        select(CartItem.id, CartItem.product_id, CartItem.package_id, CartItem.quantity, CartItem.customizations)
        .join(Cart).where(Cart.user_id == user.id).order_by(CartItem.id)
    ).all()
    requests = [
        {"product_id": line.product_id, "package_id": line.package_id, "quantity": line.quantity,
         "customizations": requested_choices(line.customizations)}
        for line in lines
    ]
    return [line.id for line in lines], requests


def remove_ordered_lines(line_ids: Sequence[int]) -> None:
    """Drop the lines an order took, inside the order's transaction (lines added meanwhile stay)."""
    if line_ids:
        db.session.execute(delete(CartItem).where(CartItem.id.in_(line_ids)).execution_options(
            synchronize_session=False))
