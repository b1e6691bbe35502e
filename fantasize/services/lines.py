"""Cart and order lines: the requested item and its customization choices checked, and a line's price at a moment."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import joinedload, selectinload

from fantasize.errors import ValidationFailed
from fantasize.extensions import db
from fantasize.models import Customization, Package, Product, Upload, User
from fantasize.models.base import ZERO
from fantasize.services.products import NAMES

MAX_QUANTITY = 99
MAX_LINES = 50
MAX_CHOICES = 20
DEFAULT_TEXT_LENGTH = 100

Item = Product | Package
FieldErrors = dict[str, Any]


def item_type(item: Item) -> str:
    return NAMES[type(item)]


@dataclass(frozen=True)
class LinePrice:
    """One line priced at one moment: the list price, the discount of the offer current then, and the quantity."""

    unit_price: Decimal
    unit_discount: Decimal
    discount_percent: Decimal | None
    effective_price: Decimal
    quantity: int

    @property
    def line_total(self) -> Decimal:
        return self.effective_price * self.quantity


def price_line(item: Item, quantity: int, now: datetime) -> LinePrice:
    effective = item.effective_price(now)
    return LinePrice(item.price, item.price - effective, item.current_discount(now), effective, quantity)


@dataclass(frozen=True)
class Totals:
    subtotal: Decimal
    discount_total: Decimal
    total: Decimal


def totals(prices: Iterable[LinePrice]) -> Totals:
    subtotal = discount = ZERO
    for price in prices:
        subtotal += price.unit_price * price.quantity
        discount += price.unit_discount * price.quantity
    return Totals(subtotal, discount, subtotal - discount)


@dataclass(frozen=True)
class ResolvedLine:
    """A requested line whose item exists and is active and whose choices fit the item's customizations."""

    item: Item
    quantity: int
    customizations: list[dict[str, Any]]


def requested_choices(stored: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Stored choices back in the form a request gives them, to check them again."""
    return [{"customization_id": choice["customizationId"], "value": choice["value"]} for choice in stored]


def resolve_line(user: User, line: dict[str, Any]) -> ResolvedLine:
    """Check one requested line; a 422 names the offending field (`productId`, `customizations`...)."""
    resolved, errors = _resolve(user, [line])
    if errors:
        raise ValidationFailed(details=errors[0])
    return resolved[0]


def resolve_lines(user: User, lines: Sequence[dict[str, Any]], field: str) -> list[ResolvedLine]:
    """Check every requested line; a 422 gives `{field: {index: field errors}}` for each bad line."""
    resolved, errors = _resolve(user, lines)
    if errors:
        raise ValidationFailed(details={field: errors})
    return resolved


def _load(model: type[Item], ids: set[int]) -> dict[int, Item]:
    if not ids:
        return {}
    stmt = select(model).where(model.id.in_(ids)).options(selectinload(model.customizations), joinedload(model.offer))
    return {item.id: item for item in db.session.scalars(stmt).unique()}


def _is_upload_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _owned_uploads(user: User, lines: Sequence[dict[str, Any]]) -> set[int]:
    # Every integer value could name an image; one query answers for all of them.
    ids = {choice["value"] for line in lines for choice in line.get("customizations") or []
           if _is_upload_id(choice["value"])}
    if not ids:
        return set()
    return set(db.session.scalars(select(Upload.id).where(Upload.id.in_(ids), Upload.owner_id == user.id)))


def _resolve(user: User, lines: Sequence[dict[str, Any]]) -> tuple[list[ResolvedLine], dict[int, FieldErrors]]:
    products = _load(Product, {line["product_id"] for line in lines if line.get("product_id") is not None})
    packages = _load(Package, {line["package_id"] for line in lines if line.get("package_id") is not None})
    uploads = _owned_uploads(user, lines)
    resolved: list[ResolvedLine] = []
    errors: dict[int, FieldErrors] = {}
    for index, line in enumerate(lines):
        noun = "product" if line.get("product_id") is not None else "package"
        ident = line[f"{noun}_id"]
        item = (products if noun == "product" else packages).get(ident)
        if item is None or not item.is_active:
            errors[index] = {f"{noun}Id": [f"No active {noun} with id {ident}."]}
            continue
        choices, choice_errors = _check_choices(item, line.get("customizations") or [], uploads)
        if choice_errors:
            errors[index] = {"customizations": choice_errors}
            continue
        resolved.append(ResolvedLine(item, line["quantity"], choices))
    return resolved, errors


def _check_choices(item: Item, choices: Sequence[dict[str, Any]],
                   uploads: set[int]) -> tuple[list[dict[str, Any]], dict[int, FieldErrors]]:
    offered = {definition.id: definition for definition in item.customizations}
    stored: list[dict[str, Any]] = []
    errors: dict[int, FieldErrors] = {}
    seen: set[int] = set()
    for index, choice in enumerate(choices):
        ident, value = choice["customization_id"], choice["value"]
        definition = offered.get(ident)
        if ident in seen:
            errors[index] = {"customizationId": ["This customization is chosen twice."]}
        elif definition is None:
            errors[index] = {"customizationId": [f"Customization {ident} is not offered for this {item_type(item)}."]}
        else:
            problem = _value_problem(definition, value, uploads)
            if problem:
                errors[index] = {"value": [problem]}
            else:
                stored.append({"customizationId": ident, "name": definition.name, "type": definition.type,
                               "value": value})
        seen.add(ident)
    # Sorted, so the same choices given in another order make the same line.
    return sorted(stored, key=lambda entry: entry["customizationId"]), errors


def _text_limit(definition: Customization) -> int:
    for option in definition.options or []:
        if option.get("name") == "maxLength":
            try:
                return max(1, int(option.get("value")))
            except (TypeError, ValueError):
                break
    return DEFAULT_TEXT_LENGTH


def _value_problem(definition: Customization, value: Any, uploads: set[int]) -> str | None:
    if definition.type == "button":
        allowed = [option.get("value") for option in definition.options or []]
        if not isinstance(value, str) or value not in allowed:
            return f"Must be one of: {', '.join(map(str, allowed))}."
        return None
    if definition.type == "text":
        limit = _text_limit(definition)
        if not isinstance(value, str) or not 1 <= len(value) <= limit:
            return f"Must be text of 1 to {limit} characters."
        return None
    if not _is_upload_id(value):
        return "Must be the id of one of your uploads."
    if value not in uploads:
        return f"No upload {value} of yours."
    return None
