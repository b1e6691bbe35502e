"""Schemas for the address book and payment methods: write bodies and the resources as rendered.

A card is checked here and reduced to its brand and last four digits as it is loaded, so the full number and
the CVV never reach a service, a model or a log line. No error message repeats what was typed.
"""

from __future__ import annotations

import re
from typing import Any

from marshmallow import ValidationError, fields, post_load, validate, validates_schema

from fantasize.models.base import utcnow
from fantasize.models.users import PAYMENT_METHODS
from fantasize.schemas.base import CamelSchema, FullMatch, PlainText, StrictBoolean, StrictInteger, UTCDateTime
from fantasize.services.countries import COUNTRY_CODES
from fantasize.services.payments import card_brand, card_expired, luhn_valid

CARD_SEPARATORS = re.compile(r"[ -]")
CARD_DIGITS = re.compile(r"[0-9]{12,19}")
CARD_FIELDS = ("card_number", "cardholder_name", "exp_month", "exp_year", "cvv")


class CountryCode(fields.String):
    """An ISO 3166-1 alpha-2 code, any case in, upper case out."""

    default_error_messages = {"country": "Not an ISO 3166-1 alpha-2 country code."}

    def _deserialize(self, value, attr, data, **kwargs) -> str:
        code = super()._deserialize(value, attr, data, **kwargs).strip().upper()
        if code not in COUNTRY_CODES:
            raise self.make_error("country")
        return code


class CardNumber(fields.String):
    """Digits after spaces and dashes are removed: 12 to 19 of them, passing the Luhn check."""

    default_error_messages = {"card": "Invalid card number."}

    def _deserialize(self, value, attr, data, **kwargs) -> str:
        raw = super()._deserialize(value, attr, data, **kwargs)
        digits = CARD_SEPARATORS.sub("", raw) if len(raw) <= 40 else ""
        if not CARD_DIGITS.fullmatch(digits) or not luhn_valid(digits):
            raise self.make_error("card")
        return digits


class AddressInSchema(CamelSchema):
    """An address to add (`POST`) or the fields to change (`PATCH`, loaded partially)."""

    line1 = PlainText(required=True, validate=validate.Length(min=1, max=200))
    line2 = PlainText(allow_none=True, validate=validate.Length(max=200))
    city = PlainText(required=True, validate=validate.Length(min=1, max=100))
    state = PlainText(allow_none=True, validate=validate.Length(max=100))
    country = CountryCode(required=True, metadata={"description": "ISO 3166-1 alpha-2, e.g. US; stored upper-case"})
    postal_code = PlainText(allow_none=True, validate=validate.Length(max=20))
    is_default = StrictBoolean(metadata={"description": "true makes this the default and clears the others"})


class AddressSchema(CamelSchema):
    id = fields.Integer()
    line1 = fields.String()
    line2 = fields.String(allow_none=True)
    city = fields.String()
    state = fields.String(allow_none=True)
    country = fields.String()
    postal_code = fields.String(allow_none=True)
    is_default = fields.Boolean()
    created_at = UTCDateTime()
    updated_at = UTCDateTime()


CARD_ONLY = "Required for card; not allowed for cash_on_delivery."


class PaymentMethodInSchema(CamelSchema):
    """`{method: "card", cardNumber, cardholderName, expMonth, expYear, cvv}` or `{method: "cash_on_delivery"}`.

    Loads to `{method}` or `{method, cardholder_name, exp_month, exp_year, brand, last4}`: the number and the CVV
    are checked, then dropped.
    """

    method = fields.String(required=True, validate=validate.OneOf(PAYMENT_METHODS))
    card_number = CardNumber(load_only=True, metadata={"description": f"{CARD_ONLY} Spaces and dashes allowed."})
    cardholder_name = PlainText(validate=validate.Length(min=1, max=100), metadata={"description": CARD_ONLY})
    exp_month = StrictInteger(validate=validate.Range(min=1, max=12), metadata={"description": CARD_ONLY})
    exp_year = StrictInteger(validate=validate.Range(min=2000, max=2100), metadata={"description": CARD_ONLY})
    cvv = fields.String(
        load_only=True,
        validate=FullMatch(r"[0-9]{3,4}", error="Must be 3 or 4 digits."),
        metadata={"description": f"{CARD_ONLY} Checked, never stored."},
    )

    @validates_schema(pass_original=True, skip_on_field_errors=False)
    def _fields_for_method(self, data: dict[str, Any], original: Any, **kwargs: Any) -> None:
        # Judged on the raw keys: a card field that failed its own check is invalid, not also missing.
        method = data.get("method")
        given = {name for name in CARD_FIELDS if self.fields[name].data_key in original}
        if method == "cash_on_delivery" and given:
            raise ValidationError({self.fields[name].data_key: ["Not allowed for cash on delivery."]
                                   for name in CARD_FIELDS if name in given})
        if method == "card":
            missing = [name for name in CARD_FIELDS if name not in given]
            if missing:
                raise ValidationError({self.fields[name].data_key: ["Missing data for required field."]
                                       for name in missing})
            if "exp_month" in data and "exp_year" in data and card_expired(data["exp_month"], data["exp_year"],
                                                                           utcnow()):
                raise ValidationError("The card has expired.", "expYear")

    @post_load
    def _keep_brand_and_last4(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        number = data.pop("card_number", None)
        data.pop("cvv", None)
        if number is not None:
            data["brand"] = card_brand(number)
            data["last4"] = number[-4:]
        return data


class PaymentMethodSchema(CamelSchema):
    id = fields.Integer()
    method = fields.String(metadata={"enum": list(PAYMENT_METHODS)})
    cardholder_name = fields.String(allow_none=True)
    brand = fields.String(allow_none=True, metadata={"description": "visa, mastercard, amex, discover or unknown"})
    last4 = fields.String(allow_none=True)
    exp_month = fields.Integer(allow_none=True)
    exp_year = fields.Integer(allow_none=True)
    created_at = UTCDateTime()
