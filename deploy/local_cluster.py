"""nginx in front of N Fantasize instances on loopback, sharing PostgreSQL and Redis: production's shape on one
machine. `deploy/local-cluster` (and `make cluster`) runs it for a person; the cluster tests and `bench/run
--cluster` start it through `Cluster`.

Each instance is what the Procfile's web process runs, `gunicorn -c gunicorn.conf.py wsgi:app` with one gevent
worker (WEB_CONCURRENCY=1), on a loopback port of its own, with PROXY_COUNT=1: nginx is the one proxy in front.
nginx runs in the foreground as a child of this process, from a configuration written into the state folder that
includes deploy/nginx/http.conf and server.conf (the settings compose's nginx.conf includes too) and lists the
instances in its upstream. Every child starts in a session of its own, so a Ctrl-C at the terminal reaches this
process alone, which then stops nginx first (no new requests) and the instances after.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import pwd
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NGINX_DIR = ROOT / "deploy" / "nginx"
DEFAULT_STATE_DIR = ROOT / "instance" / "cluster"
BIN = Path(sys.executable).parent  # the virtualenv's gunicorn and flask
# `make run`'s demo administrator (the Makefile passes the same variables).
DEMO_ADMIN_EMAIL = os.environ.get("DEMO_ADMIN_EMAIL") or "admin@fantasize.local"
DEMO_ADMIN_PASSWORD = os.environ.get("DEMO_ADMIN_PASSWORD") or "fantasize-admin-demo"
# How long a process is given to stop on SIGTERM before SIGKILL: gunicorn's own graceful_timeout is 30 s, far
# more than a local cluster's in-flight requests need once nginx has closed their connections.
STOP_SECONDS = 10
START_SECONDS = 60
NGINX_LOG = "nginx.log"
UPSTREAM = re.compile(r" 127\.0\.0\.1:(\d+)\b")  # an instance's address in an access line

# Requests of our own (readiness, the upstream probe) go straight to loopback, whatever http_proxy says.
_direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class ClusterError(RuntimeError):
    """The cluster could not start: which process, and the end of its log."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_is_free(port: int) -> bool:
    """Whether nothing listens on the loopback port. SO_REUSEADDR as nginx and gunicorn set it: connections of an
    earlier run still in TIME_WAIT do not keep a server from listening there again."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def status_of(url: str, timeout: float = 2) -> int | None:
    """The HTTP status a GET of `url` answers, or None when nothing answers."""
    try:
        with _direct.open(url, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (OSError, http.client.HTTPException):
        return None


def children(pid: int) -> list[int]:
    """The processes `pid` started (a gunicorn master's worker, nginx's workers)."""
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                found += [int(child) for child in (task / "children").read_text().split()]
    return found


def tail(path: Path, lines: int = 15) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return "(no log)"


def wait_until(ready: Callable[[], bool], process: subprocess.Popen, what: str, log: Path,
               timeout: float = START_SECONDS) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if process.poll() is not None:
            raise ClusterError(f"{what} exited with status {process.returncode}; the end of {log}:\n{tail(log)}")
        if time.monotonic() > deadline:
            raise ClusterError(f"{what} did not answer within {timeout:.0f} s; the end of {log}:\n{tail(log)}")
        time.sleep(0.1)


def send(pids: list[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def end(process: subprocess.Popen | None, seconds: float = STOP_SECONDS) -> None:
    """SIGTERM, then SIGKILL (with whatever it started) when it has not exited within `seconds`."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        send([process.pid, *children(process.pid)], signal.SIGKILL)
        process.wait()


