"""The catalogue: categories, brands, materials, customizations, products and packages."""

from __future__ import annotations

from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from fantasize.extensions import db
from fantasize.models.base import Money, TimestampMixin, utcnow
from fantasize.models.types import JSONType

CUSTOMIZATION_TYPES = ("button", "text", "image")
CENT = Decimal("0.01")


class Category(TimestampMixin, db.Model):
    __tablename__ = "categories"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True, nullable=False)
    slug: Mapped[str] = mapped_column(String(120), unique=True, nullable=False)
    description: Mapped[str | None] = mapped_column(Text)
    image_id: Mapped[int | None] = mapped_column(ForeignKey("uploads.id", ondelete="SET NULL"), index=True)
    is_active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)

    image = relationship("Upload")
    subcategories: Mapped[list[SubCategory]] = relationship(
        back_populates="category", order_by="SubCategory.name", cascade="all, delete-orphan", passive_deletes=True
    )


class SubCategory(TimestampMixin, db.Model):
    __tablename__ = "subcategories"
    __table_args__ = (UniqueConstraint("category_id", "name", name="uq_subcategories_category_id_name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    category_id: Mapped[int] = mapped_column(
        ForeignKey("categories.id", ondelete="CASCADE"), index=True, nullable=False
    )
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    slug: Mapped[str] = mapped_column(String(120), nullable=False)

    category: Mapped[Category] = relationship(back_populates="subcategories")


class Brand(TimestampMixin, db.Model):
    __tablename__ = "brands"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True, nullable=False)
    description: Mapped[str | None] = mapped_column(Text)


class Material(TimestampMixin, db.Model):
    __tablename__ = "materials"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True, nullable=False)
    description: Mapped[str | None] = mapped_column(Text)


class Customization(TimestampMixin, db.Model):
    __tablename__ = "customizations"
    __table_args__ = (CheckConstraint("type IN ('button', 'text', 'image')", name="type"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), nullable=False)
    type: Mapped[str] = mapped_column(String(10), nullable=False)
    options: Mapped[list] = mapped_column(JSONType, nullable=False, default=list)


product_customizations = Table(
    "product_customizations",
    db.metadata,
    Column("product_id", ForeignKey("products.id", ondelete="CASCADE"), primary_key=True),
    Column("customization_id", ForeignKey("customizations.id", ondelete="CASCADE"), primary_key=True, index=True),
)

package_customizations = Table(
    "package_customizations",
    db.metadata,
    Column("package_id", ForeignKey("packages.id", ondelete="CASCADE"), primary_key=True),
    Column("customization_id", ForeignKey("customizations.id", ondelete="CASCADE"), primary_key=True, index=True),
)


class ProductMaterial(db.Model):
    __tablename__ = "product_materials"
    __table_args__ = (CheckConstraint("percentage > 0 AND percentage <= 100", name="percentage"),)

    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"), primary_key=True)
    material_id: Mapped[int] = mapped_column(
        ForeignKey("materials.id", ondelete="RESTRICT"), primary_key=True, index=True
    )
    percentage: Mapped[int] = mapped_column(Integer, nullable=False)

    material: Mapped[Material] = relationship(lazy="joined")


class ProductImage(db.Model):
    __tablename__ = "product_images"

    product_id: Mapped[int] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"), primary_key=True)
    upload_id: Mapped[int] = mapped_column(ForeignKey("uploads.id", ondelete="CASCADE"), primary_key=True, index=True)
    position: Mapped[int] = mapped_column(Integer, nullable=False, default=0)

    upload = relationship("Upload", lazy="joined")


class PackageImage(db.Model):
    __tablename__ = "package_images"

    package_id: Mapped[int] = mapped_column(ForeignKey("packages.id", ondelete="CASCADE"), primary_key=True)
    upload_id: Mapped[int] = mapped_column(ForeignKey("uploads.id", ondelete="CASCADE"), primary_key=True, index=True)
    position: Mapped[int] = mapped_column(Integer, nullable=False, default=0)

    upload = relationship("Upload", lazy="joined")


