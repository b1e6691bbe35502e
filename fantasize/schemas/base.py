"""Schema building blocks: the text every input refuses, camelCase keys, money as decimal strings, ISO-8601 UTC
times, list queries, and the text fields that clean HTML out of what clients send."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import nh3
from marshmallow import EXCLUDE, RAISE, Schema, ValidationError, fields, pre_load, validate

from fantasize.models.base import iso_utc


def camelcase(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


# Integers a database column can hold (SQLite's are 64-bit): a bigger one is a 422 or 400, never an overflow.
DATABASE_INTEGER = validate.Range(min=-(2**63), max=2**63 - 1)


# The text no input may hold, whatever field (or unknown key) it comes in: C0 control characters other than tab,
# newline and carriage return (NUL cannot even be stored by PostgreSQL; the others only hide what a value says),
# and unpaired UTF-16 surrogates, which a JSON `\ud800` escape yields but no database encoding can hold.
_REFUSED_CHARACTER = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff]")
CONTROL_CHARACTER_MESSAGE = "Control characters are not allowed (only tab, newline and carriage return)."
SURROGATE_MESSAGE = "Unpaired UTF-16 surrogates are not allowed."


def text_error(text: str) -> str | None:
    """Why the API refuses `text`, or None when it accepts it."""
    found = _REFUSED_CHARACTER.search(text)
    if found is None:
        return None
    return SURROGATE_MESSAGE if ord(found.group()) >= 0xD800 else CONTROL_CHARACTER_MESSAGE


def refused_text(data: Any) -> dict:
    """Where `data` (decoded JSON, or a query's parameters) holds text the API refuses, shaped like marshmallow's
    errors: {"line1": [message]}, {"items": {0: {"value": [message]}}}; empty when there is none.

    Every string counts, whatever field it is meant for, and so does every object key: a refused key is reported
    under itself and its value is not looked into. Walked with a stack, so no depth can exhaust the recursion limit.
    """
    errors: dict = {}
    pending: list[tuple[tuple, Any]] = [((), data)]
    while pending:
        path, value = pending.pop()
        if isinstance(value, str):
            message = text_error(value)
            if message:
                _put_error(errors, path, message)
        elif isinstance(value, dict):
            for key, item in value.items():
                message = text_error(key) if isinstance(key, str) else None
                if message:
                    _put_error(errors, (*path, key), message)
                else:
                    pending.append(((*path, key), item))
        elif isinstance(value, list):
            pending.extend(((*path, index), item) for index, item in enumerate(value))
    return errors


def _put_error(errors: dict, path: tuple, message: str) -> None:
    *parents, last = path or ("_schema",)
    for part in parents:
        errors = errors.setdefault(part, {})
    errors[last] = [message]


class InputSchema(Schema):
    """The base of every schema: input holding refused text (see `refused_text`) fails before any field loads,
    so no service, database or log ever sees it. Nested schemas check again what their parent already passed."""

    @pre_load
    def _refuse_text(self, data: Any, **kwargs: Any) -> Any:
        errors = refused_text(data)
        if errors:
            raise ValidationError(errors)
        return data


class CamelSchema(InputSchema):
    """Python attributes in snake_case, JSON keys in camelCase; unknown input keys are errors."""

    class Meta:
        unknown = RAISE

    def on_bind_field(self, field_name: str, field_obj: fields.Field) -> None:
        field_obj.data_key = camelcase(field_obj.data_key or field_name)


class QuerySchema(InputSchema):
    """Query strings tolerate unknown parameters (cache busters, `version`); bad values are 400 (API.md "Errors"),
    or `refused_status` where a schema's issue asks for another."""

    refused_status = 400

    class Meta:
        unknown = EXCLUDE

    def on_bind_field(self, field_name: str, field_obj: fields.Field) -> None:
        # `field_obj` is this instance's shallow copy of the declared field: its attributes may be replaced, but
        # a list it holds is the declared field's own, shared by every instance, so it is never mutated here.
        field_obj.data_key = camelcase(field_obj.data_key or field_name)
        if isinstance(field_obj, fields.Integer):
            field_obj.validators = [DATABASE_INTEGER, *field_obj.validators]


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
        return None if value is None else iso_utc(value)

    def _deserialize(self, value, attr, data, **kwargs) -> datetime:
        parsed = super()._deserialize(value, attr, data, **kwargs)
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


class StrictInteger(fields.Integer):
    """An integer that refuses strings and floats ("5" and 5.0 are type errors in a JSON body)."""

    def __init__(self, **kwargs):
        super().__init__(strict=True, **kwargs)
        # A new list, not an insert: copies of this field (one per schema instance) share the list they were
        # copied with, so nothing may change it in place after construction.
        self.validators = [DATABASE_INTEGER, *self.validators]

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
    "CamelSchema", "Id", "InputSchema", "Money", "PageQuery", "PlainText", "PlainTextJson", "QuerySchema",
    "SafeHtml", "StrictBoolean", "StrictInteger", "UTCDateTime", "plain_text", "refused_text", "require_one_of",
    "safe_html", "text_error",
]


# Patterns and nesting that the OpenAPI document states exactly as the server checks them.


class FullMatch(validate.Validator):
    """The whole value must match `pattern`, a regex written in the syntax Python and ECMA-262 share.

    The server checks with `re.fullmatch`; the OpenAPI document gets `^(?:pattern)$` (apispec reads `regex`), which
    means the same to an ECMA-262 engine: there `$` ends the text, while Python's `$` also accepts a trailing
    newline, which is why the check itself never uses it. Use ASCII classes such as `[0-9]`: `\\d` is Unicode in
    Python and ASCII in ECMA-262.
    """

    def __init__(self, pattern: str, *, error: str) -> None:
        self.pattern = re.compile(pattern)
        self.regex = re.compile(f"^(?:{pattern})$")
        self.error = error

    def _repr_args(self) -> str:
        return f"pattern={self.pattern.pattern!r}"

    def __call__(self, value: str) -> str:
        if not isinstance(value, str) or self.pattern.fullmatch(value) is None:
            raise ValidationError(self.error)
        return value


class WholeNested(fields.Nested):
    """List entries are replaced whole, so a PATCH (partial load) still needs every field of each entry."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, partial: Any = None, **kwargs: Any) -> Any:
        return super()._deserialize(value, attr, data, partial=False, **kwargs)
