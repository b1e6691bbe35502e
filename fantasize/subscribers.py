"""Who listens to which domain event (fantasize.events): the wiring, in one place."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Subscribe the app's event handlers (idempotent: subscribing twice keeps one)."""
