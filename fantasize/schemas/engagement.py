"""Schemas for reviews, favourites and notifications: as rendered, review bodies and list queries."""

from __future__ import annotations

from typing import Any

from marshmallow import fields, validate

from fantasize.models.engagement import NOTIFICATION_TYPES
from fantasize.schemas.base import CamelSchema, PageQuery, PlainText, StrictInteger, UTCDateTime
from fantasize.schemas.products import SellableSchema, SellableV2Schema

RATING = validate.Range(min=1, max=5)  # as the reviews table's CHECK says
COMMENT = validate.Length(max=2000)
ITEM_TYPES = ("product", "package")
# A favourite shows a summary of its item: enough for a wishlist row, without the full description and lists.
ITEM_FIELDS = ("id", "name", "slug", "price", "discount_price", "status", "rating_average", "images")
ITEM_V2_FIELDS = ("id", "name", "slug", "pricing", "stock", "rating", "images")


class ReviewerSchema(CamelSchema):
    """Who wrote a review, as anyone may read it: a display name (the username), never the email or the user id."""

    display_name = fields.String(attribute="username")


class ReviewSchema(CamelSchema):
    id = fields.Integer()
    rating = fields.Integer()
    comment = fields.String(allow_none=True)
    verified_purchase = fields.Boolean()
    user = fields.Nested(ReviewerSchema)
    product_id = fields.Integer(allow_none=True)
    package_id = fields.Integer(allow_none=True)
    created_at = UTCDateTime()
    updated_at = UTCDateTime()


class ReviewInSchema(CamelSchema):
    rating = StrictInteger(required=True, validate=RATING)
    comment = PlainText(allow_none=True, validate=COMMENT)


class FavoriteSchema(CamelSchema):
    """A favourite (v1): its item summarised in the v1 product/package shape."""

    id = fields.Integer()
    type = fields.String(metadata={"enum": list(ITEM_TYPES)})
    item = fields.Nested(SellableSchema, only=ITEM_FIELDS)
    created_at = UTCDateTime()

    def get_attribute(self, obj: Any, attr: str, default: Any) -> Any:
        if attr == "type":
            return "product" if obj.product_id is not None else "package"
        if attr == "item":
            return obj.product if obj.product_id is not None else obj.package
        return super().get_attribute(obj, attr, default)


class FavoriteV2Schema(FavoriteSchema):
    """A favourite (v2): its item summarised with the v2 pricing, stock and rating groups."""

    item = fields.Nested(SellableV2Schema, only=ITEM_V2_FIELDS)


class NotificationSchema(CamelSchema):
    id = fields.Integer()
    title = fields.String()
    message = fields.String()
    type = fields.String(metadata={"enum": list(NOTIFICATION_TYPES)})
    data = fields.Dict(allow_none=True)
    read_at = UTCDateTime(allow_none=True)
    created_at = UTCDateTime()
    is_read = fields.Boolean()

    def get_attribute(self, obj: Any, attr: str, default: Any) -> Any:
        if attr == "is_read":
            return obj.read_at is not None
        return super().get_attribute(obj, attr, default)


class NotificationQuery(PageQuery):
    unread = fields.Boolean(metadata={"description": "true: only unread ones; false: only read ones"})


class ReadAllSchema(CamelSchema):
    updated = fields.Integer(metadata={"description": "How many notifications were unread and are now read"})
