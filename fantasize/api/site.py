"""The shop's own pages: contact messages and site content."""

from __future__ import annotations

from flask import Blueprint

from fantasize.api.endpoint import endpoint
from fantasize.schemas.base import PageQuery
from fantasize.schemas.site import ContactMessageInSchema, ContactMessageSchema, SiteTextsInSchema, SiteTextsSchema
from fantasize.services import site
from fantasize.web import Shape

bp = Blueprint("site", __name__)

CONTACT_MESSAGE = Shape("ContactMessage", ContactMessageSchema)
SITE_TEXTS = Shape("SiteTexts", SiteTextsSchema)

TAGS = ("site",)


@bp.post("/contact")
@endpoint("Send the shop a message", returns=CONTACT_MESSAGE, status=201, body=ContactMessageInSchema, tags=TAGS)
def send_contact_message(body):
    return site.create_contact_message(body)


@bp.get("/admin/contact")
@endpoint("Contact messages, newest first", returns=CONTACT_MESSAGE, many=True, query=PageQuery, auth="admin",
          tags=TAGS)
def list_contact_messages(args):
    return site.list_contact_messages(args["page"], args["limit"])


@bp.get("/site")
@endpoint("The about and contact texts (empty strings when not written)", returns=SITE_TEXTS, tags=TAGS)
def get_site_texts():
    return site.site_texts()


@bp.put("/site")
@endpoint("Replace the about and/or contact text", returns=SITE_TEXTS, body=SiteTextsInSchema, auth="admin",
          tags=TAGS)
def update_site_texts(body):
    return site.update_site_texts(body)
