"""Offers (time-boxed discounts linked to products and packages) and customization definitions."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import load_only, selectinload

from fantasize.errors import Forbidden, NotFound, Unauthorized, ValidationFailed
from fantasize.extensions import db
from fantasize.models import Customization, Offer, Package, Product, User
from fantasize.models.base import utcnow
from fantasize.services.common import Page, commit, get_or_404, paginate

# Rendering an offer needs only the ids of what it discounts, and whether each is active (the public sees only
# those); load them for a whole page in one query each.
_OFFER_LOADS = (
    selectinload(Offer.products).options(load_only(Product.id, Product.is_active)),
    selectinload(Offer.packages).options(load_only(Package.id, Package.is_active)),
)


def _is_admin(viewer: User | None) -> bool:
    return viewer is not None and viewer.is_admin


def list_offers(viewer: User | None, include: str, page: int, limit: int) -> Page:
    """Current offers (active, now inside the window) for everyone; `include="all"` is for admins."""
    if include == "all" and not _is_admin(viewer):
        if viewer is None:
            raise Unauthorized("Sign in as an administrator to list every offer",
                               headers={"WWW-Authenticate": "Bearer"})
        raise Forbidden("Only administrators can list offers that are not current")
    stmt = select(Offer).options(*_OFFER_LOADS).order_by(Offer.valid_from.desc(), Offer.id.desc())
    if include == "current":
        now = utcnow()
        stmt = stmt.where(Offer.is_active.is_(True), Offer.valid_from <= now, Offer.valid_to > now)
    return paginate(stmt, page, limit)


def get_offer(offer_id: int, viewer: User | None) -> Offer:
    """An offer; one that is not current is visible to admins only."""
    offer = db.session.get(Offer, offer_id, options=_OFFER_LOADS)
    if offer is None or not (_is_admin(viewer) or offer.is_current(utcnow())):
        raise NotFound(f"Offer {offer_id} not found")
    return offer


def _existing(model: type[Product] | type[Package], ids: list[int], field: str) -> list[Any]:
    wanted = set(ids)
    found = list(db.session.scalars(select(model).where(model.id.in_(wanted)).order_by(model.id)))
    missing = sorted(wanted - {obj.id for obj in found})
    if missing:
        noun = "products" if model is Product else "packages"
        raise ValidationFailed(details={field: [f"No {noun} with ids {', '.join(map(str, missing))}."]})
    return found


def _apply_offer(offer: Offer, data: dict[str, Any]) -> None:
    # Everything is checked before the offer changes, so a refused request leaves nothing dirty in the session.
    if data.get("valid_to", offer.valid_to) <= data.get("valid_from", offer.valid_from):
        raise ValidationFailed(details={"validTo": ["Must be later than validFrom."]})
    products = _existing(Product, data["product_ids"], "productIds") if "product_ids" in data else None
    packages = _existing(Package, data["package_ids"], "packageIds") if "package_ids" in data else None
    for name in ("title", "discount_percent", "valid_from", "valid_to", "is_active"):
        if name in data:
            setattr(offer, name, data[name])
    # Assigning a collection replaces the linked set: items left out get their offer cleared.
    if products is not None:
        offer.products = products
    if packages is not None:
        offer.packages = packages


def create_offer(data: dict[str, Any]) -> Offer:
    offer = Offer(is_active=True)
    _apply_offer(offer, data)
    db.session.add(offer)
    commit()
    return offer


def update_offer(offer_id: int, data: dict[str, Any]) -> Offer:
    offer = get_or_404(Offer, offer_id, "Offer")
    _apply_offer(offer, data)
    commit()
    return offer


def delete_offer(offer_id: int) -> None:
    """Deletes the offer; its products and packages stay, without an offer."""
    db.session.delete(get_or_404(Offer, offer_id, "Offer"))
    commit()


def list_customizations(page: int, limit: int) -> Page:
    return paginate(select(Customization).order_by(Customization.name, Customization.id), page, limit)


def create_customization(data: dict[str, Any]) -> Customization:
    customization = Customization(name=data["name"], type=data["type"], options=data.get("options", []))
    db.session.add(customization)
    commit()
    return customization


def update_customization(customization_id: int, data: dict[str, Any]) -> Customization:
    customization = get_or_404(Customization, customization_id, "Customization")
    for name in ("name", "type", "options"):
        if name in data:
            setattr(customization, name, data[name])
    commit()
    return customization


def delete_customization(customization_id: int) -> None:
    """Deletes the definition and detaches it from products and packages; placed orders keep their copies."""
    db.session.delete(get_or_404(Customization, customization_id, "Customization"))
    commit()

