"""Products and packages: the rules of listings (filters, sorts, visibility), admin writes and atomic stock changes.

Both are `Sellable`s, so the listing, visibility, write and stock code is written once and given the model. Public
reads run in `services.product_reads` (Core rows, no ORM objects) with the conditions and orders defined here;
writes load ORM objects and answer with them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, NoReturn, TypeVar

from flask import current_app
from sqlalchemy import ColumnElement, and_, bindparam, case, func, or_, select, update
from sqlalchemy.orm import contains_eager, joinedload, selectinload
from sqlalchemy.orm.interfaces import LoaderOption

from fantasize.errors import Conflict, Forbidden, NotFound, Unauthorized, ValidationFailed
from fantasize.events import StockChanged, announce
from fantasize.extensions import db
from fantasize.models import (
    Brand,
    Customization,
    Material,
    Offer,
    OrderLine,
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
from fantasize.models.base import UTCDateTime, utcnow
from fantasize.services.common import commit, slugify

Item = TypeVar("Item", Product, Package)

MAX_STOCK = 1_000_000
SORTS = ("price", "-price", "newest", "rating", "name")
STOCK_STATUSES = ("in_stock", "running_low", "out_of_stock")
SLUG_MAX = 200  # leaves room in the String(220) slug columns for a "-N" suffix

# Everything a rendered page touches, loaded in a fixed number of statements whatever the page length.
PRODUCT_LOADS: tuple[LoaderOption, ...] = (
    joinedload(Product.brand),
    joinedload(Product.sub_category),
    selectinload(Product.materials).joinedload(ProductMaterial.material),
    selectinload(Product.images).joinedload(ProductImage.upload),
    selectinload(Product.customizations),
)
PACKAGE_LOADS: tuple[LoaderOption, ...] = (
    joinedload(Package.brand),
    joinedload(Package.sub_category),
    selectinload(Package.items).joinedload(PackageItem.product),
    selectinload(Package.images).joinedload(PackageImage.upload),
    selectinload(Package.customizations),
)
LOADS = {Product: PRODUCT_LOADS, Package: PACKAGE_LOADS}
IMAGE_LINKS = {Product: ProductImage, Package: PackageImage}
NAMES = {Product: "product", Package: "package"}


def stock_status(quantity: int) -> str:
    if quantity <= 0:
        return "out_of_stock"
    if quantity <= current_app.config["LOW_STOCK_THRESHOLD"]:
        return "running_low"
    return "in_stock"


def _offer_is_current(now: ColumnElement) -> ColumnElement[bool]:
    return and_(Offer.is_active.is_(True), Offer.valid_from <= now, Offer.valid_to > now)


def _effective_price(model: type[Item], now: ColumnElement) -> ColumnElement:
    """SQL twin of Sellable.effective_price for filtering and sorting; `now` is bound once, not read per row."""
    discounted = func.round(model.price * (100 - Offer.discount_percent) / 100, 2)
    return case((_offer_is_current(now), discounted), else_=model.price)


# A listing's SQL depends only on its shape: whether inactive items are included, the sort, and which filters are
# given (with the direction of the yes/no ones). Every value is a named parameter, so the requests of one shape
# share one statement object, which SQLAlchemy then neither rebuilds nor keys again for its compiled cache: on a
# statement this size that was a third of an uncached read's SQLAlchemy time.
ListingShape = tuple[bool, str, tuple[Any, ...]]
VALUE_FILTERS = ("q", "category", "subcategory", "min_price", "max_price")
PRODUCT_FILTERS = ("brand", "material")
YES_NO_FILTERS = ("in_stock", "on_offer")
LIKE_ESCAPE = "/"


def _like_escaped(text: str) -> str:
    # What SQLAlchemy's autoescape does to a literal: the text matches as itself, wildcards and all.
    return text.replace("/", "//").replace("%", "/%").replace("_", "/_")


def listing_shape(model: type[Item], args: dict[str, Any], viewer: User | None,
                  now: datetime) -> tuple[ListingShape, dict[str, Any]]:
    """The shape of a listing's query (see `listing_clauses`) and the values of its parameters. Raises 401/403 for
    includeInactive without an administrator. `now` is bound once, so a page prices every row at one moment."""
    include_inactive = bool(args.get("include_inactive", False))
    if include_inactive:
        if viewer is None:
            raise Unauthorized("Sign in as an administrator to see inactive items",
                               headers={"WWW-Authenticate": "Bearer"})
        if not viewer.is_admin:
            raise Forbidden("Only administrators can see inactive items")
    filters: list[Any] = []
    params: dict[str, Any] = {"now": now}
    for name in (*VALUE_FILTERS, *(PRODUCT_FILTERS if model is Product else ())):
        value = args.get(name)
        if value is None or (name == "q" and not value):
            continue
        filters.append(name)
        params[name] = _like_escaped(value) if name == "q" else value
    filters.extend((name, bool(args[name])) for name in YES_NO_FILTERS if args.get(name) is not None)
    return (include_inactive, args.get("sort", "newest"), tuple(filters)), params


def listing_clauses(model: type[Item], shape: ListingShape) -> tuple[list[ColumnElement[bool]], tuple]:
    """The WHERE conditions and ORDER BY of a listing's shape, with its values as named parameters."""
    include_inactive, sort, filters = shape
    now = bindparam("now", type_=UTCDateTime())
    conditions: list[ColumnElement[bool]] = [] if include_inactive else [model.is_active.is_(True)]
    for name in filters:
        if name == "q":
            q = bindparam("q")
            matches = (model.name.icontains(q, escape=LIKE_ESCAPE), model.description.icontains(q, escape=LIKE_ESCAPE))
            conditions.append(or_(*matches))
        elif name == "category":
            in_category = select(SubCategory.id).where(SubCategory.category_id == bindparam("category"))
            conditions.append(model.sub_category_id.in_(in_category))
        elif name == "subcategory":
            conditions.append(model.sub_category_id == bindparam("subcategory"))
        elif name == "min_price":
            conditions.append(_effective_price(model, now) >= bindparam("min_price"))
        elif name == "max_price":
            conditions.append(_effective_price(model, now) <= bindparam("max_price"))
        elif name == "brand":
            conditions.append(Product.brand_id == bindparam("brand"))
        elif name == "material":
            conditions.append(Product.materials.any(ProductMaterial.material_id == bindparam("material")))
        elif name[0] == "in_stock":
            conditions.append(model.quantity > 0 if name[1] else model.quantity == 0)
        elif name[0] == "on_offer":
            current = and_(model.offer_id.is_not(None), _offer_is_current(now))
            conditions.append(current if name[1] else ~current)
    return conditions, _listing_order(model, sort, now)


