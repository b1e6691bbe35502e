"""Configuration from the environment: database URLs, the embedded default, the environment's name, secrets, and
production's checks (in the app factory and before gunicorn serves)."""

from __future__ import annotations

import os
import secrets
import stat
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import jwt
import pytest
import requests
from flask import Flask

import config
from fantasize import create_app
from fantasize.extensions import db
from fantasize.models.base import utcnow
from tests.live_server import free_port
from tests.support import PrivateRedis, all_at_once, skip_or_fail

ROOT = Path(__file__).resolve().parent.parent
SERVICE_PREFIXES = ("DATABASE_", "REDIS_", "JWT_", "NODE_ENV", "FLASK_", "MAIL_", "SMTP_", "PUBLIC_BASE_URL",
                    "PROXY_COUNT", "FORCE_HTTPS", "HOST", "APP_PORT", "PORT", "WEB_CONCURRENCY", "LOG_LEVEL")
CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith(SERVICE_PREFIXES)}
# What production must be given (README, Deploy); each test leaves out or spoils one.
PRODUCTION = {"FLASK_ENV": "production", "DATABASE_URL": "sqlite://", "JWT_SECRET": secrets.token_urlsafe(48),
              "SMTP_HOST": "mail.example.com", "PUBLIC_BASE_URL": "https://shop.example.com"}
# The development secret config.py used to carry, which anyone could read.
OLD_PUBLIC_SECRET = "dev-only-secret-change-me-dev-only-secret-change-me"


