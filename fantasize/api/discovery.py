"""Discovery: search, the home page and the explore page."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("discovery", __name__)
