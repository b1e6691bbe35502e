"""Schemas for discovery: the search query and results, the home page and the explore page."""

from __future__ import annotations

from marshmallow import ValidationError, fields, validate

from fantasize.schemas.base import CamelSchema, Money, QuerySchema, UTCDateTime
from fantasize.schemas.offers import Percent
from fantasize.schemas.products import PackageSchema, PackageV2Schema, ProductSchema, ProductV2Schema
from fantasize.schemas.taxonomy import CategorySchema, CategoryV2Schema

MAX_SEARCH_LIMIT = 50


def _not_blank(value: str) -> None:
    if not value.strip():
        raise ValidationError("Must contain something other than spaces.")


class SearchQuery(QuerySchema):
    q = fields.String(required=True, validate=[validate.Length(min=1, max=100), _not_blank])
    limit = fields.Integer(
        load_default=10, validate=validate.Range(min=1, max=MAX_SEARCH_LIMIT),
        metadata={"description": "The most results in each list"},
    )


class SearchResultsSchema(CamelSchema):
    products = fields.List(fields.Nested(ProductSchema))
    packages = fields.List(fields.Nested(PackageSchema))
    categories = fields.List(fields.Nested(CategorySchema))


class SearchResultsV2Schema(SearchResultsSchema):
    """v2: the v2 shapes of products, packages and categories."""

    products = fields.List(fields.Nested(ProductV2Schema))
    packages = fields.List(fields.Nested(PackageV2Schema))
    categories = fields.List(fields.Nested(CategoryV2Schema))


class OfferShowcaseSchema(CamelSchema):
    """A current offer with a few of its products (an `OfferShowcase`)."""

    id = fields.Integer(attribute="offer.id")
    title = fields.String(attribute="offer.title")
    discount_percent = Percent(attribute="offer.discount_percent")
    valid_from = UTCDateTime(attribute="offer.valid_from")
    valid_to = UTCDateTime(attribute="offer.valid_to")
    products = fields.List(fields.Nested(ProductSchema))


class OfferShowcaseV2Schema(OfferShowcaseSchema):
    products = fields.List(fields.Nested(ProductV2Schema))


class HomeSchema(CamelSchema):
    new_arrivals = fields.List(fields.Nested(ProductSchema))
    top_rated = fields.List(fields.Nested(ProductSchema))
    current_offers = fields.List(fields.Nested(OfferShowcaseSchema))
    categories = fields.List(fields.Nested(CategorySchema))


class HomeV2Schema(HomeSchema):
    """v2: the same sections with v2 products and categories."""

    new_arrivals = fields.List(fields.Nested(ProductV2Schema))
    top_rated = fields.List(fields.Nested(ProductV2Schema))
    current_offers = fields.List(fields.Nested(OfferShowcaseV2Schema))
    categories = fields.List(fields.Nested(CategoryV2Schema))


class FacetSchema(CamelSchema):
    """A brand or material with the number of active products that have it."""

    id = fields.Integer()
    name = fields.String()
    product_count = fields.Integer()


class SubCategoryFacetSchema(FacetSchema):
    slug = fields.String()


class CategoryFacetSchema(SubCategoryFacetSchema):
    subcategories = fields.List(fields.Nested(SubCategoryFacetSchema))


class PriceRangeSchema(CamelSchema):
    """The lowest and highest list price of the active products (null when there are none)."""

    min = Money(allow_none=True)
    max = Money(allow_none=True)


class ExploreSchema(CamelSchema):
    categories = fields.List(fields.Nested(CategoryFacetSchema))
    brands = fields.List(fields.Nested(FacetSchema))
    price_range = fields.Nested(PriceRangeSchema)
    materials = fields.List(fields.Nested(FacetSchema))
