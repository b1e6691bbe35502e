"""Configuration from the environment: database URLs, the embedded default, production's secret check."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import config
from fantasize import create_app

ROOT = Path(__file__).resolve().parent.parent
SERVICE_PREFIXES = ("DATABASE_", "REDIS_", "JWT_", "NODE_ENV", "FLASK_")
CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith(SERVICE_PREFIXES)}


def _create_app_in_subprocess(**env: str) -> subprocess.CompletedProcess:
    code = "from fantasize import create_app; app = create_app(); print(app.config['SQLALCHEMY_DATABASE_URI'])"
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env={**CLEAN_ENV, **env}, capture_output=True, text=True, timeout=60
    )


def test_database_url_from_parts(monkeypatch):
    for name in ("DATABASE_URL",):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABASE_HOST", "db.internal")
    monkeypatch.setenv("DATABASE_USER", "shop")
    monkeypatch.setenv("DATABASE_PASSWORD", "p@ss word")
    monkeypatch.setenv("DATABASE_NAME", "fantasize_db")
    monkeypatch.delenv("DATABASE_PORT", raising=False)
    assert config.database_url() == "postgresql://shop:p%40ss%20word@db.internal:5432/fantasize_db"


def test_heroku_style_postgres_url_is_accepted(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgres://u:p@h:5432/d")
    assert config.database_url() == "postgresql://u:p@h:5432/d"


def test_redis_url_from_parts(monkeypatch):
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.setenv("REDIS_HOST", "cache")
    monkeypatch.setenv("REDIS_PASSWORD", "s3cret")
    monkeypatch.delenv("REDIS_PORT", raising=False)
    assert config.redis_url() == "redis://:s3cret@cache:6379/0"


def test_no_database_settings_means_embedded_sqlite_in_the_instance_folder(tmp_path):
    result = _create_app_in_subprocess()
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith("sqlite:///") and "instance" in result.stdout


@pytest.mark.parametrize("variable", ["NODE_ENV", "FLASK_ENV"])
@pytest.mark.parametrize("secret", [None, "too-short-secret"])
def test_production_refuses_to_start_without_a_long_secret(variable, secret):
    env = {variable: "production", "DATABASE_URL": "sqlite://"}
    if secret:
        env["JWT_SECRET"] = secret
    result = _create_app_in_subprocess(**env)
    assert result.returncode != 0
    assert "JWT_SECRET" in result.stderr


def test_production_starts_with_a_long_secret():
    result = _create_app_in_subprocess(NODE_ENV="production", DATABASE_URL="sqlite://", JWT_SECRET="x" * 32)
    assert result.returncode == 0, result.stderr


def test_overrides_win_over_the_environment():
    app = create_app(config.TestingConfig, {"SQLALCHEMY_DATABASE_URI": "sqlite://", "API_DEFAULT_VERSION": "v2"})
    assert app.config["API_DEFAULT_VERSION"] == "v2"
    assert app.config["TESTING"] is True
