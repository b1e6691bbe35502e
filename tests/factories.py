"""Test data builders: each returns a committed model with sensible defaults that a test can override."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Any

from flask import Flask
from sqlalchemy import event
from werkzeug.security import generate_password_hash

from fantasize.extensions import db
from fantasize.models import (
    Address,
    Brand,
    Category,
    Customization,
    Material,
    Offer,
    Order,
    OrderLine,
    Package,
    PackageImage,
    PackageItem,
    PaymentMethod,
    Product,
    ProductImage,
    ProductMaterial,
    SubCategory,
    Upload,
    User,
)
from fantasize.models.base import utcnow
from fantasize.services.tokens import issue_access_token

PASSWORD = "correct horse battery"
_seq = itertools.count(1)


@lru_cache(maxsize=1)
def _password_hash() -> str:
    return generate_password_hash(PASSWORD)  # scrypt is slow on purpose: hash once per test session


class Factory:
    def __init__(self, app: Flask) -> None:
        self.app = app

    def _save(self, obj: Any) -> Any:
        db.session.add(obj)
        db.session.commit()
        return obj

    def user(self, **fields: Any) -> User:
        n = next(_seq)
        defaults = {"email": f"user{n}@example.com", "username": f"user{n}", "password_hash": _password_hash()}
        return self._save(User(**{**defaults, **fields}))

    def admin(self, **fields: Any) -> User:
        return self.user(role="admin", **fields)

    def token(self, user: User) -> str:
        return issue_access_token(user)[0]

    def headers(self, user: User) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(user)}"}

    def category(self, **fields: Any) -> Category:
        n = next(_seq)
        return self._save(Category(**{"name": f"Category {n}", "slug": f"category-{n}", **fields}))

    def subcategory(self, category: Category | None = None, **fields: Any) -> SubCategory:
        n = next(_seq)
        category = category or self.category()
        return self._save(SubCategory(category=category, **{"name": f"Sub {n}", "slug": f"sub-{n}", **fields}))

    def upload(self, **fields: Any) -> Upload:
        n = next(_seq)
        defaults = {"stored_name": f"{n:032x}.png", "original_name": f"image{n}.png", "mime_type": "image/png",
                    "size": 68, "sha256": f"{n:064x}"}
        return self._save(Upload(**{**defaults, **fields}))

    def brand(self, **fields: Any) -> Brand:
        return self._save(Brand(**{"name": f"Brand {next(_seq)}", **fields}))

    def material(self, **fields: Any) -> Material:
        return self._save(Material(**{"name": f"Material {next(_seq)}", **fields}))

    def customization(self, **fields: Any) -> Customization:
        defaults = {
            "name": f"Engraving {next(_seq)}", "type": "text", "options": [{"name": "maxLength", "value": "20"}],
        }
        return self._save(Customization(**{**defaults, **fields}))

    def offer(self, **fields: Any) -> Offer:
        now = utcnow()
        defaults = {
            "title": f"Offer {next(_seq)}", "discount_percent": Decimal("20"),
            "valid_from": now - timedelta(days=1), "valid_to": now + timedelta(days=7), "is_active": True,
        }
        return self._save(Offer(**{**defaults, **fields}))

    def product(self, **fields: Any) -> Product:
        n = next(_seq)
        materials = fields.pop("materials", [])
        defaults = {
            "name": f"Product {n}", "slug": f"product-{n}", "description": "A fine thing",
            "price": Decimal("19.90"), "quantity": 10,
        }
        if "brand" not in fields and "brand_id" not in fields:
            defaults["brand"] = self.brand()
        if "sub_category" not in fields and "sub_category_id" not in fields:
            defaults["sub_category"] = self.subcategory()
        product = Product(**{**defaults, **fields})
        for material, percentage in materials:
            product.materials.append(ProductMaterial(material=material, percentage=percentage))
        return self._save(product)

    def package(self, products: list[tuple[Product, int]] | None = None, **fields: Any) -> Package:
        n = next(_seq)
        defaults = {
            "name": f"Package {n}", "slug": f"package-{n}", "description": "A bundle",
            "price": Decimal("49.00"), "quantity": 5,
        }
        lines = products or [(self.product(), 1)]  # committed before the package exists, so it is never half-added
        package = Package(**{**defaults, **fields})
        for product, quantity in lines:
            package.items.append(PackageItem(product=product, quantity=quantity))
        return self._save(package)

    def attach_images(self, item: Product | Package, *uploads: Upload) -> Product | Package:
        """Link uploads to a product or package as its images, in the given order."""
        link = ProductImage if isinstance(item, Product) else PackageImage
        item.images = [link(upload=upload, position=n) for n, upload in enumerate(uploads)]
        return self._save(item)

    def order_line_for(self, item: Product | Package, quantity: int = 1) -> OrderLine:
        """A pending order of one line for the item, as if a customer had bought it."""
        total = item.price * quantity
        order = Order(user=self.user(), subtotal=total, discount_total=Decimal("0.00"), total=total)
        line = OrderLine(
            name=item.name, quantity=quantity, unit_price=item.price, unit_discount=Decimal("0.00"), line_total=total,
            **({"product_id": item.id} if isinstance(item, Product) else {"package_id": item.id}),
        )
        order.lines.append(line)
        self._save(order)
        return line

    def order_of(self, user: User, *items: Product | Package, status: str = "pending") -> Order:
        """The user's order of one of each item, already in `status` (no stock taken, no history written)."""
        order = Order(user=user, status=status, subtotal=Decimal("0.00"), discount_total=Decimal("0.00"),
                      total=Decimal("0.00"))
        for item in items:
            kind = "product_id" if isinstance(item, Product) else "package_id"
            order.lines.append(OrderLine(name=item.name, quantity=1, unit_price=item.price,
                                         unit_discount=Decimal("0.00"), line_total=item.price, **{kind: item.id}))
            order.subtotal += item.price
        order.total = order.subtotal
        return self._save(order)

    def address(self, user: User, **fields: Any) -> Address:
        defaults = {"line1": "1 Main Street", "city": "Lisbon", "country": "PT", "postal_code": "1000-001"}
        return self._save(Address(user_id=user.id, **{**defaults, **fields}))

    def payment_method(self, user: User, **fields: Any) -> PaymentMethod:
        defaults = {"method": "card", "cardholder_name": "Ada Lovelace", "brand": "visa", "last4": "4242",
                    "exp_month": 12, "exp_year": utcnow().year + 3}
        return self._save(PaymentMethod(user_id=user.id, **{**defaults, **fields}))

    @contextmanager
    def statement_counter(self) -> Iterator[list[str]]:
        """Collect the SQL statements run inside the block, starting from an empty session as a request does."""
        statements: list[str] = []

        def record(conn, cursor, statement, parameters, context, executemany) -> None:
            statements.append(statement)

        db.session.remove()
        event.listen(db.engine, "before_cursor_execute", record)
        try:
            yield statements
        finally:
            event.remove(db.engine, "before_cursor_execute", record)
