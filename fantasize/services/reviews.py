"""Reviews of products and packages, and the rating figures (average and count) they give their item."""

from __future__ import annotations

from sqlalchemy import Select, delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import InstrumentedAttribute, joinedload

from fantasize.errors import Conflict, NotFound
from fantasize.extensions import db
from fantasize.models import Order, OrderLine, Package, Product, Review, User
from fantasize.services.common import Page, commit, paginate
from fantasize.services.products import NAMES

ITEMS: dict[str, type[Product] | type[Package]] = {name: model for model, name in NAMES.items()}
# A review is a verified purchase when one of the reviewer's orders with the item got this far.
PURCHASED_STATUSES = ("delivered", "completed")
DUPLICATE = "You have already reviewed this {kind}"


def _review_column(kind: str) -> InstrumentedAttribute:
    return Review.product_id if kind == "product" else Review.package_id


def _line_column(kind: str) -> InstrumentedAttribute:
    return OrderLine.product_id if kind == "product" else OrderLine.package_id


def _require_active(kind: str, item_id: int) -> None:
    model = ITEMS[kind]
    if db.session.scalar(select(model.id).where(model.id == item_id, model.is_active.is_(True))) is None:
        raise NotFound(f"{kind.title()} {item_id} not found")


def _lock_item(kind: str, item_id: int, active_only: bool) -> bool:
    """Lock the item's row for the rest of the transaction; False when there is no such (active) item.

    Writers of one item's reviews queue here, so each recomputation starts after the previous writer committed
    and its statements see every review committed before it (PostgreSQL READ COMMITTED takes a fresh snapshot
    per statement; an UPDATE that merely waited for the row lock would compute from its older snapshot).
    """
    model = ITEMS[kind]
    stmt = select(model.id).where(model.id == item_id)
    if active_only:
        stmt = stmt.where(model.is_active.is_(True))
    # NO KEY UPDATE: other writers of the row wait, rows that only reference it (order lines) do not.
    return db.session.scalar(stmt.with_for_update(key_share=True)) is not None


def _refresh_rating(kind: str, item_id: int) -> None:
    """Recompute the item's rating figures from its reviews, in SQL, in one statement."""
    model, column = ITEMS[kind], _review_column(kind)
    average = select(func.avg(Review.rating)).where(column == item_id).scalar_subquery()
    count = select(func.count(Review.id)).where(column == item_id).scalar_subquery()
    db.session.execute(
        update(model)
        .where(model.id == item_id)
        .values(rating_average=func.coalesce(func.round(average, 2), 0), rating_count=count)
        .execution_options(synchronize_session=False)
    )


def _purchased(user: User, kind: str, item_id: int) -> bool:
    stmt = (
        select(Order.id)
        .join(Order.lines)
        .where(Order.user_id == user.id, Order.status.in_(PURCHASED_STATUSES), _line_column(kind) == item_id)
        .limit(1)
    )
    return db.session.scalar(stmt) is not None


def _with_reviewer() -> Select:
    return select(Review).options(joinedload(Review.user))


def list_reviews(kind: str, item_id: int, *, page: int, limit: int) -> Page:
    """An active item's reviews, newest first; an unknown or inactive item is 404."""
    _require_active(kind, item_id)
    stmt = _with_reviewer().where(_review_column(kind) == item_id).order_by(Review.created_at.desc(), Review.id.desc())
    return paginate(stmt, page, limit)


def create_review(user: User, kind: str, item_id: int, rating: int, comment: str | None = None) -> Review:
    """The user's one review of an active item; the item's rating figures change in the same transaction."""
    if not _lock_item(kind, item_id, active_only=True):
        db.session.rollback()
        raise NotFound(f"{kind.title()} {item_id} not found")
    column = _review_column(kind)
    if db.session.scalar(select(Review.id).where(Review.user_id == user.id, column == item_id)) is not None:
        db.session.rollback()
        raise Conflict(DUPLICATE.format(kind=kind))
    review = Review(user_id=user.id, rating=rating, comment=comment, verified_purchase=_purchased(user, kind, item_id),
                    **{column.key: item_id})
    db.session.add(review)
    try:
        db.session.flush()  # the recomputation below must count this review
    except IntegrityError as exc:  # the unique constraint: the backstop behind the check above
        db.session.rollback()
        raise Conflict(DUPLICATE.format(kind=kind)) from exc
    _refresh_rating(kind, item_id)
    commit(DUPLICATE.format(kind=kind))
    return db.session.scalars(_with_reviewer().where(Review.id == review.id)).one()


def delete_review(user: User, review_id: int) -> None:
    """Delete a review as its author or an admin; anyone else gets the 404 an unknown id gets."""
    review = db.session.get(Review, review_id)
    if review is None or not (review.user_id == user.id or user.is_admin):
        raise NotFound(f"Review {review_id} not found")
    kind = "product" if review.product_id is not None else "package"
    item_id = review.product_id if kind == "product" else review.package_id
    _lock_item(kind, item_id, active_only=False)
    # A Core delete reports how many rows went, so a racing deletion of the same review is a 404, not a 500.
    deleted = db.session.execute(delete(Review).where(Review.id == review_id))
    if deleted.rowcount == 0:
        db.session.rollback()
        raise NotFound(f"Review {review_id} not found")
    _refresh_rating(kind, item_id)
    commit()
