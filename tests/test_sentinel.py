"""Redis Sentinel: the app follows a failover without a restart (API.md "Configuration", REDIS_SENTINELS).

A primary, a replica and three sentinels of the test's own (redis-server, redis-server --sentinel, on free loopback
ports, with passwords for the data and for the sentinels), two live gunicorn instances (one gevent worker each) on
PostgreSQL configured with REDIS_SENTINELS only. The primary is killed (SIGKILL) while threads make cached reads
and writes through both instances; sentinels promote the replica within a few seconds.

What must hold: no 5xx at any time (while no primary is named the app behaves as when Redis is down: /health
degraded, limits counted in memory, reads from the database); once the replica is promoted, limits and pages are
written to it, a limit counts exactly across both instances again, a Socket.IO event crosses instances through it,
and a sign-out through one instance ends the user's sockets on both (the revocations channel, subscribed again on
the new primary: the sweep, which would also end them, runs once a minute here).

Plus the parsing of the settings (config.redis_url, redis_clients.parse_sentinel_url), which needs no server.
"""

from __future__ import annotations

import itertools
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
from redis import Redis
from redis.exceptions import RedisError

import config
from config import ConfigError
from fantasize.platform import redis_clients
from tests.conftest import database_url
from tests.live_server import LiveServer, free_port
from tests.realtime_clients import Peer, close_all
from tests.support import skip_or_fail

SERVICE = "shop"
DATA_PASSWORD = "data pass/word"  # characters a URL must quote
SENTINEL_PASSWORD = "sentinel&secret"
CACHE_PREFIX = "shop:"
LIMITS_PREFIX = "limits"
AUTH_LIMIT = 4  # RATE_LIMIT_AUTH, per client address: what the exact count after the failover counts up to
REVOKED = [{"message": "Token has been revoked"}]


# The settings


@pytest.fixture
def redis_env(monkeypatch) -> Callable[..., None]:
    names = ("REDIS_URL", "REDIS_HOST", "REDIS_PORT", "REDIS_PASSWORD", "REDIS_DB", "REDIS_SENTINELS",
             "REDIS_SENTINEL_MASTER", "REDIS_SENTINEL_PASSWORD")

    def set_env(**values: str) -> None:
        for name in names:
            monkeypatch.delenv(name, raising=False)
        for name, value in values.items():
            monkeypatch.setenv(name, value)

    return set_env


def test_sentinel_settings_make_one_url_that_every_redis_user_reads(redis_env):
    redis_env(REDIS_SENTINELS="10.0.0.1:26379, 10.0.0.2:26380,[::1]:26381", REDIS_SENTINEL_MASTER="shop",
              REDIS_PASSWORD="p@ss/word", REDIS_SENTINEL_PASSWORD="s&p", REDIS_DB="3")
    url = config.redis_url()
    assert url == ("redis+sentinel://:p%40ss%2Fword@10.0.0.1:26379,10.0.0.2:26380,[::1]:26381/3/shop"
                   "?sentinel_password=s%26p")
    target = redis_clients.parse_sentinel_url(url)
    assert target.sentinels == (("10.0.0.1", 26379), ("10.0.0.2", 26380), ("::1", 26381))
    assert (target.service, target.db, target.password, target.sentinel_password) == ("shop", 3, "p@ss/word", "s&p")
    # Where it points, for messages, and the message queue's form of it: no password in either.
    assert redis_clients.address(url) == "Sentinel service 'shop' (10.0.0.1:26379,10.0.0.2:26380,::1:26381), db 3"
    queue_url, options = redis_clients.socketio_queue(url, socket_timeout=1)
    assert queue_url == "redis+sentinel://10.0.0.1:26379,10.0.0.2:26380,::1:26381/3/shop"
    assert options == {"socket_timeout": 1, "password": "p@ss/word",
                       "sentinel_kwargs": {"socket_timeout": 1, "password": "s&p"}}


