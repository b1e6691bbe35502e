"""Reviews of products and packages, and the user's favourites."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("reviews", __name__)