def _create_app_in_subprocess(instance: Path | None = None, **env: str) -> subprocess.CompletedProcess:
    # The app's instance folder is moved to `instance` (a test's own), so development's generated secret is never
    # written into the developer's instance/.
    code = (
        "import sys, flask\n"
        "if len(sys.argv) > 1: flask.Flask.auto_find_instance_path = lambda self: sys.argv[1]\n"
        "from fantasize import create_app\n"
        "app = create_app()\n"
        "print(app.config['SQLALCHEMY_DATABASE_URI'])\n"
    )
    args = [str(instance)] if instance else []
    return subprocess.run(
        [sys.executable, "-c", code, *args], cwd=ROOT, env={**CLEAN_ENV, **env}, capture_output=True, text=True,
        timeout=60,
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
    # Also `make run`'s case: nothing set at all starts development, with a secret of its own.
    result = _create_app_in_subprocess(tmp_path / "instance")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"sqlite:///{tmp_path / 'instance' / 'fantasize.db'}"
    assert (tmp_path / "instance" / config.INSTANCE_SECRET_FILE).is_file()


# The environment's name


@pytest.mark.parametrize("variable", ["FLASK_ENV", "NODE_ENV"])
@pytest.mark.parametrize("name", ["prod", "staging", "develop"])
def test_an_unknown_environment_name_stops_the_app(tmp_path, variable, name):
    result = _create_app_in_subprocess(tmp_path, **{variable: name})
    assert result.returncode != 0
    assert f"{variable}={name!r} is not an environment" in result.stderr
    assert "production, testing, development" in result.stderr


def test_flask_env_and_node_env_naming_different_environments_stop_the_app(tmp_path):
    result = _create_app_in_subprocess(tmp_path, FLASK_ENV="development", NODE_ENV="production")
    assert result.returncode != 0
    assert "FLASK_ENV and NODE_ENV name different environments" in result.stderr


def test_the_name_is_read_whatever_its_case_and_spacing(monkeypatch):
    monkeypatch.setenv("FLASK_ENV", " Production ")
    monkeypatch.delenv("NODE_ENV", raising=False)
    assert config.config_for() is config.ProductionConfig
    with pytest.raises(config.ConfigError, match="'prod' is not an environment"):
        config.config_for("prod")


# Development's secret: generated, kept in the instance folder, never written in the code


@pytest.fixture
def instance_folder(tmp_path, monkeypatch) -> Path:
    """Apps built in this test keep their instance folder here instead of the project's instance/."""
    folder = tmp_path / "instance"
    monkeypatch.setattr(Flask, "auto_find_instance_path", lambda self: str(folder))
    return folder


def development_app(database_url: str, **overrides) -> Flask:
    return create_app(config.DevelopmentConfig, {"SQLALCHEMY_DATABASE_URI": database_url, **overrides})


def test_development_generates_its_secret_once_and_keeps_it_private(instance_folder, monkeypatch):
    monkeypatch.delenv("JWT_SECRET", raising=False)
    first = development_app("sqlite://", JWT_SECRET=None).config["JWT_SECRET"]
    kept = instance_folder / config.INSTANCE_SECRET_FILE

    assert first == kept.read_text().strip() and len(first.encode()) >= config.MIN_JWT_SECRET_BYTES
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert development_app("sqlite://", JWT_SECRET=None).config["JWT_SECRET"] == first  # tokens survive a restart
    assert first != OLD_PUBLIC_SECRET
    # A JWT_SECRET that is given wins, and nothing else is generated.
    assert development_app("sqlite://", JWT_SECRET="given-" * 8).config["JWT_SECRET"] == "given-" * 8


def test_two_processes_starting_together_agree_on_one_secret(tmp_path):
    secrets_made = all_at_once([lambda: config.instance_secret(tmp_path)] * 8)
    assert len(set(secrets_made)) == 1
    assert [p.name for p in tmp_path.iterdir()] == [config.INSTANCE_SECRET_FILE]  # no temporary file left


def test_every_instance_folder_gets_a_secret_of_its_own(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    assert config.instance_secret(tmp_path / "a") != config.instance_secret(tmp_path / "b")


def test_a_spoiled_secret_file_stops_the_app_instead_of_signing_with_it(tmp_path):
    (tmp_path / config.INSTANCE_SECRET_FILE).write_text("short\n")
    with pytest.raises(config.ConfigError, match="delete it"):
        config.instance_secret(tmp_path)


def test_a_token_forged_with_the_old_public_secret_is_refused_in_development(app, factory, instance_folder):
    # The review's attack: unnamed environment, development's secret from config.py, GET /users as an admin.
    admin = factory.admin()
    claims = {"sub": str(admin.id), "role": "admin", "ver": admin.token_version, "iat": utcnow(),
              "exp": utcnow() + timedelta(hours=1)}
    development = development_app(app.config["SQLALCHEMY_DATABASE_URI"])
    try:
        client = development.test_client()
        forged = jwt.encode(claims, OLD_PUBLIC_SECRET, algorithm="HS256")
        response = client.get("/api/v1/users", headers={"Authorization": f"Bearer {forged}"})
        assert response.status_code == 401
        own = jwt.encode(claims, development.config["JWT_SECRET"], algorithm="HS256")
        assert client.get("/api/v1/users", headers={"Authorization": f"Bearer {own}"}).status_code == 200
    finally:
        with development.app_context():
            db.engine.dispose()


def test_each_test_process_makes_up_its_own_secret():
    assert config.TestingConfig.JWT_SECRET != OLD_PUBLIC_SECRET
    assert len(config.TestingConfig.JWT_SECRET.encode()) >= config.MIN_JWT_SECRET_BYTES


# Production's checks


@pytest.mark.parametrize("variable", ["NODE_ENV", "FLASK_ENV"])
@pytest.mark.parametrize("secret", [None, "too-short-secret"])
def test_production_refuses_to_start_without_a_long_secret(variable, secret):
    env = {variable: "production", "DATABASE_URL": "sqlite://"}
    if secret:
        env["JWT_SECRET"] = secret
    result = _create_app_in_subprocess(**env)
    assert result.returncode != 0
    assert "JWT_SECRET" in result.stderr


def test_production_starts_with_what_it_must_be_given():
    result = _create_app_in_subprocess(**PRODUCTION)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("backend", ["log", "memory"])
def test_production_refuses_mail_backends_that_log_or_keep_reset_links(backend):
    result = _create_app_in_subprocess(**PRODUCTION, MAIL_BACKEND=backend)
    assert result.returncode != 0
    assert f"MAIL_BACKEND={backend!r} is not allowed in production" in result.stderr


def test_production_mails_by_smtp_and_needs_a_server_and_the_public_address():
    settings = {k: v for k, v in PRODUCTION.items() if k not in ("SMTP_HOST", "PUBLIC_BASE_URL")}
    result = _create_app_in_subprocess(**settings)
    assert result.returncode != 0
    assert "SMTP_HOST must name the mail server" in result.stderr
    assert "PUBLIC_BASE_URL must be the shop's public address" in result.stderr


# gunicorn (the Procfile's web process)


def run_gunicorn(**env: str) -> subprocess.CompletedProcess:
    """gunicorn as the Procfile runs it; a server that starts serving instead of refusing is killed after 30 s."""
    env = {**CLEAN_ENV, "HOST": "127.0.0.1", "APP_PORT": str(free_port()), **env}
    gunicorn = str(Path(sys.executable).with_name("gunicorn"))
    try:
        return subprocess.run([gunicorn, "-c", "gunicorn.conf.py", "wsgi:app"], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail("gunicorn served instead of refusing to start")


def test_gunicorn_refuses_to_serve_an_unnamed_environment_without_production_settings():
    result = run_gunicorn()
    assert result.returncode != 0
    assert "JWT_SECRET must be a random secret" in result.stderr
    assert "unless FLASK_ENV or NODE_ENV names development or testing" in result.stderr


def test_gunicorn_refuses_a_short_secret_and_an_unknown_environment():
    short = run_gunicorn(**{**PRODUCTION, "JWT_SECRET": "too-short"})
    assert short.returncode != 0 and "JWT_SECRET must be a random secret" in short.stderr
    unknown = run_gunicorn(**{**PRODUCTION, "FLASK_ENV": "prod"})
    assert unknown.returncode != 0 and "FLASK_ENV='prod' is not an environment" in unknown.stderr


def test_gunicorn_serves_production_when_no_environment_is_named(tmp_path):
    """Given production's settings and no name, gunicorn serves production: HTTPS is forced, and requests that
    come through a proxy PROXY_COUNT does not trust are reported once (finding 10)."""
    port = free_port()
    env = {**CLEAN_ENV, **{k: v for k, v in PRODUCTION.items() if k != "FLASK_ENV"}, "HOST": "127.0.0.1",
           "APP_PORT": str(port), "WEB_CONCURRENCY": "1", "LOG_LEVEL": "WARNING",
           "DATABASE_URL": f"sqlite:///{tmp_path / 'shop.db'}"}
    log_path = tmp_path / "gunicorn.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen([str(Path(sys.executable).with_name("gunicorn")), "-c", "gunicorn.conf.py",
                                    "wsgi:app"], cwd=ROOT, env=env, stdout=log, stderr=log)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, log_path.read_text()
            try:
                requests.get(f"{url}/health/live", timeout=1)
                break
            except requests.RequestException:
                assert time.monotonic() < deadline, "gunicorn did not answer"
                time.sleep(0.2)
        forwarded = {"X-Forwarded-For": "203.0.113.7"}
        answers = [requests.get(f"{url}/api/v1/versions", headers=forwarded, allow_redirects=False, timeout=5)
                   for _ in range(3)]
    finally:
        process.terminate()
        process.wait(timeout=15)

    assert [a.status_code for a in answers] == [302] * 3  # production forces HTTPS
    assert answers[0].headers["Location"].startswith("https://")
    assert log_path.read_text().count("requests carry X-Forwarded-For but PROXY_COUNT=0") == 1


# In CI nothing skips silently


def test_a_missing_service_skips_locally_and_fails_in_ci(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no redis-server on it
    monkeypatch.setattr(config.TestingConfig, "REQUIRE_SERVICES", False)
    with pytest.raises(pytest.skip.Exception):
        PrivateRedis().start()
    monkeypatch.setattr(config.TestingConfig, "REQUIRE_SERVICES", True)
    with pytest.raises(pytest.fail.Exception, match="redis-server is not installed"):
        PrivateRedis().start()
    with pytest.raises(pytest.fail.Exception, match="gone"):
        skip_or_fail("gone")


def test_overrides_win_over_the_environment():
    app = create_app(config.TestingConfig, {"SQLALCHEMY_DATABASE_URI": "sqlite://", "API_DEFAULT_VERSION": "v2"})
    assert app.config["API_DEFAULT_VERSION"] == "v2"
    assert app.config["TESTING"] is True