def _listing_order(model: type[Item], sort: str, now: ColumnElement) -> tuple[ColumnElement, ...]:
    # Every order ends on the id so equal values never swap places between pages.
    if sort == "price":
        return _effective_price(model, now).asc(), model.id.asc()
    if sort == "-price":
        return _effective_price(model, now).desc(), model.id.asc()
    if sort == "rating":
        return model.rating_average.desc(), model.rating_count.desc(), model.id.asc()
    if sort == "name":
        # lower() first: SQLite compares bytes, PostgreSQL collations do not; this keeps both alike.
        return func.lower(model.name).asc(), model.name.asc(), model.id.asc()
    return model.created_at.desc(), model.id.desc()


def _loaded(model: type[Item]):
    # The offer comes through the same outer join the price filters and sorts use.
    return select(model).outerjoin(model.offer).options(contains_eager(model.offer), *LOADS[model])


def _fetch(model: type[Item], item_id: int) -> Item | None:
    return db.session.scalars(_loaded(model).where(model.id == item_id)).unique().one_or_none()


def _fetch_or_404(model: type[Item], item_id: int) -> Item:
    item = _fetch(model, item_id)
    if item is None:
        raise NotFound(f"{NAMES[model].title()} {item_id} not found")
    return item


def _unique_slug(model: type[Item], name: str, item_id: int | None) -> str:
    # Different names can share a slug ("Mug!" and "Mug?"), so later ones get a numeric suffix.
    base = slugify(name)[:SLUG_MAX].rstrip("-") or "item"
    taken = set(db.session.scalars(select(model.slug).where(model.slug.like(f"{base}%"), model.id != (item_id or 0))))
    slug, n = base, 1
    while slug in taken:
        n += 1
        slug = f"{base}-{n}"
    return slug


def _ensure_name_free(model: type[Item], name: str, item_id: int | None) -> None:
    # Checked up front for a clear message; the unique constraint still guards concurrent writers.
    stmt = select(model.id).where(model.name == name, model.id != (item_id or 0)).limit(1)
    if db.session.scalar(stmt) is not None:
        raise Conflict(f'A {NAMES[model]} named "{name}" already exists')


