"""Product and package reads without ORM objects: one Core statement per read, selecting only the columns the
output shapes show, whose rows `fantasize.schemas.product_rows` renders.

Why (issue 8): building ORM objects and their selectin loads was over half the CPU of an uncached list page; each
statement costs a round trip and SQLAlchemy's per-execution work; and building a statement this size and computing
its cache key cost more than running it. The filters, sorts and visibility rules are those of `services.products`.

- One statement, whatever the page length: the page's rows, its total counted by a window function, and each row's
  images, customizations and materials (products) or items (packages) aggregated as JSON arrays by correlated
  subqueries, in PostgreSQL's JSON functions or SQLite's. A COUNT runs besides only for a page past the end, which
  has no row to carry the total.
- One statement object per kind of read (a detail; a listing of one shape: see `listing_shape`), every value a
  named parameter: SQLAlchemy memoizes an object's cache key, so a request pays neither for building nor keying.
- One round trip: outside a transaction the statement runs in autocommit (`database.read_connection`), so no BEGIN
  goes before it and no ROLLBACK after. Under READ COMMITTED every statement had its own snapshot anyway.
- Times in the output's format straight from PostgreSQL (`_output_time`).
"""

from __future__ import annotations

import functools
from typing import Any

import orjson
from sqlalchemy import (
    ColumnElement,
    Integer,
    Row,
    Select,
    Text,
    TypeDecorator,
    bindparam,
    cast,
    func,
    select,
    type_coerce,
)

from fantasize.errors import NotFound
from fantasize.extensions import db
from fantasize.models import (
    Brand,
    Customization,
    Material,
    Offer,
    Package,
    PackageImage,
    PackageItem,
    Product,
    ProductImage,
    ProductMaterial,
    SubCategory,
    Upload,
    User,
)
from fantasize.models.base import utcnow
from fantasize.models.catalog import package_customizations, product_customizations
from fantasize.platform.database import read_connection
from fantasize.services.common import Page
from fantasize.services.products import NAMES, Item, ListingShape, listing_clauses, listing_shape

# A read's row, in this order (schemas.product_rows unpacks it by position):
#   the columns of `_columns`, then the linked rows as lists of JSON arrays (None or [] when there are none):
#   images          [position, upload id, stored_name, mime_type]
#   customizations  [id, name, type, options]
#   materials       [material name, percentage]                               (products)
#   items           [product id, product name, product is_active, quantity]   (packages)
#   and, in lists, the total.
SellableRow = Row
ROW_FIELDS = (
    "id", "name", "slug", "description", "price", "quantity", "is_active", "rating_average", "rating_count",
    "created_at", "updated_at", "brand_id", "brand_name", "sub_category_id", "sub_category_name", "offer_id",
    "offer_discount_percent", "offer_is_active", "offer_valid_from", "offer_valid_to", "images", "customizations",
)


# The output's time format (schemas.base.UTCDateTime: UTC, milliseconds, "Z"), written by PostgreSQL: parsing a
# timestamp into a datetime with its zone and formatting it again in Python was a tenth of an uncached list's CPU.
# Milliseconds are truncated, as Python's isoformat truncates them.
_PG_OUTPUT_TIME = 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'


def _output_time(column: ColumnElement, dialect: str) -> ColumnElement:
    """A timestamp as the output shows it: text from PostgreSQL, a datetime elsewhere (product_rows formats it)."""
    if dialect != "postgresql":
        return column
    return func.to_char(func.timezone("UTC", column), _PG_OUTPUT_TIME).label(column.key)


def _columns(model: type[Item], dialect: str) -> tuple[ColumnElement, ...]:
    return (
        model.id, model.name, model.slug, model.description, model.price, model.quantity, model.is_active,
        model.rating_average, model.rating_count, _output_time(model.created_at, dialect),
        _output_time(model.updated_at, dialect),
        Brand.id.label("brand_id"), Brand.name.label("brand_name"),
        SubCategory.id.label("sub_category_id"), SubCategory.name.label("sub_category_name"),
        Offer.id.label("offer_id"), Offer.discount_percent.label("offer_discount_percent"),
        Offer.is_active.label("offer_is_active"), Offer.valid_from.label("offer_valid_from"),
        Offer.valid_to.label("offer_valid_to"),
    )


class _JsonText(TypeDecorator):
    """JSON made by the database, fetched as text and parsed by orjson: several times faster than the json module
    the drivers use, on what is most of a list's fetching."""

    impl = Text
    cache_ok = True

    def process_result_value(self, value: str | None, dialect: Any) -> Any:
        return None if value is None else orjson.loads(value)


def _json_list(dialect: str, *values: ColumnElement) -> ColumnElement:
    """The aggregate of `values` as a JSON array of arrays. Entries come in no particular order: product_rows sorts
    them as the models' relationships order them."""
    if dialect == "postgresql":
        aggregate = cast(func.json_agg(func.json_build_array(*values)), Text)
    else:
        # json_array() must sit right inside json_group_array() for SQLite to nest its result as JSON, not text.
        aggregate = func.json_group_array(func.json_array(*values))
    return type_coerce(aggregate, _JsonText())


