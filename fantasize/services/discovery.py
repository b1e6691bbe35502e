"""Discovery: search across the catalogue, the home page's showcases and the explore page's facets.

Every section is one bounded query (plus the fixed eager loads of what it renders), whatever the catalogue's size.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, bindparam, case, func, or_, select
from sqlalchemy.orm import selectinload

from fantasize.extensions import db
from fantasize.models import Brand, Category, Material, Offer, Package, Product, ProductMaterial, SubCategory
from fantasize.models.base import utcnow
from fantasize.services import product_reads

# No stemming and no stop words: shop names are brand-like words in any language, matched as written.
TEXT_SEARCH_CONFIG = "simple"
HOME_SECTION_SIZE = 8
HOME_OFFERS = 6
PRODUCTS_PER_OFFER = 4

_CATEGORY_LOADS = (selectinload(Category.subcategories), selectinload(Category.image))


@dataclass(frozen=True)
class SearchResults:
    """What a search found; products and packages as product rows (see `_search_items`)."""

    products: Sequence[Any]
    packages: Sequence[Any]
    categories: Sequence[Category]


@dataclass(frozen=True)
class OfferShowcase:
    offer: Offer
    products: Sequence[Any]  # product rows (services.product_reads), or Product objects


@dataclass(frozen=True)
class HomePage:
    """The home page's sections; the products as product rows (see `home`), rendered by schemas.product_rows."""

    new_arrivals: Sequence[Any]
    top_rated: Sequence[Any]
    current_offers: Sequence[OfferShowcase]
    categories: Sequence[Category]


def _dialect() -> str:
    return db.session.get_bind().dialect.name


def _ranked_match(name: Any, description: Any | None, q: str) -> tuple[ColumnElement[bool], tuple[ColumnElement, ...]]:
    """The condition for `q` matching a name (or its description) and the ORDER BY that puts the best first.

    A case-insensitive substring match (wildcards in `q` escaped) finds partial words on every backend.
    PostgreSQL adds full-text search, so the words of `q` also match apart and in any order, ranked by
    ts_rank with words in the name weighing more than words in the description. Then name matches come
    before description-only ones, then names alphabetically.
    There is deliberately no tsvector index: the substring arm of the OR cannot use one, so PostgreSQL scans
    the active rows either way (a pg_trgm index would be the next step for a much larger catalogue).
    """
    columns = (name,) if description is None else (name, description)
    substring = or_(*(column.icontains(q, autoescape=True) for column in columns))
    by_name = (case((name.icontains(q, autoescape=True), 0), else_=1), func.lower(name))
    if _dialect() != "postgresql":
        return substring, by_name
    vector = func.setweight(func.to_tsvector(TEXT_SEARCH_CONFIG, name), "A")
    if description is not None:
        described = func.to_tsvector(TEXT_SEARCH_CONFIG, func.coalesce(description, ""))
        vector = vector.op("||")(func.setweight(described, "B"))
    query = func.plainto_tsquery(TEXT_SEARCH_CONFIG, q)
    return or_(vector.op("@@")(query), substring), (func.ts_rank(vector, query).desc(), *by_name)


def _search_items(model: type[Product] | type[Package], q: str, limit: int) -> Sequence[Any]:
    """The matches as product rows (services.product_reads), rendered by schemas.product_rows."""
    condition, order = _ranked_match(model.name, model.description, q)
    stmt = (
        product_reads.item_rows(model, _dialect())
        .where(model.is_active.is_(True), condition)
        .order_by(*order, model.id).limit(limit)
    )
    return product_reads.read_rows(stmt)


def search(q: str, limit: int) -> SearchResults:
    """Active products, packages (name or description) and categories (name) matching `q`, best first."""
    q = q.strip()
    condition, order = _ranked_match(Category.name, None, q)
    categories = db.session.scalars(
        select(Category).options(*_CATEGORY_LOADS)
        .where(Category.is_active.is_(True), condition)
        .order_by(*order, Category.id).limit(limit)
    ).all()
    return SearchResults(
        products=_search_items(Product, q, limit),
        packages=_search_items(Package, q, limit),
        categories=categories,
    )


