"""Responses are encoded by orjson (fantasize.platform.json_provider) into the same JSON Flask's own provider wrote."""

from __future__ import annotations

import dataclasses
import json
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from flask import Flask

from fantasize.platform.json_provider import OrjsonProvider


@dataclasses.dataclass
class Point:
    x: int
    label: str


VALUES = [
    {"zeta": 1, "alpha": [1, 2.5, None, True, False]},  # keys keep their order
    {"name": "Café ✓ 漢字 😀"},
    {"price": Decimal("4.99"), "id": uuid.UUID(int=7)},
    {"at": datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC), "on": date(2024, 1, 2)},  # HTTP dates, as Flask writes them
    {1: "one", None: "none"},
    Point(3, "p"),
    {"huge": 2**70, "surrogate": "\ud800"},  # beyond orjson: Flask's encoder takes over
    [1, "two"],
]


def flask_default() -> Flask:
    app = Flask("reference")
    app.json.sort_keys = False
    return app


@pytest.mark.parametrize("value", VALUES)
def test_a_response_holds_the_same_json_as_flasks_own_provider(value):
    ours, reference = Flask("ours"), flask_default()
    ours.json = OrjsonProvider(ours)
    with ours.app_context():
        body = ours.json.response(value).get_data()
    with reference.app_context():
        expected = reference.json.response(value).get_data()

    assert json.loads(body) == json.loads(expected)
    assert list(json.loads(body)) == list(json.loads(expected))  # the same order
    assert body.endswith(b"\n") and b"\n" not in body[:-1] and b": " not in body  # compact, one line


def test_non_ascii_text_is_sent_as_utf8():
    app = Flask("utf8")
    app.json = OrjsonProvider(app)
    with app.app_context():
        response = app.json.response({"name": "Café"})
    assert response.get_data() == '{"name":"Café"}\n'.encode()
    assert response.mimetype == "application/json"


def test_debug_responses_are_indented():
    app = Flask("debug")
    app.json = OrjsonProvider(app)
    app.debug = True
    with app.app_context():
        assert app.json.response({"a": [1]}).get_data() == b'{\n  "a": [\n    1\n  ]\n}\n'


def test_what_neither_encoder_knows_is_an_error():
    app = Flask("error")
    app.json = OrjsonProvider(app)
    with app.app_context(), pytest.raises(TypeError):
        app.json.response({"set": {1, 2}})


def test_the_app_encodes_with_orjson(app):
    assert isinstance(app.json, OrjsonProvider) and app.json.sort_keys is False
