"""Schema building blocks: camelCase keys, money as decimal strings, ISO-8601 UTC times, list queries."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

from marshmallow import EXCLUDE, RAISE, Schema, ValidationError, fields, validate


def camelcase(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


class CamelSchema(Schema):
    """Python attributes in snake_case, JSON keys in camelCase; unknown input keys are errors."""

    class Meta:
        unknown = RAISE

    def on_bind_field(self, field_name: str, field_obj: fields.Field) -> None:
        field_obj.data_key = camelcase(field_obj.data_key or field_name)


class QuerySchema(Schema):
    """Query strings tolerate unknown parameters (cache busters, `version`); bad values are 400."""

    class Meta:
        unknown = EXCLUDE

    def on_bind_field(self, field_name: str, field_obj: fields.Field) -> None:
        field_obj.data_key = camelcase(field_obj.data_key or field_name)


class PageQuery(QuerySchema):
    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=100_000))
    limit = fields.Integer(load_default=20, validate=validate.Range(min=1, max=100))


class Money(fields.Field):
    """Money in: a decimal string or number with at most 2 places. Money out: always a string ("19.90")."""

    default_error_messages = {
        "invalid": "Not a valid amount.",
        "places": "At most 2 decimal places.",
        "range": "Must be greater than 0 and at most 1000000.",
    }

    def _serialize(self, value, attr, obj, **kwargs):
        return None if value is None else f"{Decimal(value):.2f}"

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise self.make_error("invalid")
        try:
            amount = Decimal(str(value).strip())
        except InvalidOperation as exc:
            raise self.make_error("invalid") from exc
        if not amount.is_finite():
            raise self.make_error("invalid")
        if amount != amount.quantize(Decimal("0.01")):
            raise self.make_error("places")
        if not Decimal("0") < amount <= Decimal("1000000"):
            raise self.make_error("range")
        return amount.quantize(Decimal("0.01"))


class UTCDateTime(fields.DateTime):
    """ISO-8601 with `Z` out; offsets accepted in and converted to UTC (naive input is taken as UTC)."""

    def _serialize(self, value, attr, obj, **kwargs):
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")

    def _deserialize(self, value, attr, data, **kwargs) -> datetime:
        parsed = super()._deserialize(value, attr, data, **kwargs)
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


class StrictInteger(fields.Integer):
    """An integer that refuses strings and floats ("5" and 5.0 are type errors in a JSON body)."""

    def __init__(self, **kwargs):
        super().__init__(strict=True, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if isinstance(value, bool):
            raise self.make_error("invalid")
        return super()._deserialize(value, attr, data, **kwargs)


Id = StrictInteger  # ids in request bodies are JSON integers


class StrictBoolean(fields.Boolean):
    """A JSON true/false only: "true", 1 and "yes" are type errors in a body."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value


def require_one_of(data: dict, *names: str) -> None:
    given = [name for name in names if data.get(name) is not None]
    if len(given) != 1:
        keys = " or ".join(camelcase(n) for n in names)
        raise ValidationError(f"Give exactly one of {keys}.", "_schema")


__all__ = [
    "CamelSchema", "Id", "Money", "PageQuery", "QuerySchema", "StrictBoolean", "StrictInteger", "UTCDateTime",
    "require_one_of",
]
