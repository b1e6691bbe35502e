"""Orders: placement, listing, history, cancellation and admin status changes."""

from __future__ import annotations

from flask import Blueprint, request

from fantasize.api.endpoint import endpoint
from fantasize.api.render import render, render_for
from fantasize.schemas.orders import (
    OrderInSchema,
    OrderQuery,
    OrderSchema,
    OrderV2Schema,
    StaffOrderV2Schema,
    StaffStatusChangeSchema,
    StatusChangeInSchema,
    StatusChangeSchema,
)
from fantasize.services import orders
from fantasize.web import Outcome, Shape, current_user

bp = Blueprint("orders", __name__)

# Customers see an order's history without who acted and with only the details meant for them; administrators
# see everything. Every view renders through render_for; `returns=` names the staff shapes, which document both.
ORDER = Shape("Order", OrderSchema, OrderV2Schema)
STAFF_ORDER = Shape("Order", OrderSchema, StaffOrderV2Schema)
STATUS_CHANGE = Shape("OrderStatusChange", StatusChangeSchema)
STAFF_STATUS_CHANGE = Shape("OrderStatusChange", StaffStatusChangeSchema)
REPLAYED = Outcome(200, "A repeat of an earlier request with the same Idempotency-Key: the order it placed",
                   (("Idempotent-Replayed", "true: this answer replays the earlier request's order"),))


@bp.post("/orders")
@endpoint("Place an order from `items` or, without them, from the cart (which is then emptied). Stock is taken "
          "for every line or none (409 OUT_OF_STOCK). With an `Idempotency-Key` header (1-255 printable ASCII) "
          "a repeat within 24 hours answers 200 with the first order and `Idempotent-Replayed: true`; the same "
          "key with another body is 422 IDEMPOTENCY_KEY_REUSED", returns=STAFF_ORDER, status=201,
          body=OrderInSchema, auth="user", tags=("orders",), errors=(401, 409, 422), also=(REPLAYED,))
def place_order(body):
    viewer = current_user()
    # render_for's choice, made before placing: the commit expires the viewer, whose role read afterwards would
    # cost a query (and a connection) after the order is done.
    shape = STAFF_ORDER if viewer.is_admin else ORDER
    placement = orders.place_order(viewer, body, request.headers.get("Idempotency-Key"))
    response = render(placement.order, shape, status=200 if placement.replayed else 201)
    if placement.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


@bp.get("/orders")
@endpoint("Orders, newest first: your own, or everyone's for an admin (filter by status, userId, dateFrom, dateTo)",
          returns=STAFF_ORDER, many=True, query=OrderQuery, auth="user", tags=("orders",), errors=(401,))
def list_orders(args):
    viewer = current_user()
    return render_for(viewer, orders.list_orders(viewer, args), ORDER, STAFF_ORDER, many=True)


@bp.get("/orders/<int:order_id>")
@endpoint("One order (yours, or any for an admin)", returns=STAFF_ORDER, auth="user", tags=("orders",),
          errors=(401, 404))
def get_order(order_id):
    viewer = current_user()
    return render_for(viewer, orders.get_order(viewer, order_id), ORDER, STAFF_ORDER)


@bp.get("/orders/<int:order_id>/history")
@endpoint("An order's status changes, oldest first (actors and internal details for administrators only)",
          returns=STAFF_STATUS_CHANGE, many=True, auth="user", tags=("orders",), errors=(401, 404))
def get_order_history(order_id):
    viewer = current_user()
    history = orders.order_history(viewer, order_id)
    return render_for(viewer, history, STATUS_CHANGE, STAFF_STATUS_CHANGE, many=True)


@bp.post("/orders/<int:order_id>/cancel")
@endpoint("Cancel an order and give its stock back: the owner while pending or confirmed, an admin whenever the "
          "status machine allows (else 409 INVALID_TRANSITION)", returns=STAFF_ORDER, auth="user",
          tags=("orders",), errors=(401, 404, 409))
def cancel_order(order_id):
    viewer = current_user()
    return render_for(viewer, orders.cancel_order(viewer, order_id), ORDER, STAFF_ORDER)


@bp.patch("/orders/<int:order_id>/status")
@endpoint("Move an order along the status machine with optional details (e.g. trackingNumber); a move it does "
          "not allow, the same status included, is 409 INVALID_TRANSITION", returns=STAFF_ORDER,
          body=StatusChangeInSchema, auth="admin", tags=("orders",), errors=(401, 403, 404, 409))
def change_order_status(order_id, body):
    return orders.change_status(current_user(), order_id, body["status"], body.get("details"))
