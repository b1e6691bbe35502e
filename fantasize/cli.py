"""Command-line interface: `flask seed`, `flask create-admin`."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    pass
