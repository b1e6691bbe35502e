"""Orders: placement, listing, history, cancellation and admin status changes."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("orders", __name__)
