"""A real server in a subprocess (gunicorn, gevent workers) for tests and benchmarks that need real concurrency."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

from config import TestingConfig

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def worker_pid(server: LiveServer) -> int:
    """The one worker of a gunicorn master (WEB_CONCURRENCY=1)."""
    master = server.process.pid
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    assert len(children) == 1, children
    return int(children[0])


def process_status(pid: int, field: str) -> int:
    """A memory figure of /proc/<pid>/status (VmRSS, VmHWM...), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) * 1024
    raise LookupError(field)


def rss(pid: int) -> int:
    return process_status(pid, "VmRSS")


def cpu_seconds(pid: int) -> float:
    """User + system CPU the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class LiveServer:
    """`gunicorn -c gunicorn.conf.py wsgi:app` on a free loopback port, with the given environment; or, with
    `server="wsgi"`, `python wsgi.py` (what `make run` serves: gevent's WSGIServer in one process, `workers` unused).

    It signs tokens with this test process's secret, so a token minted here (tests.factories) works there.
    """

    def __init__(self, env: dict[str, str], workers: int = 2, log_path: Path | None = None,
                 server: str = "gunicorn") -> None:
        if server not in ("gunicorn", "wsgi"):
            raise ValueError(f"unknown server {server!r}: gunicorn or wsgi")
        self.server = server
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **{name: value for name, value in os.environ.items() if name != "NODE_ENV"},  # FLASK_ENV says it
            "FLASK_ENV": "testing",
            "JWT_SECRET": TestingConfig.JWT_SECRET,
            "HOST": "127.0.0.1",
            "APP_PORT": str(self.port),
            "WEB_CONCURRENCY": str(workers),
            "LOG_LEVEL": "WARNING",  # also quiets the access log (gunicorn logs it at INFO)
            **env,
        }
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 30) -> LiveServer:
        if self.server == "wsgi":
            command = [sys.executable, "wsgi.py"]
        else:
            command = [str(Path(sys.executable).with_name("gunicorn")), "-c", "gunicorn.conf.py", "wsgi:app"]
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self.process = subprocess.Popen(command, cwd=ROOT, env=self.env, stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}")
            try:
                if requests.get(f"{self.url}/api/v1/versions", timeout=1).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError("server did not answer in time")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> LiveServer:
        return self.start()

    def __exit__(self, *_exc) -> None:
        self.stop()
