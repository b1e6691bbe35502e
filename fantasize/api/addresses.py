"""The signed-in user's address book and payment methods."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("addresses", __name__)
