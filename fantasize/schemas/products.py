"""Schemas for products and packages: v1 flat and v2 grouped shapes, write bodies, stock bodies and list queries."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from flask import current_app
from marshmallow import ValidationError, fields, pre_dump, validate, validates_schema

from fantasize.models.base import utcnow
from fantasize.schemas.base import (
    CamelSchema,
    Id,
    Money,
    PageQuery,
    PlainText,
    SafeHtml,
    StrictBoolean,
    StrictInteger,
    UTCDateTime,
    WholeNested,
    require_one_of,
)
from fantasize.schemas.offers import CustomizationSchema, OfferRefSchema, Percent
from fantasize.schemas.taxonomy import BrandRefSchema, SubCategoryRefSchema
from fantasize.services.products import MAX_STOCK, SORTS, STOCK_STATUSES, stock_status

NAME = validate.Length(min=1, max=200)  # the name columns are String(200)
DESCRIPTION = validate.Length(max=10_000)
MAX_LINKS = validate.Length(max=100)


class ImageSchema(CamelSchema):
    id = fields.Integer()
    url = fields.String()
    mime_type = fields.String()


class MaterialShareSchema(CamelSchema):
    name = fields.String(attribute="material.name")
    percentage = fields.Integer()


class ProductRefSchema(CamelSchema):
    id = fields.Integer()
    name = fields.String()


class PackageItemSchema(CamelSchema):
    product = fields.Nested(ProductRefSchema)
    quantity = fields.Integer()


class SellableSchema(CamelSchema):
    """What products and packages render alike (v1). Derived values come from `derive_<field>` methods.

    The clock is read once per dump, so every row of a page prices against the same moment. This is what the
    public sees: only an offer that is current, and only what is active; the `Staff...` subclasses show
    administrators every link as it is (the page cache never serves or stores an administrator's read).
    """

    staff = False

    id = fields.Integer()
    name = fields.String()
    slug = fields.String()
    description = fields.String(allow_none=True)
    price = Money()
    discount_price = Money(allow_none=True)
    quantity = fields.Integer()
    status = fields.String(metadata={"enum": list(STOCK_STATUSES)})
    rating_average = fields.Float()
    brand = fields.Nested(BrandRefSchema, allow_none=True)
    sub_category = fields.Nested(SubCategoryRefSchema, allow_none=True)
    offer = fields.Nested(OfferRefSchema, allow_none=True)
    images = fields.Pluck(ImageSchema, "url", many=True)
    customizations = fields.List(fields.Nested(CustomizationSchema))
    created_at = UTCDateTime()
    updated_at = UTCDateTime()

    @pre_dump(pass_collection=True)
    def _read_clock(self, data: Any, many: bool, **kwargs: Any) -> Any:
        self.now = utcnow()
        return data

    def get_attribute(self, obj: Any, attr: str, default: Any) -> Any:
        derive = getattr(self, f"derive_{attr}", None)
        return derive(obj) if derive is not None else super().get_attribute(obj, attr, default)

    def derive_discount_price(self, item: Any) -> Decimal | None:
        return item.effective_price(self.now) if item.current_discount(self.now) is not None else None

    def derive_offer(self, item: Any) -> Any:
        # An offer that has not started, has ended or is switched off is as absent as GET /offers/{id} says.
        offer = item.offer
        return offer if offer is not None and (self.staff or offer.is_current(self.now)) else None

    def derive_status(self, item: Any) -> str:
        return stock_status(item.quantity)

    def derive_images(self, item: Any) -> list:
        return [image.upload for image in item.images]


class ProductSchema(SellableSchema):
    materials = fields.List(fields.Nested(MaterialShareSchema))

    def derive_materials(self, product: Any) -> list:
        return sorted(product.materials, key=lambda share: (-share.percentage, share.material.name))


class PackageSchema(SellableSchema):
    items = fields.List(fields.Nested(PackageItemSchema))

    def derive_items(self, package: Any) -> list:
        # A product withdrawn from sale is not named to the public, even inside a package still on sale.
        return package.items if self.staff else [entry for entry in package.items if entry.product.is_active]


class PricingSchema(CamelSchema):
    price = Money()
    effective_price = Money()
    discount_percent = Percent(allow_none=True)
    currency = fields.String()


class StockLevelSchema(CamelSchema):
    quantity = fields.Integer()
    status = fields.String(metadata={"enum": list(STOCK_STATUSES)})


class RatingSchema(CamelSchema):
    average = fields.Float()
    count = fields.Integer()


V1_FLAT_FIELDS = ("price", "discount_price", "quantity", "status", "rating_average")


class SellableV2Schema(SellableSchema):
    """v2 groups pricing, stock and rating, and gives images as objects."""

    class Meta(CamelSchema.Meta):
        exclude = V1_FLAT_FIELDS

    pricing = fields.Nested(PricingSchema)
    stock = fields.Nested(StockLevelSchema)
    rating = fields.Nested(RatingSchema)
    images = fields.List(fields.Nested(ImageSchema))

    def derive_pricing(self, item: Any) -> dict[str, Any]:
        return {
            "price": item.price,
            "effective_price": item.effective_price(self.now),
            "discount_percent": item.current_discount(self.now),
            "currency": current_app.config["CURRENCY"],
        }

    def derive_stock(self, item: Any) -> dict[str, Any]:
        return {"quantity": item.quantity, "status": stock_status(item.quantity)}

    def derive_rating(self, item: Any) -> dict[str, Any]:
        return {"average": item.rating_average, "count": item.rating_count}


class ProductV2Schema(SellableV2Schema, ProductSchema):
    """A product in v2: ProductSchema with the v2 groups."""


class PackageV2Schema(SellableV2Schema, PackageSchema):
    """A package in v2: PackageSchema with the v2 groups."""


class StaffProductSchema(ProductSchema):
    """A product as administrators see it: its offer even when not current (it gives no discount then)."""

    staff = True


class StaffProductV2Schema(ProductV2Schema):
    staff = True


class StaffPackageSchema(PackageSchema):
    """A package as administrators see it: also its withdrawn items, and its offer even when not current."""

    staff = True


class StaffPackageV2Schema(PackageV2Schema):
    staff = True


class MaterialShareInSchema(CamelSchema):
    material_id = Id(required=True)
    percentage = StrictInteger(required=True, validate=validate.Range(min=1, max=100))


class PackageItemInSchema(CamelSchema):
    product_id = Id(required=True)
    quantity = StrictInteger(required=True, validate=validate.Range(min=1, max=1000))


def _no_repeats(entries: list[dict[str, Any]], key: str, field: str, message: str) -> None:
    ids = [entry[key] for entry in entries]
    if len(ids) != len(set(ids)):
        raise ValidationError(message, field)


class SellableInSchema(CamelSchema):
    name = PlainText(required=True, validate=NAME)
    description = SafeHtml(required=True, validate=DESCRIPTION)
    price = Money(required=True)
    quantity = StrictInteger(required=True, validate=validate.Range(min=0, max=MAX_STOCK))
    offer_id = Id(allow_none=True)
    customization_ids = fields.List(Id(), validate=MAX_LINKS)
    image_ids = fields.List(Id(), validate=MAX_LINKS)
    is_active = StrictBoolean()

    @validates_schema
    def _distinct_links(self, data: dict[str, Any], **kwargs: Any) -> None:
        for name in ("customization_ids", "image_ids"):
            ids = data.get(name) or []
            if len(ids) != len(set(ids)):
                raise ValidationError("The same id is given twice.", self.fields[name].data_key)


class ProductInSchema(SellableInSchema):
    brand_id = Id(required=True)
    sub_category_id = Id(required=True)
    materials = fields.List(WholeNested(MaterialShareInSchema), validate=validate.Length(max=20))
    sku = fields.String(allow_none=True, validate=validate.Length(min=1, max=64))

    @validates_schema
    def _materials_add_up(self, data: dict[str, Any], **kwargs: Any) -> None:
        shares = data.get("materials") or []
        _no_repeats(shares, "material_id", "materials", "The same material is given twice.")
        if sum(share["percentage"] for share in shares) > 100:
            raise ValidationError("The material percentages add up to more than 100.", "materials")


class PackageInSchema(SellableInSchema):
    brand_id = Id(allow_none=True)
    sub_category_id = Id(allow_none=True)
    items = fields.List(WholeNested(PackageItemInSchema), required=True, validate=validate.Length(min=1, max=50))

    @validates_schema
    def _distinct_products(self, data: dict[str, Any], **kwargs: Any) -> None:
        if "items" in data:
            _no_repeats(data["items"], "product_id", "items", "The same product is given twice.")


class StockInSchema(CamelSchema):
    """Either set the stock (`quantity`) or move it (`delta`, applied atomically)."""

    quantity = StrictInteger(validate=validate.Range(min=0, max=MAX_STOCK))
    delta = StrictInteger(validate=[
        validate.Range(min=-MAX_STOCK, max=MAX_STOCK),
        validate.NoneOf([0], error="Must not be 0."),
    ])

    @validates_schema
    def _one_change(self, data: dict[str, Any], **kwargs: Any) -> None:
        require_one_of(data, "quantity", "delta")


class SellableQuery(PageQuery):
    q = fields.String(validate=validate.Length(max=200))
    category = fields.Integer(validate=validate.Range(min=1))
    subcategory = fields.Integer(validate=validate.Range(min=1))
    min_price = fields.Decimal(validate=validate.Range(min=0, max=1_000_000))
    max_price = fields.Decimal(validate=validate.Range(min=0, max=1_000_000))
    in_stock = fields.Boolean()
    on_offer = fields.Boolean()
    sort = fields.String(load_default="newest", validate=validate.OneOf(SORTS))
    include_inactive = fields.Boolean(load_default=False, metadata={"description": "admins only"})

    @validates_schema
    def _price_range(self, data: dict[str, Any], **kwargs: Any) -> None:
        low, high = data.get("min_price"), data.get("max_price")
        if low is not None and high is not None and low > high:
            raise ValidationError("minPrice is above maxPrice.", "minPrice")


class ProductQuery(SellableQuery):
    brand = fields.Integer(validate=validate.Range(min=1))
    material = fields.Integer(validate=validate.Range(min=1))


class PackageQuery(SellableQuery):
    """Packages filter like products, without brand and material."""
