"""File uploads: storing under a random name and serving them back."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("uploads", __name__)