def test_without_sentinels_the_url_and_the_host_settings_work_as_before(redis_env):
    redis_env(REDIS_URL="redis://cache:6379/2")
    assert config.redis_url() == "redis://cache:6379/2"
    redis_env(REDIS_HOST="cache", REDIS_PASSWORD="a b", REDIS_DB="4")
    assert config.redis_url() == "redis://:a%20b@cache:6379/4"
    redis_env()
    assert config.redis_url() is None


@pytest.mark.parametrize(("settings", "named"), [
    ({"REDIS_SENTINELS": "10.0.0.1:26379,10.0.0.2"}, "'10.0.0.2' is not host:port"),
    ({"REDIS_SENTINELS": "10.0.0.1:sentinel"}, "'10.0.0.1:sentinel' is not host:port"),
    ({"REDIS_SENTINELS": "10.0.0.1:70000"}, "'10.0.0.1:70000' is not host:port"),
    ({"REDIS_SENTINELS": "10.0.0.1:26379,"}, "'' is not host:port"),
    ({"REDIS_SENTINELS": "10.0.0.1:26379"}, "without REDIS_SENTINEL_MASTER"),
    ({"REDIS_SENTINEL_MASTER": "shop"}, "without REDIS_SENTINELS"),
    ({"REDIS_SENTINELS": "10.0.0.1:26379", "REDIS_SENTINEL_MASTER": "shop", "REDIS_URL": "redis://cache:6379/0"},
     "REDIS_SENTINELS and REDIS_URL are both set"),
    ({"REDIS_SENTINELS": "10.0.0.1:26379", "REDIS_SENTINEL_MASTER": "shop", "REDIS_HOST": "cache"},
     "REDIS_SENTINELS and REDIS_HOST are both set"),
    ({"REDIS_SENTINELS": "10.0.0.1:26379", "REDIS_SENTINEL_MASTER": "shop", "REDIS_DB": "first"},
     "REDIS_DB='first' is not a database number"),
])
def test_malformed_or_conflicting_sentinel_settings_stop_the_app_naming_the_problem(redis_env, settings, named):
    redis_env(**settings)
    with pytest.raises(ConfigError, match=re.escape(named)):
        config.redis_url()


@pytest.mark.parametrize(("url", "named"), [
    ("redis://cache:6379/0", "not a redis+sentinel:// URL"),
    ("redis+sentinel://10.0.0.1:26379/shop", "ends in /db/service"),
    ("redis+sentinel://10.0.0.1/0/shop", "'10.0.0.1' is not host:port"),
])
def test_a_malformed_sentinel_url_is_refused(url, named):
    with pytest.raises(ValueError, match=re.escape(named)):
        redis_clients.parse_sentinel_url(url)


# The failover


@dataclass
class Node:
    port: int
    process: subprocess.Popen

    def client(self, **options) -> Redis:
        return Redis(port=self.port, password=DATA_PASSWORD, socket_timeout=1, socket_connect_timeout=1, **options)