@functools.cache
def _home_statements(dialect: str) -> tuple[Select, Select, Select]:
    """The home page's product reads, in product_rows' row shape (rendered by schemas.product_rows, no ORM objects):
    the newest, the best rated, and the newest few of each offer (offer ids as an expanding parameter). Built once:
    every value is a parameter, so SQLAlchemy keys each statement once."""
    rows = product_reads.item_rows(Product, dialect)
    active = Product.is_active.is_(True)
    newest = rows.where(active).order_by(Product.created_at.desc(), Product.id.desc()).limit(HOME_SECTION_SIZE)
    best = (rows.where(active).order_by(Product.rating_average.desc(), Product.rating_count.desc(), Product.id)
            .limit(HOME_SECTION_SIZE))
    # The newest few products of every offer in one statement: number them within each offer, keep the first few.
    position = func.row_number().over(
        partition_by=Product.offer_id, order_by=(Product.created_at.desc(), Product.id.desc())
    ).label("position")
    numbered = (
        select(Product.id, position)
        .where(active, Product.offer_id.in_(bindparam("offer_ids", expanding=True)))
        .subquery()
    )
    showcased = (rows.join(numbered, numbered.c.id == Product.id)
                 .where(active, numbered.c.position <= PRODUCTS_PER_OFFER)
                 .order_by(Product.offer_id, numbered.c.position))
    return newest, best, showcased


def _offer_showcases(now: datetime, showcased: Select) -> list[OfferShowcase]:
    offers = db.session.scalars(
        select(Offer)
        .where(Offer.is_active.is_(True), Offer.valid_from <= now, Offer.valid_to > now)
        .order_by(Offer.valid_to, Offer.id).limit(HOME_OFFERS)
    ).all()
    if not offers:
        return []
    by_offer: dict[int, list[Any]] = defaultdict(list)
    for row in product_reads.read_rows(showcased, {"offer_ids": [offer.id for offer in offers]}):
        by_offer[row.offer_id].append(row)
    return [OfferShowcase(offer, by_offer[offer.id]) for offer in offers]


def home() -> HomePage:
    """Newest and best-rated active products, the offers running now, and the active categories. The products are
    rows for schemas.product_rows (`HomePage.rows`), the offers and categories ORM objects."""
    newest, best, showcased = _home_statements(_dialect())
    categories = select(Category).options(*_CATEGORY_LOADS).where(Category.is_active.is_(True))
    return HomePage(
        new_arrivals=product_reads.read_rows(newest),
        top_rated=product_reads.read_rows(best),
        current_offers=_offer_showcases(utcnow(), showcased),
        categories=db.session.scalars(categories.order_by(Category.name, Category.id)).all(),
    )


def _active_product_on(*conditions: ColumnElement[bool]) -> ColumnElement[bool]:
    return and_(Product.is_active.is_(True), *conditions)


def _category_facets() -> list[dict[str, Any]]:
    product_count = func.count(Product.id).label("product_count")
    subcategories = db.session.execute(
        select(SubCategory.id, SubCategory.category_id, SubCategory.name, SubCategory.slug, product_count)
        .join(Category, Category.id == SubCategory.category_id)
        .outerjoin(Product, _active_product_on(Product.sub_category_id == SubCategory.id))
        .where(Category.is_active.is_(True))
        .group_by(SubCategory.id, SubCategory.category_id, SubCategory.name, SubCategory.slug)
        .order_by(SubCategory.name, SubCategory.id)
    ).mappings().all()
    categories = db.session.execute(
        select(Category.id, Category.name, Category.slug, product_count)
        .outerjoin(SubCategory, SubCategory.category_id == Category.id)
        .outerjoin(Product, _active_product_on(Product.sub_category_id == SubCategory.id))
        .where(Category.is_active.is_(True))
        .group_by(Category.id, Category.name, Category.slug)
        .order_by(Category.name, Category.id)
    ).mappings().all()
    children: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for row in subcategories:
        children[row["category_id"]].append(dict(row))
    return [{**row, "subcategories": children[row["id"]]} for row in categories]


def explore() -> dict[str, Any]:
    """Facets for browsing: categories, brands and materials with their active product counts, and prices."""
    product_count = func.count(Product.id).label("product_count")
    brands = db.session.execute(
        select(Brand.id, Brand.name, product_count)
        .outerjoin(Product, _active_product_on(Product.brand_id == Brand.id))
        .group_by(Brand.id, Brand.name).order_by(Brand.name, Brand.id)
    ).mappings().all()
    materials = db.session.execute(
        select(Material.id, Material.name, product_count)
        .outerjoin(ProductMaterial, ProductMaterial.material_id == Material.id)
        .outerjoin(Product, _active_product_on(Product.id == ProductMaterial.product_id))
        .group_by(Material.id, Material.name).order_by(Material.name, Material.id)
    ).mappings().all()
    low, high = db.session.execute(
        select(func.min(Product.price), func.max(Product.price)).where(Product.is_active.is_(True))
    ).one()
    return {
        "categories": _category_facets(),
        "brands": brands,
        "price_range": {"min": low, "max": high},
        "materials": materials,
    }
