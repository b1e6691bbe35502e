"""Inventory: what is running low, and absolute stock levels pushed by an external inventory system."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flask import current_app
from sqlalchemy import String, func, literal, or_, select, union_all

from fantasize.errors import ValidationFailed
from fantasize.events import StockChanged, announce
from fantasize.extensions import db
from fantasize.models import Package, Product
from fantasize.services.common import Page, commit


def low_stock(page: int, limit: int, threshold: int | None = None) -> Page:
    """Products and packages (active or not) with `quantity <= threshold`, lowest stock first."""
    if threshold is None:
        threshold = current_app.config["LOW_STOCK_THRESHOLD"]
    parts = [
        select(literal(kind, String).label("type"), model.id, model.name, model.quantity, model.is_active)
        .where(model.quantity <= threshold)
        for kind, model in (("product", Product), ("package", Package))
    ]
    rows = union_all(*parts).subquery()
    total = db.session.scalar(select(func.count()).select_from(rows))
    items = db.session.execute(
        select(rows).order_by(rows.c.quantity, rows.c.type, rows.c.id).limit(limit).offset((page - 1) * limit)
    ).mappings().all()
    return Page(items=items, total=total or 0, page=page, limit=limit)


def _resolve(items: Sequence[dict[str, Any]]) -> list[Product]:
    """The product of every entry, in order, locked for the update; 422 naming each entry that names none."""
    ids = [entry["product_id"] for entry in items if entry.get("product_id") is not None]
    skus = [entry["sku"] for entry in items if entry.get("sku") is not None]
    # Locked in id order, so two syncs touching the same products queue up instead of deadlocking.
    found = db.session.scalars(
        select(Product).where(or_(Product.id.in_(ids), Product.sku.in_(skus))).order_by(Product.id).with_for_update()
    ).all()
    by_id = {product.id: product for product in found}
    by_sku = {product.sku: product for product in found if product.sku is not None}

    resolved: list[Product] = []
    errors: dict[str, dict[str, list[str]]] = {}
    first_entry: dict[int, int] = {}
    for n, entry in enumerate(items):
        if entry.get("product_id") is not None:
            field, product = "productId", by_id.get(entry["product_id"])
            unknown = f"No product with id {entry['product_id']}."
        else:
            field, product = "sku", by_sku.get(entry["sku"])
            unknown = f"No product with SKU {entry['sku']}."
        if product is None:
            errors[str(n)] = {field: [unknown]}
        elif product.id in first_entry:
            errors[str(n)] = {field: [f"Product {product.id} is already given in item {first_entry[product.id]}."]}
        else:
            first_entry[product.id] = n
            resolved.append(product)
    if errors:
        raise ValidationFailed("Some items name no product, or the same product twice", details={"items": errors})
    return resolved


def sync_stock(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Set each product's stock to the given quantity, all or nothing; changed ones announce StockChanged."""
    products = _resolve(items)
    results = []
    updated = 0
    for product, entry in zip(products, items, strict=True):
        previous, quantity = product.quantity, entry["quantity"]
        if quantity != previous:
            product.quantity = quantity
            updated += 1
            announce(StockChanged("product", product.id, quantity, previous, {"change": "sync"},
                                  public=product.is_active))
        results.append({"product_id": product.id, "quantity": quantity, "previous_quantity": previous})
    commit()
    return {"updated": updated, "unchanged": len(results) - updated, "items": results}
