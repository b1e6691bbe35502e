"""Offers and customization definitions."""

from __future__ import annotations

from flask import Blueprint

from fantasize.api.endpoint import endpoint
from fantasize.api.render import render_for
from fantasize.platform.cache.domains import CUSTOMIZATION_PAGE, OFFER_PAGE
from fantasize.schemas.base import PageQuery
from fantasize.schemas.offers import (
    CustomizationInSchema,
    CustomizationSchema,
    OfferInSchema,
    OfferQuery,
    OfferSchema,
    StaffOfferSchema,
)
from fantasize.services import offers
from fantasize.web import Shape, current_user

bp = Blueprint("offers", __name__)

OFFER = Shape("Offer", OfferSchema)
STAFF_OFFER = Shape("Offer", StaffOfferSchema)  # administrators': withdrawn products and packages too
CUSTOMIZATION = Shape("Customization", CustomizationSchema)

WRITE_ERRORS = (400, 401, 403, 415, 422)


@bp.get("/offers")
@endpoint("List current offers (`include=all`: every offer, admins only)", returns=OFFER, many=True,
          query=OfferQuery, auth="optional", cache=OFFER_PAGE, tags=("offers",), errors=(400, 401, 403))
def list_offers(args):
    viewer = current_user()
    page = offers.list_offers(viewer, args["include"], args["page"], args["limit"])
    return render_for(viewer, page, OFFER, STAFF_OFFER, many=True)


@bp.post("/offers")
@endpoint("Create an offer and link products and packages to it", returns=STAFF_OFFER, status=201,
          body=OfferInSchema, auth="admin", tags=("offers",), errors=WRITE_ERRORS)
def create_offer(body):
    return offers.create_offer(body)


@bp.get("/offers/<int:offer_id>")
@endpoint("Get an offer (admins also see offers that are not current)", returns=OFFER, auth="optional",
          cache=OFFER_PAGE, tags=("offers",), errors=(401, 404))
def get_offer(offer_id: int):
    viewer = current_user()
    return render_for(viewer, offers.get_offer(offer_id, viewer), OFFER, STAFF_OFFER)


@bp.patch("/offers/<int:offer_id>")
@endpoint("Change an offer; productIds and packageIds replace the linked sets", returns=STAFF_OFFER,
          body=OfferInSchema, partial=True, auth="admin", tags=("offers",), errors=(*WRITE_ERRORS, 404))
def update_offer(offer_id: int, body):
    return offers.update_offer(offer_id, body)


@bp.delete("/offers/<int:offer_id>")
@endpoint("Delete an offer; its products and packages lose the discount", status=204, auth="admin",
          tags=("offers",), errors=(401, 403, 404))
def delete_offer(offer_id: int):
    offers.delete_offer(offer_id)


@bp.get("/customizations")
@endpoint("List customization definitions", returns=CUSTOMIZATION, many=True, query=PageQuery,
          cache=CUSTOMIZATION_PAGE, tags=("customizations",), errors=(400,))
def list_customizations(args):
    return offers.list_customizations(args["page"], args["limit"])


@bp.post("/customizations")
@endpoint("Create a customization definition", returns=CUSTOMIZATION, status=201, body=CustomizationInSchema,
          auth="admin", tags=("customizations",), errors=WRITE_ERRORS)
def create_customization(body):
    return offers.create_customization(body)


@bp.patch("/customizations/<int:customization_id>")
@endpoint("Change a customization definition", returns=CUSTOMIZATION, body=CustomizationInSchema, partial=True,
          auth="admin", tags=("customizations",), errors=(*WRITE_ERRORS, 404))
def update_customization(customization_id: int, body):
    return offers.update_customization(customization_id, body)


@bp.delete("/customizations/<int:customization_id>")
@endpoint("Delete a customization definition; it is detached from products and packages", status=204,
          auth="admin", tags=("customizations",), errors=(401, 403, 404))
def delete_customization(customization_id: int):
    offers.delete_customization(customization_id)
