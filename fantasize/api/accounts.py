"""Accounts: register, login, logout, passwords, the signed-in user's profile, and admin user management."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("accounts", __name__)