class Sellable(TimestampMixin):
    """What products and packages share: price, stock, offer, rating and the effective price rule."""

    name: Mapped[str] = mapped_column(String(200), unique=True, nullable=False)
    slug: Mapped[str] = mapped_column(String(220), unique=True, nullable=False)
    description: Mapped[str | None] = mapped_column(Text)
    price: Mapped[Decimal] = mapped_column(Money, nullable=False, index=True)
    quantity: Mapped[int] = mapped_column(Integer, nullable=False, default=0, index=True)
    is_active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True, index=True)
    rating_average: Mapped[Decimal] = mapped_column(Numeric(3, 2), nullable=False, default=Decimal("0"), index=True)
    rating_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)

    def current_discount(self, now: datetime | None = None) -> Decimal | None:
        """The offer's percentage while the offer is active and now is inside its window, else None."""
        offer = self.offer
        if offer is None or not offer.is_current(now or utcnow()):
            return None
        return offer.discount_percent

    def effective_price(self, now: datetime | None = None) -> Decimal:
        discount = self.current_discount(now)
        if discount is None:
            return self.price
        return (self.price * (Decimal(100) - discount) / Decimal(100)).quantize(CENT, rounding=ROUND_HALF_UP)


class Product(Sellable, db.Model):
    __tablename__ = "products"
    __table_args__ = (
        Index("ix_products_created_at", "created_at"),
        CheckConstraint("quantity >= 0", name="quantity_non_negative"),
        CheckConstraint("price > 0", name="price_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    sku: Mapped[str | None] = mapped_column(String(64), unique=True)
    brand_id: Mapped[int] = mapped_column(ForeignKey("brands.id", ondelete="RESTRICT"), index=True, nullable=False)
    sub_category_id: Mapped[int] = mapped_column(
        ForeignKey("subcategories.id", ondelete="RESTRICT"), index=True, nullable=False
    )
    offer_id: Mapped[int | None] = mapped_column(ForeignKey("offers.id", ondelete="SET NULL"), index=True)

    brand: Mapped[Brand] = relationship()
    sub_category: Mapped[SubCategory] = relationship()
    offer = relationship("Offer", back_populates="products")
    materials: Mapped[list[ProductMaterial]] = relationship(cascade="all, delete-orphan", passive_deletes=True)
    images: Mapped[list[ProductImage]] = relationship(
        order_by=ProductImage.position, cascade="all, delete-orphan", passive_deletes=True
    )
    customizations: Mapped[list[Customization]] = relationship(
        secondary=product_customizations, order_by=Customization.id
    )


class Package(Sellable, db.Model):
    __tablename__ = "packages"
    __table_args__ = (
        Index("ix_packages_created_at", "created_at"),
        CheckConstraint("quantity >= 0", name="quantity_non_negative"),
        CheckConstraint("price > 0", name="price_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    brand_id: Mapped[int | None] = mapped_column(ForeignKey("brands.id", ondelete="RESTRICT"), index=True)
    sub_category_id: Mapped[int | None] = mapped_column(
        ForeignKey("subcategories.id", ondelete="RESTRICT"), index=True
    )
    offer_id: Mapped[int | None] = mapped_column(ForeignKey("offers.id", ondelete="SET NULL"), index=True)

    brand: Mapped[Brand | None] = relationship()
    sub_category: Mapped[SubCategory | None] = relationship()
    offer = relationship("Offer", back_populates="packages")
    items: Mapped[list[PackageItem]] = relationship(
        back_populates="package", cascade="all, delete-orphan", passive_deletes=True, order_by="PackageItem.product_id"
    )
    images: Mapped[list[PackageImage]] = relationship(
        order_by=PackageImage.position, cascade="all, delete-orphan", passive_deletes=True
    )
    customizations: Mapped[list[Customization]] = relationship(
        secondary=package_customizations, order_by=Customization.id
    )


class PackageItem(db.Model):
    __tablename__ = "package_items"
    __table_args__ = (CheckConstraint("quantity >= 1", name="quantity_positive"),)

    package_id: Mapped[int] = mapped_column(ForeignKey("packages.id", ondelete="CASCADE"), primary_key=True)
    product_id: Mapped[int] = mapped_column(
        ForeignKey("products.id", ondelete="RESTRICT"), primary_key=True, index=True
    )
    quantity: Mapped[int] = mapped_column(Integer, nullable=False, default=1)

    package: Mapped[Package] = relationship(back_populates="items")
    product: Mapped[Product] = relationship()
