"""`bench/run --cluster`: Fantasize behind nginx, one instance against two, in one run (issue 15).

    bench/run --cluster [--quick] [--duration 10] [--rows product,list100-uncached]
    make bench BENCH_ARGS=--cluster

Two reads, the same requests as bench/run's rows: the cached single product (`product`) and the uncached list of
100 (`list100-uncached`, CACHE_ENABLED=false). bench/harness.py builds the bench database and stops everything, as
for its other rows; here, for each read:

1. Two local clusters (deploy/local_cluster.py), on the bench's PostgreSQL database and Redis, each under a Redis
   prefix of its own: nginx in front of two instances, then nginx in front of one. An instance is what production
   runs: one gunicorn process with one gevent worker (bench/run's production settings, PROXY_COUNT=1). nginx
   balances round robin here (affinity=False): wrk's connections all come from 127.0.0.1, and the production
   upstream's hash on the client address would send every one of them to the same instance. Plain HTTP needs no
   affinity (only Socket.IO's long-polling does), and what a request costs an instance does not depend on how
   nginx chose it.
2. Before the second cluster starts and before any load, counts per request through the two-instance nginx,
   REQUESTS_COUNTED requests one after the other: the Redis commands the bench's database receives (MONITOR;
   less what the instances send while idle, measured just before; the monitoring window's once-a-second writes
   apart), and PostgreSQL transactions (pg_stat_database; a read outside a transaction runs in autocommit, so one
   per statement).
3. After a warm-up through each nginx, wrk -t2 -c50 through one and the other in turns (ABBA, PAIRED_ROUNDS runs
   each, summed, as bench/run's `monitoring` row: two runs on shared cores drift apart by more than what is
   measured). Around each run: the CPU (user + system, from /proc) of each instance's gunicorn worker and of nginx
   (master and workers), and the requests each instance answered (its http_requests_total, from /metrics).
4. Once, at the end, for a Socket.IO event: an admin's stock change (PATCH) through nginx with a client tracking
   the product on each instance, the PUBLISH commands it causes and how many subscribers each reached (PUBSUB
   NUMSUB), and the events the clients received.

Goals (issue 15), per request, as two processes on one machine cannot double the throughput of the 2 cores that
nginx, the instances and wrk share: an instance's worker CPU per request with two behind nginx within
GOAL_INSTANCE_CPU_RATIO of one behind nginx (state shared through PostgreSQL and Redis adds no cost per request),
and nginx's CPU per request at most GOAL_NGINX_SHARE of an instance's. The throughput ratio, two against one, is
reported beside them. The tables are printed and written to bench/results/cluster.md.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass, field

import psutil
import requests
import socketio
from prometheus_client.parser import text_string_to_metric_families
from redis import Redis
from sqlalchemy.engine import make_url

from bench import harness, realtime
from bench.database import connect
from deploy.local_cluster import Cluster

ROWS = {  # row key -> (bench/run's read it repeats, cached)
    "product": ("product", True),
    "list100-uncached": ("list100", False),
}
GOAL_INSTANCE_CPU_RATIO = 1.1  # an instance's CPU per request, two behind nginx over one behind nginx, at most
GOAL_NGINX_SHARE = 0.15  # nginx's CPU per request over an instance's, at most
REQUESTS_COUNTED = 400
IDLE_S = 3.0  # how long the instances' own Redis traffic (monitoring window, sweeps) is counted with no request
STOCK_CHANGES = 5
PGSTAT_SETTLE_S = 11  # a PostgreSQL 15 backend reports its counts when idle, at the latest 10 s later
COUNT_TRIES = 3


@dataclass
class Arm:
    """One cluster of a row: its wrk runs, and what each instance and nginx did during them."""

    instances: int
    runs: list[harness.Saturation] = field(default_factory=list)
    instance_cpu_s: list[float] = field(default_factory=list)
    instance_requests: list[int] = field(default_factory=list)
    nginx_cpu_s: float = 0.0
    instance_switches: list[int] = field(default_factory=list)  # each worker's context switches, involuntary

    @property
    def load(self) -> harness.Saturation:
        return harness.combined(self.runs)

    @property
    def served(self) -> int:
        return sum(self.instance_requests)

    @property
    def instance_us(self) -> list[float | None]:
        """Each instance's worker CPU per request it answered, µs."""
        return [cpu / n * 1e6 if n else None for cpu, n in zip(self.instance_cpu_s, self.instance_requests,
                                                                 strict=True)]

    @property
    def switches_per_request(self) -> float:
        """The workers' involuntary context switches (the kernel taking the core away) per request."""
        return sum(self.instance_switches) / self.served if self.served else 0.0

    @property
    def mean_instance_us(self) -> float:
        return sum(self.instance_cpu_s) / self.served * 1e6 if self.served else 0.0

    @property
    def nginx_us(self) -> float:
        return self.nginx_cpu_s / self.served * 1e6 if self.served else 0.0

    @property
    def nginx_share(self) -> float:
        return self.nginx_us / self.mean_instance_us if self.mean_instance_us else 0.0


