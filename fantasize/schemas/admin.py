"""Schemas for the admin overviews and inventory: dashboard figures, the low-stock list and stock syncs."""

from __future__ import annotations

from typing import Any

from marshmallow import fields, validate, validates_schema

from fantasize.models.orders import ORDER_STATUSES
from fantasize.schemas.base import CamelSchema, Id, Money, PageQuery, StrictInteger, require_one_of
from fantasize.services.products import MAX_STOCK, STOCK_STATUSES, stock_status


class UserFiguresSchema(CamelSchema):
    total = fields.Integer()
    customers = fields.Integer()
    admins = fields.Integer()
    new_last30_days = fields.Integer(metadata={"description": "Signed up today (UTC) or in the 29 days before"})


class OrderFiguresSchema(CamelSchema):
    total = fields.Integer()
    by_status = fields.Dict(
        keys=fields.String(validate=validate.OneOf(ORDER_STATUSES)), values=fields.Integer(),
        metadata={"description": "Every status, 0 where no order has it"},
    )


class RevenueDaySchema(CamelSchema):
    date = fields.String(metadata={"description": "The UTC day, YYYY-MM-DD"})
    orders = fields.Integer(metadata={"description": "Orders placed that day, whatever their status"})
    revenue = Money(metadata={"description": "Totals of that day's orders not cancelled, rejected or returned"})


class RevenueFiguresSchema(CamelSchema):
    total = Money(metadata={"description": "Totals of every order not cancelled, rejected or returned"})
    last30_days = fields.List(fields.Nested(RevenueDaySchema), metadata={"description": "Oldest first, today last"})


class LowStockCountsSchema(CamelSchema):
    products = fields.Integer()
    packages = fields.Integer()


class TopSellerSchema(CamelSchema):
    product_id = fields.Integer()
    name = fields.String()
    quantity_sold = fields.Integer()
    revenue = Money()


class DashboardSchema(CamelSchema):
    users = fields.Nested(UserFiguresSchema)
    orders = fields.Nested(OrderFiguresSchema)
    revenue = fields.Nested(RevenueFiguresSchema)
    low_stock = fields.Nested(LowStockCountsSchema, metadata={"description": "Items with quantity <= the threshold"})
    top_sellers = fields.List(fields.Nested(TopSellerSchema), metadata={"description": "By quantity sold, top 5"})


class LowStockItemSchema(CamelSchema):
    type = fields.String(metadata={"enum": ["product", "package"]})
    id = fields.Integer()
    name = fields.String()
    quantity = fields.Integer()
    status = fields.Function(lambda item: stock_status(item["quantity"]), metadata={"enum": list(STOCK_STATUSES)})
    is_active = fields.Boolean()


class LowStockQuery(PageQuery):
    threshold = fields.Integer(
        validate=validate.Range(min=0, max=1000), metadata={"description": "Defaults to LOW_STOCK_THRESHOLD"}
    )


class StockLevelInSchema(CamelSchema):
    """One product's absolute stock, named by its id or its SKU."""

    product_id = Id(validate=validate.Range(min=1))
    sku = fields.String(validate=validate.Length(min=1, max=64))
    quantity = StrictInteger(required=True, validate=validate.Range(min=0, max=MAX_STOCK))

    @validates_schema
    def _one_name(self, data: dict[str, Any], **kwargs: Any) -> None:
        require_one_of(data, "product_id", "sku")


class StockSyncInSchema(CamelSchema):
    items = fields.List(fields.Nested(StockLevelInSchema), required=True, validate=validate.Length(min=1, max=1000))


class StockSyncItemSchema(CamelSchema):
    product_id = fields.Integer()
    quantity = fields.Integer()
    previous_quantity = fields.Integer()


class StockSyncResultSchema(CamelSchema):
    updated = fields.Integer(metadata={"description": "Items whose stock changed"})
    unchanged = fields.Integer(metadata={"description": "Items already at the given stock"})
    items = fields.List(fields.Nested(StockSyncItemSchema), metadata={"description": "In the order given"})
