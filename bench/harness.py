"""`bench/run`: Fantasize measured against bare Flask in one command, the table of issue 8 with every ratio.

    bench/run [--quick] [--duration 10] [--rows list100,page-uncached,monitoring,health-live,orders]
              [--workers 2] [--worker-class gthread] [--threads 8] [--worker-connections 1000] [--venv .venv]
    make bench BENCH_ARGS="--quick"
    bench/run --cluster [--quick]   (instead of the table: through nginx, one instance against two; bench/cluster.py)

(bench/run installs wrk and hey and the virtualenv when they are missing, then runs `python -m bench.harness`.)
Everything runs on this machine, traffic goes to 127.0.0.1 only, and whatever the run starts it stops:

1. A PostgreSQL database of its own, dropped and created again (`flask db upgrade`, `flask seed`: the demo shop),
   and Redis keys under a prefix of its own (deleted at the start and at the end).
2. gunicorn with gunicorn.conf.py, production settings and the same worker class and count for all: Fantasize
   (PostgreSQL + Redis, rate limits on with limits too high to meet), a second Fantasize with CACHE_ENABLED=false,
   and bench/bare.py serving the bodies fetched from the first, parsed, with jsonify.
3. Each read row, cached and uncached: wrk -t2 -c50 saturation (req/s, p99) for Fantasize then bare Flask, each
   after a warm-up; then hey -c 50 at a fixed offered rate (half of bare Flask's saturation rate for a cached row,
   a quarter for an uncached one) for both. Two rows of issue 14 are measured the same way against another
   baseline: `monitoring`, the cached single product on the Fantasize above (ENABLE_PERFORMANCE_MONITORING=true)
   against a third Fantasize with ENABLE_PERFORMANCE_MONITORING=false (the cost of the request recording, judged
   by req/s and by worker CPU per request; the two are measured in turns, PAIRED_ROUNDS wrk runs each, and
   summed, as their difference is smaller than the drift of two runs on shared cores); `health-live`, the liveness
   probe against bare Flask's /health/live, a route that does nothing but answer the probe's body.
4. Order placement: 50 buyers registered through the API, wrk posting one line over 40 restocked products with a
   fresh Idempotency-Key per request; the stock arithmetic checked against the database; wrk's own CPU reported.
5. Soak: the same cached URL with integer query parameters (SOAK_PATH) in SOAK_ROUNDS consecutive wrk runs on the
   cached Fantasize: a worker must be as fast after them as before (last round >= 0.9x the first, by worker CPU
   per request) and its RSS flat (< 5 MiB growth per worker); DESIGN.md "The request budget".
6. Real time (bench/realtime.py): N Socket.IO clients tracking one product on one gevent worker, Fantasize against
   the minimal Flask-SocketIO ceiling (bench/realtime_ceiling.py), latency from the stock PATCH to each client.
7. RSS of every gunicorn worker; the tables printed and written to bench/results/latest.md.

Worker class and counts default to what gunicorn.conf.py says (with WEB_CONCURRENCY=2); the options, or
BENCH_WORKERS, BENCH_WORKER_CLASS, BENCH_THREADS, BENCH_WORKER_CONNECTIONS, change them for every server alike.
The exit status is non-zero only when the harness itself fails (a server does not start, a tool is missing or its
output cannot be read): a missed goal is a result, not a failure.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import requests
from redis import Redis

from bench import realtime
from bench.database import connect, fresh_database

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
RESULTS = BENCH / "results"
REPORT_LUA = BENCH / "wrk" / "report.lua"
ORDERS_LUA = BENCH / "wrk" / "orders.lua"

CONNECTIONS = 50  # wrk -c, hey -c and the number of buyers
WRK_THREADS = 2
REQUEST_TIMEOUT_S = 10  # wrk --timeout and hey -t: a slower answer counts as an error, not as a latency
HIGH_LIMIT = 1_000_000_000  # rate limits stay on (counted in Redis) but no run meets them
KEY_PREFIX = "fantasize-bench:"  # every Redis key of the run: the page cache's and the limiter's
PRODUCTS_ORDERED = 40
RESTOCK = 10_000_000  # far more than any run can order, so stock never runs out
SUSTAINED = 0.95  # a fixed-load run "sustains" its rate when it achieves this share of the offered one

READS = {  # row key -> (path, the row's name); `{product}` is filled with the first active product's id
    "list100": ("/api/v1/products?limit=100", "`/api/v1/products?limit=100`"),
    "page": ("/api/v1/products", "`/api/v1/products` (default page)"),
    "product": ("/api/v1/products/{product}", "`/api/v1/products/<id>`"),
}
# Read rows with a baseline of their own (issue 14), measured like the cached rows: row key -> (path, name, whether
# the page cache answers it, the Fantasize measured, its baseline server, the baseline's name in the table, the
# goal, whether the goal holds for worker CPU per request too).
OTHER_READS = {
    "monitoring": ("/api/v1/products/{product}", "`/api/v1/products/<id>`, cached, monitoring on vs off", True,
                   "fantasize", "unmonitored", "Fantasize, monitoring off", 0.95, True),
    "health-live": ("/health/live", "`/health/live` (no I/O)", False, "fantasize", "bare", "bare Flask", 0.9, False),
}
NOT_READS = ("soak", "orders", "realtime")
SOAK_PATH = "/api/v1/products?limit=20&page=1"  # a cached read with integer query parameters
SOAK_ROUNDS = 6
ROW_KEYS = [*(k for key in READS for k in (key, f"{key}-uncached")), *OTHER_READS, *NOT_READS]
ROW_GROUPS = {"all": ROW_KEYS, "cached": list(READS), "uncached": [f"{key}-uncached" for key in READS],
              "observability": list(OTHER_READS)}
GOAL_CACHED, GOAL_UNCACHED = 0.9, 0.5  # Fantasize req/s over bare Flask's
GOAL_ORDERS_PER_S, GOAL_ORDERS_P99_MS = 200, 500
GOAL_RSS_RATIO = 2
# The soak's goal: the worker's speed in the last round over the first, as CPU per request (first / last; req/s is
# shown too, but moves with whatever else the shared cores run), and RSS growth per worker.
GOAL_SOAK_RATIO, GOAL_SOAK_RSS_MIB = 0.9, 5


class HarnessError(RuntimeError):
    """The harness could not measure (as opposed to a goal being missed)."""


def log(message: str) -> None:
    print(f"[{datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cpu_s(pids: Iterable[int]) -> float:
    """User + system CPU the processes have used so far (/proc, through psutil); one that is gone counts 0."""
    total = 0.0
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += sum(psutil.Process(pid).cpu_times()[:2])
    return total


# Running tools


@dataclass
class Measured:
    output: str
    returncode: int
    cpu_s: float  # user + system CPU of the process (and its reaped children)
    wall_s: float


def run_measured(cmd: list[str], timeout: float) -> Measured:
    """Run a load generator to its end and measure its own CPU (os.wait4's rusage), killing it after `timeout`."""
    with tempfile.TemporaryFile() as out:
        began = time.monotonic()
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() - began > timeout:
                proc.kill()
                os.wait4(proc.pid, 0)
                raise HarnessError(f"{cmd[0]} did not finish within {timeout:.0f}s: {' '.join(cmd)}")
            time.sleep(0.05)
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, so Popen must not wait again
        wall = time.monotonic() - began
        out.seek(0)
        text = out.read().decode(errors="replace")
    return Measured(text, proc.returncode, usage.ru_utime + usage.ru_stime, wall)


@dataclass
class Saturation:
    """One wrk run."""

    rate: float  # completed requests per second, errors included
    p50_ms: float
    p99_ms: float
    requests: int
    errors: dict[str, int]  # socket errors, timeouts and statuses >= 400 (wrk's own counts)
    statuses: dict[int, int]  # only when the script counts them (orders)
    duration_s: float
    cpu_s: float
    server_cpu_s: float | None = None  # the measured server's workers, during the run (read rows)

    @property
    def cpu_us_per_request(self) -> float | None:
        return None if self.server_cpu_s is None or not self.requests else self.server_cpu_s / self.requests * 1e6

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())