@dataclass
class Counts:
    """Per request, through nginx: Redis commands by name (those a Lua script runs apart), PostgreSQL transactions."""

    requests: int
    redis: dict[str, float]
    redis_in_scripts: dict[str, float]
    transactions: float | None
    window_writes: float = 0.0  # the monitoring window's MULTI/EXEC writes per instance and second
    window_commands: float = 0.0  # commands in one such write, MULTI and EXEC included

    @property
    def redis_total(self) -> float:
        return sum(self.redis.values())


@dataclass
class PubSub:
    """Per stock change (one Socket.IO event, inventory_update, and whatever else the change emits)."""

    changes: int
    instances: int
    published: dict[str, float]  # channel -> PUBLISH commands per change
    delivered: dict[str, float]  # channel -> messages received by subscribers per change
    events: float  # inventory_update events the clients (one per instance) received per change


@dataclass
class ClusterRow:
    key: str
    name: str
    path: str
    cached: bool
    one: Arm = field(default_factory=lambda: Arm(1))
    two: Arm = field(default_factory=lambda: Arm(2))
    counts: Counts | None = None

    @property
    def throughput_ratio(self) -> float:
        return self.two.load.rate / self.one.load.rate if self.one.load.rate else 0.0

    @property
    def cpu_ratio(self) -> float:
        """The costlier instance's CPU per request with two behind nginx over the one instance's alone."""
        worst = max((us for us in self.two.instance_us if us is not None), default=0.0)
        return worst / self.one.mean_instance_us if self.one.mean_instance_us else 0.0

    @property
    def cpu_met(self) -> bool:
        return 0 < self.cpu_ratio <= GOAL_INSTANCE_CPU_RATIO and not self.errors

    @property
    def nginx_met(self) -> bool:
        return all(0 < arm.nginx_share <= GOAL_NGINX_SHARE for arm in (self.one, self.two))

    @property
    def errors(self) -> int:
        return self.one.load.error_count + self.two.load.error_count


@dataclass
class ClusterRun:
    rows: list[ClusterRow] = field(default_factory=list)
    pubsub: PubSub | None = None
    nginx_version: str = ""


# Measuring


def served(instance) -> int:
    """The requests an instance has answered (its /metrics; the scrape itself is not counted)."""
    response = requests.get(f"{instance.url}/metrics", timeout=10)
    if response.status_code != 200:
        raise harness.HarnessError(f"{instance.url}/metrics answered {response.status_code}")
    total = 0.0
    for family in text_string_to_metric_families(response.text):
        if family.name == "fantasize_http_requests":
            total += sum(sample.value for sample in family.samples if sample.name.endswith("_total"))
    return int(total)


