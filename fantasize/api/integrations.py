"""Server-to-server integrations authenticated by API key."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("integrations", __name__)