@dataclass
class Topology:
    primary: Node
    replica: Node
    sentinels: list[Node] = field(default_factory=list)

    @property
    def sentinel_setting(self) -> str:
        return ",".join(f"127.0.0.1:{node.port}" for node in self.sentinels)

    def named_primary(self) -> int | None:
        """The primary's port as the sentinels name it (the first that answers)."""
        for node in self.sentinels:
            try:
                host_port = Redis(port=node.port, password=SENTINEL_PASSWORD, socket_timeout=1).execute_command(
                    "SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE)
                return int(host_port[1])
            except RedisError:
                continue
        return None

    def processes(self) -> list[subprocess.Popen]:
        return [node.process for node in (self.primary, self.replica, *self.sentinels)]


def _start(arguments: list[str], log: Path) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen(arguments, stdout=out, stderr=subprocess.STDOUT)


def _wait_for(condition: Callable[[], object], timeout: float, what: str,
              found: Callable[[], object] = lambda: None) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = condition()
            if value:
                return value
        except RedisError:
            pass
        time.sleep(0.05)
    pytest.fail(f"{what} did not happen within {timeout} s; found: {found()}")


def _data_node(folder: Path, name: str, primary_port: int | None = None) -> Node:
    port = free_port()
    lines = [f"port {port}", "bind 127.0.0.1", 'save ""', "appendonly no", f"dir {folder}",
             f'requirepass "{DATA_PASSWORD}"', f'masterauth "{DATA_PASSWORD}"']
    if primary_port is not None:
        lines.append(f"replicaof 127.0.0.1 {primary_port}")
    conf = folder / f"{name}.conf"
    conf.write_text("\n".join(lines) + "\n")
    node = Node(port, _start(["redis-server", str(conf)], folder / f"{name}.log"))
    _wait_for(lambda: node.client().ping(), 10, f"redis-server {name} answering")
    return node


def _sentinel(folder: Path, n: int, primary_port: int) -> Node:
    port = free_port()
    # Sentinel rewrites its file (what it learns): one of its own, writable. Half a second without an answer and
    # two sentinels agreeing make the primary down; a failover that stalls is tried again after 3 s.
    conf = folder / f"sentinel-{n}.conf"
    conf.write_text("\n".join([
        f"port {port}", "bind 127.0.0.1", f"dir {folder}",
        f'requirepass "{SENTINEL_PASSWORD}"', f'sentinel sentinel-pass "{SENTINEL_PASSWORD}"',
        f"sentinel monitor {SERVICE} 127.0.0.1 {primary_port} 2",
        f'sentinel auth-pass {SERVICE} "{DATA_PASSWORD}"',
        f"sentinel down-after-milliseconds {SERVICE} 500",
        f"sentinel failover-timeout {SERVICE} 3000",
        f"sentinel parallel-syncs {SERVICE} 1",
    ]) + "\n")
    node = Node(port, _start(["redis-server", str(conf), "--sentinel"], folder / f"sentinel-{n}.log"))
    _wait_for(lambda: Redis(port=port, password=SENTINEL_PASSWORD, socket_timeout=1).ping(), 10,
              f"sentinel {n} answering")
    return node


@pytest.fixture(scope="module")
def topology(tmp_path_factory) -> Iterator[Topology]:
    if shutil.which("redis-server") is None:
        skip_or_fail("redis-server is not installed (apt-get install redis-server)")
    folder = tmp_path_factory.mktemp("sentinel")
    started: list[subprocess.Popen] = []
    try:
        primary = _data_node(folder, "primary")
        started.append(primary.process)
        replica = _data_node(folder, "replica", primary.port)
        started.append(replica.process)
        _wait_for(lambda: replica.client().info("replication")["master_link_status"] == "up", 10,
                  "the replica syncing")
        built = Topology(primary, replica)
        for n in range(3):
            built.sentinels.append(_sentinel(folder, n, primary.port))
            started.append(built.sentinels[-1].process)
        # Each sentinel has found the replica and the other two (a failover needs them).
        for node in built.sentinels:
            client = Redis(port=node.port, password=SENTINEL_PASSWORD, socket_timeout=1)
            _wait_for(lambda client=client: client.sentinel_master(SERVICE)["num-other-sentinels"] == 2
                      and client.sentinel_master(SERVICE)["num-slaves"] == 1, 15, "the sentinels meeting")
        yield built
    finally:
        for process in started:
            if process.poll() is None:
                process.kill()
                process.wait()


@pytest.fixture(scope="module")
def instances(topology, tmp_root) -> Iterator[list[LiveServer]]:
    env = {
        "DATABASE_URL": database_url("postgresql", tmp_root),
        "REDIS_URL": "", "REDIS_HOST": "",  # whatever the test process has: Sentinel only
        "REDIS_SENTINELS": topology.sentinel_setting, "REDIS_SENTINEL_MASTER": SERVICE,
        "REDIS_PASSWORD": DATA_PASSWORD, "REDIS_SENTINEL_PASSWORD": SENTINEL_PASSWORD,
        # Testing reads the message queue from its own setting only (unit tests run without one).
        "SOCKETIO_MESSAGE_QUEUE": config.sentinel_url(topology.sentinel_setting, SERVICE, DATA_PASSWORD,
                                                      SENTINEL_PASSWORD),
        "CACHE_KEY_PREFIX": CACHE_PREFIX, "RATE_LIMIT_KEY_PREFIX": LIMITS_PREFIX,
        # Clients are told apart by X-Forwarded-For; each may try AUTH_LIMIT sign-ins.
        "PROXY_COUNT": "1", "RATE_LIMIT_AUTH": f"{AUTH_LIMIT} per 15 minutes",
        # Once a minute: a revoked socket on the other instance can only end through the revocations channel.
        "SOCKET_SWEEP_SECONDS": "60",
    }
    servers = [LiveServer(env, workers=1, log_path=tmp_root / f"sentinel-{n}.log") for n in range(2)]
    try:
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(LiveServer.start, servers))
        yield servers
    finally:
        for server in servers:
            server.stop()