def measure_arm(cluster: Cluster, arm: Arm, path: str, seconds: float) -> None:
    """One wrk run through `cluster`'s nginx, added to `arm` with its instances' and nginx's CPU."""
    instances = cluster.instances
    workers = [instance.worker_pid for instance in instances]
    nginx = cluster.nginx_pids
    before = [served(instance) for instance in instances]  # scraped outside the CPU measured
    cpu_before = [harness.cpu_s([pid]) for pid in workers]
    switches_before = [psutil.Process(pid).num_ctx_switches().involuntary for pid in workers]
    nginx_before = harness.cpu_s(nginx)
    load = harness.wrk(cluster.url + path, seconds)
    cpu_after = [harness.cpu_s([pid]) for pid in workers]
    switches = [psutil.Process(pid).num_ctx_switches().involuntary - before
                for pid, before in zip(workers, switches_before, strict=True)]
    nginx_after = harness.cpu_s(nginx)
    after = [served(instance) for instance in instances]
    if [instance.worker_pid for instance in instances] != workers or cluster.nginx_pids != nginx:
        raise harness.HarnessError("an instance's worker or an nginx process was replaced during a run")
    spent = [b - a for a, b in zip(cpu_before, cpu_after, strict=True)]
    answered = [b - a for a, b in zip(before, after, strict=True)]
    load.server_cpu_s = sum(spent)
    arm.runs.append(load)
    arm.instance_cpu_s = [x + y for x, y in zip(arm.instance_cpu_s or [0.0] * len(spent), spent, strict=True)]
    arm.instance_requests = [x + y for x, y in zip(arm.instance_requests or [0] * len(answered), answered,
                                                   strict=True)]
    arm.nginx_cpu_s += nginx_after - nginx_before
    arm.instance_switches = [x + y for x, y in zip(arm.instance_switches or [0] * len(switches), switches,
                                                   strict=True)]
    each = ", ".join(harness.fmt_us(cpu / n * 1e6 if n else None) for cpu, n in zip(spent, answered, strict=True))
    harness.log(f"  {len(instances)} behind nginx: {load.rate:,.0f} req/s, instance CPU {each}/req, nginx "
                f"{harness.fmt_us((nginx_after - nginx_before) / max(1, sum(answered)) * 1e6)}/req, worker "
                f"preemptions {sum(switches) / max(1, sum(answered)):.2f}/req")


class CommandCount:
    """The commands one Redis database receives while it is open (MONITOR, on a connection of its own): those a
    client sent, and apart those a Lua script ran and the MULTI/EXEC transactions (the app's only ones are the
    monitoring window's writes, once a second per instance whatever the load: no cost per request). Pub/sub ignores
    databases, but MONITOR still names the database of the client that published."""

    def __init__(self, redis_url: str) -> None:
        self.redis = Redis.from_url(redis_url, socket_timeout=30)
        self.db = self.redis.connection_pool.connection_kwargs.get("db", 0)
        self.marker = f"{harness.KEY_PREFIX}monitor-end-{os.getpid()}-{time.monotonic_ns()}"
        self.sent: list[str] = []
        self.scripted: list[str] = []
        self.transactions: list[list[str]] = []  # each: its commands from MULTI to EXEC
        self.seconds = 0.0
        self.error: BaseException | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._listen, daemon=True)

    def _listen(self) -> None:
        try:
            with self.redis.monitor() as monitor:
                self._ready.set()
                pending: dict[tuple[str, str], list[str]] = {}  # client -> its transaction so far
                while True:
                    seen = monitor.next_command()
                    if seen["db"] != self.db:
                        continue
                    command, client = seen["command"], (seen["client_address"], seen["client_port"])
                    if command == f"ECHO {self.marker}":
                        return
                    name = command_name(command)
                    if seen["client_type"] == "lua":
                        self.scripted.append(command)
                    elif name == "MULTI":
                        pending[client] = [command]
                    elif client in pending:
                        pending[client].append(command)
                        if name in ("EXEC", "DISCARD"):
                            self.transactions.append(pending.pop(client))
                    else:
                        self.sent.append(command)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller in __exit__
            self.error = exc
            self._ready.set()

    def __enter__(self) -> CommandCount:
        self._thread.start()
        self._ready.wait(10)
        time.sleep(0.2)  # MONITOR answers OK before the server starts feeding it
        self._began = time.monotonic()
        return self

    def __exit__(self, *_exc) -> None:
        self.seconds = time.monotonic() - self._began
        self.redis.echo(self.marker)
        self._thread.join(30)
        self.redis.close()
        if self.error is not None:
            raise harness.HarnessError(f"Redis MONITOR failed: {self.error}")

    def by_name(self, commands: list[str]) -> dict[str, int]:
        names: dict[str, int] = {}
        for command in commands:
            names[command_name(command)] = names.get(command_name(command), 0) + 1
        return names


def command_name(command: str) -> str:
    return command.split(" ", 1)[0].upper()


