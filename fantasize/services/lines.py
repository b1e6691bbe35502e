"""Cart and order lines: the requested item and its customization choices checked, and a line's price at a moment."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Row, Select, literal_column, select, union_all

from fantasize.errors import ValidationFailed
from fantasize.extensions import db
from fantasize.models import Customization, Offer, Package, Product, Upload, User
from fantasize.models.base import ZERO
from fantasize.models.catalog import Sellable, package_customizations, product_customizations
from fantasize.services.products import NAMES

MAX_QUANTITY = 99
MAX_LINES = 50
MAX_CHOICES = 20
DEFAULT_TEXT_LENGTH = 100

Item = Product | Package
FieldErrors = dict[str, Any]
MODELS: dict[str, type[Item]] = {name: model for model, name in NAMES.items()}
# Each sellable's table of offered customizations, by kind.
CUSTOMIZATION_LINKS = {"product": product_customizations.c.product_id,
                       "package": package_customizations.c.package_id}


def item_type(item: Item) -> str:
    return NAMES[type(item)]


@dataclass(frozen=True)
class OfferTerms:
    """The columns of an offer that a price depends on."""

    discount_percent: Decimal
    valid_from: datetime
    valid_to: datetime
    is_active: bool

    is_current = Offer.is_current  # the model's own rule, not a copy of it


@dataclass(frozen=True)
class ItemTerms:
    """What a line needs of its product or package, read as plain columns: placing an order builds no ORM object
    of the catalogue and loads none of its relations (images, materials, brand...)."""

    kind: str  # "product" | "package"
    id: int
    name: str
    price: Decimal
    is_active: bool
    offer: OfferTerms | None

    # The catalogue's own price rule (models.catalog.Sellable), so an order freezes the price the shop shows.
    current_discount = Sellable.current_discount
    effective_price = Sellable.effective_price


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


def price_line(item: Item | ItemTerms, quantity: int, now: datetime) -> LinePrice:
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

    item: ItemTerms
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


def _by_kind(keys: Iterable[tuple[str, int]]) -> dict[str, set[int]]:
    ids: dict[str, set[int]] = defaultdict(set)
    for kind, ident in keys:
        ids[kind].add(ident)
    return ids


def _one_statement(selects: list[Select]) -> Any:
    """Run the selects of products and of packages as one statement (UNION ALL): one round trip for both."""
    return db.session.execute(selects[0] if len(selects) == 1 else union_all(*selects))


def _terms_select(kind: str, ids: set[int]) -> Select:
    model = MODELS[kind]
    return (select(literal_column(f"'{kind}'").label("kind"), model.id, model.name, model.price, model.is_active,
                   Offer.discount_percent, Offer.valid_from, Offer.valid_to, Offer.is_active.label("offer_active"))
            .outerjoin(Offer, model.offer_id == Offer.id).where(model.id.in_(ids)))


def _terms(row: Row) -> ItemTerms:
    offer = None if row.discount_percent is None else OfferTerms(row.discount_percent, row.valid_from,
                                                                 row.valid_to, row.offer_active)
    return ItemTerms(row.kind, row.id, row.name, row.price, row.is_active, offer)


def _load_terms(keys: Iterable[tuple[str, int]]) -> dict[tuple[str, int], ItemTerms]:
    """The terms of every item named, products and packages alike, in one statement."""
    selects = [_terms_select(kind, ids) for kind, ids in _by_kind(keys).items()]
    return {(row.kind, row.id): _terms(row) for row in _one_statement(selects)} if selects else {}


def _offered_select(kind: str, ids: set[int]) -> Select:
    link = CUSTOMIZATION_LINKS[kind]
    return (select(literal_column(f"'{kind}'").label("kind"), link.label("item_id"), Customization.id,
                   Customization.name, Customization.type, Customization.options)
            .join(link.table, link.table.c.customization_id == Customization.id).where(link.in_(ids)))


def _load_offered(keys: Iterable[tuple[str, int]]) -> dict[tuple[str, int], dict[int, Row]]:
    """The customizations each item offers (id, name, type, options) by id, in one statement. Only the items whose
    lines choose some are asked for: a line without choices needs none, so most orders skip this statement."""
    selects = [_offered_select(kind, ids) for kind, ids in _by_kind(keys).items()]
    offered: dict[tuple[str, int], dict[int, Row]] = defaultdict(dict)
    for row in _one_statement(selects) if selects else ():
        offered[(row.kind, row.item_id)][row.id] = row
    return offered


def _is_upload_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _owned_uploads(user: User, lines: Sequence[dict[str, Any]]) -> set[int]:
    # Every integer value could name an image; one query answers for all of them.
    ids = {choice["value"] for line in lines for choice in line.get("customizations") or []
           if _is_upload_id(choice["value"])}
    if not ids:
        return set()
    return set(db.session.scalars(select(Upload.id).where(Upload.id.in_(ids), Upload.owner_id == user.id)))


def _kind_and_id(line: dict[str, Any]) -> tuple[str, int]:
    return ("product", line["product_id"]) if line.get("product_id") is not None else ("package", line["package_id"])


def _resolve(user: User, lines: Sequence[dict[str, Any]]) -> tuple[list[ResolvedLine], dict[int, FieldErrors]]:
    keys = [_kind_and_id(line) for line in lines]
    items = _load_terms(keys)
    offered = _load_offered(key for key, line in zip(keys, lines, strict=True)
                            if line.get("customizations") and key in items)
    uploads = _owned_uploads(user, lines)
    resolved: list[ResolvedLine] = []
    errors: dict[int, FieldErrors] = {}
    for index, (line, (noun, ident)) in enumerate(zip(lines, keys, strict=True)):
        item = items.get((noun, ident))
        if item is None or not item.is_active:
            errors[index] = {f"{noun}Id": [f"No active {noun} with id {ident}."]}
            continue
        choices, choice_errors = _check_choices(item, offered.get((noun, ident), {}),
                                                line.get("customizations") or [], uploads)
        if choice_errors:
            errors[index] = {"customizations": choice_errors}
            continue
        resolved.append(ResolvedLine(item, line["quantity"], choices))
    return resolved, errors


def _check_choices(item: ItemTerms, offered: dict[int, Row], choices: Sequence[dict[str, Any]],
                   uploads: set[int]) -> tuple[list[dict[str, Any]], dict[int, FieldErrors]]:
    stored: list[dict[str, Any]] = []
    errors: dict[int, FieldErrors] = {}
    seen: set[int] = set()
    for index, choice in enumerate(choices):
        ident, value = choice["customization_id"], choice["value"]
        definition = offered.get(ident)
        if ident in seen:
            errors[index] = {"customizationId": ["This customization is chosen twice."]}
        elif definition is None:
            errors[index] = {"customizationId": [f"Customization {ident} is not offered for this {item.kind}."]}
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


def _text_limit(definition: Customization | Row) -> int:
    for option in definition.options or []:
        if option.get("name") == "maxLength":
            try:
                return max(1, int(option.get("value")))
            except (TypeError, ValueError):
                break
    return DEFAULT_TEXT_LENGTH


def _value_problem(definition: Customization | Row, value: Any, uploads: set[int]) -> str | None:
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
