"""The Dockerfile and compose.yaml against the app they deploy: what they set, where they point and what they run
is what the app reads, listens on, serves and runs. They are parsed here, not run (deploy/containers-check builds
and runs them with podman, outside the suite): a setting renamed in config.py, a port or a route changed, a service
renamed without its nginx upstream or Prometheus target, fails here first."""

from __future__ import annotations

import ipaddress
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import config
from tests.live_server import ROOT

DEPLOY = ROOT / "deploy"
# Set in the image for Python, pip and the venv, not for the app.
TOOLING = ("PATH", "VIRTUAL_ENV", "PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED", "PIP_NO_CACHE_DIR",
           "PIP_DISABLE_PIP_VERSION_CHECK")
# Read by gunicorn itself (its number of workers), not by config.py.
GUNICORN = ("WEB_CONCURRENCY",)


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order: comments dropped, continuation lines joined."""
    joined = re.sub(r"\\\n", " ", "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#")))
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1].strip()) for line in joined.splitlines()
            if line.strip()]


def exec_form(arguments: str) -> list[str]:
    """A JSON-array instruction (CMD, ENTRYPOINT, HEALTHCHECK's CMD) as its words."""
    return json.loads(arguments)


@pytest.fixture(scope="module")
def dockerfile() -> list[tuple[str, str]]:
    return dockerfile_instructions((ROOT / "Dockerfile").read_text())


@pytest.fixture(scope="module")
def image_env(dockerfile) -> dict[str, str]:
    env = {}
    for instruction, arguments in dockerfile:
        if instruction == "ENV":
            env.update(word.split("=", 1) for word in shlex.split(arguments))
    return env


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


@pytest.fixture(scope="module")
def app_services(compose) -> dict[str, dict]:
    """The services that run the Fantasize image (the instances and the migration)."""
    return {name: service for name, service in compose["services"].items() if "build" in service}


@pytest.fixture(scope="module")
def instances(app_services) -> dict[str, dict]:
    """The services that serve: the image's own command (gunicorn), none of their own."""
    return {name: service for name, service in app_services.items() if "command" not in service}


@pytest.fixture(scope="module")
def procfile() -> dict[str, list[str]]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return {name: shlex.split(command) for name, command in (line.split(":", 1) for line in lines if line.strip())}


def mounts(service: dict) -> dict[str, str]:
    """A compose service's volumes as {path in the container: source} (a source may hold a ${...:?...})."""
    mounted = {}
    for entry in service.get("volumes", []):
        source, target = re.fullmatch(r"(.+):(/[^:]*)(?::ro|:rw)?", entry).groups()
        mounted[target] = source
    return mounted


def production_env(image_env: dict[str, str], service: dict) -> dict[str, str]:
    """An instance's environment with the required settings given values (as an operator would)."""
    env = {name: value for name, value in image_env.items() if name not in TOOLING}
    env.update({name: str(value) for name, value in service["environment"].items()})
    env.update(JWT_SECRET="x" * 48, SMTP_HOST="smtp.example.com", PUBLIC_BASE_URL="https://shop.example.com",
               DATABASE_URL="postgresql://fantasize@postgres/fantasize")
    return {name: value for name, value in env.items() if "${" not in value}


def test_every_setting_the_image_and_compose_give_the_app_is_one_it_reads(image_env, app_services):
    # config.py is the one place that reads the environment: a setting it never names is a typo or a leftover.
    read = set(re.findall(r'"([A-Z][A-Z0-9_]+)"', (ROOT / "config.py").read_text())) | set(GUNICORN)
    given = {name for name in image_env if name not in TOOLING}
    for service in app_services.values():
        given |= set(service["environment"])
    assert given - read == set()
    assert {"HOST", "APP_PORT", "PROXY_COUNT", "UPLOAD_FOLDER", "DATABASE_URL", "REDIS_URL"} <= given


def test_compose_refuses_to_start_without_what_production_requires(app_services):
    # The settings check_production names when they are missing, each written ${NAME:?why} in compose.yaml, so
    # compose stops before any container starts instead of an instance refusing to boot.
    with pytest.raises(config.ConfigError) as refused:
        config.check_production({"MAIL_BACKEND": "smtp"})
    required = set(re.findall(r"^\s+- ([A-Z_]+) ", str(refused.value), re.MULTILINE))
    assert required == {"JWT_SECRET", "SMTP_HOST", "PUBLIC_BASE_URL"}
    for service in app_services.values():
        for name in required:
            assert str(service["environment"][name]).startswith(f"${{{name}:?"), name
        assert re.search(r"\$\{POSTGRES_PASSWORD:\?", service["environment"]["DATABASE_URL"])


def test_gunicorn_listens_where_the_image_exposes_and_nginx_and_prometheus_send(image_env, dockerfile, instances,
                                                                                compose):
    # gunicorn.conf.py's own bind, computed from an instance's environment in production.
    env = production_env(image_env, next(iter(instances.values())))
    bind = subprocess.run([sys.executable, "-c", "import runpy; print(runpy.run_path('gunicorn.conf.py')['bind'])"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=True).stdout.strip()
    host, port = bind.rsplit(":", 1)
    assert host == "0.0.0.0"
    assert [arguments for instruction, arguments in dockerfile if instruction == "EXPOSE"] == [port]

    upstream = re.search(r"upstream fantasize \{(.*?)\}", (DEPLOY / "nginx" / "nginx.conf").read_text(), re.S)
    servers = re.findall(r"^\s*server\s+([\w.-]+:\d+)", upstream.group(1), re.MULTILINE)
    assert sorted(servers) == sorted(f"{name}:{port}" for name in instances)

    prometheus = yaml.safe_load((DEPLOY / "prometheus" / prometheus_config_name(compose)).read_text())
    targets = [target for job in prometheus["scrape_configs"] for group in job["static_configs"]
               for target in group["targets"]]
    assert sorted(targets) == sorted(f"{name}:{port}" for name in instances)


def test_the_healthcheck_asks_a_route_the_app_serves(dockerfile, image_env, client):
    healthcheck = [arguments for instruction, arguments in dockerfile if instruction == "HEALTHCHECK"]
    assert len(healthcheck) == 1
    command = exec_form(healthcheck[0].split("CMD", 1)[1])
    assert command[0].startswith("python")  # slim images have no curl
    url = re.search(r"'(http://127\.0\.0\.1:%s(/[^']*))' % os\.environ\.get\('APP_PORT', '(\d+)'\)", command[-1])
    assert url, command
    assert url.group(3) == image_env["APP_PORT"]
    assert client.get(url.group(2)).status_code == 200


def test_the_compose_nginx_runs_deploy_nginx_in_front_of_the_instances(compose, instances):
    nginx = compose["services"]["nginx"]
    assert mounts(nginx)["/etc/nginx"] == "./deploy/nginx"
    config_path = nginx["command"][nginx["command"].index("-c") + 1]
    assert (DEPLOY / "nginx" / Path(config_path).relative_to("/etc/nginx")).is_file()
    assert set(nginx["depends_on"]) == set(instances)
    # nginx.conf's certificates are in the folder compose mounts for them.
    (certificates,) = [target for target, source in mounts(nginx).items() if "TLS_CERTIFICATES" in source]
    paths = re.findall(r"ssl_certificate(?:_key)?\s+(\S+);", (DEPLOY / "nginx" / "nginx.conf").read_text())
    assert paths and all(Path(path).parent == Path(certificates) for path in paths)


def prometheus_config_name(compose: dict) -> str:
    prometheus = compose["services"]["prometheus"]
    assert mounts(prometheus)["/etc/prometheus"] == "./deploy/prometheus"
    config_file = next(word.split("=", 1)[1] for word in prometheus["command"] if word.startswith("--config.file="))
    return str(Path(config_file).relative_to("/etc/prometheus"))


def test_the_compose_prometheus_scrapes_as_prometheus_yml_does_and_may_read_metrics(compose, app_services):
    # deploy/prometheus's compose config is prometheus.yml with the compose services as targets: the rest is the same.
    ours = yaml.safe_load((DEPLOY / "prometheus" / prometheus_config_name(compose)).read_text())
    local = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    for scrape in (*ours["scrape_configs"], *local["scrape_configs"]):
        for group in scrape["static_configs"]:
            group.pop("targets")
    assert ours == local

    # Prometheus's fixed address is on the compose network and in every instance's METRICS_ALLOW.
    address = ipaddress.ip_address(compose["services"]["prometheus"]["networks"]["default"]["ipv4_address"])
    subnet = compose["networks"]["default"]["ipam"]["config"][0]["subnet"]
    assert address in ipaddress.ip_network(subnet)
    for service in app_services.values():
        allowed = [ipaddress.ip_network(entry.strip()) for entry in service["environment"]["METRICS_ALLOW"].split(",")]
        assert any(address in network for network in allowed)


def test_the_migration_is_the_release_process_and_runs_before_the_instances(compose, app_services, instances,
                                                                           procfile):
    migrations = {name: service for name, service in app_services.items() if name not in instances}
    assert [service["command"] for service in migrations.values()] == [procfile["release"]]
    (migrate,) = migrations
    for service in instances.values():
        assert service["depends_on"][migrate] == {"condition": "service_completed_successfully"}
    assert compose["services"][migrate]["restart"] == "no"


def test_the_image_installs_the_runtime_requirements_and_serves_as_the_web_process(dockerfile, procfile):
    runs = [arguments for instruction, arguments in dockerfile if instruction == "RUN"]
    installs = [words.strip() for run in runs for words in re.findall(r"pip install ([^&;|]*)", run)]
    assert installs == ["-r requirements.txt"]
    copied = " ".join(arguments for instruction, arguments in dockerfile if instruction == "COPY")
    assert "requirements-dev" not in copied and not re.search(r"(^|\s)\.(\s|$)", copied)  # never the whole tree
    assert exec_form(dockerfile[-1][1]) == procfile["web"] and dockerfile[-1][0] == "CMD"

    users = [arguments for instruction, arguments in dockerfile if instruction == "USER"]
    assert users and users[-1] not in ("root", "0")
    assert any(re.search(rf"useradd [^&;]*\b{re.escape(users[-1])}\b", run) for run in runs)


def test_uploads_are_on_the_volume_every_instance_shares(dockerfile, image_env, app_services, compose):
    folder = image_env["UPLOAD_FOLDER"]
    assert [arguments for instruction, arguments in dockerfile if instruction == "VOLUME"] == [folder]
    (volume,) = {mounts(service)[folder] for service in app_services.values()}  # the same for every instance
    assert volume in compose["volumes"]  # a named volume


def test_the_build_context_leaves_out_what_the_image_must_not_hold():
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv", ".env", "instance", "tests", "bench"} <= set(ignored)


@pytest.fixture
def backend() -> str:
    """The health route needs no database: SQLite, once (conftest's `backend` runs each test on both)."""
    return "sqlite"
