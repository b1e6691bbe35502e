"""Favourites: the products and packages a user keeps, added and removed idempotently."""

from __future__ import annotations

from sqlalchemy import Select, delete, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import InstrumentedAttribute, contains_eager, joinedload, selectinload

from fantasize.errors import Conflict, NotFound
from fantasize.extensions import db
from fantasize.models import Favorite, Package, PackageImage, Product, ProductImage, User
from fantasize.services.common import Page, commit, paginate
from fantasize.services.products import NAMES

ITEMS: dict[str, type[Product] | type[Package]] = {name: model for model, name in NAMES.items()}


def _column(kind: str) -> InstrumentedAttribute:
    return Favorite.product_id if kind == "product" else Favorite.package_id


def _with_items() -> Select:
    """Favourites of active items with what their summaries render, in a fixed number of statements."""
    return (
        select(Favorite)
        .outerjoin(Favorite.product)
        .outerjoin(Favorite.package)
        .where(or_(Product.is_active.is_(True), Package.is_active.is_(True)))
        .options(
            contains_eager(Favorite.product).options(
                joinedload(Product.offer), selectinload(Product.images).joinedload(ProductImage.upload)
            ),
            contains_eager(Favorite.package).options(
                joinedload(Package.offer), selectinload(Package.images).joinedload(PackageImage.upload)
            ),
        )
    )


def _find(user: User, kind: str, item_id: int) -> Favorite | None:
    stmt = _with_items().where(Favorite.user_id == user.id, _column(kind) == item_id)
    return db.session.scalars(stmt).unique().one_or_none()


def list_favorites(user: User, *, page: int, limit: int) -> Page:
    """The user's favourites, newest first. Items withdrawn from sale (inactive) are left out while they are."""
    stmt = _with_items().where(Favorite.user_id == user.id).order_by(Favorite.created_at.desc(), Favorite.id.desc())
    return paginate(stmt, page, limit)


def add_favorite(user: User, kind: str, item_id: int) -> tuple[Favorite, bool]:
    """Make an active item one of the user's favourites; also says whether it is new (False: it already was)."""
    model = ITEMS[kind]
    if db.session.scalar(select(model.id).where(model.id == item_id, model.is_active.is_(True))) is None:
        raise NotFound(f"{kind.title()} {item_id} not found")
    existing = _find(user, kind, item_id)
    if existing is not None:
        return existing, False
    db.session.add(Favorite(user_id=user.id, **{_column(kind).key: item_id}))
    try:
        db.session.commit()
    except IntegrityError as exc:
        # A concurrent request added the same favourite first: for an idempotent PUT that is success.
        db.session.rollback()
        existing = _find(user, kind, item_id)
        if existing is None:
            raise Conflict(f"The {kind} could not be added to your favourites") from exc
        return existing, False
    return _find(user, kind, item_id), True


def remove_favorite(user: User, kind: str, item_id: int) -> None:
    """Remove the item from the user's favourites; removing what is not there is no error."""
    db.session.execute(delete(Favorite).where(Favorite.user_id == user.id, _column(kind) == item_id))
    commit()
