"""The signed-in user's cart."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("cart", __name__)
