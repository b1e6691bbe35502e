"""The product and package output schemas, rendered straight from the rows of `services.product_reads`.

marshmallow walks every field of every nested schema per row, which was a fifth of an uncached list page's CPU
(issue 8); this builds the same dicts with plain code. It must render exactly what the schemas do:
tests/test_product_rows.py compares both over every shape of v1 and v2, public and staff, on data that exercises
every field. The rules are the schemas' own (read in `schemas.products`): the clock is read once per rendering,
only a current offer discounts, the public sees only a current offer and only active package items.

Each shape's keys are read from its schema, in the schema's order: a field added to a schema and not here is a
KeyError (and a failing test), never a response silently missing it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from flask import current_app
from marshmallow import Schema

from fantasize.models.base import utcnow
from fantasize.models.catalog import CENT
from fantasize.schemas.base import Money, UTCDateTime
from fantasize.schemas.products import (
    PackageSchema,
    PackageV2Schema,
    ProductSchema,
    ProductV2Schema,
    SellableV2Schema,
    StaffPackageSchema,
    StaffPackageV2Schema,
    StaffProductSchema,
    StaffProductV2Schema,
)
from fantasize.services.product_reads import ROW_FIELDS, SellableRow

# The schemas' own field formatters, so money and times are written exactly as they write them.
_money = Money()._serialize
_schema_time = UTCDateTime()._serialize


def _time(value: datetime | str | None, _attr: None, _obj: None) -> str | None:
    # PostgreSQL reads give the time already written in the schema's format (product_reads._output_time).
    return value if isinstance(value, str) else _schema_time(value, None, None)

HUNDRED = Decimal(100)
# The leading fields `_common` unpacks, in product_reads' order; the next is the materials or items.
ROW_FIELDS_USED = len(ROW_FIELDS)


class _Context:
    """What one rendering reads once: the clock (as the schemas' pre_dump does), the settings, and the
    customizations already rendered (many rows share the same few)."""

    __slots__ = ("currency", "customizations", "low_stock", "now")

    def __init__(self) -> None:
        self.now: datetime = utcnow()
        self.low_stock: int = current_app.config["LOW_STOCK_THRESHOLD"]
        self.currency: str = current_app.config["CURRENCY"]
        self.customizations: dict[int, dict[str, Any]] = {}

    def status(self, quantity: int) -> str:  # services.products.stock_status, with the threshold read once
        if quantity <= 0:
            return "out_of_stock"
        return "running_low" if quantity <= self.low_stock else "in_stock"

    def customization(self, entry: list) -> dict[str, Any]:
        ident, name, kind, options = entry
        rendered = self.customizations.get(ident)
        if rendered is None:
            rendered = self.customizations[ident] = {
                "id": ident, "name": name, "type": kind, "options": _options(options),
            }
        return rendered


def _options(options: Any) -> list[dict[str, Any]] | None:
    # CustomizationOptionSchema: name and value, each only when present.
    if options is None:
        return None
    return [{key: option[key] for key in ("name", "value") if key in option} for option in options]


def _ref(ident: int | None, name: str | None) -> dict[str, Any] | None:
    return None if ident is None else {"id": ident, "name": name}


def _first(entry: list) -> Any:
    return entry[0]


def _common(row: SellableRow, ctx: _Context, staff: bool, v2: bool) -> dict[str, Any]:
    """Every key any shape of a sellable shows, keyed as the schemas key them."""
    # Unpacked by position (checked against the names in `dump`): a Row's attribute lookup costs more than all
    # the rest of a row's rendering.
    (ident, name, slug, description, price, quantity, _active, rating_average, rating_count, created_at, updated_at,
     brand_id, brand_name, sub_category_id, sub_category_name, offer_id, offer_discount, offer_active, offer_from,
     offer_to, images, customizations) = row[:ROW_FIELDS_USED]
    current = offer_id is not None and offer_active and offer_from <= ctx.now < offer_to
    discount = offer_discount if current else None
    # Sellable.effective_price: to the cent, half up.
    effective = price if discount is None else (price * (HUNDRED - discount) / HUNDRED).quantize(
        CENT, rounding=ROUND_HALF_UP)
    offer = None
    if offer_id is not None and (staff or current):
        offer = {"id": offer_id, "discountPercent": _money(offer_discount, None, None)}
    # Linked rows come unordered (see product_reads); ordered here as the relationships order them: images by
    # position (then upload id), customizations by id.
    images = sorted(images or ())
    if v2:
        images = [{"id": upload_id, "url": f"/api/v1/uploads/{stored}", "mimeType": mime}
                  for _, upload_id, stored, mime in images]
    else:
        images = [f"/api/v1/uploads/{stored}" for _, _, stored, _ in images]
    values = {
        "id": ident,
        "name": name,
        "slug": slug,
        "description": description,
        "brand": _ref(brand_id, brand_name),
        "subCategory": _ref(sub_category_id, sub_category_name),
        "offer": offer,
        "images": images,
        "customizations": [ctx.customization(entry) for entry in sorted(customizations or (), key=_first)],
        "createdAt": _time(created_at, None, None),
        "updatedAt": _time(updated_at, None, None),
    }
    status = ctx.status(quantity)
    if v2:
        values["pricing"] = {
            "price": _money(price, None, None),
            "effectivePrice": _money(effective, None, None),
            "discountPercent": _money(discount, None, None),
            "currency": ctx.currency,
        }
        values["stock"] = {"quantity": quantity, "status": status}
        values["rating"] = {"average": float(rating_average), "count": rating_count}
    else:
        values["price"] = _money(price, None, None)
        values["discountPrice"] = None if discount is None else _money(effective, None, None)
        values["quantity"] = quantity
        values["status"] = status
        values["ratingAverage"] = float(rating_average)
    return values


def _share_order(share: list) -> tuple[int, str]:
    name, percentage = share
    return -percentage, name


def _product(row: SellableRow, ctx: _Context, staff: bool, v2: bool) -> dict[str, Any]:
    values = _common(row, ctx, staff, v2)
    # ProductSchema.derive_materials: largest share first, then by material name.
    values["materials"] = [{"name": name, "percentage": percentage}
                           for name, percentage in sorted(row[ROW_FIELDS_USED] or (), key=_share_order)]
    return values


def _package(row: SellableRow, ctx: _Context, staff: bool, v2: bool) -> dict[str, Any]:
    values = _common(row, ctx, staff, v2)
    # In product id order, as Package.items; PackageSchema.derive_items: a withdrawn product is not named to the
    # public.
    values["items"] = [{"product": {"id": ident, "name": name}, "quantity": quantity}
                       for ident, name, active, quantity in sorted(row[ROW_FIELDS_USED] or (), key=_first)
                       if staff or active]
    return values


Build = Callable[[SellableRow, _Context, bool, bool], dict[str, Any]]


class _Renderer:
    """Renders rows as one schema class does: its keys in its order."""

    def __init__(self, schema: type[Schema], build: Build) -> None:
        self.keys = tuple(field.data_key or name for name, field in schema().dump_fields.items())
        self.staff = bool(getattr(schema, "staff", False))
        self.v2 = issubclass(schema, SellableV2Schema)
        self.build = build

    def one(self, row: SellableRow, ctx: _Context) -> dict[str, Any]:
        values = self.build(row, ctx, self.staff, self.v2)
        return {key: values[key] for key in self.keys}


RENDERERS: dict[type[Schema], _Renderer] = {
    **{schema: _Renderer(schema, _product)
       for schema in (ProductSchema, ProductV2Schema, StaffProductSchema, StaffProductV2Schema)},
    **{schema: _Renderer(schema, _package)
       for schema in (PackageSchema, PackageV2Schema, StaffPackageSchema, StaffPackageV2Schema)},
}


def dump(result: SellableRow | list[SellableRow], schema: type[Schema]) -> Any:
    """What `schema(many=...).dump(...)` gives for the ORM objects these rows were read from."""
    renderer = RENDERERS[schema]
    ctx = _Context()
    rows = [result] if isinstance(result, SellableRow) else result
    if rows and rows[0]._fields[:ROW_FIELDS_USED] != ROW_FIELDS:
        raise RuntimeError(f"product_rows unpacks {ROW_FIELDS}, not {rows[0]._fields}")
    rendered = [renderer.one(row, ctx) for row in rows]
    return rendered[0] if isinstance(result, SellableRow) else rendered


# The home page (services.discovery.home): its products are rows, rendered as above; the offers' own fields and the
# categories by their schemas. Keys in the schema's order, read from it (a field added there and not here fails).
_HOME_KEYS: dict[type[Schema], tuple[tuple[str, str], ...]] = {}


def _nested(schema: type[Schema], name: str) -> type[Schema]:
    """The schema class a `List(Nested(...))` field of `schema` holds."""
    return schema._declared_fields[name].inner.nested


def dump_home(home: Any, schema: type[Schema]) -> dict[str, Any]:
    """What `schema().dump(home)` gives for a HomePage whose products are ORM objects, from one whose products
    are rows (HomeSchema and HomeV2Schema; tests/test_product_rows.py compares both)."""
    keys = _HOME_KEYS.get(schema)
    if keys is None:
        keys = _HOME_KEYS[schema] = tuple((name, field.data_key or name) for name, field in
                                          schema().dump_fields.items())
    products = _nested(schema, "new_arrivals")
    showcase = _nested(schema, "current_offers")
    showcase_products = _nested(showcase, "products")
    offer_fields = showcase(exclude=("products",))
    products_key = showcase().dump_fields["products"].data_key or "products"
    values = {
        "new_arrivals": dump(list(home.new_arrivals), products),
        "top_rated": dump(list(home.top_rated), products),
        "current_offers": [{**offer_fields.dump(shown), products_key: dump(list(shown.products), showcase_products)}
                           for shown in home.current_offers],
        "categories": _nested(schema, "categories")(many=True).dump(home.categories),
    }
    return {key: values[name] for name, key in keys}


_SEARCH_KEYS: dict[type[Schema], tuple[tuple[str, str], ...]] = {}


def dump_search(results: Any, schema: type[Schema]) -> dict[str, Any]:
    """What `schema().dump(results)` gives for SearchResults of ORM objects, from SearchResults whose products and
    packages are rows (SearchResultsSchema and its v2; tests/test_product_rows.py compares both)."""
    keys = _SEARCH_KEYS.get(schema)
    if keys is None:
        keys = _SEARCH_KEYS[schema] = tuple((name, field.data_key or name) for name, field in
                                            schema().dump_fields.items())
    values = {
        "products": dump(list(results.products), _nested(schema, "products")),
        "packages": dump(list(results.packages), _nested(schema, "packages")),
        "categories": _nested(schema, "categories")(many=True).dump(results.categories),
    }
    return {key: values[name] for name, key in keys}
