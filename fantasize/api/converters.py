"""The `<int:...>` of every route: a path segment where an id goes, and a 404 when it cannot be one."""

from __future__ import annotations

from typing import Any

from werkzeug.exceptions import NotFound
from werkzeug.routing import BaseConverter

# Ids are positive and fit a 64-bit column (SQLite's integers; PostgreSQL's bigint).
MAX_ID = 2**63 - 1


class IdConverter(BaseConverter):
    """Matches any one segment, so a route is chosen by its shape alone; a segment that is not an id (`0`, `-716`,
    `false`, 25 digits, non-ASCII digits) is then a 404 for every method the route has.

    Werkzeug's own int converter matches digits only and refuses a number too big with a ValidationError, which
    its matcher reports as "no match": a 405 when another rule on the same path (another method) was seen first,
    e.g. DELETE /users/me/addresses/<25 digits>. Raising NotFound here ends the routing with a 404 instead.

    Static segments still win (Werkzeug tries them before any variable: /users/me, not /users/<id>), but a string
    variable at the same place as an id would never be reached; tests/test_contract.py checks no route has one.
    """

    weight = 50  # Werkzeug's number converters' weight: an id is tried before a string variable

    def to_python(self, value: str) -> int:
        # ASCII only: "١٢" and "²" are digits to str.isdigit. The length is checked before int(), which refuses
        # strings of thousands of digits with a ValueError.
        if not (value.isascii() and value.isdigit()) or len(value.lstrip("0")) > len(str(MAX_ID)):
            raise NotFound()
        number = int(value)
        if not 0 < number <= MAX_ID:
            raise NotFound()
        return number

    def to_url(self, value: Any) -> str:
        return str(int(value))