def transactions(database_url: str) -> int:
    """Transactions committed and rolled back in the database so far, read from another database (so the reading
    counts for that one)."""
    conn = connect(database_url, "postgres")
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = %s",
                        (make_url(database_url).database,))
            return int(cur.fetchone()[0])
    finally:
        conn.close()


def autovacuum_runs(database_url: str) -> int:
    """Autovacuum and autoanalyze runs so far on the database's tables, the catalogs' included: their transactions
    count for the database too, so a count during which one ran is taken again."""
    conn = connect(database_url)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT coalesce(sum(autovacuum_count + autoanalyze_count), 0) FROM pg_stat_all_tables")
            return int(cur.fetchone()[0])
    finally:
        conn.close()


def count_per_request(run, cluster: Cluster, path: str, cached: bool) -> Counts:
    """REQUESTS_COUNTED requests through nginx, one after the other: Redis commands and PostgreSQL transactions
    each, less the Redis commands the instances send on their own (counted for IDLE_S with no request), and the
    monitoring window's writes per instance and second. Taken again (up to COUNT_TRIES times) when autovacuum
    visited the database meanwhile."""
    database = run.args.database_url
    session = requests.Session()
    session.get(cluster.url + path, timeout=30)  # the page stored, the connections open
    for _ in range(COUNT_TRIES):
        time.sleep(PGSTAT_SETTLE_S)
        vacuumed = autovacuum_runs(database)
        time.sleep(1)  # that reading's own transaction reported (a backend reports as it exits)
        counts = count_once(run, cluster, session, path, cached)
        if autovacuum_runs(database) == vacuumed:
            return counts
        harness.log("autovacuum ran during the count of PostgreSQL transactions: counting again")
    run.notes.append(f"cluster {path}: autovacuum ran during every count; PostgreSQL transactions include its own")
    return counts


def count_once(run, cluster: Cluster, session: requests.Session, path: str, cached: bool) -> Counts:
    xacts_before = transactions(run.args.database_url)
    with CommandCount(run.args.redis_url) as idle:
        time.sleep(IDLE_S)
    with CommandCount(run.args.redis_url) as busy:
        for _ in range(REQUESTS_COUNTED):
            response = session.get(cluster.url + path, timeout=30)
            if response.status_code != 200 or (response.headers.get("X-Cache") == "HIT") != cached:
                raise harness.HarnessError(f"{path} through nginx answered {response.status_code}, X-Cache "
                                           f"{response.headers.get('X-Cache')}")
    time.sleep(PGSTAT_SETTLE_S)  # every backend has reported the requests' transactions
    xacts = transactions(run.args.database_url) - xacts_before

    def per_request(busy_names: dict[str, int], idle_names: dict[str, int]) -> dict[str, float]:
        result = {}
        for name, count in busy_names.items():
            own = (count - idle_names.get(name, 0) * busy.seconds / idle.seconds) / REQUESTS_COUNTED
            if own >= 0.005:
                result[name] = own
        return dict(sorted(result.items(), key=lambda item: (-item[1], item[0])))

    writes = busy.transactions
    return Counts(REQUESTS_COUNTED, per_request(busy.by_name(busy.sent), idle.by_name(idle.sent)),
                  per_request(busy.by_name(busy.scripted), idle.by_name(idle.scripted)), xacts / REQUESTS_COUNTED,
                  window_writes=len(writes) / busy.seconds / len(cluster.instances),
                  window_commands=sum(len(commands) for commands in writes) / len(writes) if writes else 0.0)


