"""`deploy/local-cluster` (and `make cluster`): the local cluster (deploy.local_cluster) for a person at a terminal.

It finds or starts PostgreSQL and Redis (DATABASE_URL and REDIS_URL, else private ones kept in the state folder,
deploy.local_services), installs nginx when it may, starts the cluster, prints where everything is, and waits; Ctrl-C
or `deploy/local-cluster stop` (SIGTERM to the pid in the state folder's pid file) stops it all in order.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import config
from deploy.local_cluster import (
    DEFAULT_STATE_DIR,
    STOP_SECONDS,
    Cluster,
    ClusterError,
    children,
    nginx_program,
    port_is_free,
    send,
    tail,
)
from deploy.local_services import LocalPostgres, LocalRedis

PID_FILE = "local-cluster.pid"


class Stopped(Exception):
    """SIGTERM (`deploy/local-cluster stop`) or SIGINT (Ctrl-C) arrived."""


def running_pid(pid_file: Path) -> int | None:
    """The pid of the local cluster that wrote `pid_file` when it still runs, else None."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        pid = int(pid_file.read_text().split()[0])
        if "local_cluster" in Path(f"/proc/{pid}/cmdline").read_text(errors="replace"):
            return pid
    return None


def claim(pid_file: Path, url: str) -> int | None:
    """Write our pid (and URL) into `pid_file` unless a running cluster holds it: then its pid."""
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    while True:
        try:
            handle = os.open(pid_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            holder = running_pid(pid_file)
            if holder is not None:
                return holder
            end_leftovers(pid_file)
            pid_file.unlink(missing_ok=True)
            continue
        with os.fdopen(handle, "w") as file:
            file.write(f"{os.getpid()}\n{url}\n")
        return None


def record(pid_file: Path, url: str, processes: list[int]) -> None:
    """Our pid, the URL, then the pids of the servers we started, one a line: what `stop` ends should this process
    be killed (its children run in sessions of their own, so they outlive it)."""
    temporary = pid_file.with_name(f".{pid_file.name}.new")
    temporary.write_text("\n".join([str(os.getpid()), url, *map(str, processes)]) + "\n")
    temporary.replace(pid_file)


def end_leftovers(pid_file: Path) -> list[int]:
    """SIGTERM (then SIGKILL) to the servers a killed cluster left running: those its pid file lists that are
    still nginx, gunicorn or redis-server (a pid the system has since given to another program is left alone)."""
    found = []
    with contextlib.suppress(OSError):
        for word in pid_file.read_text().split()[2:]:
            with contextlib.suppress(ValueError, OSError):
                command = Path(f"/proc/{int(word)}/cmdline").read_bytes()
                if any(program in command for program in (b"nginx", b"gunicorn", b"redis-server")):
                    found.append(int(word))
    if found:
        print(f"local-cluster: stopping what a killed cluster left running (pids {' '.join(map(str, found))})",
              flush=True)
        everything = [*found, *(child for pid in found for child in children(pid))]
        send(found, signal.SIGTERM)
        deadline = time.monotonic() + STOP_SECONDS
        while any(Path(f"/proc/{pid}").exists() for pid in found) and time.monotonic() < deadline:
            time.sleep(0.1)
        send(everything, signal.SIGKILL)
    return found


def stop_running(state_dir: Path) -> int:
    pid_file = state_dir / PID_FILE
    pid = running_pid(pid_file)
    if pid is None:
        # A killed cluster's servers, and its private PostgreSQL (which the next start would have reused).
        postgres = LocalPostgres(state_dir / "postgres")
        left = [*end_leftovers(pid_file), *([postgres.running_port()] if postgres.running_port() else [])]
        postgres.stop()
        pid_file.unlink(missing_ok=True)
        if left:
            print("local-cluster: stopped")
            return 0
        print(f"local-cluster: no local cluster is running (no live pid in {pid_file})")
        return 1
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 3 * STOP_SECONDS + 30
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    if Path(f"/proc/{pid}").exists():
        print(f"local-cluster: pid {pid} is still stopping; see {state_dir}")
        return 1
    print(f"local-cluster: stopped (pid {pid})")
    return 0


def ensure_nginx() -> None:
    """Debian's nginx-light when nginx is missing and we may install it (root with apt-get); else say how."""
    if nginx_program() is not None:
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise ClusterError("nginx is not installed: `sudo apt-get install nginx-light` on Debian or Ubuntu, your "
                           "system's nginx package elsewhere; then run this again")
    print("local-cluster: installing nginx (apt-get install nginx-light)", flush=True)
    quiet = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "nginx-light"]):
        if subprocess.run(command, env=quiet, check=False).returncode != 0:
            raise ClusterError(f"`{' '.join(command)}` failed: install nginx yourself and run this again")


