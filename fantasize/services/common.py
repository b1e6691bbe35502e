"""Helpers every service uses: fetch-or-404, paginated selects, commits that turn constraint errors into 409s."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from math import ceil
from typing import Any, TypeVar

from sqlalchemy import Select, func, select
from sqlalchemy.exc import IntegrityError

from fantasize.errors import Conflict, NotFound
from fantasize.extensions import db

T = TypeVar("T")


@dataclass(frozen=True)
class Page:
    items: Sequence[Any]
    total: int
    page: int
    limit: int

    @property
    def pages(self) -> int:
        return ceil(self.total / self.limit) if self.limit else 0


def get_or_404(model: type[T], ident: Any, what: str | None = None) -> T:
    obj = db.session.get(model, ident)
    if obj is None:
        raise NotFound(f"{what or model.__name__} {ident} not found")
    return obj


def get_owned_or_404(model: type[T], ident: Any, owner_id: int, what: str | None = None) -> T:
    """A row that belongs to `owner_id`; someone else's is as absent as a missing one (404, never 403)."""
    obj = db.session.scalar(select(model).where(model.id == ident, model.user_id == owner_id))
    if obj is None:
        raise NotFound(f"{what or model.__name__} {ident} not found")
    return obj


def paginate(stmt: Select, page: int, limit: int) -> Page:
    """One COUNT and one page of rows; `stmt` must already carry a stable ORDER BY."""
    total = db.session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery()))
    items = db.session.scalars(stmt.limit(limit).offset((page - 1) * limit)).unique().all()
    return Page(items=items, total=total or 0, page=page, limit=limit)


def commit(conflict_message: str = "A record with these values already exists") -> None:
    """Commit the unit of work; a unique or foreign-key violation becomes a 409 and nothing is half-written."""
    try:
        db.session.commit()
    except IntegrityError as exc:
        db.session.rollback()
        raise Conflict(conflict_message) from exc


def slugify(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    return slug[:200] or "item"