@pytest.fixture
def peers() -> Iterator[Callable[[LiveServer, str, str | None], Peer]]:
    made: list[Peer] = []

    def make(server: LiveServer, name: str, token: str | None = None) -> Peer:
        client = Peer(server.url, name)
        made.append(client)
        client.connect(token)
        if token is not None:
            client.wait_for("authenticated")
        return client

    yield make
    close_all(made)


@dataclass
class Load:
    """Threads making cached reads (each from an address of its own: a new limit counter each) and the admin's
    stock writes (which invalidate those pages) through both instances, and /health polled on both."""

    servers: list[LiveServer]
    admin: str
    product_id: int
    responses: list[tuple[float, str, int]] = field(default_factory=list)  # (monotonic, what, status)
    health: list[tuple[float, int, str]] = field(default_factory=list)  # (monotonic, status code, status)
    stop: threading.Event = field(default_factory=threading.Event)

    def _read(self, n: int) -> None:
        with requests.Session() as session:
            while not self.stop.is_set():
                server = self.servers[n % 2]
                n += 2
                response = session.get(f"{server.url}/api/v1/products", timeout=30,
                                       headers={"X-Forwarded-For": f"198.18.{n // 250 % 250}.{n % 250}"})
                self.responses.append((time.monotonic(), "read", response.status_code))

    def _write(self) -> None:
        n = 0
        with requests.Session() as session:
            while not self.stop.is_set():
                server = self.servers[n % 2]
                n += 1
                response = session.patch(f"{server.url}/api/v1/products/{self.product_id}/stock", timeout=30,
                                         json={"delta": 1}, headers={"Authorization": f"Bearer {self.admin}"})
                self.responses.append((time.monotonic(), "write", response.status_code))
                time.sleep(0.05)

    def _health(self) -> None:
        with requests.Session() as session:
            while not self.stop.is_set():
                for server in self.servers:
                    response = session.get(f"{server.url}/health", timeout=30)
                    status = response.json()["status"] if response.status_code in (200, 503) else "?"
                    self.health.append((time.monotonic(), response.status_code, status))
                time.sleep(0.1)

    def __enter__(self) -> Load:
        self.threads = [threading.Thread(target=self._read, args=(n,), daemon=True) for n in range(3)]
        self.threads += [threading.Thread(target=self._write, daemon=True),
                         threading.Thread(target=self._health, daemon=True)]
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=35)


