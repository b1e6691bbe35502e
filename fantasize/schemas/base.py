"""Schema building blocks: camelCase keys, money as decimal strings, ISO-8601 UTC times, list queries, and the
text fields that clean HTML out of what clients send."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import nh3
from marshmallow import EXCLUDE, RAISE, Schema, ValidationError, fields, validate


def camelcase(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


# Integers a database column can hold (SQLite's are 64-bit): a bigger one is a 422 or 400, never an overflow.
DATABASE_INTEGER = validate.Range(min=-(2**63), max=2**63 - 1)


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
        if isinstance(field_obj, fields.Integer):
            field_obj.validators.insert(0, DATABASE_INTEGER)


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
        self.validators.insert(0, DATABASE_INTEGER)

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


# In HTML text a `<` starts a tag, comment or declaration only when a letter, `/`, `!` or `?` follows it, so text
# without this pattern holds no markup (`5 < 6`, `I <3 it`) and is kept exactly as sent, entities and all.
MARKUP = re.compile(r"<[A-Za-z/!?]")
# Tags are dropped with their text kept, except script and style, whose content goes too (nh3's default).
_NO_TAGS = nh3.Cleaner(tags=set())
DESCRIPTION_TAGS = frozenset({"b", "i", "em", "strong", "p", "ul", "ol", "li", "br", "a"})
DESCRIPTION_URL_SCHEMES = frozenset({"http", "https", "mailto"})
_DESCRIPTION_HTML = nh3.Cleaner(
    tags=set(DESCRIPTION_TAGS),
    attributes={"a": {"href"}},
    url_schemes=set(DESCRIPTION_URL_SCHEMES),
    link_rel="noopener noreferrer",
)


def plain_text(value: str) -> str:
    """`value` without HTML: tags go, their text stays (script and style content goes too).

    Text without markup comes back unchanged. Text with markup is read as HTML, so its entities become the
    characters they stand for; that can reveal markup that was escaped (`&lt;b&gt;`), which is removed in turn,
    until a pass finds nothing left to remove.
    """
    while MARKUP.search(value):
        cleaned = html.unescape(_NO_TAGS.clean(value))
        if cleaned == value:  # a trailing `</` is all that matched, and HTML reads that as text
            break
        value = cleaned
    return value


def safe_html(value: str) -> str:
    """`value` as HTML keeping only DESCRIPTION_TAGS, links with http, https or mailto URLs (given
    rel="noopener noreferrer"), and no other attribute. Text without markup comes back unchanged."""
    return _DESCRIPTION_HTML.clean(value) if MARKUP.search(value) else value


def _keeping_text(clean: Callable[[str], str]) -> Callable[[str], str]:
    def load(value: str) -> str:
        cleaned = clean(value)
        # Something that was only markup (`<img src=x onerror=...>`) would otherwise be saved as an empty text.
        if value.strip() and not cleaned.strip():
            raise ValidationError("Contains no text once its HTML is removed.")
        return cleaned

    return load


_load_plain_text = _keeping_text(plain_text)
_load_safe_html = _keeping_text(safe_html)


class PlainText(fields.String):
    """Free text (names, titles, messages...): any HTML is removed as it is loaded (see `plain_text`).

    Validators, lengths included, judge the text as sent, so oversized input is refused before it is cleaned.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.post_load.insert(0, _load_plain_text)


class SafeHtml(fields.String):
    """Rich text (descriptions): HTML reduced to a small safe subset as it is loaded (see `safe_html`).

    Validators, lengths included, judge the text as sent; the cleaned HTML may be a little longer (escaped `&`,
    the added `rel`), so it belongs in an unbounded column.
    """

    def __init__(self, **kwargs: Any) -> None:
        metadata = {"description": "HTML: only b, i, em, strong, p, ul, ol, li, br and a[href] (http, https, "
                                   "mailto) are kept", **(kwargs.pop("metadata", None) or {})}
        super().__init__(metadata=metadata, **kwargs)
        self.post_load.insert(0, _load_safe_html)


def _clean_strings(value: Any) -> Any:
    if isinstance(value, str):
        return _load_plain_text(value)
    if isinstance(value, dict):
        return {_clean_strings(key): _clean_strings(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_clean_strings(item) for item in value]
    return value


class PlainTextJson(fields.Raw):
    """Any JSON value whose strings, at any depth and keys included, are cleaned like PlainText."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        return _clean_strings(value)


def require_one_of(data: dict, *names: str) -> None:
    given = [name for name in names if data.get(name) is not None]
    if len(given) != 1:
        keys = " or ".join(camelcase(n) for n in names)
        raise ValidationError(f"Give exactly one of {keys}.", "_schema")


__all__ = [
    "CamelSchema", "Id", "Money", "PageQuery", "PlainText", "PlainTextJson", "QuerySchema", "SafeHtml",
    "StrictBoolean", "StrictInteger", "UTCDateTime", "plain_text", "require_one_of", "safe_html",
]
