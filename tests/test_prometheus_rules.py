"""deploy/prometheus/ as promtool sees it: the scrape config and the alert rules are valid, and the rules' unit
tests (alerts.test.yml: each alert fires for the instance that misbehaves, not the healthy one, and not before its
`for`) pass. promtool comes with Debian's `prometheus` package (.ci/run installs it)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.live_server import ROOT
from tests.support import skip_or_fail

DEPLOY = ROOT / "deploy" / "prometheus"


def promtool(*args: str) -> subprocess.CompletedProcess:
    if shutil.which("promtool") is None:
        skip_or_fail("promtool is not installed (apt-get install prometheus)")
    return subprocess.run(["promtool", *args], cwd=DEPLOY, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("command", [("check", "config", "prometheus.yml"), ("check", "config", "compose.yml"),
                                     ("check", "rules", "alerts.yml"),
                                     ("test", "rules", "alerts.test.yml")], ids=" ".join)
def test_promtool_accepts_the_deploy_files(command):
    result = promtool(*command)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_unit_test():
    rules = (DEPLOY / "alerts.yml").read_text()
    tests = (DEPLOY / "alerts.test.yml").read_text()
    names = [line.split(":", 1)[1].strip() for line in rules.splitlines() if line.strip().startswith("- alert:")]
    assert len(names) >= 6
    assert [name for name in names if f"alertname: {name}" not in tests] == []
