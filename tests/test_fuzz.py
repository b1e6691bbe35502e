"""The API against its own OpenAPI document: schemathesis fuzzes every operation of a live server on PostgreSQL.

One run per kind of caller (anonymous, a customer, an administrator; bearer tokens, and the integration's API key),
each through schemathesis's phases: the coverage phase (boundary and invalid values of every parameter), random
fuzzing, and the stateful phase, which follows the document's links from each create operation to the operations
that take what it made. Every response must pass CHECKS: no 5xx, and the status, content type, headers and body as
documented. Signing out and password changes run with throwaway accounts (tests/fuzz_hooks.py).

The default run is small and seeded so that `make test` stays quick and repeatable; `make fuzz` runs the same
tests with every phase for every caller, many more examples and a random seed (printed in the report; FUZZ_SEED
repeats it). Each run's full report is kept next to its JUnit file (<tmp>/fuzz-<role>.log).
"""

from __future__ import annotations

import os
import random
import shlex
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import requests
from sqlalchemy import func, select

from config import TestingConfig
from fantasize.extensions import db
from fantasize.models import User
from fantasize.seed import seed_demo_shop
from tests.conftest import database_url
from tests.live_server import LiveServer
from tests.support import delete_prefix, shared_redis

pytestmark = pytest.mark.parametrize("backend", ["postgresql"])

ROOT = Path(__file__).resolve().parent.parent
CHECKS = ("not_a_server_error", "status_code_conformance", "content_type_conformance",
          "response_headers_conformance", "response_schema_conformance")
# The coverage phase (every boundary and invalid value of every parameter) costs the most: by default only the
# anonymous run has it, and only over v1 (v2 serves the same views and input schemas); `make fuzz` gives it to every
# role and version.
COVERAGE_ROLES = os.environ.get("FUZZ_COVERAGE_ROLES", "anonymous").split(",")
COVERAGE_VERSIONS = os.environ.get("FUZZ_COVERAGE_VERSIONS", "v1").split(",")
MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "5"))
STATEFUL_EXAMPLES = int(os.environ.get("FUZZ_STATEFUL_EXAMPLES", "30"))
STATEFUL_STEPS = int(os.environ.get("FUZZ_STATEFUL_STEPS", "10"))
SEED = os.environ.get("FUZZ_SEED", "20260807")
TIMEOUT = int(os.environ.get("FUZZ_TIMEOUT", "280"))  # seconds per run; pytest-timeout stops a test at 300
API_KEY = "fuzz-" + uuid.uuid4().hex


def fuzz_seed() -> int:
    return random.randrange(2**31) if SEED == "random" else int(SEED)


@pytest.fixture
def shop(app, factory):
    """The demo shop, a customer and an administrator, committed where the live server will read them."""
    seed_demo_shop()
    return {"customer": factory.user(username="fuzz-customer"), "admin": factory.admin(username="fuzz-admin")}


@pytest.fixture
def live(app, shop, tmp_root):
    client = shared_redis()
    prefix = f"test:fuzz:{uuid.uuid4().hex}:"
    env = {
        "DATABASE_URL": database_url("postgresql", tmp_root),
        "REDIS_URL": TestingConfig.TEST_REDIS_URL,
        "CACHE_KEY_PREFIX": f"{prefix}cache:",
        "RATE_LIMIT_KEY_PREFIX": f"{prefix}limits",
        "JWT_SECRET": app.config["JWT_SECRET"],
        "API_KEYS": API_KEY,
    }
    try:
        with LiveServer(env, log_path=tmp_root / "fuzz-server.log") as server:
            yield server
    finally:
        delete_prefix(client, prefix)


def run_schemathesis(server: LiveServer, role: str, token: str | None, report: Path) -> subprocess.CompletedProcess:
    seed = fuzz_seed()
    phases = ["examples", "fuzzing", "stateful"]
    if role in COVERAGE_ROLES or "all" in COVERAGE_ROLES:
        phases.insert(1, "coverage")
    config = report.with_suffix(".toml")
    bearer = f'[auth.openapi.bearerAuth]\nbearer = "{token}"\n' if token else ""
    config.write_text(
        "[cache]\nenabled = false\n"
        # Schemathesis would otherwise sign itself up through /auth/register and fuzz as that user.
        "[auth]\nauto-signup = false\n"
        f'{bearer}[auth.openapi.apiKeyAuth]\napi_key = "{API_KEY}"\n'
        f"[phases.stateful]\nmax-steps = {STATEFUL_STEPS}\n"
        f"[phases.stateful.generation]\nmax-examples = {STATEFUL_EXAMPLES}\n"
        # Only the document's own links: schemathesis's guesses would spread the scenarios thin.
        "[phases.stateful.inference]\nalgorithms = []\n"
        + "".join(f'[[operations]]\ninclude-path-regex = "^/api/{version}/"\n[operations.phases.coverage]\n'
                  "enabled = false\n" for version in ("v1", "v2") if version not in COVERAGE_VERSIONS)
    )
    command = [
        str(Path(sys.executable).with_name("st")), "--config-file", str(config), "run",
        f"{server.url}/api/openapi.json",
        "--checks", ",".join(CHECKS),
        "--phases", ",".join(phases),
        "--max-examples", str(MAX_EXAMPLES),
        "--seed", str(seed),
        "--generation-database", "none",
        "--workers", "2",
        "--request-timeout", "30",
        "--no-color",
        "--report", "junit", "--report-junit-path", str(report),
        *shlex.split(os.environ.get("FUZZ_ST_ARGS", "")),  # e.g. "--report har --report-dir fuzz-report"
    ]
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.fuzz_hooks", "FUZZ_BASE_URL": server.url,
           "FUZZ_TOKEN": token or "", "PYTHONPATH": str(ROOT)}
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT)
    report.with_suffix(".log").write_text(result.stdout + result.stderr)
    return result


@pytest.mark.parametrize("role", ["anonymous", "customer", "admin"])
def test_every_operation_answers_as_documented(live, shop, factory, tmp_root, role):
    token = None if role == "anonymous" else factory.token(shop[role])
    result = run_schemathesis(live, role, token, tmp_root / f"fuzz-{role}.xml")
    if result.returncode != 0:
        pytest.fail(f"schemathesis found failures (exit {result.returncode}):\n{result.stdout}\n{result.stderr}",
                    pytrace=False)
    if token:
        # Signing out and password changes went to throwaway accounts (tests/fuzz_hooks.py): this session lives on.
        me = requests.get(f"{live.url}/api/v1/users/me", headers={"Authorization": f"Bearer {token}"}, timeout=30)
        assert me.status_code == 200, me.text
        db.session.expire_all()
        assert db.session.scalar(select(func.count()).select_from(User).where(User.email.like("throwaway-%")))
