"""Accounts: users, their addresses and their payment methods."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Boolean, CheckConstraint, Date, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from fantasize.extensions import db
from fantasize.models.base import TimestampMixin, UTCDateTime, utcnow

ROLES = ("customer", "admin")
GENDERS = ("male", "female", "other", "unspecified")
PAYMENT_METHODS = ("card", "cash_on_delivery")


class User(TimestampMixin, db.Model):
    __tablename__ = "users"
    __table_args__ = (CheckConstraint("role IN ('customer', 'admin')", name="role"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    # Stored lower-cased by the service, so the unique index makes it unique case-insensitively.
    email: Mapped[str] = mapped_column(String(254), unique=True, nullable=False)
    username: Mapped[str] = mapped_column(String(50), nullable=False)
    password_hash: Mapped[str] = mapped_column(String(255), nullable=False)
    role: Mapped[str] = mapped_column(String(20), nullable=False, default="customer")
    phone: Mapped[str | None] = mapped_column(String(20), unique=True)
    gender: Mapped[str | None] = mapped_column(String(20))
    date_of_birth: Mapped[date | None] = mapped_column(Date)
    avatar_id: Mapped[int | None] = mapped_column(
        ForeignKey("uploads.id", ondelete="SET NULL", use_alter=True), index=True
    )
    token_version: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    is_active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    avatar = relationship("Upload", foreign_keys=[avatar_id])

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


class Address(TimestampMixin, db.Model):
    __tablename__ = "addresses"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True, nullable=False)
    line1: Mapped[str] = mapped_column(String(200), nullable=False)
    line2: Mapped[str | None] = mapped_column(String(200))
    city: Mapped[str] = mapped_column(String(100), nullable=False)
    state: Mapped[str | None] = mapped_column(String(100))
    country: Mapped[str] = mapped_column(String(2), nullable=False)
    postal_code: Mapped[str | None] = mapped_column(String(20))
    is_default: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)


class PaymentMethod(db.Model):
    __tablename__ = "payment_methods"
    __table_args__ = (CheckConstraint("method IN ('card', 'cash_on_delivery')", name="method"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True, nullable=False)
    method: Mapped[str] = mapped_column(String(20), nullable=False)
    cardholder_name: Mapped[str | None] = mapped_column(String(100))
    brand: Mapped[str | None] = mapped_column(String(20))
    last4: Mapped[str | None] = mapped_column(String(4))
    exp_month: Mapped[int | None] = mapped_column(Integer)
    exp_year: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
