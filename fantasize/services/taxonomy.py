"""The catalogue taxonomy: categories and their subcategories, brands and materials."""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import Select, select
from sqlalchemy.orm import selectinload

from fantasize.errors import Conflict, NotFound, ValidationFailed
from fantasize.extensions import db
from fantasize.models import Brand, Category, Material, SubCategory, Upload, User
from fantasize.services.common import Page, commit, get_or_404, paginate, slugify

Named = TypeVar("Named", Brand, Material)

SLUG_MAX = 120  # the slug columns are String(120)
_CATEGORY_LOADS = (selectinload(Category.subcategories), selectinload(Category.image))


def _sees_hidden(viewer: User | None) -> bool:
    return viewer is not None and viewer.is_admin


def _apply(obj: Any, data: dict[str, Any], names: tuple[str, ...]) -> None:
    for name in names:
        if name in data:
            setattr(obj, name, data[name])


def _ensure_name_free(stmt: Select, name: str, what: str) -> None:
    # Checked up front for a clear message; the unique constraint still guards concurrent writers.
    if db.session.scalar(stmt.limit(1)) is not None:
        raise Conflict(f'A {what} named "{name}" already exists')


def _ensure_upload(upload_id: int | None) -> None:
    if upload_id is not None and db.session.get(Upload, upload_id) is None:
        raise ValidationFailed(details={"imageId": [f"No upload with id {upload_id}."]})


def _unique_category_slug(name: str, category_id: int | None) -> str:
    # Different names can share a slug ("Gifts!" and "Gifts?"), so later ones get a numeric suffix.
    base = slugify(name)[: SLUG_MAX - 8].rstrip("-") or "item"
    taken = set(
        db.session.scalars(
            select(Category.slug).where(Category.slug.like(f"{base}%"), Category.id != (category_id or 0))
        )
    )
    slug, n = base, 1
    while slug in taken:
        n += 1
        slug = f"{base}-{n}"
    return slug


def list_categories(viewer: User | None, page: int, limit: int) -> Page:
    """Categories by name; inactive ones only for admins."""
    stmt = select(Category).options(*_CATEGORY_LOADS).order_by(Category.name, Category.id)
    if not _sees_hidden(viewer):
        stmt = stmt.where(Category.is_active.is_(True))
    return paginate(stmt, page, limit)


def get_category(category_id: int, viewer: User | None) -> Category:
    category = db.session.get(Category, category_id, options=_CATEGORY_LOADS)
    if category is None or not (category.is_active or _sees_hidden(viewer)):
        raise NotFound(f"Category {category_id} not found")
    return category


def create_category(data: dict[str, Any]) -> Category:
    name = data["name"]
    _ensure_name_free(select(Category.id).where(Category.name == name), name, "category")
    _ensure_upload(data.get("image_id"))
    category = Category(name=name, slug=_unique_category_slug(name, None), is_active=data.get("is_active", True))
    _apply(category, data, ("description", "image_id"))
    db.session.add(category)
    commit(f'A category named "{name}" already exists')
    return category


def update_category(category_id: int, data: dict[str, Any]) -> Category:
    category = get_or_404(Category, category_id, "Category")
    if "name" in data and data["name"] != category.name:
        name = data["name"]
        _ensure_name_free(select(Category.id).where(Category.name == name), name, "category")
        category.name, category.slug = name, _unique_category_slug(name, category.id)
    _ensure_upload(data.get("image_id"))
    _apply(category, data, ("description", "image_id", "is_active"))
    commit(f'A category named "{category.name}" already exists')
    return category


def delete_category(category_id: int) -> None:
    """Deletes the category and its subcategories; refused while any product or package uses one of them."""
    db.session.delete(get_or_404(Category, category_id, "Category"))
    commit("The category still has products or packages in its subcategories; move or delete them first")


def create_subcategory(category_id: int, data: dict[str, Any]) -> SubCategory:
    category = get_or_404(Category, category_id, "Category")
    name = data["name"]
    _ensure_subcategory_name_free(category.id, name)
    subcategory = SubCategory(category=category, name=name, slug=slugify(name)[:SLUG_MAX])
    db.session.add(subcategory)
    commit(f'The category already has a subcategory named "{name}"')
    return subcategory


def _ensure_subcategory_name_free(category_id: int, name: str) -> None:
    stmt = select(SubCategory.id).where(SubCategory.category_id == category_id, SubCategory.name == name)
    _ensure_name_free(stmt, name, "subcategory in this category")


def update_subcategory(subcategory_id: int, data: dict[str, Any]) -> SubCategory:
    subcategory = get_or_404(SubCategory, subcategory_id, "Subcategory")
    if "name" in data and data["name"] != subcategory.name:
        _ensure_subcategory_name_free(subcategory.category_id, data["name"])
        subcategory.name, subcategory.slug = data["name"], slugify(data["name"])[:SLUG_MAX]
    commit(f'The category already has a subcategory named "{subcategory.name}"')
    return subcategory


def delete_subcategory(subcategory_id: int) -> None:
    db.session.delete(get_or_404(SubCategory, subcategory_id, "Subcategory"))
    commit("The subcategory still has products or packages; move or delete them first")


def _list_named(model: type[Named], page: int, limit: int) -> Page:
    return paginate(select(model).order_by(model.name, model.id), page, limit)


def _create_named(model: type[Named], data: dict[str, Any], what: str) -> Named:
    name = data["name"]
    _ensure_name_free(select(model.id).where(model.name == name), name, what)
    obj = model(name=name, description=data.get("description"))
    db.session.add(obj)
    commit(f'A {what} named "{name}" already exists')
    return obj


def _update_named(model: type[Named], obj_id: int, data: dict[str, Any], what: str) -> Named:
    obj = get_or_404(model, obj_id, what.capitalize())
    if "name" in data and data["name"] != obj.name:
        _ensure_name_free(select(model.id).where(model.name == data["name"]), data["name"], what)
    _apply(obj, data, ("name", "description"))
    commit(f'A {what} named "{obj.name}" already exists')
    return obj


def _delete_named(model: type[Named], obj_id: int, what: str, in_use: str) -> None:
    db.session.delete(get_or_404(model, obj_id, what.capitalize()))
    commit(in_use)


def list_brands(page: int, limit: int) -> Page:
    return _list_named(Brand, page, limit)


def create_brand(data: dict[str, Any]) -> Brand:
    return _create_named(Brand, data, "brand")


def update_brand(brand_id: int, data: dict[str, Any]) -> Brand:
    return _update_named(Brand, brand_id, data, "brand")


def delete_brand(brand_id: int) -> None:
    _delete_named(Brand, brand_id, "brand", "The brand is still used by products or packages; change them first")


def list_materials(page: int, limit: int) -> Page:
    return _list_named(Material, page, limit)


def create_material(data: dict[str, Any]) -> Material:
    return _create_named(Material, data, "material")


def update_material(material_id: int, data: dict[str, Any]) -> Material:
    return _update_named(Material, material_id, data, "material")


def delete_material(material_id: int) -> None:
    _delete_named(Material, material_id, "material", "The material is still used by products; change them first")
