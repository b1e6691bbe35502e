"""Offers: time-boxed percentage discounts linked to products and packages."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import Boolean, CheckConstraint, Numeric, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from fantasize.extensions import db
from fantasize.models.base import TimestampMixin, UTCDateTime


class Offer(TimestampMixin, db.Model):
    __tablename__ = "offers"
    __table_args__ = (
        CheckConstraint("discount_percent > 0 AND discount_percent <= 90", name="discount_range"),
        CheckConstraint("valid_to > valid_from", name="window"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(200), nullable=False)
    discount_percent: Mapped[Decimal] = mapped_column(Numeric(5, 2), nullable=False)
    valid_from: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, index=True)
    valid_to: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, index=True)
    is_active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)

    products = relationship("Product", back_populates="offer", order_by="Product.id")
    packages = relationship("Package", back_populates="offer", order_by="Package.id")

    def is_current(self, now: datetime) -> bool:
        return self.is_active and self.valid_from <= now < self.valid_to
