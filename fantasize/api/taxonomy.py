"""Catalogue taxonomy: categories with their subcategories, brands and materials."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("taxonomy", __name__)