def count_pubsub(run, cluster: Cluster, product: int, admin: tuple[str, str]) -> PubSub:
    """STOCK_CHANGES stock changes by an admin through nginx, with a Socket.IO client tracking the product on each
    instance (an instance subscribes to the message queue once it holds a socket): each channel's PUBLISH commands
    and subscribers (PUBSUB NUMSUB) per change, and the inventory_update events the clients received."""
    token = realtime.admin_token(cluster.url, *admin)
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    redis = Redis.from_url(run.args.redis_url, socket_timeout=10)
    published: dict[str, int] = {}
    delivered: dict[str, int] = {}
    received: list[list] = []  # each client's inventory_update payloads
    clients = []
    try:
        for instance in cluster.instances:
            client = socketio.Client(reconnection=False)
            updates: list = []
            received.append(updates)
            client.on("inventory_update", updates.append)
            clients.append(client)
            client.connect(instance.url, transports=["websocket"], wait_timeout=10)
            ack = client.call("track_inventory", product, timeout=10)
            if not isinstance(ack, dict) or ack.get("productId") != product:
                raise harness.HarnessError(f"track_inventory on {instance.url} acknowledged {ack!r}")
        with CommandCount(run.args.redis_url) as seen:
            for n in range(STOCK_CHANGES):
                response = session.patch(f"{cluster.url}/api/v1/products/{product}/stock",
                                         json={"quantity": 1000 + n}, timeout=30)
                if response.status_code != 200:
                    raise harness.HarnessError(f"the stock change answered {response.status_code}: "
                                               f"{response.text[:300]}")
            deadline = time.monotonic() + 5  # an emit leaves after the answer, from the outbox
            while sum(map(len, received)) < STOCK_CHANGES * len(clients) and time.monotonic() < deadline:
                time.sleep(0.1)
        for command in seen.sent:
            words = command.split(" ", 2)
            if command_name(command) == "PUBLISH" and len(words) > 1:
                published[words[1]] = published.get(words[1], 0) + 1
        for channel, count in published.items():
            subscribers = dict(redis.pubsub_numsub(channel)).get(channel.encode(), 0)
            delivered[channel] = count * subscribers
    except (socketio.exceptions.SocketIOError, requests.RequestException) as exc:
        raise harness.HarnessError(f"the pub/sub count failed: {exc}") from exc
    finally:
        for client in clients:
            client.disconnect()
        redis.close()
    return PubSub(STOCK_CHANGES, len(cluster.instances),
                  {channel: n / STOCK_CHANGES for channel, n in published.items()},
                  {channel: n / STOCK_CHANGES for channel, n in delivered.items()},
                  sum(map(len, received)) / STOCK_CHANGES)


def cluster_env(run, number: int, cached: bool) -> dict[str, str]:
    """bench/run's production environment for one cluster: its own Redis prefix (page cache, limits, Socket.IO
    channel) inside the bench's, one worker per instance, and no limit an admin's stock changes could meet."""
    prefix = f"{harness.KEY_PREFIX}cluster{number}:"
    return {**run.env_base, "WEB_CONCURRENCY": "1", "CACHE_ENABLED": "true" if cached else "false",
            "ENABLE_PERFORMANCE_MONITORING": "true", "CACHE_KEY_PREFIX": f"{prefix}cache:",
            "RATE_LIMIT_KEY_PREFIX": f"{prefix}limits", "RATE_LIMIT_ADMIN": f"{harness.HIGH_LIMIT} per 5 minutes",
            "SOCKETIO_MESSAGE_QUEUE": run.args.redis_url}


def start_cluster(stack: ExitStack, run, number: int, instances: int, cached: bool) -> Cluster:
    logs = harness.RESULTS / "logs" / f"cluster-{number}"
    shutil.rmtree(logs, ignore_errors=True)  # this run's logs only (nginx's access lines add up quickly)
    cluster = Cluster(instances=instances, port=harness.free_port(), env=cluster_env(run, number, cached),
                      state_dir=logs / "state", affinity=False, log_dir=logs,
                      bin_dir=run.bin)  # bench/run's virtualenv (--venv), as its other servers serve from
    stack.callback(cluster.stop)  # before it starts, so that a failed start is stopped too
    harness.log(f"starting nginx and {instances} instance{'s' * (instances > 1)} (cluster {number}) on {cluster.url}")
    return cluster.start(prepare=False)


