"""The signed-in user's address book and payment methods."""

from __future__ import annotations

from flask import Blueprint

from fantasize.api.endpoint import endpoint
from fantasize.schemas.addresses import AddressInSchema, AddressSchema, PaymentMethodInSchema, PaymentMethodSchema
from fantasize.schemas.base import PageQuery
from fantasize.services import addresses, payments
from fantasize.web import Shape, current_user

bp = Blueprint("addresses", __name__)

ADDRESS = Shape("Address", AddressSchema)
PAYMENT_METHOD = Shape("PaymentMethod", PaymentMethodSchema)


@bp.get("/users/me/addresses")
@endpoint("The signed-in user's addresses, the default first", returns=ADDRESS, many=True, query=PageQuery,
          auth="user", tags=("addresses",), errors=(400, 401))
def list_addresses(args):
    return addresses.list_addresses(current_user(), **args)


@bp.post("/users/me/addresses")
@endpoint("Add an address (at most 20: 409 ADDRESS_LIMIT); the first, or one with isDefault true, becomes the "
          "default", returns=ADDRESS, status=201, body=AddressInSchema, auth="user", tags=("addresses",),
          errors=(400, 401, 409, 415, 422))
def add_address(body):
    return addresses.add_address(current_user(), body)


@bp.patch("/users/me/addresses/<int:address_id>")
@endpoint("Change an address; isDefault true makes it the default, false on the default hands that to the most "
          "recent other address", returns=ADDRESS, body=AddressInSchema, partial=True, auth="user",
          tags=("addresses",), errors=(400, 401, 404, 415, 422))
def update_address(address_id, body):
    return addresses.update_address(current_user(), address_id, body)


@bp.delete("/users/me/addresses/<int:address_id>")
@endpoint("Delete an address; if it was the default, the most recent remaining one becomes the default",
          status=204, auth="user", tags=("addresses",), errors=(401, 404))
def delete_address(address_id):
    addresses.delete_address(current_user(), address_id)


@bp.get("/users/me/payment-methods")
@endpoint("The signed-in user's payment methods (cards as brand and last 4 digits only)", returns=PAYMENT_METHOD,
          many=True, query=PageQuery, auth="user", tags=("payments",), errors=(400, 401))
def list_payment_methods(args):
    return payments.list_payment_methods(current_user(), **args)


@bp.post("/users/me/payment-methods")
@endpoint("Save a card (checked: Luhn, not expired; only brand and last 4 digits are kept, the CVV never) or "
          "cash on delivery", returns=PAYMENT_METHOD, status=201, body=PaymentMethodInSchema, auth="user",
          tags=("payments",), errors=(400, 401, 415, 422))
def add_payment_method(body):
    return payments.add_payment_method(current_user(), body)


@bp.delete("/users/me/payment-methods/<int:payment_method_id>")
@endpoint("Delete a payment method (orders keep their own copy of it)", status=204, auth="user",
          tags=("payments",), errors=(401, 404))
def delete_payment_method(payment_method_id):
    payments.delete_payment_method(current_user(), payment_method_id)