def _new_keys(client: Redis, before: set[bytes]) -> dict[str, int]:
    """Keys written since `before` was taken, by kind (the monitoring window's and the real-time figures' aside)."""
    kinds = {"limits": 0, "cache": 0}
    for key in client.scan_iter(count=1000):
        if key in before:
            continue
        if key.startswith(LIMITS_PREFIX.encode()):
            kinds["limits"] += 1
        elif key.startswith(CACHE_PREFIX.encode()) and not key.startswith(
                (f"{CACHE_PREFIX}monitoring:".encode(), f"{CACHE_PREFIX}realtime:".encode())):
            kinds["cache"] += 1
    return kinds


LISTENERS = {f"{CACHE_PREFIX}socketio": 2, f"{CACHE_PREFIX}realtime:revoked": 2}  # channel: both instances


def _both_listening(client: Redis) -> bool:
    """Whether both instances are subscribed on `client`: python-socketio's queue and the revocations channel."""
    return {name.decode(): count for name, count in client.pubsub_numsub(*LISTENERS)} == LISTENERS


_probes = itertools.count(1)


def _counted_on_redis(server: LiveServer, client: Redis) -> bool:
    """Whether this instance's limiter writes to `client` again: a request from a new address leaves its counter."""
    n = next(_probes)
    address = f"192.0.{n // 250 % 250}.{n % 250}"
    requests.get(f"{server.url}/api/v1/versions", headers={"X-Forwarded-For": address}, timeout=30)
    return any(True for _ in client.scan_iter(match=f"{LIMITS_PREFIX}*{address}*", count=1000))


