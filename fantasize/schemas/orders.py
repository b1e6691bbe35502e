"""Schemas for the cart and orders: line, order and status-change bodies, the order list query, and their shapes."""

from __future__ import annotations

import json
from typing import Any

from marshmallow import ValidationError, fields, validate, validates_schema

from fantasize.models.orders import ORDER_STATUSES
from fantasize.schemas.base import (
    CamelSchema,
    Id,
    Money,
    PageQuery,
    PlainText,
    PlainTextJson,
    StrictBoolean,
    StrictInteger,
    UTCDateTime,
    require_one_of,
)
from fantasize.schemas.offers import Percent
from fantasize.schemas.products import WholeNested
from fantasize.services.lines import MAX_CHOICES, MAX_LINES, MAX_QUANTITY
from fantasize.services.orders import details_for_customer

DETAILS_MAX_CHARS = 2000


class CustomizationChoiceInSchema(CamelSchema):
    customization_id = Id(required=True)
    # A string for button and text customizations, an upload id for image ones: checked against the definition.
    value = PlainTextJson(required=True,
                          metadata={"description": "a string, or an upload id for image customizations"})


class CartLineInSchema(CamelSchema):
    product_id = Id()
    package_id = Id()
    quantity = StrictInteger(required=True, validate=validate.Range(min=1, max=MAX_QUANTITY))
    customizations = fields.List(WholeNested(CustomizationChoiceInSchema), validate=validate.Length(max=MAX_CHOICES))

    @validates_schema
    def _one_item(self, data: dict[str, Any], **kwargs: Any) -> None:
        require_one_of(data, "product_id", "package_id")


class CartLineUpdateSchema(CamelSchema):
    """A cart line's quantity and choices; the item itself cannot change (remove the line and add another)."""

    quantity = StrictInteger(required=True, validate=validate.Range(min=1, max=MAX_QUANTITY))
    customizations = fields.List(WholeNested(CustomizationChoiceInSchema), required=True,
                                 validate=validate.Length(max=MAX_CHOICES))


class OrderInSchema(CamelSchema):
    """Without `items` the signed-in user's cart is ordered. Totals are never accepted: the server prices."""

    items = fields.List(fields.Nested(CartLineInSchema), validate=validate.Length(min=1, max=MAX_LINES))
    address_id = Id(allow_none=True)
    payment_method_id = Id(allow_none=True)
    is_gift = StrictBoolean()
    gift_message = PlainText(allow_none=True, validate=validate.Length(max=500))
    is_anonymous = StrictBoolean()

    @validates_schema
    def _message_only_for_gifts(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data.get("gift_message") is not None and not data.get("is_gift"):
            raise ValidationError("Only allowed when isGift is true.", "giftMessage")


def _small_details(details: dict[str, Any] | None) -> None:
    if details is not None and len(json.dumps(details, default=str)) > DETAILS_MAX_CHARS:
        raise ValidationError(f"At most {DETAILS_MAX_CHARS} characters as JSON.")


class StatusChangeInSchema(CamelSchema):
    status = fields.String(required=True, validate=validate.OneOf(ORDER_STATUSES))
    details = fields.Dict(keys=PlainText(), values=PlainTextJson(), allow_none=True, validate=_small_details,
                          metadata={"description": "e.g. {trackingNumber, estimatedDelivery}"})


class OrderQuery(PageQuery):
    status = fields.String(validate=validate.OneOf(ORDER_STATUSES))
    user_id = fields.Integer(validate=validate.Range(min=1), metadata={"description": "admins: one user's orders"})
    date_from = fields.Date(metadata={"description": "placed on or after this day (UTC)"})
    date_to = fields.Date(metadata={"description": "placed on or before this day (UTC)"})

    @validates_schema
    def _date_range(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data.get("date_from") and data.get("date_to") and data["date_from"] > data["date_to"]:
            raise ValidationError("dateFrom is after dateTo.", "dateFrom")


class CustomizationChoiceSchema(CamelSchema):
    """A stored choice (kept in camelCase inside the line's JSON column)."""

    customization_id = fields.Integer(attribute="customizationId")
    name = fields.String()
    type = fields.String()
    value = fields.Raw()


class CartItemSummarySchema(CamelSchema):
    id = fields.Integer()
    name = fields.String()
    type = fields.String(metadata={"enum": ["product", "package"]})
    price = Money()
    effective_price = Money()


class CartLineSchema(CamelSchema):
    id = fields.Integer()
    item = fields.Nested(CartItemSummarySchema)
    quantity = fields.Integer()
    customizations = fields.List(fields.Nested(CustomizationChoiceSchema))
    line_total = Money()


class CartSchema(CamelSchema):
    """The cart priced at the moment it is read: nothing in it is frozen until an order is placed."""

    items = fields.List(fields.Nested(CartLineSchema))
    subtotal = Money()
    discount_total = Money()
    total = Money()


class OrderLineSchema(CamelSchema):
    id = fields.Integer()
    product_id = fields.Integer(allow_none=True)
    package_id = fields.Integer(allow_none=True)
    name = fields.String()
    quantity = fields.Integer()
    unit_price = Money()
    unit_discount = Money()
    discount_percent = Percent(allow_none=True)
    line_total = Money()
    customizations = fields.List(fields.Nested(CustomizationChoiceSchema))


class StatusChangeSchema(CamelSchema):
    """A status change as the order's owner sees it: the move, its time and only the details meant for them."""

    staff = False
    from_status = fields.String(data_key="from", allow_none=True)
    to_status = fields.String(data_key="to")
    details = fields.Dict(allow_none=True, metadata={
        "description": "customers see only trackingNumber and estimatedDelivery; administrators see all"})
    created_at = UTCDateTime(data_key="at")

    def get_attribute(self, obj: Any, attr: str, default: Any) -> Any:
        value = super().get_attribute(obj, attr, default)
        return details_for_customer(value) if attr == "details" and not self.staff else value


class StaffStatusChangeSchema(StatusChangeSchema):
    """A status change as administrators see it: also who made it (`actorId`), and every detail. Customers get
    the same without `actorId`, and only the details meant for them."""

    staff = True
    actor_id = fields.Integer(allow_none=True, metadata={"description": "administrators only"})


class OrderSchema(CamelSchema):
    id = fields.Integer()
    status = fields.String(metadata={"enum": list(ORDER_STATUSES)})
    user_id = fields.Integer()
    is_gift = fields.Boolean()
    gift_message = fields.String(allow_none=True)
    is_anonymous = fields.Boolean()
    shipping_address = fields.Dict(allow_none=True, metadata={
        "description": "snapshot at placement: {line1, line2, city, state, country, postalCode}"})
    payment_summary = fields.Dict(allow_none=True, metadata={"description": "snapshot: {method, brand, last4}"})
    subtotal = Money()
    discount_total = Money()
    total = Money()
    items = fields.List(fields.Nested(OrderLineSchema), attribute="lines")
    created_at = UTCDateTime()
    updated_at = UTCDateTime()


class OrderV2Schema(OrderSchema):
    history = fields.List(fields.Nested(StatusChangeSchema))
    item_count = fields.Method("_item_count", metadata={"description": "units over all lines"})

    def _item_count(self, order: Any) -> int:
        return sum(line.quantity for line in order.lines)


class StaffOrderV2Schema(OrderV2Schema):
    """An order in v2 as administrators see it: its history with actors and every detail (customers see their
    orders' history as StaffStatusChange describes)."""

    history = fields.List(fields.Nested(StaffStatusChangeSchema))
