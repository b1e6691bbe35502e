"""Column helpers shared by every model: timestamps, money, UTC time, and what a row id can be."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import DateTime, Numeric, TypeDecorator
from sqlalchemy.orm import Mapped, mapped_column

# The tables' ids are 32-bit integers on PostgreSQL: a larger number names no row (and overflows SQLite's driver).
MAX_ROW_ID = 2**31 - 1
# ASCII digits in canonical form: str.isdigit() also takes "²" (which int() refuses) and int() takes "٣".
_CANONICAL_ID = re.compile(r"[1-9][0-9]{0,9}")


def row_id(value: object) -> int | None:
    """The id `value` names (an int, or a string of canonical ASCII digits) when it is in the tables' range."""
    if isinstance(value, str):
        if not _CANONICAL_ID.fullmatch(value):
            return None
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_ROW_ID:
        return value
    return None


def utcnow() -> datetime:
    return datetime.now(UTC)


def iso_utc(value: datetime) -> str:
    """ISO-8601 in UTC with milliseconds and `Z`, as every response writes times (naive values are taken as UTC)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


Money = Numeric(10, 2, asdecimal=True)
ZERO = Decimal("0.00")


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow, nullable=False)