def _missing(model: type, ids: Sequence[int]) -> list[int]:
    found = set(db.session.scalars(select(model.id).where(model.id.in_(ids)))) if ids else set()
    return [ident for ident in ids if ident not in found]


def _reference_errors(data: dict[str, Any]) -> dict[str, list[str]]:
    """Field -> messages for every id in the body that names nothing (or, for images, no image)."""
    errors: dict[str, list[str]] = {}
    for attr, key, model in (("brand_id", "brandId", Brand), ("sub_category_id", "subCategoryId", SubCategory),
                             ("offer_id", "offerId", Offer)):
        if data.get(attr) is not None and db.session.get(model, data[attr]) is None:
            errors[key] = [f"No {model.__name__.lower()} with id {data[attr]}."]
    lists = (
        ("materials", Material, [share["material_id"] for share in data.get("materials") or []]),
        ("items", Product, [entry["product_id"] for entry in data.get("items") or []]),
        ("customizationIds", Customization, data.get("customization_ids") or []),
        ("imageIds", Upload, data.get("image_ids") or []),
    )
    for key, model, ids in lists:
        unknown = _missing(model, ids)
        if unknown:
            errors[key] = [f"No {model.__name__.lower()} with id {', '.join(map(str, unknown))}."]
    if data.get("image_ids") and "imageIds" not in errors:
        stmt = select(Upload.id).where(Upload.id.in_(data["image_ids"]), Upload.mime_type.not_like("image/%"))
        not_images = list(db.session.scalars(stmt))
        if not_images:
            errors["imageIds"] = [f"Upload {', '.join(map(str, not_images))} is not an image."]
    return errors


def _sync_links(current: Sequence[Any], key: str, wanted: Sequence[tuple[int, dict[str, Any]]],
                make: Callable[..., Any]) -> list[Any]:
    """The new list of link rows: rows already linked are kept and updated, so no key is deleted and re-inserted."""
    existing = {getattr(link, key): link for link in current}
    links = []
    for ident, values in wanted:
        link = existing.get(ident) or make(**{key: ident})
        for name, value in values.items():
            setattr(link, name, value)
        links.append(link)
    return links


SCALARS = ("description", "price", "quantity", "is_active", "brand_id", "sub_category_id", "offer_id", "sku")


def _write(item: Item, data: dict[str, Any]) -> None:
    """Apply a validated body (all of it on create, the given keys on update) after checking its references."""
    model = type(item)
    if "name" in data and data["name"] != item.name:
        _ensure_name_free(model, data["name"], item.id)
    errors = _reference_errors(data)
    if errors:
        raise ValidationFailed(details=errors)
    customizations = None
    if "customization_ids" in data:
        ids = data["customization_ids"]
        customizations = list(db.session.scalars(select(Customization).where(Customization.id.in_(ids)))) if ids else []
    with db.session.no_autoflush:
        if "name" in data and data["name"] != item.name:
            item.name, item.slug = data["name"], _unique_slug(model, data["name"], item.id)
        if item.id is not None and "quantity" in data and data["quantity"] != item.quantity:
            announce(StockChanged(NAMES[model], item.id, data["quantity"], item.quantity, {"change": "update"},
                                  public=data.get("is_active", item.is_active)))
        for name in SCALARS:
            if name in data:
                setattr(item, name, data[name])
        if customizations is not None:
            item.customizations = sorted(customizations, key=lambda c: c.id)
        if "image_ids" in data:
            wanted = [(upload_id, {"position": n}) for n, upload_id in enumerate(data["image_ids"])]
            item.images = _sync_links(item.images, "upload_id", wanted, IMAGE_LINKS[model])
        if "materials" in data:
            wanted = [(share["material_id"], {"percentage": share["percentage"]}) for share in data["materials"]]
            item.materials = _sync_links(item.materials, "material_id", wanted, ProductMaterial)
        if "items" in data:
            wanted = [(entry["product_id"], {"quantity": entry["quantity"]}) for entry in data["items"]]
            item.items = _sync_links(item.items, "product_id", wanted, PackageItem)


def _create(model: type[Item], data: dict[str, Any]) -> Item:
    name = data["name"]
    _ensure_name_free(model, name, None)
    item = model(name=name, slug=_unique_slug(model, name, None))
    _write(item, data)
    db.session.add(item)
    commit(f"A {NAMES[model]} with this name{' or SKU' if model is Product else ''} already exists")
    return _fetch_or_404(model, item.id)


