"""The signed-in user's notifications."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("notifications", __name__)