def measure_row(run, result: ClusterRun, row: ClusterRow, number: int, admin: tuple[str, str] | None,
                product: int) -> None:
    seconds, warm = run.args.duration, run.warm_s
    with ExitStack() as stack:
        # The counts first, on the two-instance cluster alone: no load before them whose transactions PostgreSQL
        # would still be reporting, and no other instance writing its own monitoring window to Redis.
        two = start_cluster(stack, run, number + 1, 2, row.cached)
        row.counts = count_per_request(run, two, row.path, row.cached)
        harness.log(f"cluster {row.key}: {row.counts.redis_total:.2f} Redis commands and "
                    f"{row.counts.transactions:.2f} PostgreSQL transactions per request")
        one = start_cluster(stack, run, number, 1, row.cached)
        sides = ((one, row.one), (two, row.two))
        for cluster, _arm in sides[::-1]:  # the side measured first warmed last, right before its first run
            harness.wrk(cluster.url + row.path, warm)  # keep-alive connections, pools, the stored page
            state = requests.get(cluster.url + row.path, timeout=30).headers.get("X-Cache")
            if (state == "HIT") != row.cached:
                run.notes.append(f"cluster {row.key}: after the warm-up nginx answered X-Cache: {state}")
        for number_ in range(harness.PAIRED_ROUNDS):
            for cluster, arm in (sides if number_ % 2 == 0 else sides[::-1]):
                measure_arm(cluster, arm, row.path, seconds)
        for label, arm in (("1 instance", row.one), ("2 instances", row.two)):
            load = arm.load
            harness.log(f"cluster {row.key}: {label} {load.rate:,.0f} req/s, p99 {load.p99_ms:,.1f} ms, instance "
                        f"CPU {', '.join(harness.fmt_us(us) for us in arm.instance_us)}/req, nginx "
                        f"{harness.fmt_us(arm.nginx_us)}/req" + (f", errors {load.errors}" if load.errors else ""))
            if load.errors:
                run.notes.append(f"cluster {row.key}, {label}: wrk counted errors: {load.errors}")
        if admin is not None:
            result.pubsub = count_pubsub(run, two, product, admin)


def measure(run) -> ClusterRun:
    result = ClusterRun(nginx_version=nginx_version())
    product = harness.sql(run, "SELECT min(id) FROM products WHERE is_active")[0][0]
    admin = realtime.create_admin(run.env_base, run.bin)
    for number, key in enumerate(run.rows):
        read, cached = ROWS[key]
        path, name = harness.READS[read]
        row = ClusterRow(key, f"{name}, {'cached' if cached else 'uncached'}", path.format(product=product), cached)
        result.rows.append(row)
        # The pub/sub count once, at the end of the last row: a stock change invalidates the cached pages.
        measure_row(run, result, row, 2 * number + 1, admin if number == len(run.rows) - 1 else None, product)
    return result


def nginx_version() -> str:
    done = subprocess.run(["nginx", "-v"], capture_output=True, text=True, check=False)
    return (done.stderr or done.stdout).strip().removeprefix("nginx version: ")


# Rendering


def pct(share: float) -> str:
    return f"{share:.0%}" if share >= 0.1 else f"{share:.1%}"