def wrk(url: str, seconds: float, script: Path = REPORT_LUA, script_args: tuple[str, ...] = ()) -> Saturation:
    cmd = ["wrk", f"-t{WRK_THREADS}", f"-c{CONNECTIONS}", f"-d{seconds:g}s", f"--timeout={REQUEST_TIMEOUT_S}s",
           "-s", str(script), url]
    if script_args:
        cmd += ["--", *script_args]
    run = run_measured(cmd, seconds + REQUEST_TIMEOUT_S + 30)
    line = next((ln for ln in run.output.splitlines() if ln.startswith("BENCH ")), None)
    if run.returncode != 0 or line is None:
        raise HarnessError(f"wrk failed ({run.returncode}): {run.output[-2000:]}")
    data = json.loads(line[len("BENCH "):])
    duration = data["duration_us"] / 1e6
    errors = {name: data[name] for name in ("connect", "read", "write", "timeout", "status") if data[name]}
    return Saturation(
        rate=data["requests"] / duration, p50_ms=data["p50_us"] / 1000, p99_ms=data["p99_us"] / 1000,
        requests=data["requests"], errors=errors,
        statuses={int(code): count for code, count in data.get("statuses", {}).items()},
        duration_s=duration, cpu_s=run.cpu_s,
    )


@dataclass
class FixedLoad:
    """One hey run at a fixed offered rate."""

    offered: float
    achieved: float
    p50_ms: float | None
    p99_ms: float | None
    statuses: dict[int, int]
    errors: int  # requests that got no answer (timeouts, resets)
    cpu_s: float

    @property
    def ok(self) -> bool:
        """Every request answered 200."""
        return self.errors == 0 and set(self.statuses) <= {200}

    @property
    def sustained(self) -> bool:
        return self.achieved >= SUSTAINED * self.offered


def hey(url: str, seconds: float, offered: float) -> FixedLoad:
    """hey -c 50 -q offered/50: each of 50 clients sends at most offered/50 requests per second."""
    per_client = offered / CONNECTIONS
    cmd = ["hey", "-z", f"{seconds:g}s", "-c", str(CONNECTIONS), "-q", f"{per_client:.4f}",
           "-t", str(REQUEST_TIMEOUT_S), "-disable-compression", url]
    run = run_measured(cmd, seconds + REQUEST_TIMEOUT_S + 30)
    text = run.output
    rate = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if run.returncode != 0 or rate is None:
        raise HarnessError(f"hey failed ({run.returncode}): {text[-2000:]}")
    percentiles = {int(p): float(s) * 1000 for p, s in re.findall(r"^\s+(\d+)%+ in ([\d.]+) secs", text, re.M)}
    statuses = {int(code): int(n) for code, n in re.findall(r"^\s+\[(\d{3})\]\s+(\d+) responses", text, re.M)}
    errors_part = text.split("Error distribution:", 1)[1] if "Error distribution:" in text else ""
    errors = sum(int(n) for n in re.findall(r"^\s+\[(\d+)\]\s", errors_part, re.M))
    return FixedLoad(offered, float(rate.group(1)), percentiles.get(50), percentiles.get(99), statuses, errors,
                     run.cpu_s)


# Servers


