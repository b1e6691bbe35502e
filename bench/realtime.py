"""`bench/realtime`: inventory updates fanned out to N Socket.IO clients, Fantasize against a minimal ceiling app.

    bench/realtime [--clients 200,500,1000] [--changes 40] [--client-processes 2] [--apps fantasize,ceiling]

Everything runs on this machine, on 127.0.0.1, and whatever the run starts it stops. For each N, in the same run:

1. Both servers, started fresh and up side by side, each gunicorn -c gunicorn.conf.py with ONE gevent worker
   (`--workers 1 --worker-class gevent --worker-connections max(1000, N + 100)`: every socket holds one of the
   worker's connections for its life, and the stock PATCH needs one more) and bench/run's production settings:
   Fantasize (`wsgi:app` on PostgreSQL with the demo shop, Redis for the cache and limits, and
   `SOCKETIO_MESSAGE_QUEUE` = that Redis), and the ceiling, bench/realtime_ceiling.py (Flask-SocketIO only: no
   database, no Redis, an in-process emit).
2. For each server, N python-socketio asyncio clients (bench/realtime_clients.py), split over `--client-processes`
   processes, connect over the websocket transport and `track_inventory` the first active product (acknowledged).
3. Each worker's RSS (psutil) before any client and once all are connected; then `--warmup` unmeasured stock
   changes and `--changes` measured ones per server, one at a time and alternating between the servers (ceiling,
   Fantasize, Fantasize, ceiling, ...), so that whatever else the machine does falls on both alike. A change is a
   PATCH of `/api/v1/products/<id>/stock` `{"quantity": q}` by an admin (made with `flask create-admin`, signed in
   through the API; the ceiling: `/products/<id>/stock`), q distinct per change. Latency = a client's arrival time
   of that change's `inventory_update` minus the time just BEFORE the PATCH was sent (CLOCK_MONOTONIC in every
   process), so it includes the request itself; the PATCH's own time (until its response arrived) is reported
   apart. The next change goes when every client has the previous one, or after `--timeout` seconds; a client
   without it by then counts as missed. Then the RSS again (the table's figure: the larger of the two).
4. The CPU of each worker and of each client process over the measured changes (psutil), so a load generator that
   became the bottleneck shows.

Goal (issue 9), at each N: Fantasize's p99 <= 1.5x the ceiling's, no event missed, RSS <= 1.3x the ceiling's.
The table is printed and written to bench/results/realtime.md (the rows as JSON beside it); server logs go to
bench/results/logs/; `--profile DIR` records each worker with py-spy during the measured changes
(`python -m bench.realtime_profile DIR/fantasize-1000.txt` sums a recording up).

For bench/run: `run_for_harness(run, clients)` (or `run_realtime(env_base, bin_dir, database_url, redis_url, ...)`)
measures on a database the caller has seeded and returns one dict per N; `render_section(rows)` gives the markdown.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import queue
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import psutil
import requests
from redis import Redis

from bench.database import connect

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
LOGS = RESULTS / "logs"

GOAL_P99_RATIO = 1.5  # Fantasize's p99 over the ceiling's, at most
GOAL_RSS_RATIO = 1.3  # Fantasize's worker RSS over the ceiling's, at most
DEFAULT_CLIENTS = (200, 500, 1000)
CHANGES = 40  # the p99 of N x CHANGES arrivals is the tail of the worst few changes: fewer make it jumpy
DEFAULT_WORKER_CONNECTIONS = 1000  # gunicorn.conf.py's (GUNICORN_WORKER_CONNECTIONS)
APPS = ("ceiling", "fantasize")
KEY_PREFIX = "fantasize-bench-rt:"  # the standalone run's Redis keys and Socket.IO channel
APP_NAMES = {"fantasize": "Fantasize", "ceiling": "ceiling (bench/realtime_ceiling.py)"}


class RealtimeError(RuntimeError):
    """The bench could not measure (as opposed to a goal being missed)."""


def stderr_line(message: str) -> None:
    print(f"[{datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


PROGRESS: list[Callable[[str], None]] = [stderr_line]  # run_realtime(progress=...) replaces it (bench/run's log)


def log(message: str) -> None:
    PROGRESS[0](f"realtime: {message}")


def percentile(values: list[float], share: float) -> float | None:
    """Nearest-rank percentile (the value at rank ceil(share * n) of the sorted values)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


# The client processes


