"""What customers leave behind: reviews, favourites, and the notifications they receive."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from fantasize.extensions import db
from fantasize.models.base import TimestampMixin, UTCDateTime, utcnow
from fantasize.models.orders import ONE_ITEM
from fantasize.models.types import JSONType

NOTIFICATION_TYPES = ("info", "success", "warning", "error")
_TYPE_LIST = ", ".join(f"'{t}'" for t in NOTIFICATION_TYPES)


class Review(TimestampMixin, db.Model):
    __tablename__ = "reviews"
    __table_args__ = (
        CheckConstraint("rating >= 1 AND rating <= 5", name="rating_range"),
        CheckConstraint(ONE_ITEM, name="one_item"),
        UniqueConstraint("user_id", "product_id", name="uq_reviews_user_id_product_id"),
        UniqueConstraint("user_id", "package_id", name="uq_reviews_user_id_package_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True, nullable=False)
    product_id: Mapped[int | None] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"), index=True)
    package_id: Mapped[int | None] = mapped_column(ForeignKey("packages.id", ondelete="CASCADE"), index=True)
    rating: Mapped[int] = mapped_column(Integer, nullable=False)
    comment: Mapped[str | None] = mapped_column(Text)
    verified_purchase: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)

    user = relationship("User")


class Favorite(db.Model):
    __tablename__ = "favorites"
    __table_args__ = (
        CheckConstraint(ONE_ITEM, name="one_item"),
        UniqueConstraint("user_id", "product_id", name="uq_favorites_user_id_product_id"),
        UniqueConstraint("user_id", "package_id", name="uq_favorites_user_id_package_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True, nullable=False)
    product_id: Mapped[int | None] = mapped_column(ForeignKey("products.id", ondelete="CASCADE"), index=True)
    package_id: Mapped[int | None] = mapped_column(ForeignKey("packages.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)

    product = relationship("Product")
    package = relationship("Package")


class Notification(db.Model):
    __tablename__ = "notifications"
    __table_args__ = (CheckConstraint(f"type IN ({_TYPE_LIST})", name="type"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True, nullable=False)
    title: Mapped[str] = mapped_column(String(200), nullable=False)
    message: Mapped[str] = mapped_column(Text, nullable=False)
    type: Mapped[str] = mapped_column(String(10), nullable=False, default="info")
    data: Mapped[dict | None] = mapped_column(JSONType)
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
