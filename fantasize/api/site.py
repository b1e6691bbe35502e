"""The shop's own pages: contact messages and site content."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("site", __name__)
