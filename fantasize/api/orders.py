"""Orders: placement, listing, history, cancellation and admin status changes."""

from __future__ import annotations

from flask import Blueprint, request

from fantasize.api.auth import current_user
from fantasize.api.endpoint import endpoint
from fantasize.api.render import Shape, render
from fantasize.schemas.orders import (
    OrderInSchema,
    OrderQuery,
    OrderSchema,
    OrderV2Schema,
    StatusChangeInSchema,
    StatusChangeSchema,
)
from fantasize.services import orders

bp = Blueprint("orders", __name__)

ORDER = Shape("Order", OrderSchema, OrderV2Schema)
STATUS_CHANGE = Shape("OrderStatusChange", StatusChangeSchema)


@bp.post("/orders")
@endpoint("Place an order from `items` or, without them, from the cart (which is then emptied). Stock is taken "
          "for every line or none (409 OUT_OF_STOCK). With an `Idempotency-Key` header (1-255 printable ASCII) "
          "a repeat within 24 hours answers 200 with the first order and `Idempotent-Replayed: true`; the same "
          "key with another body is 422 IDEMPOTENCY_KEY_REUSED", returns=ORDER, status=201, body=OrderInSchema,
          auth="user", tags=("orders",), errors=(401, 409, 422))
def place_order(body):
    placement = orders.place_order(current_user(), body, request.headers.get("Idempotency-Key"))
    if not placement.replayed:
        return placement.order
    response = render(placement.order, ORDER)
    response.headers["Idempotent-Replayed"] = "true"
    return response


@bp.get("/orders")
@endpoint("Orders, newest first: your own, or everyone's for an admin (filter by status, userId, dateFrom, dateTo)",
          returns=ORDER, many=True, query=OrderQuery, auth="user", tags=("orders",), errors=(401,))
def list_orders(args):
    return orders.list_orders(current_user(), args)


@bp.get("/orders/<int:order_id>")
@endpoint("One order (yours, or any for an admin)", returns=ORDER, auth="user", tags=("orders",), errors=(401, 404))
def get_order(order_id):
    return orders.get_order(current_user(), order_id)


@bp.get("/orders/<int:order_id>/history")
@endpoint("An order's status changes, oldest first", returns=STATUS_CHANGE, many=True, auth="user",
          tags=("orders",), errors=(401, 404))
def get_order_history(order_id):
    return orders.order_history(current_user(), order_id)


@bp.post("/orders/<int:order_id>/cancel")
@endpoint("Cancel an order and give its stock back: the owner while pending or confirmed, an admin whenever the "
          "status machine allows (else 409 INVALID_TRANSITION)", returns=ORDER, auth="user", tags=("orders",),
          errors=(401, 404, 409))
def cancel_order(order_id):
    return orders.cancel_order(current_user(), order_id)


@bp.patch("/orders/<int:order_id>/status")
@endpoint("Move an order along the status machine with optional details (e.g. trackingNumber); a move it does "
          "not allow, the same status included, is 409 INVALID_TRANSITION", returns=ORDER,
          body=StatusChangeInSchema, auth="admin", tags=("orders",), errors=(401, 403, 404, 409))
def change_order_status(order_id, body):
    return orders.change_status(current_user(), order_id, body["status"], body.get("details"))
