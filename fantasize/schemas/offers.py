"""Schemas for offers and customization definitions."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from marshmallow import fields, validate

from fantasize.models.base import utcnow
from fantasize.models.catalog import CUSTOMIZATION_TYPES
from fantasize.schemas.base import (
    CamelSchema,
    Id,
    Money,
    PageQuery,
    PlainText,
    StrictBoolean,
    UTCDateTime,
    WholeNested,
)

MAX_DISCOUNT = Decimal("90")


class Percent(Money):
    """A discount percentage: a decimal string or number, at most 2 places, 0 < d <= 90; rendered "20.00"."""

    default_error_messages = {"range": "Must be greater than 0 and at most 90."}

    def _deserialize(self, value, attr, data, **kwargs):
        amount = super()._deserialize(value, attr, data, **kwargs)
        if amount > MAX_DISCOUNT:
            raise self.make_error("range")
        return amount


class OfferRefSchema(CamelSchema):
    id = fields.Integer()
    discount_percent = Percent()


class CustomizationOptionSchema(CamelSchema):
    name = PlainText(required=True, validate=validate.Length(min=1, max=50))
    value = PlainText(required=True, validate=validate.Length(min=1, max=200))


class CustomizationSchema(CamelSchema):
    id = fields.Integer()
    name = fields.String()
    type = fields.String()
    options = fields.List(fields.Nested(CustomizationOptionSchema))


class CustomizationInSchema(CamelSchema):
    name = PlainText(required=True, validate=validate.Length(min=1, max=100))
    type = fields.String(required=True, validate=validate.OneOf(CUSTOMIZATION_TYPES))
    # Options are replaced whole, so a PATCH needs the name and value of each (DOMAIN.md: `[{name, value}]`).
    options = fields.List(WholeNested(CustomizationOptionSchema), validate=validate.Length(max=50))


class IdSchema(CamelSchema):
    id = fields.Integer()


class OfferSchema(CamelSchema):
    """An offer as the public sees it: the ids of its active products and packages only (StaffOfferSchema: all)."""

    staff = False
    id = fields.Integer()
    title = fields.String()
    discount_percent = Percent()
    valid_from = UTCDateTime()
    valid_to = UTCDateTime()
    is_active = fields.Boolean()
    is_current = fields.Method("_is_current")
    product_ids = fields.Pluck(IdSchema, "id", many=True, attribute="products")
    package_ids = fields.Pluck(IdSchema, "id", many=True, attribute="packages")
    created_at = UTCDateTime()
    updated_at = UTCDateTime()

    def _is_current(self, offer) -> bool:
        return offer.is_current(utcnow())

    def get_attribute(self, obj: Any, attr: str, default: Any) -> Any:
        linked = super().get_attribute(obj, attr, default)
        if attr in ("products", "packages") and not self.staff:
            return [item for item in linked if item.is_active]
        return linked


class StaffOfferSchema(OfferSchema):
    """An offer as administrators see it: every linked product and package, withdrawn ones too."""

    staff = True


LINKED_IDS = validate.Length(max=500)


class OfferInSchema(CamelSchema):
    title = PlainText(required=True, validate=validate.Length(min=1, max=200))
    discount_percent = Percent(required=True)
    valid_from = UTCDateTime(required=True)
    valid_to = UTCDateTime(required=True)
    is_active = StrictBoolean()
    product_ids = fields.List(Id(validate=validate.Range(min=1)), validate=LINKED_IDS)
    package_ids = fields.List(Id(validate=validate.Range(min=1)), validate=LINKED_IDS)


class OfferQuery(PageQuery):
    include = fields.String(load_default="current", validate=validate.OneOf(("current", "all")))
