"""Offers and customization definitions."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("offers", __name__)
