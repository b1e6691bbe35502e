"""Schemas for the catalogue taxonomy: categories, subcategories, brands and materials."""

from __future__ import annotations

from marshmallow import fields, validate

from fantasize.schemas.base import CamelSchema, Id, PlainText, SafeHtml, StrictBoolean, UTCDateTime

NAME = validate.Length(min=1, max=100)  # the name columns are String(100)
DESCRIPTION = validate.Length(max=5000)


class BrandRefSchema(CamelSchema):
    id = fields.Integer()
    name = fields.String()


class SubCategoryRefSchema(CamelSchema):
    id = fields.Integer()
    name = fields.String()


class MaterialRefSchema(CamelSchema):
    id = fields.Integer()
    name = fields.String()


class CategoryImageSchema(CamelSchema):
    id = fields.Integer()
    url = fields.String()
    mime_type = fields.String()


class SubCategorySummarySchema(CamelSchema):
    id = fields.Integer()
    name = fields.String()
    slug = fields.String()


class SubCategorySchema(SubCategorySummarySchema):
    category_id = fields.Integer()
    created_at = UTCDateTime()
    updated_at = UTCDateTime()


class CategorySchema(CamelSchema):
    """v1: the image is its URL, as product images are in v1."""

    id = fields.Integer()
    name = fields.String()
    slug = fields.String()
    description = fields.String(allow_none=True)
    image = fields.Pluck(CategoryImageSchema, "url", allow_none=True)
    is_active = fields.Boolean()
    subcategories = fields.List(fields.Nested(SubCategorySummarySchema))
    created_at = UTCDateTime()
    updated_at = UTCDateTime()


class CategoryV2Schema(CategorySchema):
    """v2: the image is an object, as product images are in v2."""

    image = fields.Nested(CategoryImageSchema, allow_none=True)


class NamedResourceSchema(CamelSchema):
    id = fields.Integer()
    name = fields.String()
    description = fields.String(allow_none=True)
    created_at = UTCDateTime()
    updated_at = UTCDateTime()


class BrandSchema(NamedResourceSchema):
    """A brand."""


class MaterialSchema(NamedResourceSchema):
    """A material."""


class CategoryInSchema(CamelSchema):
    name = PlainText(required=True, validate=NAME)
    description = SafeHtml(allow_none=True, validate=DESCRIPTION)
    image_id = Id(allow_none=True)
    is_active = StrictBoolean()


class SubCategoryInSchema(CamelSchema):
    name = PlainText(required=True, validate=NAME)


class NamedResourceInSchema(CamelSchema):
    name = PlainText(required=True, validate=NAME)
    description = SafeHtml(allow_none=True, validate=DESCRIPTION)


class BrandInSchema(NamedResourceInSchema):
    """A brand to create or change."""


class MaterialInSchema(NamedResourceInSchema):
    """A material to create or change."""