@pytest.mark.parametrize("backend", ["postgresql"])
def test_a_failover_under_load_gives_no_5xx_and_limits_cache_and_sockets_follow_the_new_primary(
        backend, topology, instances, factory, peers, record_property):
    a, b = instances
    admin = factory.token(factory.admin())
    customer = factory.user()
    product = factory.product(quantity=1000)
    old, new = topology.primary, topology.replica
    assert topology.named_primary() == old.port

    # Before: the instances write to the primary and listen on it (each from its first socket on).
    tracker = peers(b, "tracker on B")
    peers(a, "tracker on A")
    for server in (a, b):
        assert requests.get(f"{server.url}/health", timeout=30).json()["status"] == "healthy"
        _wait_for(lambda server=server: _counted_on_redis(server, old.client()), 10, "limits on the primary")
    _wait_for(lambda: _both_listening(old.client()), 15, "both instances listening on the primary")

    with Load(instances, admin, product.id) as load:
        time.sleep(1.5)  # load before the kill, served from Redis
        before_kill = len(load.responses)
        replicated = set(new.client().scan_iter(count=1000))
        killed_at = time.monotonic()
        old.process.send_signal(signal.SIGKILL)
        old.process.wait()

        _wait_for(lambda: topology.named_primary() == new.port, 30, "the sentinels promoting the replica")
        promoted_at = time.monotonic()
        # Nothing reaches the new primary but through the app (a replica takes no writes): new keys are the app's.
        resumed: dict[str, float] = {}

        def resumption() -> bool:
            for kind, count in _new_keys(new.client(), replicated).items():
                if count and kind not in resumed:
                    resumed[kind] = time.monotonic() - killed_at
            return len(resumed) == 2

        _wait_for(resumption, 30, "limits and pages written to the new primary")
        # Each limiter checks its storage again after 1, 2, 4, 8... s: both count on the new primary in time.
        for server in (a, b):
            _wait_for(lambda server=server: _counted_on_redis(server, new.client()), 30,
                      "both instances' limits on the new primary")
        limits_back_at = time.monotonic()
        time.sleep(1)  # load served on the new primary
    responses, health = load.responses, load.health

    # No 5xx at all, reads and writes alike, before, during and after the switch; and the load did run throughout.
    server_errors = [(round(at - killed_at, 2), what, status) for at, what, status in responses if status >= 500]
    assert not server_errors, server_errors
    assert before_kill > 0 and any(at > limits_back_at for at, _, _ in responses)
    assert {status for _, what, status in responses if what == "write"} == {200}
    assert {status for _, what, status in responses if what == "read"} <= {200, 429}
    # /health: healthy, degraded while no primary answered, healthy again; never unhealthy (PostgreSQL is fine).
    assert {code for _, code, _ in health} == {200}
    degraded = [at for at, _, status in health if status == "degraded"]
    assert degraded, "/health never said degraded: the failover went unnoticed"
    assert min(degraded) >= killed_at
    assert health[-1][2] == "healthy" and health[-2][2] == "healthy"

    # A limit counts exactly across both instances again, on the new primary.
    address = "203.0.113.77"
    counted = [requests.post(f"{server.url}/api/v1/auth/login", headers={"X-Forwarded-For": address}, timeout=30,
                             json={"email": "nobody@example.com", "password": "wrong-password"})
               for server in (a, b, a, b, a, b)]
    assert [r.status_code for r in counted] == [401] * AUTH_LIMIT + [429] * (len(counted) - AUTH_LIMIT)
    assert [r.headers["X-RateLimit-Remaining"] for r in counted] == ["3", "2", "1", "0", "0", "0"]
    assert any(True for _ in new.client().scan_iter(match=f"{LIMITS_PREFIX}*{address}*"))
    # The page cache is shared again: a write through A invalidates, A computes the page, B reads it from Redis.
    anyone = {"X-Forwarded-For": "203.0.113.78"}
    assert requests.patch(f"{a.url}/api/v1/products/{product.id}/stock", json={"delta": 1}, timeout=30,
                          headers={"Authorization": f"Bearer {admin}"}).status_code == 200
    first = requests.get(f"{a.url}/api/v1/products/{product.id}", headers=anyone, timeout=30)
    second = requests.get(f"{b.url}/api/v1/products/{product.id}", headers=anyone, timeout=30)
    assert (first.headers["X-Cache"], second.headers["X-Cache"]) == ("MISS", "HIT")
    assert first.json() == second.json()

    # Both instances listen on the new primary again (python-socketio's queue and the revocations channel).
    _wait_for(lambda: _both_listening(new.client()), 30, "both instances listening on the new primary",
              lambda: new.client().pubsub_numsub(*LISTENERS))
    resubscribed_at = time.monotonic()
    # An event caused through A reaches a client B has held since before the failover, through the new primary.
    quantity = tracker.call("track_inventory", product.id)["quantity"]
    assert requests.patch(f"{a.url}/api/v1/products/{product.id}/stock", json={"delta": 1}, timeout=30,
                          headers={"Authorization": f"Bearer {admin}"}).status_code == 200
    update = tracker.wait_for("inventory_update")[-1]
    assert (update["productId"], update["quantity"]) == (product.id, quantity + 1)
    # A sign-out through A ends the customer's sockets on A (at once) and on B (the revocations channel).
    token = factory.token(customer)
    on_a, on_b = peers(a, "customer on A", token), peers(b, "customer on B", token)
    assert requests.post(f"{a.url}/api/v1/auth/logout", headers={"Authorization": f"Bearer {token}"},
                         timeout=30).status_code == 204
    assert on_a.wait_for("auth_error") == REVOKED
    assert on_b.wait_for("auth_error", timeout=15) == REVOKED

    figures = {
        "requests": len(responses), "server_errors": len(server_errors),
        "refused_429": sum(1 for _, _, status in responses if status == 429),
        "promoted_after_s": round(promoted_at - killed_at, 2),
        "limits_resumed_after_s": round(resumed["limits"], 2), "cache_resumed_after_s": round(resumed["cache"], 2),
        "both_limiters_back_after_s": round(limits_back_at - killed_at, 2),
        "degraded_for_s": round(max(degraded) - min(degraded), 2),
        "degraded_from_s": round(min(degraded) - killed_at, 2),
        "resubscribed_after_s": round(resubscribed_at - killed_at, 2),
    }
    record_property("failover", figures)
    print("failover:", figures)