def _update(model: type[Item], item_id: int, data: dict[str, Any]) -> Item:
    if data.keys() & {"quantity", "is_active"}:
        # A stock change is announced with the product's activity as it commits (an inactive product's stock
        # reaches admins only): lock the row before reading it, so a deactivation or order committing meanwhile
        # is seen, never announced over.
        db.session.execute(select(model.id).where(model.id == item_id).with_for_update())
    item = _fetch_or_404(model, item_id)
    _write(item, data)
    commit(f"A {NAMES[model]} with this name{' or SKU' if model is Product else ''} already exists")
    return _fetch_or_404(model, item_id)


def create_product(data: dict[str, Any]) -> Product:
    return _create(Product, data)


def update_product(product_id: int, data: dict[str, Any]) -> Product:
    """Partial update; a given list (materials, images, customizations) replaces the old one."""
    return _update(Product, product_id, data)


def create_package(data: dict[str, Any]) -> Package:
    return _create(Package, data)


def update_package(package_id: int, data: dict[str, Any]) -> Package:
    """Partial update; a given list (items, images, customizations) replaces the old one."""
    return _update(Package, package_id, data)


def _exists(stmt) -> bool:
    return db.session.scalar(stmt.limit(1)) is not None


def delete_product(product_id: int) -> None:
    """Deletes the product; refused while an order line or a package refers to it (deactivate it instead)."""
    product = _fetch_or_404(Product, product_id)
    if _exists(select(OrderLine.id).where(OrderLine.product_id == product_id)):
        raise Conflict("The product is on orders; set isActive to false to withdraw it instead", code="IN_USE")
    if _exists(select(PackageItem.package_id).where(PackageItem.product_id == product_id)):
        raise Conflict("The product is part of a package; remove it from the package first", code="IN_USE")
    db.session.delete(product)
    commit("The product is still referenced and cannot be deleted")


def delete_package(package_id: int) -> None:
    """Deletes the package; refused while an order line refers to it (deactivate it instead)."""
    package = _fetch_or_404(Package, package_id)
    if _exists(select(OrderLine.id).where(OrderLine.package_id == package_id)):
        raise Conflict("The package is on orders; set isActive to false to withdraw it instead", code="IN_USE")
    db.session.delete(package)
    commit("The package is still referenced and cannot be deleted")


def _change_stock(model: type[Item], item_id: int, quantity: int | None, delta: int | None) -> Item:
    """Set the stock, or move it by `delta` in one conditional UPDATE so concurrent moves never go below zero."""
    stmt = update(model).where(model.id == item_id)
    if delta is None:
        # Locked so the previous quantity announced is the one this write replaced.
        previous = db.session.scalar(select(model.quantity).where(model.id == item_id).with_for_update())
        if previous is None:
            raise NotFound(f"{NAMES[model].title()} {item_id} not found")
        target = quantity
    else:
        target = model.quantity + delta
        stmt = stmt.where(target >= 0, target <= MAX_STOCK)
    stmt = stmt.values(quantity=target, updated_at=utcnow()).returning(model.quantity, model.is_active)
    row = db.session.execute(stmt.execution_options(synchronize_session=False)).first()
    if row is None:
        db.session.rollback()
        _refuse_delta(model, item_id, delta)
    updated = row.quantity
    if delta is not None:
        previous = updated - delta
    details = {"change": "set"} if delta is None else {"change": "delta", "delta": delta}
    announce(StockChanged(NAMES[model], item_id, updated, previous, details, public=row.is_active))
    commit()
    return _fetch_or_404(model, item_id)


def _refuse_delta(model: type[Item], item_id: int, delta: int) -> NoReturn:
    available = db.session.scalar(select(model.quantity).where(model.id == item_id))
    if available is None:
        raise NotFound(f"{NAMES[model].title()} {item_id} not found")
    if available + delta < 0:
        raise Conflict(
            f"Only {available} in stock; cannot take {-delta}", code="INSUFFICIENT_STOCK",
            details={"available": available, "delta": delta},
        )
    raise ValidationFailed(details={"delta": [f"Stock would go above {MAX_STOCK}."]})


def change_product_stock(product_id: int, quantity: int | None = None, delta: int | None = None) -> Product:
    return _change_stock(Product, product_id, quantity, delta)


def change_package_stock(package_id: int, quantity: int | None = None, delta: int | None = None) -> Package:
    return _change_stock(Package, package_id, quantity, delta)
