"""The PostgreSQL and Redis a local cluster starts for itself when none is configured (no DATABASE_URL, no
REDIS_URL): kept in its state folder, so the next run finds the same shop, migrated and seeded.

PostgreSQL is a cluster of its own (initdb, pg_ctl from Debian's /usr/lib/postgresql/<version>/bin) on a loopback
port; initdb refuses to run as root, so as root it belongs to the `postgres` user and its commands run through
`runuser`, as the tests' private servers do (tests/private_postgres.py). Redis is a redis-server child of the
cluster, writing a snapshot into the folder when it stops.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import time
from pathlib import Path

import psycopg2
from redis import Redis
from redis.exceptions import RedisError

from deploy.local_cluster import ClusterError, end, free_port, port_is_free, spawn, wait_until

DATABASE = "fantasize"


def postgres_program(name: str) -> str | None:
    """A PostgreSQL server program (initdb, pg_ctl) on PATH, else in Debian's versioned directory (newest)."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
                        key=lambda path: int(Path(path).parts[-3]) if Path(path).parts[-3].isdigit() else 0)
    return candidates[-1] if candidates else None


def port_in(folder: Path) -> int:
    """The port kept in `folder`/port from an earlier run when it is still free, else a new free one (kept)."""
    kept = folder / "port"
    with contextlib.suppress(OSError, ValueError):
        port = int(kept.read_text())
        if port_is_free(port):
            return port
    port = free_port()
    kept.write_text(f"{port}\n")
    return port


class LocalPostgres:
    """A PostgreSQL cluster in `root`/data, on a loopback port, with a database named fantasize."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.data = root / "data"
        self.as_user = "postgres" if os.geteuid() == 0 else None
        self.initdb, self.pg_ctl = postgres_program("initdb"), postgres_program("pg_ctl")
        self.port: int | None = None

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{DATABASE}"

    def _run(self, *command: str) -> str:
        prefix = ["runuser", "-u", self.as_user, "--"] if self.as_user else []
        result = subprocess.run([*prefix, *command], capture_output=True, text=True, timeout=120, check=False)
        if result.returncode != 0:
            output = result.stderr or result.stdout
            raise ClusterError(f"{Path(command[0]).name} failed ({result.returncode}): {output}")
        return result.stdout

    def running_port(self) -> int | None:
        """The port of a server already running on this folder (one a killed cluster left behind), else None."""
        pid_file = self.data / "postmaster.pid"
        with contextlib.suppress(OSError, ValueError, IndexError):
            lines = pid_file.read_text().splitlines()
            os.kill(int(lines[0]), 0)
            return int(lines[3])
        return None

    def start(self) -> LocalPostgres:
        if self.initdb is None or self.pg_ctl is None:
            raise ClusterError("PostgreSQL's initdb and pg_ctl are not installed (apt-get install postgresql), "
                               "and DATABASE_URL names no server")
        self.root.mkdir(parents=True, exist_ok=True)
        if self.as_user:
            account = pwd.getpwnam(self.as_user)
            os.chown(self.root, account.pw_uid, account.pw_gid)
        if not (self.data / "PG_VERSION").exists():
            self._run(self.initdb, "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8")
        self.port = self.running_port()
        if self.port is None:
            self.port = port_in(self.root)
            options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1"
            self._run(self.pg_ctl, "-D", str(self.data), "-l", str(self.root / "server.log"), "-o", options,
                      "-w", "-t", "60", "start")
        self.create_database()
        return self

    def create_database(self) -> None:
        connection = psycopg2.connect(f"postgresql://postgres@127.0.0.1:{self.port}/postgres", connect_timeout=5)
        connection.autocommit = True
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,))
                if cursor.fetchone() is None:
                    cursor.execute(f'CREATE DATABASE "{DATABASE}"')
        finally:
            connection.close()

    def stop(self) -> None:
        """A fast shutdown: open sessions are ended, what was committed stays."""
        if self.running_port() is not None and self.pg_ctl is not None:
            self._run(self.pg_ctl, "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop")


class LocalRedis:
    """A redis-server child on a loopback port, its snapshot in `root`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port: int | None = None
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> LocalRedis:
        program = shutil.which("redis-server")
        if program is None:
            raise ClusterError("redis-server is not installed (apt-get install redis-server), and REDIS_URL names "
                               "no server")
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = port_in(self.root)
        log = self.root / "server.log"
        # A snapshot a minute when anything changed, and one on shutdown: the page cache and the limits' counters
        # are all it holds, so losing the last minute costs nothing but a few cache misses.
        self.process = spawn([program, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.root),
                              "--save", "60 1", "--appendonly", "no", "--daemonize", "no"], dict(os.environ), log)
        wait_until(self.answers, self.process, "redis-server", log, timeout=20)
        return self

    def answers(self) -> bool:
        try:
            return bool(Redis(port=self.port, socket_timeout=0.5, socket_connect_timeout=0.5).ping())
        except RedisError:
            time.sleep(0.05)
            return False

    def stop(self) -> None:
        end(self.process)