def spawn(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as output:
        # A session of its own: Ctrl-C at the terminal reaches the cluster, which stops its children in order.
        return subprocess.Popen(command, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=output,
                                stderr=subprocess.STDOUT, start_new_session=True)


def nginx_program() -> str | None:
    """nginx on PATH, else where Debian installs it (/usr/sbin, which is not on an ordinary user's PATH)."""
    debian = "/usr/sbin/nginx"
    return shutil.which("nginx") or (debian if os.access(debian, os.X_OK) else None)


class Instance:
    """One `gunicorn -c gunicorn.conf.py wsgi:app` with one gevent worker on its own loopback port. `index` is its
    place in Cluster.instances (0, 1, ...)."""

    def __init__(self, index: int, port: int, env: dict[str, str], log_path: Path, bin_dir: Path = BIN) -> None:
        self.index, self.port = index, port
        self.bin_dir = bin_dir
        self.url = f"http://127.0.0.1:{port}"
        self.env = {**env, "HOST": "127.0.0.1", "APP_PORT": str(port)}
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    def __repr__(self) -> str:
        return f"<Instance {self.index} {self.url} pid={self.pid}>"

    @property
    def pid(self) -> int | None:
        """The gunicorn master's."""
        return self.process.pid if self.process else None

    @property
    def worker_pid(self) -> int | None:
        """The one gevent worker's (None until the master has forked it, or once it is gone)."""
        workers = children(self.pid) if self.alive else []
        return workers[0] if workers else None

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def launch(self) -> Instance:
        """Started, without waiting for it to answer (Cluster.start starts every instance before waiting)."""
        if self.alive:
            raise ClusterError(f"instance {self.index} is running already (pid {self.pid})")
        gunicorn = str(self.bin_dir / "gunicorn")
        self.process = spawn([gunicorn, "-c", "gunicorn.conf.py", "wsgi:app"], self.env, self.log_path)
        return self

    def wait_ready(self, timeout: float = START_SECONDS) -> Instance:
        """Until /health/ready answers 200: the database answers and is migrated to this code's head."""
        assert self.process is not None
        wait_until(lambda: status_of(f"{self.url}/health/ready") == 200, self.process, f"instance {self.index}",
                   self.log_path, timeout)
        return self

    def start(self, timeout: float = START_SECONDS) -> Instance:
        return self.launch().wait_ready(timeout)

    def stop(self, seconds: float = STOP_SECONDS) -> None:
        """SIGTERM (gunicorn's graceful shutdown), then SIGKILL for master and worker after `seconds`."""
        end(self.process, seconds)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """`sig` to the master and its worker at once, as when the machine under them dies: the master gets no
        chance to stop the worker nor the worker to finish a request."""
        if not self.alive:
            return
        assert self.process is not None
        send([self.process.pid, *children(self.process.pid)], sig)
        if sig == signal.SIGKILL:
            self.process.wait()


def environment(env: dict[str, str] | None) -> dict[str, str]:
    """What every instance (and every `flask` command of `prepare`) runs with: this process's environment, then the
    instances' shape, then the caller's settings. Development unless FLASK_ENV names another environment: production
    refuses to start without real mail and a public address (config.check_production), which a cluster on a
    laptop has not; its JWT secret is development's, generated once into instance/ and shared by every instance."""
    env = dict(env or {})
    inherited = {name: value for name, value in os.environ.items() if name != "NODE_ENV"}  # FLASK_ENV says it
    return {
        **inherited,
        "FLASK_ENV": env.get("FLASK_ENV") or inherited.get("FLASK_ENV") or "development",
        "WEB_CONCURRENCY": "1",  # one gevent worker: long-polling needs all of a socket's requests in one process
        "PROXY_COUNT": "1",  # nginx
        "PYTHONUNBUFFERED": "1",
        **env,
    }


class Cluster:
    """nginx on `port` in front of `instances` instances (see the module's docstring)."""

    def __init__(self, instances: int = 2, port: int = 8080, env: dict[str, str] | None = None,
                 state_dir: Path | None = None, affinity: bool = True, log_dir: Path | None = None,
                 bin_dir: Path | None = None) -> None:
        """`bin_dir`: the virtualenv whose gunicorn and flask serve (default: this interpreter's)."""
        if instances < 1:
            raise ValueError("a cluster needs at least one instance")
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.state_dir = Path(state_dir or DEFAULT_STATE_DIR)
        self.log_dir = Path(log_dir or self.state_dir)
        self.affinity = affinity
        self.bin_dir = Path(bin_dir or BIN)
        self.env = environment(env)
        self.admin = (DEMO_ADMIN_EMAIL, DEMO_ADMIN_PASSWORD)
        ports: set[int] = {port}
        while len(ports) < instances + 1:
            ports.add(free_port())
        self.instances = [Instance(index, instance_port, self.env, self.log_dir / f"instance-{index}.log",
                                   self.bin_dir)
                          for index, instance_port in enumerate(sorted(ports - {port}))]
        self.nginx: subprocess.Popen | None = None

    @property
    def nginx_pids(self) -> list[int]:
        """nginx's master and workers."""
        if self.nginx is None or self.nginx.poll() is not None:
            return []
        return [self.nginx.pid, *children(self.nginx.pid)]

    @property
    def nginx_log(self) -> Path:
        """nginx's access lines (deploy/nginx/http.conf's `fantasize` format) and errors."""
        return self.log_dir / NGINX_LOG

    @property
    def config_path(self) -> Path:
        return self.state_dir / "nginx.conf"

    def flask(self, *arguments: str) -> None:
        log = self.log_dir / "prepare.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as output:
            result = subprocess.run([str(self.bin_dir / "flask"), "--app", "fantasize", *arguments], cwd=ROOT,
                                    env=self.env, stdin=subprocess.DEVNULL, stdout=output, stderr=subprocess.STDOUT,
                                    check=False)
        if result.returncode != 0:
            raise ClusterError(f"flask {arguments[0]} failed ({result.returncode}); the end of {log}:\n{tail(log)}")

    def prepare(self) -> None:
        """The shared database migrated and seeded, and the demo administrator created: each step does only what
        is missing, so a cluster started again changes nothing."""
        self.flask("db", "upgrade")
        self.flask("seed")
        self.flask("create-admin", "--email", self.admin[0], "--password", self.admin[1], "--if-missing")

    def nginx_config(self) -> str:
        """The top-level configuration: its own process settings, upstream and listen address around the shared
        http.conf and server.conf."""
        state = self.state_dir
        temp = state / "nginx-temp"
        # As root nginx's workers would switch to `nobody`, who cannot enter a private state folder (a test's
        # temporary directory is 0700): they run as the folder's owner, as they do for anyone else.
        user = f"user {pwd.getpwuid(state.stat().st_uid).pw_name};\n" if os.geteuid() == 0 else ""
        balance = "hash $remote_addr consistent;" if self.affinity else "# round robin: no affinity"
        # nginx's workers hold two descriptors a proxied connection; it warns when worker_connections passes the
        # open-file limit it runs with (1024 for most users).
        connections = min(4096, resource.getrlimit(resource.RLIMIT_NOFILE)[0])
        servers = "\n".join(f"        server 127.0.0.1:{i.port} max_fails=1 fail_timeout=5s;" for i in self.instances)
        return f"""# Written by deploy/local_cluster.py on every start: the settings live in {NGINX_DIR}.
daemon off;
{user}worker_processes auto;
pid "{state / 'nginx.pid'}";
error_log stderr warn;

events {{
    worker_connections {connections};
}}

http {{
    include "{NGINX_DIR / 'http.conf'}";
    client_body_temp_path "{temp / 'body'}";
    proxy_temp_path "{temp / 'proxy'}";
    fastcgi_temp_path "{temp / 'fastcgi'}";
    uwsgi_temp_path "{temp / 'uwsgi'}";
    scgi_temp_path "{temp / 'scgi'}";

    upstream fantasize {{
        {balance}
        zone fantasize 64k;
{servers}
        keepalive 32;
        keepalive_timeout 4s;
    }}

    server {{
        listen 127.0.0.1:{self.port};
        server_name _;
        include "{NGINX_DIR / 'server.conf'}";
    }}
}}
"""

    def start_nginx(self) -> None:
        program = nginx_program()
        if program is None:
            raise ClusterError("nginx is not installed: apt-get install nginx-light (Debian), or your system's nginx")
        (self.state_dir / "nginx-temp").mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(self.nginx_config())
        # nginx writes its access lines to /dev/stdout (server.conf) and its errors to stderr: both to nginx.log.
        self.nginx = spawn([program, "-p", str(self.state_dir), "-c", str(self.config_path)],
                           self.env, self.nginx_log)
        wait_until(lambda: status_of(f"{self.url}/health/ready") == 200, self.nginx, "nginx", self.nginx_log)

    def start(self, prepare: bool = True) -> Cluster:
        """Instances first (each until /health/ready answers), then nginx (until it answers)."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        try:
            if prepare:
                self.prepare()
            for instance in self.instances:
                instance.launch()
            for instance in self.instances:
                instance.wait_ready()
            self.start_nginx()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """nginx first, so no request reaches an instance on its way out, then every instance (SIGTERM at once,
        SIGKILL for those still there after STOP_SECONDS). Safe to call again."""
        end(self.nginx)
        for instance in self.instances:
            if instance.alive:
                instance.process.terminate()
        for instance in self.instances:
            instance.stop()

    def instance_for(self, address: str = "127.0.0.1") -> Instance:
        """The instance nginx sends a client at `address` to (a loopback address: 127.0.0.2, 127.0.0.3, ... are all
        this machine's): one request from that address, then where nginx's access log says it went."""
        request_id = f"upstream-probe-{uuid.uuid4().hex}"
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10, source_address=(address, 0))
        try:
            connection.request("GET", "/api/v1/versions", headers={"X-Request-ID": request_id})
            connection.getresponse().read()
        finally:
            connection.close()
        return self.instance_of_request(request_id)

    def instance_of_request(self, request_id: str, timeout: float = 5) -> Instance:
        """The instance that answered the request nginx logged with this X-Request-ID (the last one tried)."""
        marker = f"rid={request_id}"
        deadline = time.monotonic() + timeout
        while True:
            for line in self.nginx_log.read_text(errors="replace").splitlines():
                if line.endswith(marker) and UPSTREAM.search(line):
                    # $upstream_addr lists every instance tried ("a:1, b:2"): the last one answered.
                    port = int(UPSTREAM.findall(line)[-1])
                    return next(instance for instance in self.instances if instance.port == port)
            if time.monotonic() > deadline:
                raise ClusterError(f"request {request_id} is not in {self.nginx_log}")
            time.sleep(0.05)

    def __enter__(self) -> Cluster:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()
