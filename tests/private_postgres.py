"""A PostgreSQL cluster of a test's own (initdb, pg_ctl) on a free port, to stop, start, freeze and thaw at will:
never the shared server the rest of the suite uses.

initdb refuses to run as root, so as root (CI, this project's machines) the cluster belongs to the `postgres` user
and its commands run through `runuser`. Durability is off (fsync, full page writes, synchronous commit): the
cluster lives for one test module, in a temporary directory removed afterwards. Without initdb the tests that need
it are skipped locally and fail in CI (tests.support.skip_or_fail).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg2

from deploy.local_services import postgres_program
from tests.live_server import free_port
from tests.support import skip_or_fail

SERVER_SETTINGS = ("fsync=off", "full_page_writes=off", "synchronous_commit=off", "listen_addresses=127.0.0.1",
                   "max_connections=50", "shared_buffers=16MB")


class PrivatePostgres:
    def __init__(self) -> None:
        self.port = free_port()
        self.initdb, self.pg_ctl = postgres_program("initdb"), postgres_program("pg_ctl")
        self.root: Path | None = None
        self.as_user = "postgres" if os.geteuid() == 0 else None

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    @property
    def data(self) -> Path:
        assert self.root is not None
        return self.root / "data"

    def _run(self, *command: str, timeout: float = 60) -> None:
        prefix = ["runuser", "-u", self.as_user, "--"] if self.as_user else []
        result = subprocess.run([*prefix, *command], capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}): {result.stderr or result.stdout}")

    def create(self) -> PrivatePostgres:
        if self.initdb is None or self.pg_ctl is None:
            skip_or_fail("PostgreSQL's initdb and pg_ctl are not installed (apt-get install postgresql)")
        self.root = Path(tempfile.mkdtemp(prefix="fantasize-pg-"))
        if self.as_user:
            account = pwd.getpwnam(self.as_user)
            os.chown(self.root, account.pw_uid, account.pw_gid)
        self._run(self.initdb, "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync")
        return self.start()

    def start(self) -> PrivatePostgres:
        options = " ".join([f"-p {self.port}", f"-k {self.root}", *(f"-c {s}" for s in SERVER_SETTINGS)])
        self._run(self.pg_ctl, "-D", str(self.data), "-l", str(self.root / "server.log"), "-o", options, "-w",
                  "-t", "30", "start")
        return self

    def stop(self, mode: str = "immediate") -> None:
        """`immediate`: every server process ends at once, as in a crash (no shutdown checkpoint)."""
        self._run(self.pg_ctl, "-D", str(self.data), "-m", mode, "-w", "-t", "30", "stop")

    def create_database(self, name: str) -> str:
        connection = psycopg2.connect(self.url(), connect_timeout=5)
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{name}"')
        connection.close()
        return self.url(name)

    def processes(self) -> list[int]:
        """The postmaster (from its pid file) and every process it started (backends, background workers)."""
        postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        children = Path(f"/proc/{postmaster}/task/{postmaster}/children").read_text().split()
        return [postmaster, *map(int, children)]

    @contextlib.contextmanager
    def frozen(self):
        """Every server process stopped (SIGSTOP) meanwhile: connections are accepted by the kernel and never
        answered, as with a server that hangs or a host that stalls. Resumed (SIGCONT) afterwards."""
        pids = self.processes()
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        try:
            yield pids
        finally:
            for pid in reversed(pids):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)

    def destroy(self) -> None:
        if self.root is None:
            return
        with contextlib.suppress(Exception):
            self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
        self.root = None

    def wait_until_answering(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                psycopg2.connect(self.url(), connect_timeout=2).close()
                return
            except psycopg2.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
