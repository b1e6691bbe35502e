"""/metrics on real servers: gunicorn with two workers (prometheus_client's multiprocess mode, set up and torn down
by gunicorn.conf.py's hooks) counts every worker's requests whichever worker answers the scrape; and a real
Prometheus (Debian's package), configured from deploy/prometheus/prometheus.yml, scrapes a live instance and
answers a PromQL query with the requests the test made."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import database_url
from tests.factories import Factory
from tests.live_server import ROOT, LiveServer, free_port
from tests.support import skip_or_fail

DEPLOY = ROOT / "deploy" / "prometheus"
PROMETHEUS = "/usr/bin/prometheus"
STATS = "/api/v1/admin/realtime/stats"


def scrape(url: str) -> dict[tuple[str, frozenset], float]:
    response = requests.get(f"{url}/metrics", timeout=5)
    assert response.status_code == 200, response.text
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(response.text) for sample in family.samples}


def requests_to(samples: dict, route: str) -> float:
    return sum(value for (name, labels), value in samples.items()
               if name == "fantasize_http_requests_total" and dict(labels)["route"] == route)


def gunicorn_workers(server: LiveServer) -> list[int]:
    master = server.process.pid
    return [int(pid) for pid in Path(f"/proc/{master}/task/{master}/children").read_text().split()]


def wait_for(check, timeout: float = 30, pause: float = 0.2):
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(pause)


@pytest.mark.parametrize("backend", ["postgresql"])
def test_with_two_workers_every_scrape_counts_both_workers_requests(backend, make_app, tmp_root, tmp_path):
    app = make_app()
    with app.app_context():
        admin = Factory(app).headers(Factory(app).admin())
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    # One connection at a time per worker: an idle gevent worker would otherwise accept every connection of a
    # light load by itself (Linux wakes the last waiter first), and only one worker would ever serve.
    env = {"DATABASE_URL": database_url("postgresql", tmp_root), "DB_POOL_SIZE": "3", "TMPDIR": str(scratch),
           "GUNICORN_WORKER_CONNECTIONS": "1",
           # Whatever the environment says, the master makes a directory of its own.
           "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "stale")}
    server = LiveServer(env, workers=2, log_path=tmp_path / "server.log").start()
    try:
        directories = list(scratch.glob("fantasize-prometheus-*"))
        assert len(directories) == 1, directories
        assert not (tmp_path / "stale").exists()
        # Each request on a connection of its own, several at once, in batches until both workers have served some
        # (on a busy machine one idle worker may take a whole batch).

        def ask(_: int) -> int:
            response = requests.get(server.url + STATS, headers={**admin, "Connection": "close"}, timeout=10)
            assert response.status_code == 200, response.text
            return response.json()["instance"]["pid"]

        served_by: Counter[int] = Counter()
        with ThreadPoolExecutor(max_workers=8) as pool:
            for _ in range(20):
                served_by.update(pool.map(ask, range(30)))
                if len(served_by) > 1:
                    break
        total = sum(served_by.values())
        workers = gunicorn_workers(server)
        assert set(served_by) == set(workers) and len(workers) == 2, (served_by, workers)
        # Whichever worker answers the scrape, it reports both workers' requests: each worker writes its counts to
        # the shared files every second (prometheus.Tally), so once both have, every scrape holds them all.
        assert wait_for(lambda: requests_to(scrape(server.url), STATS) == total, timeout=10)
        for _ in range(6):
            samples = scrape(server.url)
            assert requests_to(samples, STATS) == total
            ok = {"method": "GET", "route": STATS, "status": "200"}
            assert samples[("fantasize_http_request_duration_seconds_count", frozenset(ok.items()))] == total
        # Live gauges sum the live workers (each refreshes its own every second).
        assert wait_for(lambda: scrape(server.url)[("fantasize_db_pool_size", frozenset())] == 6, timeout=10)
        assert scrape(server.url)[("process_resident_memory_bytes", frozenset())] > 10 * 2**20

        # A worker that dies is marked dead: its requests still count, its live gauges no longer do.
        victim = workers[0]
        os.kill(victim, signal.SIGKILL)
        assert wait_for(lambda: len(gunicorn_workers(server)) == 2 and victim not in gunicorn_workers(server))
        assert wait_for(lambda: requests.get(f"{server.url}/api/versions", timeout=5).status_code == 200)
        # The replacement's gauges join once it refreshes them (a dead worker's would make it 9, never 6).
        assert wait_for(lambda: scrape(server.url)[("fantasize_db_pool_size", frozenset())] == 6, timeout=15)
        assert requests_to(scrape(server.url), STATS) == total
    finally:
        server.stop()
    assert not directories[0].exists(), "the multiprocess directory outlived the master"


@pytest.mark.parametrize("backend", ["sqlite"])
def test_one_worker_keeps_its_metrics_in_memory(backend, make_app, tmp_root, tmp_path):
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    stale = tmp_path / "stale"
    stale.mkdir()
    env = {"DATABASE_URL": database_url("sqlite", tmp_root), "TMPDIR": str(scratch),
           "PROMETHEUS_MULTIPROC_DIR": str(stale)}
    with LiveServer(env, workers=1) as server:
        samples = scrape(server.url)
        assert not list(scratch.glob("fantasize-prometheus-*"))
        assert not list(stale.iterdir())  # an inherited PROMETHEUS_MULTIPROC_DIR is cleared for one worker
        # The single-process mode's collectors: the process's own CPU figures, which multiprocess mode loses.
        assert ("process_cpu_seconds_total", frozenset()) in samples


def prometheus_config(target: str, rules: Path) -> dict:
    """deploy/prometheus/prometheus.yml with the live instance as its only target and a 1 s scrape interval."""
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    config["rule_files"] = [str(rules)]
    (job,) = config["scrape_configs"]
    job["static_configs"] = [{"targets": [target]}]
    return config


@pytest.mark.parametrize("backend", ["postgresql"])
def test_a_real_prometheus_scrapes_an_instance_and_counts_its_requests(backend, make_app, tmp_root, tmp_path):
    if not os.access(PROMETHEUS, os.X_OK) or shutil.which("promtool") is None:
        skip_or_fail("Prometheus is not installed (apt-get install prometheus)")
    env = {"DATABASE_URL": database_url("postgresql", tmp_root)}
    with LiveServer(env, workers=1, log_path=tmp_path / "server.log") as server:
        config_path = tmp_path / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(prometheus_config(f"127.0.0.1:{server.port}", DEPLOY / "alerts.yml")))
        port = free_port()
        api = f"http://127.0.0.1:{port}/api/v1"
        log = open(tmp_path / "prometheus.log", "wb")  # noqa: SIM115
        prometheus = subprocess.Popen(
            [PROMETHEUS, f"--config.file={config_path}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"], stdout=log, stderr=log)
        try:
            def target_health() -> str | None:
                try:
                    targets = requests.get(f"{api}/targets", timeout=2).json()["data"]["activeTargets"]
                except (requests.RequestException, ValueError, KeyError):
                    return None
                return targets[0]["health"] if targets else None

            assert wait_for(lambda: target_health() == "up", timeout=30), (tmp_path / "prometheus.log").read_text()
            made = 7
            for _ in range(made):
                assert requests.get(f"{server.url}/api/versions", timeout=5).status_code == 200
            assert requests.get(f"{server.url}/no/such/path", timeout=5).status_code == 404

            def counted(query: str) -> float | None:
                answer = requests.get(f"{api}/query", params={"query": query}, timeout=5).json()
                result = answer["data"]["result"]
                return float(result[0]["value"][1]) if result else None

            query = 'sum(fantasize_http_requests_total{job="fantasize", route="/api/versions", status="200"})'
            assert wait_for(lambda: counted(query) == made, timeout=30), counted(query)
            assert counted('sum(fantasize_http_requests_total{route="<unmatched>", status="404"})') == 1
            # The alert rules of deploy/prometheus/ loaded, and none fires for a healthy instance.
            groups = requests.get(f"{api}/rules", timeout=5).json()["data"]["groups"]
            rules = [rule for group in groups for rule in group["rules"]]
            assert len(rules) >= 6 and all(rule["health"] == "ok" for rule in rules), rules
            assert [rule["name"] for rule in rules if rule["state"] != "inactive"] == []
        finally:
            prometheus.terminate()
            try:
                prometheus.wait(timeout=15)
            except subprocess.TimeoutExpired:
                prometheus.kill()
                prometheus.wait()
            log.close()