def shown(url: str) -> str:
    """A database or Redis URL without its password."""
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@", 1)
    return url


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="deploy/local-cluster",
        description="nginx in front of N Fantasize instances on this machine, sharing PostgreSQL and Redis "
                    "(DATABASE_URL and REDIS_URL, else private ones kept in the state folder). Ctrl-C stops it.")
    parser.add_argument("command", nargs="?", choices=("start", "stop"), default="start",
                        help="start (the default; Ctrl-C stops it) or stop the one running")
    parser.add_argument("--instances", type=int, default=2, help="gunicorn instances behind nginx (default 2)")
    parser.add_argument("--port", type=int, default=8080, help="nginx's port on 127.0.0.1 (default 8080)")
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR,
                        help="configuration, logs, pid file and private servers (default instance/cluster)")
    options = parser.parse_args(argv)
    state_dir = options.state_dir.resolve()
    if options.command == "stop":
        return stop_running(state_dir)
    if options.instances < 1:
        parser.error("--instances must be at least 1")

    url = f"http://127.0.0.1:{options.port}"
    pid_file = state_dir / PID_FILE
    holder = claim(pid_file, url)
    if holder is not None:
        running_url = pid_file.read_text().split()[1:2] or ["?"]
        print(f"local-cluster: a local cluster is running already (pid {holder}, {running_url[0]}); "
              "stop it first with `deploy/local-cluster stop`")
        return 1

    def stop_on(signum: int, _frame: object) -> None:
        raise Stopped(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, stop_on)
    signal.signal(signal.SIGINT, stop_on)
    services: list[LocalPostgres | LocalRedis] = []
    cluster: Cluster | None = None
    try:
        ensure_nginx()
        if not port_is_free(options.port):
            raise ClusterError(f"port {options.port} is taken: choose another with --port")
        database_url, redis_url = config.database_url(), config.redis_url()
        where = {"PostgreSQL": shown(database_url) if database_url else None,
                 "Redis": shown(redis_url) if redis_url else None}
        if database_url is None:
            print("local-cluster: starting a private PostgreSQL (no DATABASE_URL)", flush=True)
            postgres = LocalPostgres(state_dir / "postgres")
            services.append(postgres.start())
            database_url, where["PostgreSQL"] = postgres.url, f"private, {postgres.url} (data in {postgres.data})"
        if redis_url is None:
            print("local-cluster: starting a private Redis (no REDIS_URL)", flush=True)
            redis = LocalRedis(state_dir / "redis")
            services.append(redis.start())
            redis_url, where["Redis"] = redis.url, f"private, {redis.url} (snapshot in {redis.root})"
        cluster = Cluster(options.instances, options.port, {"DATABASE_URL": database_url, "REDIS_URL": redis_url},
                          state_dir)
        print(f"local-cluster: migrating and seeding (log: {cluster.log_dir / 'prepare.log'})", flush=True)
        cluster.start()
        record(pid_file, url, [*cluster.nginx_pids[:1], *(i.pid for i in cluster.instances),
                               *(s.process.pid for s in services if isinstance(s, LocalRedis))])
        print(banner(cluster, where), flush=True)
        watch(cluster)
    except Stopped:
        print("\nlocal-cluster: stopping", flush=True)
    except ClusterError as exc:
        print(f"local-cluster: {exc}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C may not cut the stopping short
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if cluster is not None:
            cluster.stop()
        for service in reversed(services):
            with contextlib.suppress(ClusterError):
                service.stop()
        pid_file.unlink(missing_ok=True)
    print("local-cluster: stopped", flush=True)
    return 0


def banner(cluster: Cluster, where: dict[str, str | None]) -> str:
    count = len(cluster.instances)
    if cluster.env["FLASK_ENV"] == "development":
        environment_line = (
            "development settings (mail to the log, the JWT secret generated once in instance/),\n"
            "    served in production's shape: nginx -> gunicorn, one gevent worker per instance, PROXY_COUNT=1.\n"
            "    FLASK_ENV=production, with JWT_SECRET, SMTP_HOST and PUBLIC_BASE_URL, serves production instead.")
    else:
        environment_line = f"{cluster.env['FLASK_ENV']} (FLASK_ENV)"
    lines = [
        "",
        f"  Fantasize: {count} instance{'s' if count > 1 else ''} behind nginx on {cluster.url}"
        f"  (API docs: {cluster.url}/api/docs)",
        f"  Demo admin login: {cluster.admin[0]} / {cluster.admin[1]}",
        "",
        f"  Environment: {environment_line}",
        f"  PostgreSQL: {where['PostgreSQL']}",
        f"  Redis: {where['Redis']}",
        *(f"  Instance {i.index}: {i.url} (pid {i.pid}, log {i.log_path})" for i in cluster.instances),
        f"  nginx: {cluster.config_path} (pid {cluster.nginx_pids[0]}, log {cluster.nginx_log})",
        "",
        "  Stop: Ctrl-C, or `deploy/local-cluster stop` from another terminal.",
        "",
    ]
    return "\n".join(lines)


def watch(cluster: Cluster) -> None:
    """Until stopped: say once when a process of the cluster exits (nginx routes around a dead instance)."""
    reported: set[str] = set()
    while True:
        time.sleep(1)
        for name, process, log in [("nginx", cluster.nginx, cluster.nginx_log),
                                   *((f"instance {i.index}", i.process, i.log_path) for i in cluster.instances)]:
            if process is not None and process.poll() is not None and name not in reported:
                reported.add(name)
                print(f"local-cluster: {name} exited with status {process.returncode}; the end of {log}:\n"
                      f"{tail(log)}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
