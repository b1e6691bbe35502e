"""Products and packages: listing with filters and sorts, details, writes and stock."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("products", __name__)
