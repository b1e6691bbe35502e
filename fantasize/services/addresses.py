"""The address book: a user's addresses, at most MAX_ADDRESSES, exactly one of them the default."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select, update

from fantasize.errors import Conflict
from fantasize.extensions import db
from fantasize.models import Address, User
from fantasize.services.common import Page, commit, get_owned_or_404, paginate

MAX_ADDRESSES = 20


def _lock_address_book(user: User) -> None:
    # The cap and the single default are read-then-write rules: locking the owner's row serialises one user's
    # address writes on PostgreSQL (SQLite serialises every write anyway).
    db.session.execute(select(User.id).where(User.id == user.id).with_for_update())


def owned_address(user: User, address_id: int) -> Address:
    """The user's own address; someone else's is as absent as a missing one (404)."""
    return get_owned_or_404(Address, address_id, user.id)


def list_addresses(user: User, *, page: int, limit: int) -> Page:
    stmt = select(Address).where(Address.user_id == user.id).order_by(Address.is_default.desc(), Address.id)
    return paginate(stmt, page, limit)


def _make_default(user: User, address: Address) -> None:
    db.session.flush()  # a new address needs its id before the others can be told apart from it
    db.session.execute(
        update(Address)
        .where(Address.user_id == user.id, Address.id != address.id, Address.is_default.is_(True))
        .values(is_default=False)
    )
    address.is_default = True


def _promote_successor(user: User, leaving: Address) -> None:
    """Hand the default to the most recent other address, if there is one."""
    successor = db.session.scalar(
        select(Address)
        .where(Address.user_id == user.id, Address.id != leaving.id)
        .order_by(Address.created_at.desc(), Address.id.desc())
        .limit(1)
    )
    if successor is not None:
        leaving.is_default = False
        successor.is_default = True


def add_address(user: User, fields: dict[str, Any]) -> Address:
    """Add an address; the first one, or one sent with isDefault true, becomes the default."""
    _lock_address_book(user)
    count = db.session.scalar(select(func.count()).select_from(Address).where(Address.user_id == user.id))
    if count >= MAX_ADDRESSES:
        raise Conflict(f"An address book holds at most {MAX_ADDRESSES} addresses", code="ADDRESS_LIMIT")
    wants_default = fields.get("is_default", False)
    address = Address(user_id=user.id, **{**fields, "is_default": False})
    db.session.add(address)
    if wants_default or count == 0:
        _make_default(user, address)
    commit()
    return address


def update_address(user: User, address_id: int, changes: dict[str, Any]) -> Address:
    """Change an address. isDefault true moves the default here; false on the default hands it to the most recent
    other address, and the only address stays the default (there is always exactly one)."""
    _lock_address_book(user)
    address = owned_address(user, address_id)
    wants_default = changes.get("is_default")
    for name, value in changes.items():
        if name != "is_default":
            setattr(address, name, value)
    if wants_default and not address.is_default:
        _make_default(user, address)
    elif wants_default is False and address.is_default:
        _promote_successor(user, address)
    commit()
    return address


def delete_address(user: User, address_id: int) -> None:
    """Delete an address; if it was the default, the most recent remaining one takes over."""
    _lock_address_book(user)
    address = owned_address(user, address_id)
    if address.is_default:
        _promote_successor(user, address)
    db.session.delete(address)
    commit()