class Fleet:
    """The load generator: `processes` copies of bench/realtime_clients.py holding `count` clients between them."""

    def __init__(self, python: Path, url: str, product: int, count: int, processes: int, concurrency: int,
                 timeout: float) -> None:
        self.messages: queue.Queue[tuple[int, dict]] = queue.Queue()
        self.procs: list[subprocess.Popen] = []
        self.ready: list[dict] = []
        shares = [s for s in (count // processes + (1 if i < count % processes else 0) for i in range(processes)) if s]
        self.stderr: list[list[str]] = [[] for _ in shares]
        for index, share in enumerate(shares):
            proc = subprocess.Popen(
                [str(python), "-m", "bench.realtime_clients", "--url", url, "--product", str(product),
                 "--count", str(share), "--concurrency", str(concurrency), "--timeout", str(timeout)],
                cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )
            self.procs.append(proc)
            threading.Thread(target=self._read, args=(index, proc), daemon=True).start()
            threading.Thread(target=self._stderr, args=(index, proc), daemon=True).start()

    def _read(self, index: int, proc: subprocess.Popen) -> None:
        for line in proc.stdout:
            try:
                self.messages.put((index, json.loads(line)))
            except ValueError:
                self.messages.put((index, {"noise": line[:300]}))
        self.messages.put((index, {"eof": True}))

    def _stderr(self, index: int, proc: subprocess.Popen) -> None:
        lines = self.stderr[index]
        for line in proc.stderr:
            if len(lines) < 50:
                lines.append(line.rstrip())

    def _next(self, deadline: float) -> tuple[int, dict] | None:
        try:
            return self.messages.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            return None

    def _collect(self, key: str, timeout: float) -> dict[int, dict]:
        """The next `key` message of every process (an ended process is an error)."""
        found: dict[int, dict] = {}
        deadline = time.monotonic() + timeout
        while len(found) < len(self.procs):
            got = self._next(deadline)
            if got is None:
                raise RealtimeError(f"client processes did not answer {key!r} within {timeout:.0f}s "
                                    f"({len(found)} of {len(self.procs)} did); stderr: {self.stderr_tail()}")
            index, message = got
            if key in message:
                found[index] = message
            elif "eof" in message:
                raise RealtimeError(f"client process {index} ended early; stderr: {self.stderr_tail()}")
        return found

    def stderr_tail(self) -> str:
        return " | ".join(line for lines in self.stderr for line in lines[-5:])[-1500:]

    def wait_ready(self, timeout: float) -> dict:
        ready = self._collect("ready", timeout)
        self.ready = [ready[i] for i in range(len(self.procs))]
        return {"connected": sum(r["ready"] for r in self.ready), "failed": sum(r["failed"] for r in self.ready),
                "errors": [e for r in self.ready for e in r["errors"]][:5],
                "connect_s": max(r["connect_s"] for r in self.ready)}

    def wait_complete(self, quantity: int, deadline: float) -> bool:
        """Until every process holding clients says all of them have `quantity`, or the deadline."""
        waiting = {i for i, r in enumerate(self.ready) if r["ready"]}
        while waiting:
            got = self._next(deadline)
            if got is None:
                return False
            index, message = got
            if message.get("complete") == quantity:
                waiting.discard(index)
            elif "eof" in message:
                raise RealtimeError(f"client process {index} ended during the run; stderr: {self.stderr_tail()}")
        return True

    def dump(self, timeout: float = 60) -> dict:
        for proc in self.procs:
            proc.stdin.write("dump\n")
            proc.stdin.flush()
        dumps = self._collect("receipts", timeout)
        receipts: dict[int, list[float]] = {}
        for message in dumps.values():
            for quantity, times in message["receipts"].items():
                receipts.setdefault(int(quantity), []).extend(times)
        return {"receipts": receipts, **{key: sum(m[key] for m in dumps.values())
                                          for key in ("duplicates", "dropped", "other")}}

    def cpu_s(self) -> list[float]:
        """User + system CPU seconds of each client process so far."""
        seconds = []
        for proc in self.procs:
            try:
                times = psutil.Process(proc.pid).cpu_times()
                seconds.append(times.user + times.system)
            except psutil.NoSuchProcess:
                seconds.append(0.0)
        return seconds

    def close(self, timeout: float = 60) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                try:
                    proc.stdin.write("quit\n")
                    proc.stdin.close()
                except (BrokenPipeError, OSError):
                    pass
        deadline = time.monotonic() + timeout
        for proc in self.procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


# One measurement


@dataclass
class Side:
    """One app at one N."""

    app: str
    clients: int
    worker_connections: int
    connected: int = 0
    connect_failed: int = 0
    connect_s: float = 0.0
    connect_errors: list[str] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    response_ms: list[float] = field(default_factory=list)  # each PATCH, from sending to its response
    first_ms: list[float] = field(default_factory=list)  # each change, from sending to its first arrival
    missed: int = 0  # (client, change) pairs without the event within the timeout
    late: int = 0  # of those, arrivals after the timeout
    expected: int = 0
    rss_idle_mib: float = 0.0  # started and answering, before any client connects
    rss_connected_mib: float = 0.0  # all clients connected, before the changes
    rss_after_mib: float = 0.0  # after the changes, all still connected
    worker_cpu_s: float = 0.0  # over the measured changes
    client_cpu_s: list[float] = field(default_factory=list)  # per client process, over the measured changes
    events_wall_s: float = 0.0
    duplicates: int = 0
    dropped: int = 0
    other: int = 0
    profile: str | None = None

    @property
    def rss_mib(self) -> float:
        return max(self.rss_connected_mib, self.rss_after_mib)

    def summary(self) -> dict[str, Any]:
        data = {key: value for key, value in asdict(self).items()
                if key not in ("latencies_ms", "response_ms", "first_ms")}
        data.update(
            name=APP_NAMES[self.app], rss_mib=self.rss_mib,
            p50_ms=percentile(self.latencies_ms, 0.50), p99_ms=percentile(self.latencies_ms, 0.99),
            max_ms=max(self.latencies_ms, default=None), samples=len(self.latencies_ms),
            response_p50_ms=percentile(self.response_ms, 0.50), response_max_ms=max(self.response_ms, default=None),
            first_p50_ms=percentile(self.first_ms, 0.50),
            rss_per_client_kib=1024 * (self.rss_mib - self.rss_idle_mib) / self.clients,
            client_cpu_share=[cpu / self.events_wall_s for cpu in self.client_cpu_s] if self.events_wall_s else [],
            client_cpu_ms_per_change=[1000 * cpu / max(1, len(self.response_ms)) for cpu in self.client_cpu_s],
            worker_cpu_ms_per_change=1000 * self.worker_cpu_s / max(1, len(self.response_ms)),
        )
        return data


@dataclass
class Target:
    """What the bench needs to know of a running server."""

    app: str
    url: str
    stock_path: str
    headers: dict[str, str]
    worker: psutil.Process


def worker_of(server) -> psutil.Process:
    workers = psutil.Process(server.process.pid).children()
    if len(workers) != 1:
        raise RealtimeError(f"{server.name}: expected one worker, found {len(workers)}")
    return workers[0]


def rss_mib(worker: psutil.Process) -> float:
    return worker.memory_info().rss / 2**20


def cpu_s(worker: psutil.Process) -> float:
    times = worker.cpu_times()
    return times.user + times.system


class Measurement:
    """One app at one N: its clients, its stock changes and what arrived, turned into a Side."""

    def __init__(self, target: Target, product: int, count: int, options: SimpleNamespace, python: Path,
                 worker_connections: int) -> None:
        self.target, self.count, self.options = target, count, options
        self.name = APP_NAMES[target.app]
        self.side = Side(target.app, count, worker_connections)
        self.side.rss_idle_mib = rss_mib(target.worker)
        self.session = requests.Session()
        self.sends: dict[int, float] = {}  # measured quantity -> when its PATCH was sent
        self.profiler: subprocess.Popen | None = None
        log(f"{self.name}: connecting {count} clients over {options.client_processes} process(es)")
        self.fleet = Fleet(python, target.url, product, count, options.client_processes, options.concurrency,
                           options.connect_timeout)

    def wait_ready(self) -> None:
        side = self.side
        ready = self.fleet.wait_ready(timeout=self.options.connect_timeout + self.count * 0.5 + 60)
        side.connected, side.connect_failed = ready["connected"], ready["failed"]
        side.connect_s, side.connect_errors = ready["connect_s"], ready["errors"]
        log(f"{self.name}: {side.connected} connected and tracking in {side.connect_s:.1f}s"
            + (f", {side.connect_failed} failed: {side.connect_errors}" if side.connect_failed else ""))

    def change(self, quantity: int, measured: bool) -> None:
        """One stock PATCH; back when every client has its event, or at the timeout."""
        target = self.target
        sent = time.monotonic()
        response = self.session.patch(target.url + target.stock_path, json={"quantity": quantity},
                                      headers=target.headers, timeout=30)
        answered = time.monotonic()
        if response.status_code != 200:
            raise RealtimeError(f"{self.name} answered {response.status_code} to the stock PATCH: "
                                f"{response.text[:300]}")
        if measured:
            self.sends[quantity] = sent
            self.side.response_ms.append(1000 * (answered - sent))
        self.fleet.wait_complete(quantity, sent + self.options.timeout)
        time.sleep(self.options.gap)

    def begin(self) -> None:
        """The measured changes start: the warm-up's receipts are dropped, CPU counters read, py-spy attached."""
        self.fleet.dump()
        options = self.options
        if options.profile_dir is not None and self.target.app in options.profile_apps:
            self.profiler, self.side.profile = start_profiler(self.target, self.count, options.profile_dir)
        self.cpu_before = cpu_s(self.target.worker), self.fleet.cpu_s(), time.monotonic()

    def end(self) -> Side:
        side, options = self.side, self.options
        worker_before, clients_before, began = self.cpu_before
        side.events_wall_s = time.monotonic() - began
        side.worker_cpu_s = cpu_s(self.target.worker) - worker_before
        side.client_cpu_s = [after - before for after, before in zip(self.fleet.cpu_s(), clients_before, strict=True)]
        if self.profiler is not None:
            stop_profiler(self.profiler)
            self.profiler = None
        side.rss_after_mib = rss_mib(self.target.worker)
        dumped = self.fleet.dump()
        side.duplicates, side.dropped, side.other = dumped["duplicates"], dumped["dropped"], dumped["other"]
        side.expected = self.count * len(self.sends)
        for quantity, sent in self.sends.items():
            arrivals = [1000 * (t - sent) for t in dumped["receipts"].get(quantity, [])]
            in_time = [ms for ms in arrivals if ms <= 1000 * options.timeout]
            side.latencies_ms += in_time
            if in_time:
                side.first_ms.append(min(in_time))
            side.late += len(arrivals) - len(in_time)
            side.missed += self.count - len(in_time)
        summary = side.summary()
        log(f"{self.name} at {self.count}: p50 {fmt_ms(summary['p50_ms'])}, p99 {fmt_ms(summary['p99_ms'])}, "
            f"max {fmt_ms(summary['max_ms'])}, missed {side.missed}, RSS {side.rss_mib:.0f} MiB, worker CPU "
            f"{summary['worker_cpu_ms_per_change']:.0f} ms/change, clients' CPU "
            + "/".join(f"{ms:.0f}" for ms in summary["client_cpu_ms_per_change"]) + " ms/change")
        return side

    def close(self) -> None:
        if self.profiler is not None:
            stop_profiler(self.profiler)
            self.profiler = None
        self.fleet.close()


def measure(measurements: list[Measurement], options: SimpleNamespace) -> list[Side]:
    """The apps side by side: all connected (one after the other), then their changes alternating, one at a time
    (ceiling, Fantasize, Fantasize, ceiling, ...), so that whatever else the machine does falls on both alike."""
    for measurement in measurements:
        measurement.wait_ready()
    time.sleep(options.settle)
    for measurement in measurements:
        measurement.side.rss_connected_mib = rss_mib(measurement.target.worker)
    base = secrets.randbelow(400_000) + 100_000  # distinct per change; below the shop's maximum stock
    for k in range(options.warmup):
        for measurement in measurements:
            measurement.change(base + k, measured=False)
    for measurement in measurements:
        measurement.begin()
    for k in range(options.changes):
        turn = measurements if k % 2 == 0 else measurements[::-1]
        for measurement in turn:
            measurement.change(base + options.warmup + k, measured=True)
    return [measurement.end() for measurement in measurements]


# py-spy (optional): where the worker's time goes during the measured changes


def start_profiler(target: Target, count: int, directory: Path) -> tuple[subprocess.Popen, str]:
    directory.mkdir(parents=True, exist_ok=True)
    out = directory / f"{target.app}-{count}.txt"
    py_spy = Path(sys.executable).parent / "py-spy"
    proc = subprocess.Popen([str(py_spy), "record", "--pid", str(target.worker.pid), "--format", "raw",
                             "--rate", "500", "--output", str(out), "--nonblocking"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)  # py-spy attaches
    return proc, str(out)


def stop_profiler(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# Servers


def gunicorn_options(count: int, worker_connections: int | None) -> tuple[list[str], int]:
    connections = worker_connections or max(DEFAULT_WORKER_CONNECTIONS, count + 100)
    return ["--workers", "1", "--worker-class", "gevent", "--worker-connections", str(connections)], connections


def admin_token(url: str, email: str, password: str) -> str:
    response = requests.post(f"{url}/api/v1/auth/login", json={"email": email, "password": password}, timeout=60)
    if response.status_code != 200:
        raise RealtimeError(f"the admin could not sign in: {response.status_code} {response.text[:300]}")
    return response.json()["accessToken"]


def first_product(database_url: str) -> int:
    conn = connect(database_url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT min(id) FROM products WHERE is_active")
            product = cur.fetchone()[0]
    finally:
        conn.close()
    if product is None:
        raise RealtimeError("the database has no active product (is the demo shop seeded?)")
    return product


def create_admin(env_base: dict[str, str], bin_dir: Path) -> tuple[str, str]:
    """A fresh administrator through `flask create-admin`: (email, password)."""
    email, password = f"bench-realtime-{secrets.token_hex(4)}@example.com", secrets.token_urlsafe(18)
    done = subprocess.run([str(bin_dir / "flask"), "--app", "fantasize", "create-admin", "--email", email,
                           "--password", password], cwd=ROOT, env=env_base, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=300, check=False)
    if done.returncode != 0:
        raise RealtimeError(f"flask create-admin failed ({done.returncode}): {(done.stdout + done.stderr)[-1000:]}")
    return email, password


def run_realtime(env_base: dict[str, str], bin_dir: Path, database_url: str, redis_url: str,
                 clients: tuple[int, ...] = DEFAULT_CLIENTS, apps: tuple[str, ...] = APPS,
                 changes: int = CHANGES, warmup: int = 2, timeout: float = 5.0, gap: float = 0.2, settle: float = 1.0,
                 client_processes: int = 2, concurrency: int = 50, connect_timeout: float = 30.0,
                 worker_connections: int | None = None, ceiling_message_queue: bool = False,
                 profile_dir: Path | None = None, profile_apps: tuple[str, ...] = ("fantasize",),
                 progress: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """Measure each N of `clients` on each app; the database must hold the demo shop (`flask seed`).

    `env_base` is bench/run's production environment (harness.base_env); REDIS_URL there is the instance's Redis and
    its Socket.IO message queue. Returns one dict per N: {"clients", "fantasize": {...}, "ceiling": {...},
    "p99_ratio", "rss_ratio", "met"} (an app left out of `apps` is None), for render_section."""
    from bench.harness import HIGH_LIMIT, HarnessError, Server, free_port  # bench/run's servers, ports, limits

    if progress is not None:
        PROGRESS[0] = progress
    options = SimpleNamespace(changes=changes, warmup=warmup, timeout=timeout, gap=gap, settle=settle,
                              client_processes=client_processes, concurrency=concurrency,
                              connect_timeout=connect_timeout, profile_dir=profile_dir, profile_apps=profile_apps)
    LOGS.mkdir(parents=True, exist_ok=True)
    # The clients run from this process's interpreter (the project's .venv, with aiohttp): the servers' virtualenv
    # (bench/run serves from one built from requirements.txt alone) has no client side.
    python = Path(sys.executable)
    product = first_product(database_url) if "fantasize" in apps else 1  # the ceiling has any product
    admin = create_admin(env_base, bin_dir) if "fantasize" in apps else None
    rows = []
    for count in clients:
        row: dict[str, Any] = {"clients": count, "product": product, **{app: None for app in APPS}}
        opts, connections = gunicorn_options(count, worker_connections)
        servers, measurements = [], []
        try:
            for app in (a for a in APPS if a in apps):
                env = {**env_base, "APP_PORT": str(free_port()), "WEB_CONCURRENCY": "1"}
                if app == "fantasize":
                    env["SOCKETIO_MESSAGE_QUEUE"] = redis_url
                    # The admin's stock PATCHes: limits stay on (counted in Redis) but none is met.
                    env["RATE_LIMIT_ADMIN"] = f"{HIGH_LIMIT} per 5 minutes"
                    server = Server(APP_NAMES[app], "wsgi:app", env, opts, LOGS / f"realtime-fantasize-{count}.log",
                                    bin_dir / "gunicorn")
                else:
                    if ceiling_message_queue:
                        env["BENCH_CEILING_MESSAGE_QUEUE"] = redis_url
                    server = Server(APP_NAMES[app], "bench.realtime_ceiling:app", env, opts,
                                    LOGS / f"realtime-ceiling-{count}.log", bin_dir / "gunicorn")
                servers.append(server)  # before it starts, so that a failed start is stopped too
                server.start("/api/v1/versions" if app == "fantasize" else "/health")
                if app == "fantasize":
                    headers = {"Authorization": f"Bearer {admin_token(server.url, *admin)}"}
                    target = Target(app, server.url, f"/api/v1/products/{product}/stock", headers, worker_of(server))
                else:
                    target = Target(app, server.url, f"/products/{product}/stock", {}, worker_of(server))
                measurements.append(Measurement(target, product, count, options, python, connections))
            for side in measure(measurements, options):
                row[side.app] = side.summary()
        except (RealtimeError, HarnessError, requests.RequestException, OSError, psutil.Error) as exc:
            tails = "\n".join(f"{server.name}:\n{server.log_tail(10)}" for server in servers)
            raise RealtimeError(f"at {count} clients: {exc}\n{tails}") from exc
        finally:
            for measurement in measurements:
                measurement.close()
            for server in servers:
                server.stop()
        row.update(judge(row))
        rows.append(row)
    return rows


def run_for_harness(run, clients: tuple[int, ...] = DEFAULT_CLIENTS, **options: Any) -> list[dict[str, Any]]:
    """run_realtime with bench/run's `Run` (bench/harness.py): its production environment, virtualenv, seeded
    database, Redis and progress lines. Keys, and the Socket.IO channel, under a prefix of the real-time rows' own
    inside bench/run's (so its clean-up deletes them, and its own Fantasize servers, still running, hear nothing)."""
    from bench import harness

    prefix = f"{harness.KEY_PREFIX}realtime:"
    env = {**run.env_base, "CACHE_KEY_PREFIX": f"{prefix}cache:", "RATE_LIMIT_KEY_PREFIX": f"{prefix}limits"}
    return run_realtime(env, run.bin, run.args.database_url, run.args.redis_url, clients, progress=harness.log,
                        **options)


def judge(row: dict[str, Any]) -> dict[str, Any]:
    mine, ceiling = row.get("fantasize"), row.get("ceiling")
    if not mine or not ceiling:
        return {"p99_ratio": None, "rss_ratio": None, "met": None}
    p99_ratio = (mine["p99_ms"] / ceiling["p99_ms"]) if mine["p99_ms"] and ceiling["p99_ms"] else None
    rss_ratio = mine["rss_mib"] / ceiling["rss_mib"] if ceiling["rss_mib"] else None
    met = (p99_ratio is not None and p99_ratio <= GOAL_P99_RATIO and mine["missed"] == 0
           and rss_ratio is not None and rss_ratio <= GOAL_RSS_RATIO)
    return {"p99_ratio": p99_ratio, "rss_ratio": rss_ratio, "met": met}


# Rendering


def fmt_ms(ms: float | None) -> str:
    if ms is None:
        return "-"
    return f"{ms / 1000:.2f} s" if ms >= 1000 else f"{ms:.0f} ms" if ms >= 10 else f"{ms:.1f} ms"


def table(header: list[str], rows: list[list[str]], right: set[int]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join("---:" if i in right else "---" for i in range(len(header))) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def render_section(rows: list[dict[str, Any]],
                   heading: str = "## Real time: inventory_update to N clients") -> list[str]:
    """The markdown section for bench/run's table (and bench/results/realtime.md): goals, then the details."""
    if not rows:
        return []
    first = next(side for row in rows for side in (row.get("fantasize"), row.get("ceiling")) if side)
    out = [heading, "",
           f"N python-socketio asyncio clients (websocket transport, over {len(first['client_cpu_s'])} process(es)) "
           f"track product {rows[0]['product']} on ONE gunicorn gevent worker per app; "
           f"{first['expected'] // first['clients']} stock changes per app, one at a time and alternating between "
           "the two apps (both up, both with N connected), each a PATCH of the stock; latency from just before the "
           "PATCH is sent to a client's receipt of `inventory_update`; missed: (client, change) pairs without the "
           "event within the timeout. RSS: the worker's with N connected. Ceiling: bench/realtime_ceiling.py "
           f"(Flask-SocketIO only, no database). Goal: p99 <= {GOAL_P99_RATIO:g}x the ceiling's, none missed, RSS <= "
           f"{GOAL_RSS_RATIO:g}x the ceiling's.", ""]

    def cells(side: dict | None) -> list[str]:
        if not side:
            return ["-"] * 5
        missed = f"{side['missed']:,}" if not side["missed"] else f"**{side['missed']:,} of {side['expected']:,}**"
        return [fmt_ms(side["p50_ms"]), fmt_ms(side["p99_ms"]), fmt_ms(side["max_ms"]), missed,
                f"{side['rss_mib']:.0f} MiB"]

    body = []
    for row in rows:
        p99 = f"{row['p99_ratio']:.2f}" if row.get("p99_ratio") is not None else "-"
        rss = f"{row['rss_ratio']:.2f}" if row.get("rss_ratio") is not None else "-"
        met = "-" if row.get("met") is None else "yes" if row["met"] else "**no**"
        body.append([f"{row['clients']:,}", *cells(row.get("fantasize")), *cells(row.get("ceiling")),
                     f"{p99} (<= {GOAL_P99_RATIO:g})", f"{rss} (<= {GOAL_RSS_RATIO:g})", met])
    out += table(["clients", "Fantasize p50", "p99", "max", "missed", "RSS", "ceiling p50", "p99", "max", "missed",
                  "RSS", "p99 ratio", "RSS ratio", "met?"], body, set(range(0, 13)))
    out += ["", "Details: connecting; the first client's arrival per change (median over the changes: the time before "
            "the fan-out starts); the PATCH's own time (send to response); the worker's CPU per change, its RSS "
            "before any client, with all connected and after the changes, what each client added to it; the load "
            "generator's CPU (each client process: share of one core over the measured phase, which alternates "
            "between the apps, and CPU time per change).", ""]
    body = []
    for row in rows:
        for app in APPS:
            side = row.get(app)
            if not side:
                continue
            extra = []
            if side["connect_failed"]:
                extra.append(f"{side['connect_failed']} failed to connect")
            for key, word in (("late", "late"), ("dropped", "dropped by the server"), ("duplicates", "duplicate")):
                if side[key]:
                    extra.append(f"{side[key]} {word}")
            body.append([f"{row['clients']:,}", side["name"], f"{side['connected']:,} in {side['connect_s']:.1f} s",
                         f"{side['worker_connections']:,}", fmt_ms(side["first_p50_ms"]),
                         fmt_ms(side["response_p50_ms"]), fmt_ms(side["response_max_ms"]),
                         f"{side['worker_cpu_ms_per_change']:.0f} ms",
                         f"{side['rss_idle_mib']:.0f} / {side['rss_connected_mib']:.0f} / "
                         f"{side['rss_after_mib']:.0f} MiB", f"{side['rss_per_client_kib']:.0f} KiB",
                         " + ".join(f"{share:.0%} ({ms:.0f} ms)" for share, ms in
                                    zip(side["client_cpu_share"], side["client_cpu_ms_per_change"], strict=True)),
                         "; ".join(extra) or "-"])
    out += table(["clients", "app", "connected", "worker connections", "first arrival p50", "PATCH p50", "PATCH max",
                  "worker CPU per change", "RSS idle / connected / after changes", "RSS per client",
                  "client CPU (per change)",
                  "notes"], body, {0, 3, 4, 5, 6, 7, 9})
    return out


def render(rows: list[dict[str, Any]], setup: str) -> str:
    return "\n".join(["# bench/realtime: Socket.IO fan-out, Fantasize against the ceiling", "", setup, "",
                      *render_section(rows)]) + "\n"


# Main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    env = os.environ.get
    parser = argparse.ArgumentParser(prog="bench/realtime", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", default=env("BENCH_RT_CLIENTS", ",".join(map(str, DEFAULT_CLIENTS))),
                        help="comma-separated client counts (default 200,500,1000)")
    parser.add_argument("--apps", default="fantasize,ceiling", help="fantasize, ceiling or both (default both)")
    parser.add_argument("--changes", type=int, default=CHANGES, help=f"measured stock changes per N and app "
                        f"(default {CHANGES})")
    parser.add_argument("--warmup", type=int, default=2, help="unmeasured changes first (default 2)")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds after which an event is missed (5)")
    parser.add_argument("--gap", type=float, default=0.2, help="seconds between one change's end and the next (0.2)")
    parser.add_argument("--client-processes", type=int, default=2, help="load-generating processes (default 2)")
    parser.add_argument("--concurrency", type=int, default=50, help="clients connecting at once per process (50)")
    parser.add_argument("--worker-connections", type=int, default=None,
                        help="gunicorn --worker-connections (default max(1000, N + 100))")
    parser.add_argument("--ceiling-message-queue", action="store_true",
                        help="route the ceiling's emit through the Redis message queue too")
    parser.add_argument("--profile", type=Path, default=None, metavar="DIR",
                        help="py-spy record (raw) the worker during the measured changes, into DIR")
    parser.add_argument("--profile-apps", default="fantasize", help="apps to profile with --profile (fantasize)")
    parser.add_argument("--venv", type=Path, default=Path(env("BENCH_VENV", str(ROOT / ".venv"))))
    parser.add_argument("--database-url", default=env("BENCH_RT_DATABASE_URL",
                                                      "postgresql://postgres@127.0.0.1:5432/fantasize_bench_rt"),
                        help="PostgreSQL database to drop, create and seed (unless --no-prepare)")
    parser.add_argument("--redis-url", default=env("BENCH_RT_REDIS_URL", "redis://127.0.0.1:6379/6"))
    parser.add_argument("--no-prepare", action="store_true", help="use the database as it is (seeded already)")
    parser.add_argument("--output", type=Path, default=RESULTS / "realtime.md")
    args = parser.parse_args(argv)
    try:
        args.client_counts = tuple(int(n) for n in args.clients.split(",") if n.strip())
    except ValueError:
        parser.error("--clients takes comma-separated integers")
    args.app_list = tuple(a.strip() for a in args.apps.split(",") if a.strip())
    if not args.client_counts or any(n < 1 for n in args.client_counts):
        parser.error("--clients needs positive counts")
    if not set(args.app_list) <= set(APPS) or not args.app_list:
        parser.error(f"--apps: choose among {', '.join(APPS)}")
    return args


def delete_keys(redis_url: str, prefix: str = KEY_PREFIX) -> int:
    """Delete the standalone run's Redis keys (its cache, limits and real-time figures)."""
    redis = Redis.from_url(redis_url, socket_timeout=5)
    try:
        keys = list(redis.scan_iter(match=f"{prefix}*", count=1000))
        return sum(redis.delete(*keys[i:i + 1000]) for i in range(0, len(keys), 1000))
    finally:
        redis.close()


def on_term(signum, _frame) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    from bench import harness

    args = parse_args(argv)
    signal.signal(signal.SIGTERM, on_term)
    if not (args.venv / "bin" / "gunicorn").exists():
        print(f"bench/realtime: no gunicorn in {args.venv} (make install)", file=sys.stderr)
        return 2
    started, load_before = datetime.now(UTC), os.getloadavg()
    LOGS.mkdir(parents=True, exist_ok=True)
    env_base = harness.base_env(SimpleNamespace(workers=1, database_url=args.database_url, redis_url=args.redis_url))
    # Keys, and the Socket.IO channel (`<CACHE_KEY_PREFIX>socketio`; Redis pub/sub ignores the database number), of
    # this bench's own, so that a bench/run going on at the same time neither hears nor disturbs this one.
    env_base.update(CACHE_KEY_PREFIX=f"{KEY_PREFIX}cache:", RATE_LIMIT_KEY_PREFIX=f"{KEY_PREFIX}limits")
    context = SimpleNamespace(args=args, bin=args.venv / "bin", env_base=env_base)
    try:
        delete_keys(args.redis_url)
        if "fantasize" in args.app_list and not args.no_prepare:
            harness.prepare_database(context)
        rows = run_realtime(env_base, args.venv / "bin", args.database_url, args.redis_url, args.client_counts,
                            args.app_list, args.changes, args.warmup, args.timeout, args.gap,
                            client_processes=args.client_processes, concurrency=args.concurrency,
                            worker_connections=args.worker_connections,
                            ceiling_message_queue=args.ceiling_message_queue, profile_dir=args.profile,
                            profile_apps=tuple(args.profile_apps.split(",")))
    except (RealtimeError, harness.HarnessError) as exc:
        print(f"bench/realtime: {exc}", file=sys.stderr)
        return 1
    finally:
        try:
            delete_keys(args.redis_url)
        except Exception as exc:  # noqa: BLE001 - cleaning up must not hide the run's own outcome
            print(f"bench/realtime: could not delete the run's Redis keys: {exc}", file=sys.stderr)
    text = render(rows, setup_line(args, started, load_before))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text, encoding="utf-8")
    (args.output.with_suffix(".json")).write_text(json.dumps(rows, indent=1, default=str), encoding="utf-8")
    print(text)
    log(f"written to {args.output}")
    return 0


def setup_line(args: argparse.Namespace, started: datetime, load_before: tuple[float, ...]) -> str:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                            check=False).stdout.strip() or "?"
    dirty = subprocess.run(["git", "--no-optional-locks", "status", "--porcelain", "--untracked-files=no"],
                           cwd=ROOT, capture_output=True, text=True, check=False).stdout.strip()
    load = "/".join(f"{x:.1f}" for x in load_before)
    load_end = "/".join(f"{x:.1f}" for x in os.getloadavg())
    return (f"{started:%Y-%m-%d %H:%M} UTC, commit {commit}{' + uncommitted changes' if dirty else ''}, Python "
            f"{platform.python_version()}, {platform.system()} {os.cpu_count()} CPUs (load average {load} at the "
            f"start, {load_end} at the end). gunicorn -c gunicorn.conf.py --workers 1 --worker-class gevent, "
            f"FLASK_ENV=production; apps: {', '.join(args.app_list)}"
            + ("; Fantasize on PostgreSQL + Redis (message queue) with the demo shop. " if "fantasize" in args.app_list
               else ". ")
            + ("The ceiling emits through the Redis message queue too. " if args.ceiling_message_queue else "")
            + f"{args.changes} measured changes after {args.warmup} warm-up ones, timeout {args.timeout:g} s, "
            f"{args.client_processes} client process(es).")


if __name__ == "__main__":
    sys.exit(main())
