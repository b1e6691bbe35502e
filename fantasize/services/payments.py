"""Payment methods: the card rules (Luhn, expiry, brand) and the user's saved methods.

Only a card's brand and last four digits are ever kept; the schema drops the number and the CVV before a
service sees the request, and nothing here logs either.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import select

from fantasize.extensions import db
from fantasize.models import PaymentMethod, User
from fantasize.services.common import Page, commit, get_owned_or_404, paginate

log = logging.getLogger("fantasize.payments")

# (brand, inclusive ranges of leading digits); a range's bounds say how many leading digits it compares.
BRAND_PREFIXES: tuple[tuple[str, tuple[tuple[int, int], ...]], ...] = (
    ("visa", ((4, 4),)),
    ("mastercard", ((51, 55), (2221, 2720))),
    ("amex", ((34, 34), (37, 37))),
    ("discover", ((6011, 6011), (65, 65), (644, 649))),
)


def luhn_valid(digits: str) -> bool:
    """The Luhn (mod 10) check over a string of ASCII digits."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def card_brand(digits: str) -> str:
    """visa, mastercard, amex or discover from the number's leading digits; anything else is "unknown"."""
    for brand, ranges in BRAND_PREFIXES:
        for low, high in ranges:
            if low <= int(digits[: len(str(low))]) <= high:
                return brand
    return "unknown"


def card_expired(exp_month: int, exp_year: int, now: datetime) -> bool:
    """A card works through the last moment of its expiry month (UTC), so it has expired from the next month on."""
    return (now.year, now.month) > (exp_year, exp_month)


def owned_payment_method(user: User, payment_method_id: int) -> PaymentMethod:
    """The user's own payment method; someone else's is as absent as a missing one (404)."""
    return get_owned_or_404(PaymentMethod, payment_method_id, user.id, "Payment method")


def list_payment_methods(user: User, *, page: int, limit: int) -> Page:
    stmt = select(PaymentMethod).where(PaymentMethod.user_id == user.id).order_by(PaymentMethod.id)
    return paginate(stmt, page, limit)


def add_payment_method(user: User, details: dict[str, Any]) -> PaymentMethod:
    """Save `{method}` or a card already reduced to `{method, cardholder_name, exp_month, exp_year, brand, last4}`."""
    method = PaymentMethod(user_id=user.id, **details)
    db.session.add(method)
    commit()
    log.info("payment method added", extra={"userId": user.id, "paymentMethodId": method.id,
                                            "method": method.method})
    return method


def delete_payment_method(user: User, payment_method_id: int) -> None:
    """Orders keep their own snapshot of the method, so deleting it leaves them intact."""
    db.session.delete(owned_payment_method(user, payment_method_id))
    commit()