def _linked(model: type[Item], dialect: str) -> tuple[ColumnElement, ...]:
    """Each row's linked rows as JSON, in subqueries correlated to the row."""
    if model is Product:
        image_link, image_owner = ProductImage, ProductImage.product_id
        custom_link, custom_owner = product_customizations, product_customizations.c.product_id
    else:
        image_link, image_owner = PackageImage, PackageImage.package_id
        custom_link, custom_owner = package_customizations, package_customizations.c.package_id
    # PostgreSQL's JSONB nests as it is; SQLite keeps JSON as text, which json() makes nest as JSON.
    options = Customization.options if dialect == "postgresql" else func.json(Customization.options)
    images = (
        select(_json_list(dialect, image_link.position, Upload.id, Upload.stored_name, Upload.mime_type))
        .select_from(image_link).join(Upload, Upload.id == image_link.upload_id)
        .where(image_owner == model.id)
    )
    customizations = (
        select(_json_list(dialect, Customization.id, Customization.name, Customization.type, options))
        .select_from(custom_link).join(Customization, Customization.id == custom_link.c.customization_id)
        .where(custom_owner == model.id)
    )
    if model is Product:
        parts = (
            select(_json_list(dialect, Material.name, ProductMaterial.percentage))
            .select_from(ProductMaterial).join(Material, Material.id == ProductMaterial.material_id)
            .where(ProductMaterial.product_id == model.id)
        )
    else:
        parts = (
            select(_json_list(dialect, Product.id, Product.name, Product.is_active, PackageItem.quantity))
            .select_from(PackageItem).join(Product, Product.id == PackageItem.product_id)
            .where(PackageItem.package_id == model.id)
        )
    return (
        images.scalar_subquery().label("images"),
        customizations.scalar_subquery().label("customizations"),
        parts.scalar_subquery().label("materials" if model is Product else "items"),
    )


@functools.cache
def _rows(model: type[Item], dialect: str, counted: bool = False) -> Select:
    """The reads' SELECT before its WHERE, ORDER BY and LIMIT (a Select is immutable: each statement derives its
    own from it)."""
    total = (func.count().over().label("total"),) if counted else ()
    # Outer joins throughout: a package's brand and subcategory are optional and a product's are never missing,
    # so no join drops or repeats a row. The offer join is the one the price filters and sorts use.
    return (
        select(*_columns(model, dialect), *_linked(model, dialect), *total)
        .select_from(model)
        .outerjoin(Brand, model.brand_id == Brand.id)
        .outerjoin(SubCategory, model.sub_category_id == SubCategory.id)
        .outerjoin(Offer, model.offer_id == Offer.id)
    )


@functools.lru_cache(maxsize=512)
def _list_statement(model: type[Item], dialect: str, shape: ListingShape) -> Select:
    """One statement object per listing shape (see services.products.listing_shape), reused by every request of
    that shape: SQLAlchemy memoizes a statement's cache key, so only a new shape pays for building and keying it."""
    conditions, order = listing_clauses(model, shape)
    return (
        _rows(model, dialect, counted=True)
        .where(*conditions)
        .order_by(*order)
        .limit(bindparam("limit", type_=Integer))
        .offset(bindparam("offset", type_=Integer))
    )


@functools.cache
def _detail_statement(model: type[Item], dialect: str) -> Select:
    return _rows(model, dialect).where(model.id == bindparam("item_id"))


def _dialect() -> str:
    return db.engine.dialect.name


# Straight on a connection (database.read_connection: the session's while it has a transaction going, else one in
# autocommit): the ORM's execution layer adds nothing to Core rows.


def _listing(model: type[Item], args: dict[str, Any], viewer: User | None) -> Page:
    shape, params = listing_shape(model, args, viewer, utcnow())
    page, limit = args["page"], args["limit"]
    with read_connection() as connection:
        rows = connection.execute(_list_statement(model, _dialect(), shape),
                                  {**params, "limit": limit, "offset": (page - 1) * limit}).all()
        if rows:
            total = rows[0].total
        elif page == 1:
            total = 0
        else:  # past the end: no row carries the window's count
            conditions, _ = listing_clauses(model, shape)
            counted = select(func.count()).select_from(model).outerjoin(Offer, model.offer_id == Offer.id)
            total = connection.execute(counted.where(*conditions), params).scalar_one()
    return Page(items=rows, total=total, page=page, limit=limit)


def _visible(model: type[Item], item_id: int, viewer: User | None) -> SellableRow:
    with read_connection() as connection:
        row = connection.execute(_detail_statement(model, _dialect()), {"item_id": item_id}).one_or_none()
    if row is None or not (row.is_active or (viewer is not None and viewer.is_admin)):
        raise NotFound(f"{NAMES[model].title()} {item_id} not found")
    return row


def item_rows(model: type[Item], dialect: str) -> Select:
    """The products' or packages' SELECT (product_rows' row shape) before its WHERE, ORDER BY and LIMIT, for other
    reads of items in this shape (discovery's home page and search)."""
    return _rows(model, dialect)


def read_rows(stmt: Select, params: dict[str, Any] | None = None) -> list[SellableRow]:
    with read_connection() as connection:
        return connection.execute(stmt, params or {}).all()


def list_products(args: dict[str, Any], viewer: User | None) -> Page:
    """Active products matching the query's filters, in its sort; admins may include inactive ones."""
    return _listing(Product, args, viewer)


def list_packages(args: dict[str, Any], viewer: User | None) -> Page:
    return _listing(Package, args, viewer)


def get_product(product_id: int, viewer: User | None) -> SellableRow:
    """One product; an inactive one is 404 except to administrators."""
    return _visible(Product, product_id, viewer)


def get_package(package_id: int, viewer: User | None) -> SellableRow:
    return _visible(Package, package_id, viewer)