def render(run, result: ClusterRun) -> str:
    args = run.args
    load = "/".join(f"{x:.1f}" for x in run.load_before)
    load_end = "/".join(f"{x:.1f}" for x in run.load_after) if run.load_after else "?"
    out = ["# bench/run --cluster: Fantasize behind nginx, one instance against two", "",
           f"{run.started:%Y-%m-%d %H:%M} UTC, commit {harness.commit_label()}, {result.nginx_version}, "
           f"{os.cpu_count()} CPUs shared by nginx, the instances, PostgreSQL, Redis and wrk (load average {load} at "
           f"the start, {load_end} at the end). Each instance: gunicorn -c gunicorn.conf.py, one gevent worker, "
           "FLASK_ENV=production, PROXY_COUNT=1, PostgreSQL + Redis, the demo shop, rate limits on with high limits. "
           "nginx with deploy/nginx/'s http.conf and server.conf, `worker_processes auto`, **round robin** "
           "(the local cluster's affinity=False): wrk's connections all come from 127.0.0.1, which the production "
           "hash on the client address would send to one instance; plain HTTP needs no affinity, and an "
           "instance's cost per request does not depend on the balancing. "
           f"wrk -t{harness.WRK_THREADS} -c{harness.CONNECTIONS} -d{args.duration:g}s through nginx after a "
           f"{run.warm_s:g}s warm-up, one instance and two in turns (ABBA, {harness.PAIRED_ROUNDS} runs each, "
           "summed).", ""]
    rows = []
    for row in result.rows:
        for label, arm in (("1 instance", row.one), ("2 instances", row.two)):
            total = arm.served or 1
            split = " / ".join(f"{n / total:.0%}" for n in arm.instance_requests)
            mine = ", ".join(harness.fmt_us(us) for us in arm.instance_us)
            rows.append([row.name, label, harness.fmt_rate(arm.load.rate), harness.fmt_ms(arm.load.p50_ms),
                         harness.fmt_ms(arm.load.p99_ms), split, mine, f"{arm.switches_per_request:.2f}",
                         harness.fmt_us(arm.nginx_us), pct(arm.nginx_share),
                         harness.yes(0 < arm.nginx_share <= GOAL_NGINX_SHARE)])
    out += ["## Through nginx", ""]
    out += harness.table(["row", "behind nginx", "req/s", "p50", "p99", "requests per instance",
                          "worker CPU/req, each instance", "worker preemptions/req", "nginx CPU/req",
                          f"nginx / instance (<= {GOAL_NGINX_SHARE:.0%})", "met?"], rows, {2, 3, 4, 6, 7, 8, 9})
    rows = [[row.name, f"{row.throughput_ratio:.2f}", f"{row.cpu_ratio:.2f}",
             f"<= {GOAL_INSTANCE_CPU_RATIO:g}x", harness.yes(row.cpu_met), str(row.errors)] for row in result.rows]
    out += ["", "## Two instances against one", ""]
    out += harness.table(["row", "req/s, 2 / 1", "instance CPU/req, 2 / 1 (the costlier instance)", "goal",
                          "met?", "errors"], rows, {1, 2, 5})
    out += ["", "Worker CPU per request: an instance's gunicorn worker's user + system CPU during the wrk runs over "
            "the requests it answered (its own http_requests_total); nginx's: its master's and workers' over all "
            "the requests. Worker preemptions: the workers' involuntary context switches (the kernel taking the "
            "core from a worker that could still run) per request. PostgreSQL's and Redis's own CPU are not "
            "included. The throughput cannot double here: the second instance runs on the same 2 cores as the "
            "first, nginx, PostgreSQL and wrk."]
    counted = [row for row in result.rows if row.counts]
    if counted:
        out += ["", "## Per request, through nginx", "",
                f"{REQUESTS_COUNTED} requests one after the other through the two-instance nginx. Redis: the "
                "commands the bench's database received (MONITOR), less what the instances send on their own "
                f"(counted for {IDLE_S:g} s with no request); commands a Lua script ran are counted apart. "
                "PostgreSQL: transactions (pg_stat_database), one per statement for a read.", ""]
        rows = []
        for row in counted:
            counts = row.counts
            names = ", ".join(f"{name} {n:.2f}" for name, n in counts.redis.items()) or "-"
            scripted = ", ".join(f"{name} {n:.2f}" for name, n in counts.redis_in_scripts.items()) or "-"
            window = (f"{counts.window_writes:.1f} ({counts.window_commands:.0f} commands each)"
                      if counts.window_writes else "-")
            rows.append([row.name, f"{counts.redis_total:.2f}", names, scripted, f"{counts.transactions:.2f}",
                         window])
        out += harness.table(["row", "Redis commands", "by command", "run by a Lua script", "PostgreSQL "
                              "transactions", "monitoring window writes (MULTI/EXEC) per instance and second"],
                             rows, {1, 4})
    if result.pubsub:
        pubsub = result.pubsub
        channels = ", ".join(f"`{channel}`: {pubsub.published[channel]:.1f} published, "
                             f"{pubsub.delivered[channel]:.1f} received" for channel in pubsub.published) or "none"
        out += ["", f"Pub/sub, per stock change by an admin through nginx ({pubsub.changes} changes; a change emits "
                f"`inventory_update` to the product's room), with a Socket.IO client tracking the product on each of "
                f"the {pubsub.instances} instances: {channels} (PUBLISH commands, and messages received: published x "
                f"PUBSUB NUMSUB); the clients received {pubsub.events:.1f} `inventory_update` per change. Every "
                "instance receives every message and emits it to its own sockets in the room."]
    if run.notes:
        out += ["", "## Notes", "", *(f"- {note}" for note in run.notes)]
    wrk_cpu = max((load.cpu_s / load.duration_s for row in result.rows for arm in (row.one, row.two)
                   for load in arm.runs), default=0.0)
    out += ["", f"wrk's CPU, at most {wrk_cpu:.0%} of one core. Logs: bench/results/logs/cluster-*/."]
    return "\n".join(out) + "\n"