class Server:
    """One gunicorn (master and workers) in a process group of its own, its output in a log file."""

    def __init__(self, name: str, app: str, env: dict[str, str], options: list[str], log_path: Path,
                 gunicorn: Path) -> None:
        self.name, self.app, self.env, self.options, self.log_path = name, app, env, options, log_path
        self.gunicorn = gunicorn
        self.url = f"http://127.0.0.1:{env['APP_PORT']}"
        self.process: subprocess.Popen | None = None

    def start(self, ready_path: str, timeout: float = 60) -> Server:
        log(f"starting {self.name} on {self.url}")
        with open(self.log_path, "wb") as out:
            self.process = subprocess.Popen(
                [str(self.gunicorn), "-c", "gunicorn.conf.py", *self.options, self.app],
                cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise HarnessError(f"{self.name} exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                if requests.get(self.url + ready_path, timeout=2).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.3)
        raise HarnessError(f"{self.name} did not answer {ready_path} within {timeout:.0f}s:\n{self.log_tail()}")

    def worker_class(self) -> str | None:
        """The worker class gunicorn says it uses, from the start of the log."""
        if not self.log_path.exists():
            return None
        with open(self.log_path, "rb") as log_file:
            found = re.search(rb"Using worker: (\S+)", log_file.read(65536))
        return found.group(1).decode() if found else None

    def log_tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def worker_cpu_s(self) -> float:
        """User + system CPU the workers have used so far."""
        if self.process is None or self.process.poll() is not None:
            return 0.0
        return cpu_s(worker.pid for worker in psutil.Process(self.process.pid).children())

    def worker_rss_mib(self) -> list[float]:
        if self.process is None or self.process.poll() is not None:
            return []
        workers = psutil.Process(self.process.pid).children()
        return sorted(worker.memory_info().rss / 2**20 for worker in workers)

    def stop(self) -> None:
        """TERM to the process group this server started in (master and workers), KILL if it is still there."""
        if self.process is None or self.process.poll() is not None:
            return
        group = self.process.pid  # the master leads its own session and process group
        os.killpg(group, signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(group, signal.SIGKILL)
            self.process.wait()
        with contextlib.suppress(ProcessLookupError):  # workers that outlived their master
            os.killpg(group, signal.SIGKILL)


# The run


@dataclass
class ReadRow:
    """One URL on a Fantasize server against a baseline server: bare Flask, or (`monitoring`) another Fantasize.
    The `bare` fields hold the baseline's figures whatever it is."""

    key: str
    name: str
    path: str
    cached: bool  # the page cache answers it (X-Cache: HIT expected after the warm-up)
    server: str = "fantasize"  # run.servers key of the Fantasize measured
    baseline: str = "bare"  # run.servers key of the baseline
    baseline_name: str = "bare Flask"
    goal_ratio: float | None = None  # None: GOAL_CACHED or GOAL_UNCACHED
    judge_cpu: bool = False  # the goal holds for worker CPU per request too
    bytes: int = 0
    bare_bytes: int = 0
    fantasize: Saturation | None = None
    bare: Saturation | None = None
    fixed_fantasize: FixedLoad | None = None
    fixed_bare: FixedLoad | None = None

    @property
    def ratio(self) -> float:
        return self.fantasize.rate / self.bare.rate if self.bare.rate else 0.0

    @property
    def cpu_ratio(self) -> float | None:
        """The baseline's worker CPU per request over Fantasize's (higher is better, as for req/s)."""
        mine, bare = self.fantasize.cpu_us_per_request, self.bare.cpu_us_per_request
        return bare / mine if mine and bare else None

    @property
    def goal(self) -> float:
        if self.goal_ratio is not None:
            return self.goal_ratio
        return GOAL_CACHED if self.cached else GOAL_UNCACHED

    @property
    def light(self) -> bool:
        """Cheap enough for the fixed load at half the baseline's rate (a quarter otherwise)."""
        return self.cached or self.goal_ratio is not None

    @property
    def met(self) -> bool:
        cpu_ok = not self.judge_cpu or (self.cpu_ratio or 0.0) >= self.goal
        return self.ratio >= self.goal and cpu_ok and self.fantasize.error_count == 0

    @property
    def latency_limit_ms(self) -> float:
        bare = self.fixed_bare.p99_ms or 0.0
        return max(2 * bare, bare + 20)

    @property
    def latency_met(self) -> bool:
        mine = self.fixed_fantasize
        return (mine.sustained and mine.ok and mine.p99_ms is not None
                and self.fixed_bare.p99_ms is not None and mine.p99_ms <= self.latency_limit_ms)


@dataclass
class SoakRow:
    path: str
    rounds: list[Saturation] = field(default_factory=list)
    rss_before: list[float] = field(default_factory=list)  # MiB per worker, after the warm-up
    rss_after: list[float] = field(default_factory=list)

    @property
    def rate_ratio(self) -> float:
        return self.rounds[-1].rate / self.rounds[0].rate if self.rounds[0].rate else 0.0

    @property
    def ratio(self) -> float:
        """The last round's speed over the first's, by worker CPU per request."""
        first, last = self.rounds[0].cpu_us_per_request, self.rounds[-1].cpu_us_per_request
        return first / last if first and last else 0.0

    @property
    def rss_growth_mib(self) -> float:
        return max((after - before for before, after in zip(self.rss_before, self.rss_after, strict=False)),
                   default=0.0)

    @property
    def met(self) -> bool:
        return (self.ratio >= GOAL_SOAK_RATIO and self.rss_growth_mib < GOAL_SOAK_RSS_MIB
                and not any(load.error_count for load in self.rounds))


@dataclass
class OrdersRow:
    load: Saturation
    placed: int  # 201 answers
    db_orders: int  # orders of the buyers found in the database afterwards
    distinct_keys: int
    oversold: int  # units ordered beyond the stock taken, summed over the products
    unaccounted: int  # units of stock taken that no order line explains
    negative: int  # products whose stock went below zero

    @property
    def per_second(self) -> float:
        return self.placed / self.load.duration_s

    @property
    def failed(self) -> int:
        return self.load.requests - self.placed + sum(v for k, v in self.load.errors.items() if k != "status")

    @property
    def arithmetic_ok(self) -> bool:
        return not (self.oversold or self.unaccounted or self.negative) and self.db_orders == self.distinct_keys

    @property
    def met(self) -> bool:
        return (self.per_second >= GOAL_ORDERS_PER_S and self.load.p99_ms <= GOAL_ORDERS_P99_MS
                and self.arithmetic_ok and self.failed == 0)


@dataclass
class Run:
    args: argparse.Namespace
    rows: list[str]
    warm_s: float
    env_base: dict[str, str]
    bin: Path
    servers: dict[str, Server] = field(default_factory=dict)
    reads: list[ReadRow] = field(default_factory=list)
    orders: OrdersRow | None = None
    soak: SoakRow | None = None
    realtime: list[dict[str, Any]] = field(default_factory=list)  # bench/realtime.py's rows, one per N
    rss: dict[str, list[float]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    started: datetime = field(default_factory=lambda: datetime.now(UTC))
    load_before: tuple[float, float, float] = field(default_factory=os.getloadavg)
    load_after: tuple[float, float, float] | None = None


def gunicorn_options(args: argparse.Namespace) -> list[str]:
    """Command-line settings for every server alike; what is not given stays as gunicorn.conf.py says."""
    options = []
    if args.workers_given:
        options += ["--workers", str(args.workers)]
    if args.worker_class:
        options += ["--worker-class", args.worker_class]
    if args.threads:
        options += ["--threads", str(args.threads)]
    if args.worker_connections:
        options += ["--worker-connections", str(args.worker_connections)]
    return options


def base_env(args: argparse.Namespace) -> dict[str, str]:
    """Production settings shared by every server (and the flask commands): a random JWT secret, SMTP mail to a
    closed loopback port (production refuses the log and memory backends; nothing here sends mail), limits on."""
    return {
        **os.environ,
        "FLASK_ENV": "production",
        "FORCE_HTTPS": "false",
        "HOST": "127.0.0.1",
        "WEB_CONCURRENCY": str(args.workers),
        "DATABASE_URL": args.database_url,
        "REDIS_URL": args.redis_url,
        "CACHE_KEY_PREFIX": f"{KEY_PREFIX}cache:",
        "RATE_LIMIT_KEY_PREFIX": f"{KEY_PREFIX}limits",
        "JWT_SECRET": secrets.token_hex(32),
        "MAIL_BACKEND": "smtp",
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(free_port()),
        "PUBLIC_BASE_URL": "http://127.0.0.1",
        "RATE_LIMIT_MAX_REQUESTS": str(HIGH_LIMIT),
        "RATE_LIMIT_AUTH": f"{HIGH_LIMIT} per 15 minutes",  # 50 buyers register and sign in from one address
        "RATE_LIMIT_ORDER": f"{HIGH_LIMIT} per hour",
        "SOCKET_CONNECTS_PER_MINUTE": str(HIGH_LIMIT),  # hundreds of real-time clients, one address
    }


def delete_keys(redis_url: str) -> int:
    redis = Redis.from_url(redis_url, socket_timeout=5)
    deleted = 0
    batch: list[bytes] = []
    for key in redis.scan_iter(match=f"{KEY_PREFIX}*", count=1000):
        batch.append(key)
        if len(batch) == 1000:
            deleted += redis.delete(*batch)
            batch.clear()
    if batch:
        deleted += redis.delete(*batch)
    redis.close()
    return deleted


def flask_command(run: Run, *words: str) -> None:
    cmd = [str(run.bin / "flask"), "--app", "fantasize", *words]
    with open(RESULTS / "logs" / "flask.log", "ab") as out:
        done = subprocess.run(cmd, cwd=ROOT, env=run.env_base, stdout=out, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL, timeout=600, check=False)
    if done.returncode != 0:
        raise HarnessError(f"`flask {' '.join(words)}` failed ({done.returncode}); see bench/results/logs/flask.log")


def prepare_database(run: Run) -> None:
    log(f"fresh database {run.args.database_url}: flask db upgrade, flask seed")
    fresh_database(run.args.database_url)
    flask_command(run, "db", "upgrade")
    flask_command(run, "seed")


def sql(run: Run, statement: str, params: tuple = ()) -> list[tuple]:
    conn = connect(run.args.database_url)
    try:
        with conn.cursor() as cur:
            cur.execute(statement, params)
            return cur.fetchall() if cur.description else []
    finally:
        conn.close()


def start_servers(run: Run) -> None:
    options = gunicorn_options(run.args)
    logs = RESULTS / "logs"
    wanted = {"fantasize"}
    if any(key.endswith("-uncached") for key in run.rows):
        wanted.add("uncached")
    if "monitoring" in run.rows:
        wanted.add("unmonitored")
    for name, cache, monitoring in (("fantasize", "true", "true"), ("uncached", "false", "true"),
                                    ("unmonitored", "true", "false")):
        if name in wanted:
            env = {**run.env_base, "APP_PORT": str(free_port()), "CACHE_ENABLED": cache,
                   "ENABLE_PERFORMANCE_MONITORING": monitoring}
            label = f"CACHE_ENABLED={cache}" + ("" if monitoring == "true" else ", ENABLE_PERFORMANCE_MONITORING=false")
            server = Server(f"Fantasize ({label})", "wsgi:app", env, options, logs / f"{name}.log",
                            run.bin / "gunicorn")
            run.servers[name] = server  # before it starts, so that a failed start is stopped too
            server.start("/api/v1/versions")


def fetch_bodies(run: Run) -> None:
    """Each read row's body from Fantasize (cached and uncached must agree), then bare Flask started on them."""
    product = sql(run, "SELECT min(id) FROM products WHERE is_active")[0][0]
    bodies: dict[str, Any] = {}
    session = requests.Session()
    for key in run.rows:
        if key in NOT_READS:
            continue
        if key in OTHER_READS:
            path, name, cached, mine, baseline, baseline_name, goal, judge_cpu = OTHER_READS[key]
            row = ReadRow(key, name, path.format(product=product), cached, mine, baseline, baseline_name, goal,
                          judge_cpu)
        else:
            base = key.removesuffix("-uncached")
            path, name = READS[base]
            row = ReadRow(key, f"{name}, {'cached' if key == base else 'uncached'}", path.format(product=product),
                          key == base, "fantasize" if key == base else "uncached")
        server = run.servers[row.server]
        response = session.get(server.url + row.path, timeout=30)
        if response.status_code != 200:
            raise HarnessError(f"{server.name} answered {response.status_code} to {row.path}: {response.text[:500]}")
        if row.path in bodies and json.loads(response.content) != bodies[row.path]:
            run.notes.append(f"{row.path}: the {key} row's body differs from another row's")
        bodies.setdefault(row.path, response.json())
        row.bytes = len(response.content)
        run.reads.append(row)
        if row.baseline != "bare":  # another Fantasize: the same body, from the same database
            other = session.get(run.servers[row.baseline].url + row.path, timeout=30)
            if other.status_code != 200 or json.loads(other.content) != bodies[row.path]:
                raise HarnessError(f"{run.servers[row.baseline].name} does not answer {row.path} alike")
            row.bare_bytes = len(other.content)
    against_bare = [row for row in run.reads if row.baseline == "bare"]
    if not against_bare:
        return
    bodies_file = RESULTS / "bodies.json"
    bodies_file.write_text(json.dumps(bodies), encoding="utf-8")
    env = {**run.env_base, "APP_PORT": str(free_port()), "BENCH_BODIES": str(bodies_file)}
    bare = Server("bare Flask (bench/bare.py)", "bench.bare:app", env, gunicorn_options(run.args),
                  RESULTS / "logs" / "bare.log", run.bin / "gunicorn")
    run.servers["bare"] = bare
    bare.start(against_bare[0].path)
    for row in against_bare:
        response = session.get(bare.url + row.path, timeout=30)
        if response.status_code != 200 or response.json() != bodies[row.path]:
            raise HarnessError(f"bare Flask does not serve Fantasize's body for {row.path}")
        row.bare_bytes = len(response.content)


# A Fantasize measured against another Fantasize (`monitoring`) differs from it by a few percent, less than what the
# shared cores drift between two runs: the two are measured in turns (ABBA), this many rounds each, and summed.
PAIRED_ROUNDS = 4


def combined(loads: list[Saturation]) -> Saturation:
    """Several wrk runs of one server as one: requests, time and CPU summed, the slowest round's percentiles."""
    duration = sum(load.duration_s for load in loads)
    requests_ = sum(load.requests for load in loads)
    errors: dict[str, int] = {}
    for load in loads:
        for kind, number in load.errors.items():
            errors[kind] = errors.get(kind, 0) + number
    return Saturation(rate=requests_ / duration if duration else 0.0, p50_ms=max(load.p50_ms for load in loads),
                      p99_ms=max(load.p99_ms for load in loads), requests=requests_, errors=errors, statuses={},
                      duration_s=duration, cpu_s=sum(load.cpu_s for load in loads),
                      server_cpu_s=sum(load.server_cpu_s or 0.0 for load in loads))


def measure_read(run: Run, row: ReadRow) -> None:
    seconds, warm = run.args.duration, run.warm_s
    mine = run.servers[row.server]
    bare = run.servers[row.baseline]
    sides = (("Fantasize", mine, "fantasize"), (row.baseline_name, bare, "bare"))
    for label, server, _attr in sides:
        wrk(server.url + row.path, warm)  # keep-alive connections, pools, and for a cached row the stored page
        if server is mine or row.baseline != "bare":
            state = requests.get(server.url + row.path, timeout=30).headers.get("X-Cache")
            if (state == "HIT") != row.cached:
                run.notes.append(f"{row.key}: after the warm-up {label} answered X-Cache: {state}")
    rounds = 1 if row.baseline == "bare" else PAIRED_ROUNDS
    loads: dict[str, list[Saturation]] = {attr: [] for _label, _server, attr in sides}
    for number in range(rounds):
        # In turns, each side first every other round: neither is always measured on a machine the other warmed.
        for _label, server, attr in (sides if number % 2 == 0 else sides[::-1]):
            cpu_before = server.worker_cpu_s()
            result = wrk(server.url + row.path, seconds)
            result.server_cpu_s = server.worker_cpu_s() - cpu_before
            loads[attr].append(result)
    for label, _server, attr in sides:
        result = loads[attr][0] if rounds == 1 else combined(loads[attr])
        setattr(row, attr, result)
        log(f"{row.key}: {label} {result.rate:,.0f} req/s, p99 {result.p99_ms:,.1f} ms"
            + (f" ({rounds} rounds in turns)" if rounds > 1 else "")
            + (f", errors {result.errors}" if result.errors else ""))
    offered = row.bare.rate / (2 if row.light else 4)
    for label, server, attr in (("Fantasize", mine, "fixed_fantasize"), (row.baseline_name, bare, "fixed_bare")):
        result = hey(server.url + row.path, seconds, offered)
        setattr(row, attr, result)
        log(f"{row.key}: {label} at {offered:,.0f} req/s offered: {result.achieved:,.0f} achieved, "
            f"p99 {fmt_ms(result.p99_ms)}" + ("" if result.ok else f", statuses {result.statuses} "
                                                                  f"errors {result.errors}"))
    for label, load in (("Fantasize", row.fantasize), (row.baseline_name, row.bare)):
        if load.errors:
            run.notes.append(f"{row.key}: wrk counted errors for {label}: {load.errors}")
    for label, load in (("Fantasize", row.fixed_fantasize), (row.baseline_name, row.fixed_bare)):
        if not load.ok:
            run.notes.append(f"{row.key}: hey at {offered:,.0f} req/s got {label} statuses {load.statuses}, "
                             f"{load.errors} errors")
    if not row.fixed_bare.sustained:
        run.notes.append(f"{row.key}: {row.baseline_name} itself did not sustain {offered:,.0f} req/s "
                         f"({row.fixed_bare.achieved:,.0f}); the machine was busy")
    if row.bare_bytes != row.bytes:
        run.notes.append(f"{row.key}: {row.baseline_name}'s body is {row.bare_bytes:,} bytes, Fantasize's "
                         f"{row.bytes:,}")


def measure_soak(run: Run) -> None:
    server = run.servers["fantasize"]
    row = SoakRow(SOAK_PATH)
    wrk(server.url + row.path, run.warm_s)
    row.rss_before = server.worker_rss_mib()
    for number in range(SOAK_ROUNDS):
        cpu_before = server.worker_cpu_s()
        load = wrk(server.url + row.path, run.args.duration)
        load.server_cpu_s = server.worker_cpu_s() - cpu_before
        row.rounds.append(load)
        log(f"soak round {number + 1}/{SOAK_ROUNDS}: {load.rate:,.0f} req/s, p99 {load.p99_ms:,.1f} ms, "
            f"worker CPU {fmt_us(load.cpu_us_per_request)}/req")
    row.rss_after = server.worker_rss_mib()
    run.soak = row


def register_buyers(server: Server) -> list[tuple[int, str]]:
    """CONNECTIONS customers registered and signed in through the API: (user id, access token) each."""
    password = secrets.token_urlsafe(16)

    def buyer(n: int) -> tuple[int, str]:
        session = requests.Session()
        email = f"bench-buyer-{n}@example.com"
        made = session.post(f"{server.url}/api/v1/auth/register", timeout=60,
                            json={"email": email, "password": password, "username": f"bench buyer {n}"})
        signed = session.post(f"{server.url}/api/v1/auth/login", json={"email": email, "password": password},
                              timeout=60)
        if made.status_code != 201 or signed.status_code != 200:
            raise HarnessError(f"could not register buyer {n}: {made.status_code} {made.text[:300]} / "
                               f"{signed.status_code} {signed.text[:300]}")
        body = signed.json()
        return body["user"]["id"], body["accessToken"]

    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(buyer, range(CONNECTIONS)))


def settle(run: Run, user_ids: list[int]) -> None:
    """Wait (a bounded while) until the buyers' order count stops moving: requests wrk left in flight at the end
    of its run still commit on the server after it."""
    count = None
    deadline = time.monotonic() + REQUEST_TIMEOUT_S + 5
    while time.monotonic() < deadline:
        now = sql(run, "SELECT count(*) FROM orders WHERE user_id = ANY(%s)", (user_ids,))[0][0]
        if now == count:
            return
        count = now
        time.sleep(1)


def stock_and_orders(run: Run, products: list[int], user_ids: list[int]) -> tuple[dict, dict, int, int]:
    """From one snapshot of the database: each product's stock, the units of it the buyers' order lines hold,
    the buyers' orders and their distinct (buyer, Idempotency-Key) pairs."""
    conn = connect(run.args.database_url)
    conn.set_session(isolation_level="REPEATABLE READ", readonly=True, autocommit=False)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT id, quantity FROM products WHERE id = ANY(%s)", (products,))
            stock = dict(cur.fetchall())
            cur.execute("SELECT l.product_id, sum(l.quantity) FROM order_lines l JOIN orders o ON o.id = l.order_id "
                        "WHERE o.user_id = ANY(%s) GROUP BY l.product_id", (user_ids,))
            ordered = {pid: int(units) for pid, units in cur.fetchall()}
            cur.execute("SELECT count(*), count(DISTINCT (user_id, idempotency_key)) FROM orders "
                        "WHERE user_id = ANY(%s)", (user_ids,))
            count, keys = cur.fetchone()
        conn.rollback()
    finally:
        conn.close()
    return stock, ordered, count, keys


def measure_orders(run: Run) -> None:
    server = run.servers["fantasize"]
    log(f"order placement: registering {CONNECTIONS} buyers")
    buyers = register_buyers(server)
    user_ids = [user_id for user_id, _ in buyers]
    products = [row[0] for row in sql(run, "SELECT id FROM products WHERE is_active ORDER BY id LIMIT %s",
                                      (PRODUCTS_ORDERED,))]
    if len(products) < PRODUCTS_ORDERED:
        raise HarnessError(f"the demo shop has only {len(products)} active products")
    # Straight in the database: the read rows are done, and no cached page matters to placement.
    sql(run, "UPDATE products SET quantity = %s WHERE id = ANY(%s)", (RESTOCK, products))
    before, ordered_before, _, _ = stock_and_orders(run, products, user_ids)
    if ordered_before:
        raise HarnessError("the buyers have orders before the run")
    with tempfile.TemporaryDirectory() as tmp:
        tokens = Path(tmp) / "tokens"
        tokens.write_text("".join(f"{token}\n" for _, token in buyers))
        load = wrk(f"{server.url}/api/v1/orders", run.args.duration, ORDERS_LUA,
                   (str(tokens), ",".join(map(str, products)), f"bench-{secrets.token_hex(4)}", str(WRK_THREADS)))
    settle(run, user_ids)
    after, ordered, count, keys = stock_and_orders(run, products, user_ids)
    taken = {pid: before[pid] - after[pid] for pid in products}
    run.orders = OrdersRow(
        load=load, placed=load.statuses.get(201, 0), db_orders=count, distinct_keys=keys,
        oversold=sum(max(0, ordered.get(pid, 0) - taken[pid]) for pid in products),
        unaccounted=sum(max(0, taken[pid] - ordered.get(pid, 0)) for pid in products),
        negative=sum(1 for pid in products if after[pid] < 0),
    )
    log(f"orders: {run.orders.per_second:,.1f}/s, p99 {load.p99_ms:,.0f} ms, statuses {load.statuses}")
    if count != run.orders.placed:
        run.notes.append(f"orders: {count} orders in the database, {run.orders.placed} answered 201 (the rest "
                         "were placed but their answers did not arrive within the run)")
    others = {code: n for code, n in load.statuses.items() if code != 201}
    if others or load.errors:
        run.notes.append(f"orders: other answers {others}, wrk errors {load.errors}")


# Rendering


def fmt_ms(ms: float | None) -> str:
    if ms is None:
        return "-"
    return f"{ms / 1000:.2f} s" if ms >= 1000 else f"{ms:.0f} ms" if ms >= 10 else f"{ms:.1f} ms"


def fmt_us(us: float | None) -> str:
    return "-" if us is None else f"{us:,.0f} µs"


def fmt_rate(rate: float) -> str:
    return f"{rate:,.0f}" if rate >= 100 else f"{rate:,.1f}"


def yes(flag: bool) -> str:
    return "yes" if flag else "**no**"


def table(header: list[str], rows: list[list[str]], right: set[int]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---:" if i in right else "---" for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def commit_label() -> str:
    """The commit measured, and whether the working tree differed from it."""
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                            check=False).stdout.strip() or "?"
    dirty = subprocess.run(["git", "--no-optional-locks", "status", "--porcelain", "--untracked-files=no"],
                           cwd=ROOT, capture_output=True, text=True, check=False).stdout.strip()
    return commit + (" + uncommitted changes" if dirty else "")


def setup_line(run: Run) -> str:
    args = run.args
    python = subprocess.run([str(run.bin / "python"), "-c", "import platform; print(platform.python_version())"],
                            capture_output=True, text=True, check=False).stdout.strip()
    used = {server.worker_class() for server in run.servers.values()} - {None}
    workers = (f"worker class {', '.join(sorted(used)) or args.worker_class or '?'}"
               + ("" if args.worker_class else " (gunicorn.conf.py's)")
               + (f" --threads {args.threads}" if args.threads else "")
               + (f" --worker-connections {args.worker_connections}" if args.worker_connections else "")
               + f", {args.workers} workers")
    load = "/".join(f"{x:.1f}" for x in run.load_before)
    load_end = "/".join(f"{x:.1f}" for x in run.load_after) if run.load_after else "?"
    venv = args.venv.resolve()
    venv = venv.relative_to(ROOT) if venv.is_relative_to(ROOT) else venv
    return (f"{run.started:%Y-%m-%d %H:%M} UTC, commit {commit_label()}, "
            f"Python {python} (servers from {venv}), {platform.system()} {os.cpu_count()} CPUs (load average {load} "
            f"at the start, {load_end} at the end). gunicorn -c gunicorn.conf.py, {workers}; FLASK_ENV=production, "
            f"FORCE_HTTPS=false, PostgreSQL + Redis, the demo shop, rate limits on with high limits. "
            f"wrk -t{WRK_THREADS} -c{CONNECTIONS} -d{args.duration:g}s after a {run.warm_s:g}s warm-up; "
            f"hey -c {CONNECTIONS} -z {args.duration:g}s.")


def render(run: Run) -> str:
    out = ["# bench/run: Fantasize against bare Flask", "", setup_line(run), ""]
    if run.reads:
        out += ["## Saturation", ""]
        rows = []
        for row in run.reads:
            size = f"{row.bytes:,}" + ("" if row.bare_bytes == row.bytes else f" (baseline {row.bare_bytes:,})")
            mine, bare = row.fantasize.cpu_us_per_request, row.bare.cpu_us_per_request
            goal = f">= {row.goal:g}x" + (" (req/s and CPU/req)" if row.judge_cpu else "")
            rows.append([row.name, size, fmt_rate(row.fantasize.rate), fmt_ms(row.fantasize.p50_ms),
                         fmt_ms(row.fantasize.p99_ms), row.baseline_name, fmt_rate(row.bare.rate),
                         fmt_ms(row.bare.p50_ms), fmt_ms(row.bare.p99_ms), f"{row.ratio:.2f}", goal, yes(row.met),
                         fmt_us(mine), fmt_us(bare), f"{row.cpu_ratio:.2f}" if row.cpu_ratio else "-"])
        out += table(["row", "bytes", "Fantasize req/s", "p50", "p99", "baseline", "baseline req/s", "baseline p50",
                      "baseline p99", "ratio", "goal", "met?", "Fantasize worker CPU/req", "baseline worker CPU/req",
                      "CPU ratio"], rows, {1, 2, 3, 4, 6, 7, 8, 9, 12, 13, 14})
        out += ["", "Baseline: bare Flask (bench/bare.py) serving the same body, except where the row says "
                "otherwise (`monitoring`: the same Fantasize with ENABLE_PERFORMANCE_MONITORING=false). Worker CPU "
                "per request: the servers' gunicorn workers' user + system CPU during the wrk run, divided by the "
                "requests answered (the database's and Redis's own CPU not included). It depends less than req/s on "
                "what else the shared cores run; the CPU ratio is the baseline's over Fantasize's."]
        out += ["", "## Latency under a fixed offered load", "",
                f"hey -c {CONNECTIONS} -q (offered / {CONNECTIONS}) for {run.args.duration:g}s; offered = half of "
                "the baseline's saturation rate for a cached row or a probe, a quarter for an uncached one. Goal: "
                f"sustains the rate (>= {SUSTAINED:.0%} of it), every answer 200, p99 <= 2x the baseline's p99 or "
                "the baseline's + 20 ms (the larger).", ""]
        rows = []
        for row in run.reads:
            mine, bare = row.fixed_fantasize, row.fixed_bare
            rows.append([row.name, fmt_rate(mine.offered),
                         fmt_rate(mine.achieved), fmt_ms(mine.p50_ms), fmt_ms(mine.p99_ms), fmt_rate(bare.achieved),
                         fmt_ms(bare.p50_ms), fmt_ms(bare.p99_ms), f"<= {fmt_ms(row.latency_limit_ms)}",
                         yes(row.latency_met)])
        out += table(["row", "offered req/s", "Fantasize req/s", "p50", "p99", "baseline req/s", "baseline p50",
                      "baseline p99", "p99 goal", "met?"], rows, set(range(1, 9)))
    if run.soak:
        soak = run.soak
        first, last = soak.rounds[0], soak.rounds[-1]
        requests_served = sum(load.requests for load in soak.rounds)
        out += ["", "## Soak", "",
                f"`{soak.path}`, cached, in {len(soak.rounds)} consecutive wrk runs of {run.args.duration:g}s "
                f"({requests_served:,} requests) after the warm-up: a worker is as fast after them as before and "
                "holds no more memory (DESIGN.md \"The request budget\").", ""]
        rounds = ", ".join(fmt_rate(load.rate) for load in soak.rounds)
        rss = ", ".join(f"{before:.1f} -> {after:.1f}" for before, after in zip(soak.rss_before, soak.rss_after,
                                                                                 strict=False))
        out += table(["row", "req/s by round", "req/s last / first", "worker CPU/req first -> last",
                      "speed last / first (by CPU/req)", "RSS per worker (MiB)", "goal", "met?"],
                     [["soak", rounds, f"{soak.rate_ratio:.2f}",
                       f"{fmt_us(first.cpu_us_per_request)} -> {fmt_us(last.cpu_us_per_request)}",
                       f"{soak.ratio:.2f}", rss,
                       f">= {GOAL_SOAK_RATIO:g}x, RSS growth < {GOAL_SOAK_RSS_MIB} MiB", yes(soak.met)]], {2, 4})
    if run.orders:
        orders = run.orders
        cpu = orders.load.cpu_s
        out += ["", "## Order placement", "",
                f"{CONNECTIONS} buyers (registered through the API, one connection each), one line each over "
                f"{PRODUCTS_ORDERED} products restocked to {RESTOCK:,}, a fresh Idempotency-Key per request; wrk "
                f"-t{WRK_THREADS} -c{CONNECTIONS} posting (bench/wrk/orders.lua). Oversold: units ordered beyond "
                "the stock taken, from the database before and after.", ""]
        arithmetic = ("0" if orders.arithmetic_ok else
                      f"**{orders.oversold} oversold, {orders.unaccounted} taken unaccounted, {orders.negative} "
                      f"below zero, {orders.db_orders - orders.distinct_keys} duplicate keys**")
        rows = [[f"order placement: {CONNECTIONS} buyers, one line each over {PRODUCTS_ORDERED} products, wrk "
                 "posting", f"{orders.per_second:,.1f}", fmt_ms(orders.load.p50_ms), fmt_ms(orders.load.p99_ms),
                 f"{orders.failed:,}", arithmetic,
                 f"{cpu:.2f} s = {cpu / orders.load.duration_s:.0%} of one core",
                 f">= {GOAL_ORDERS_PER_S}/s, p99 <= {GOAL_ORDERS_P99_MS} ms, 0 oversold", yes(orders.met)]]
        out += table(["row", "orders/s", "p50", "p99", "errors", "oversold", "load generator CPU", "goal", "met?"],
                     rows, {1, 2, 3, 4})
    if run.realtime:
        out += ["", *realtime.render_section(run.realtime)]
    if run.rss:
        out += ["", "## RSS per worker after the run", ""]
        bare = max(run.rss.get("bare") or [0.0])
        rows = []
        for name, values in run.rss.items():
            label = run.servers[name].name
            listed = ", ".join(f"{v:.0f}" for v in values) + " MiB"
            if name == "bare" or not bare:
                rows.append([label, listed, "", ""])
            else:
                rows.append([label, listed, f"<= {GOAL_RSS_RATIO}x bare Flask ({GOAL_RSS_RATIO * bare:.0f} MiB)",
                             yes(max(values) <= GOAL_RSS_RATIO * bare)])
        out += table(["server", "RSS per worker", "goal", "met?"], rows, set())
    if run.notes:
        out += ["", "## Notes", "", *(f"- {note}" for note in run.notes)]
    if run.reads:
        seconds = run.args.duration
        wrk_cpu = max(load.cpu_s / load.duration_s for r in run.reads for load in (r.fantasize, r.bare))
        hey_cpu = max(load.cpu_s / seconds for r in run.reads for load in (r.fixed_fantasize, r.fixed_bare))
        out += ["", f"Load generators' CPU, at most: wrk {wrk_cpu:.0%} and hey {hey_cpu:.0%} of one core, of the "
                f"{os.cpu_count()} the servers share with them. Server logs: bench/results/logs/."]
    return "\n".join(out) + "\n"


# Main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    env = os.environ.get
    parser = argparse.ArgumentParser(prog="bench/run", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="Rows: " + ", ".join(ROW_KEYS) + "; groups: " + ", ".join(ROW_GROUPS))
    parser.add_argument("--duration", type=int, default=int(env("BENCH_DURATION", "10")),
                        help="seconds of each wrk and hey run (default 10)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 3 s runs, 1 s warm-ups")
    parser.add_argument("--rows", default=env("BENCH_ROWS", "all"), help="comma-separated rows or groups")
    parser.add_argument("--workers", type=int, default=None, help="gunicorn workers per server (default 2, "
                        "through WEB_CONCURRENCY; BENCH_WORKERS)")
    parser.add_argument("--worker-class", default=env("BENCH_WORKER_CLASS"),
                        help="gunicorn worker class for every server (default: gunicorn.conf.py's)")
    parser.add_argument("--threads", type=int, default=int(env("BENCH_THREADS", "0")) or None,
                        help="gunicorn --threads (gthread)")
    parser.add_argument("--worker-connections", type=int, default=int(env("BENCH_WORKER_CONNECTIONS", "0")) or None,
                        help="gunicorn --worker-connections (gevent)")
    parser.add_argument("--venv", type=Path, default=Path(env("BENCH_VENV", str(ROOT / ".venv"))),
                        help="the virtualenv whose gunicorn and flask serve (bench/run: bench/results/venv, built "
                             "from requirements.txt alone; run directly: .venv)")
    parser.add_argument("--database-url", default=env("BENCH_DATABASE_URL",
                                                      "postgresql://postgres@127.0.0.1:5432/fantasize_bench_run"),
                        help="PostgreSQL database to drop, create and seed")
    parser.add_argument("--redis-url", default=env("BENCH_REDIS_URL", "redis://127.0.0.1:6379/9"),
                        help=f"Redis (keys under {KEY_PREFIX!r}, deleted at the start and the end)")
    parser.add_argument("--realtime-clients", default=env("BENCH_RT_CLIENTS"),
                        help="the real-time rows' client counts (default 200,500,1000; with --quick 200)")
    parser.add_argument("--cluster", action="store_true",
                        help="instead of the table: the cached product and the uncached list through nginx, one "
                             "instance against two (bench/cluster.py); rows: product, list100-uncached")
    parser.add_argument("--output", type=Path, default=None,
                        help="where the tables go (default bench/results/latest.md; with --cluster, cluster.md)")
    args = parser.parse_args(argv)
    if args.output is None:
        args.output = RESULTS / ("cluster.md" if args.cluster else "latest.md")
    args.workers_given = args.workers is not None or env("BENCH_WORKERS") is not None
    if args.workers is None:
        args.workers = int(env("BENCH_WORKERS", "2"))
    if args.quick:
        args.duration = min(args.duration, 3)
    clients = args.realtime_clients or ("200" if args.quick else "200,500,1000")
    args.realtime_counts = tuple(int(n) for n in clients.split(",") if n.strip())
    rows: list[str] = []
    if args.cluster:
        from bench.cluster import ROWS as CLUSTER_ROWS

        words = [w.strip() for w in args.rows.split(",") if w.strip() and w.strip() != "all"] or list(CLUSTER_ROWS)
        for word in words:
            if word not in CLUSTER_ROWS:
                parser.error(f"unknown row {word!r} for --cluster; rows: {', '.join(CLUSTER_ROWS)}")
        args.row_keys = [key for key in CLUSTER_ROWS if key in words]
        return args
    for word in filter(None, (w.strip() for w in args.rows.split(","))):
        if word not in ROW_GROUPS and word not in ROW_KEYS:
            parser.error(f"unknown row {word!r}; rows: {', '.join(ROW_KEYS)}; groups: {', '.join(ROW_GROUPS)}")
        rows += [key for key in ROW_GROUPS.get(word, [word]) if key not in rows]
    args.row_keys = [key for key in ROW_KEYS if key in rows]  # always in the table's order
    return args


def budget_s(args: argparse.Namespace, warm: float) -> int:
    """An upper bound on the whole run: a hung step ends it instead of holding the machine."""
    if args.cluster:  # per row: 2 clusters started, 2 warm-ups, 2 x PAIRED_ROUNDS runs, the counts
        per_row = 2 * 90 + 2 * warm + 2 * PAIRED_ROUNDS * (args.duration + REQUEST_TIMEOUT_S + 10) + 120
        return int(600 + len(args.row_keys) * per_row)
    per_read = 2 * (2 * (args.duration + warm) + 2 * args.duration) + 8 * (REQUEST_TIMEOUT_S + 5)
    reads = sum(1 for key in args.row_keys if key not in NOT_READS)
    return int(600 + reads * per_read + ("orders" in args.row_keys) * (args.duration + 300)
               + ("soak" in args.row_keys) * (SOAK_ROUNDS * (args.duration + REQUEST_TIMEOUT_S) + 60)
               + ("realtime" in args.row_keys) * 240 * len(args.realtime_counts))


def on_alarm(_signum, _frame) -> None:
    raise HarnessError("the run took longer than its time bound")


def on_term(signum, _frame) -> None:
    raise SystemExit(128 + signum)


def measure_table(run: Run) -> None:
    """bench/run's table: the servers started, every row chosen measured, the workers' RSS at the end."""
    start_servers(run)
    fetch_bodies(run)
    for row in run.reads:
        measure_read(run, row)
    if "soak" in run.rows:
        measure_soak(run)
    if "orders" in run.rows:
        measure_orders(run)
    if "realtime" in run.rows:
        run.realtime = realtime.run_for_harness(run, run.args.realtime_counts, changes=10 if run.args.quick else 40)
    run.rss = {name: server.worker_rss_mib() for name, server in run.servers.items()}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for tool in ("wrk", "hey"):
        if shutil.which(tool) is None:
            print(f"bench: {tool} is missing (bench/run installs it: apt-get install wrk hey)", file=sys.stderr)
            return 2
    if not (args.venv / "bin" / "gunicorn").exists():
        print(f"bench: no gunicorn in {args.venv} (make install)", file=sys.stderr)
        return 2
    warm = 1.0 if args.quick else 2.0
    (RESULTS / "logs").mkdir(parents=True, exist_ok=True)
    (RESULTS / "logs" / "flask.log").write_bytes(b"")
    run = Run(args, args.row_keys, warm, base_env(args), args.venv / "bin")
    signal.signal(signal.SIGALRM, on_alarm)
    signal.signal(signal.SIGTERM, on_term)
    signal.alarm(budget_s(args, warm))
    cluster_run = None
    try:
        delete_keys(args.redis_url)
        prepare_database(run)
        if args.cluster:
            from bench import cluster  # deploy/local_cluster.py, loaded only for this mode

            cluster_run = cluster.measure(run)
        else:
            measure_table(run)
    except (HarnessError, realtime.RealtimeError) as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 1
    finally:
        signal.alarm(0)
        for server in run.servers.values():
            server.stop()
        try:
            delete_keys(args.redis_url)
        except Exception as exc:  # noqa: BLE001 - cleaning up must not hide the run's own outcome
            print(f"bench: could not delete the run's Redis keys: {exc}", file=sys.stderr)
    run.load_after = os.getloadavg()
    text = render(run) if cluster_run is None else cluster.render(run, cluster_run)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text, encoding="utf-8")
    print(text)
    log(f"written to {args.output}")
    return 0


if __name__ == "__main__":
    # Run as bench.harness, not as __main__: bench/cluster.py and bench/realtime.py import bench.harness, and a
    # second copy of this module would raise a HarnessError that main() here does not catch.
    from bench import harness

    sys.exit(harness.main())
