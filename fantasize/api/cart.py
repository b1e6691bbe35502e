"""The signed-in user's cart."""

from __future__ import annotations

from flask import Blueprint

from fantasize.api.endpoint import endpoint
from fantasize.schemas.orders import CartLineInSchema, CartLineSchema, CartLineUpdateSchema, CartSchema
from fantasize.services import cart
from fantasize.web import Shape, current_user

bp = Blueprint("cart", __name__)

CART = Shape("Cart", CartSchema)
CART_LINE = Shape("CartLine", CartLineSchema)


@bp.get("/cart")
@endpoint("The signed-in user's cart, priced now (prices are frozen only when an order is placed)", returns=CART,
          auth="user", tags=("cart",), errors=(401,))
def get_cart():
    return cart.get_cart(current_user())


@bp.post("/cart/items")
@endpoint("Add an item with its customization choices; the same item and choices add to the existing line "
          "(at most 99)", returns=CART_LINE, status=201, body=CartLineInSchema, auth="user", tags=("cart",),
          errors=(401, 409, 422), creates="line_id")
def add_cart_line(body):
    return cart.add_line(current_user(), body)


@bp.patch("/cart/items/<int:line_id>")
@endpoint("Change a cart line's quantity or customization choices", returns=CART_LINE, body=CartLineUpdateSchema,
          partial=True, auth="user", tags=("cart",), errors=(401, 404, 422))
def update_cart_line(line_id, body):
    return cart.update_line(current_user(), line_id, body)


@bp.delete("/cart/items/<int:line_id>")
@endpoint("Remove a line from the cart", status=204, auth="user", tags=("cart",), errors=(401, 404))
def remove_cart_line(line_id):
    cart.remove_line(current_user(), line_id)


@bp.delete("/cart")
@endpoint("Empty the cart", status=204, auth="user", tags=("cart",), errors=(401,))
def clear_cart():
    cart.clear_cart(current_user())
