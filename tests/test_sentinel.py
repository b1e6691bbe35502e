"""Redis Sentinel: the app follows a failover without a restart (README "Configuration", REDIS_SENTINELS).

A primary, a replica and three sentinels of the test's own (redis-server, redis-server --sentinel, on free loopback
ports, with passwords for the data and for the sentinels), two live gunicorn instances (one gevent worker each) on
PostgreSQL configured with REDIS_SENTINELS only. Twice, while threads make cached reads and stock writes through
both instances and poll /health: a failover asked of the sentinels (the old primary keeps running, demoted), then
the primary killed (SIGKILL).

What must hold: no 5xx at any time (while no primary is named the app behaves as when Redis is down: /health
degraded, limits counted in memory, reads from the database); once the replica is promoted, limits and pages are
written to it, a limit counts exactly across both instances again, a Socket.IO event crosses instances through it,
and a sign-out through one instance ends the user's sockets on both (the revocations channel, subscribed again on
the new primary: the sweep, which would also end them, runs once a minute here). The timings are measured and
printed (the README quotes them), never asserted.

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

import click
import pytest
import requests
from redis import Redis
from redis.exceptions import RedisError

import config
from config import ConfigError
from fantasize.cli import _check_queue as check_queue
from fantasize.models import Product
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
    """A redis-server (data or sentinel) of the topology, which a test may kill and start again."""

    port: int
    arguments: list[str]
    log: Path
    password: str
    process: subprocess.Popen | None = None

    def start(self) -> Node:
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(self.arguments, stdout=out, stderr=subprocess.STDOUT)
        _wait_for(lambda: self.client().ping(), 10, f"{self.log.stem} answering")
        return self

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def client(self) -> Redis:
        return Redis(port=self.port, password=self.password, socket_timeout=1, socket_connect_timeout=1)


@dataclass
class Topology:
    data: list[Node]
    sentinels: list[Node]

    @property
    def sentinel_setting(self) -> str:
        return ",".join(f"127.0.0.1:{node.port}" for node in self.sentinels)

    def named_primary(self) -> Node | None:
        """The data node the sentinels name primary (the first sentinel that answers)."""
        for sentinel in self.sentinels:
            try:
                _, port = sentinel.client().sentinel_get_master_addr_by_name(SERVICE)
            except RedisError:
                continue
            return next(node for node in self.data if node.port == int(port))
        return None

    def other(self, node: Node) -> Node:
        return next(other for other in self.data if other is not node)


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
    return Node(port, ["redis-server", str(conf)], folder / f"{name}.log", DATA_PASSWORD).start()


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
    return Node(port, ["redis-server", str(conf), "--sentinel"], folder / f"sentinel-{n}.log",
                SENTINEL_PASSWORD).start()


def _ready_for_a_failover(topology: Topology) -> None:
    """Both data nodes up, the replica in sync with the primary, every sentinel knowing both and the other two."""
    for node in topology.data:
        if not node.running:
            node.start()  # a former primary: the sentinels make it a replica of the current one
    primary = _wait_for(topology.named_primary, 10, "a primary named")
    replica = topology.other(primary)
    _wait_for(lambda: replica.client().info("replication").get("master_link_status") == "up"
              and replica.client().info("replication")["master_port"] == primary.port, 20, "the replica syncing",
              lambda: replica.client().info("replication"))
    for sentinel in topology.sentinels:
        client = sentinel.client()
        _wait_for(lambda client=client: client.sentinel_master(SERVICE)["num-other-sentinels"] == 2
                  and len(_alive(client.sentinel_slaves(SERVICE))) == 1, 20, "the sentinels meeting",
                  lambda client=client: client.sentinel_master(SERVICE))


def _alive(replicas: list[dict]) -> list[dict]:
    return [replica for replica in replicas if not replica["is_sdown"] and not replica["is_odown"]]


@pytest.fixture(scope="module")
def topology(tmp_path_factory) -> Iterator[Topology]:
    if shutil.which("redis-server") is None:
        skip_or_fail("redis-server is not installed (apt-get install redis-server)")
    folder = tmp_path_factory.mktemp("sentinel")
    built = Topology([], [])
    try:
        built.data.append(_data_node(folder, "first"))
        built.data.append(_data_node(folder, "second", built.data[0].port))
        for n in range(3):
            built.sentinels.append(_sentinel(folder, n, built.data[0].port))
        _ready_for_a_failover(built)
        yield built
    finally:
        for node in (*built.data, *built.sentinels):
            node.kill()


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
    addresses: Iterator[int] = field(default_factory=itertools.count)

    def _read(self) -> None:
        with requests.Session() as session:
            while not self.stop.is_set():
                n = next(self.addresses)
                response = session.get(f"{self.servers[n % 2].url}/api/v1/products", timeout=30,
                                       headers={"X-Forwarded-For": f"198.18.{n // 250 % 250}.{n % 250}"})
                self.responses.append((time.monotonic(), "read", response.status_code))

    def _write(self) -> None:
        with requests.Session() as session:
            for n in itertools.count():
                if self.stop.is_set():
                    return
                response = session.patch(f"{self.servers[n % 2].url}/api/v1/products/{self.product_id}/stock",
                                         json={"delta": 1}, headers={"Authorization": f"Bearer {self.admin}"},
                                         timeout=30)
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
        self.threads = [threading.Thread(target=target, daemon=True)
                        for target in (self._read, self._read, self._read, self._write, self._health)]
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


def _counted_on(server: LiveServer, node: Node) -> bool:
    """Whether this instance's limiter writes to `node`: a request from a new address leaves its counter there."""
    n = next(_probes)
    address = f"192.0.{n // 250 % 250}.{n % 250}"
    requests.get(f"{server.url}/api/v1/versions", headers={"X-Forwarded-For": address}, timeout=30)
    return any(True for _ in node.client().scan_iter(match=f"{LIMITS_PREFIX}*{address}*", count=1000))


@dataclass
class Shop:
    admin: str
    product: Product


@pytest.fixture
def shop(factory) -> Shop:
    return Shop(factory.token(factory.admin()), factory.product(quantity=1000))


def _switch_under_load(topology: Topology, instances: list[LiveServer], shop: Shop, peers,
                       switch: Callable[[Node], None]) -> tuple[Node, dict[str, float | None], float]:
    """Run `switch(primary)` under load; wait for the other node to be named primary and for both instances to
    count limits and keep pages on it. No 5xx meanwhile. The new primary, what was measured, when it began."""
    _ready_for_a_failover(topology)
    old = topology.named_primary()
    new = topology.other(old)
    # Both instances write to the primary and listen on it (each from its first socket on).
    for server in instances:
        peers(server, f"listener on {server.url}")
        _wait_for(lambda server=server: _counted_on(server, old), 10, "limits on the primary")
    _wait_for(lambda: _both_listening(old.client()), 15, "both instances listening on the primary",
              lambda: old.client().pubsub_numsub(*LISTENERS))

    with Load(instances, shop.admin, shop.product.id) as load:
        time.sleep(1)  # load served by the primary
        served_before = len(load.responses)
        replicated = set(new.client().scan_iter(count=1000))
        switched_at = time.monotonic()
        switch(old)
        _wait_for(lambda: topology.named_primary() is new, 30, "the sentinels promoting the replica")
        promoted_at = time.monotonic()
        # A replica takes no writes: keys that appear on the new primary since are the app's, written after.
        resumed: dict[str, float] = {}

        def resumption() -> bool:
            for kind, count in _new_keys(new.client(), replicated).items():
                if count and kind not in resumed:
                    resumed[kind] = time.monotonic() - switched_at
            return len(resumed) == 2

        _wait_for(resumption, 30, "limits and pages written to the new primary", lambda: resumed)
        # A limiter that fell back to memory checks Redis again after 1, 2, 4, 8... s.
        for server in instances:
            _wait_for(lambda server=server: _counted_on(server, new), 30, "both instances' limits on the new primary")
        limits_back_at = time.monotonic()
        time.sleep(1)  # load served by the new primary

    # No 5xx at all, reads and writes alike, before, during and after the switch; and the load ran throughout.
    server_errors = [(round(at - switched_at, 2), what, status) for at, what, status in load.responses
                     if status >= 500]
    assert not server_errors, server_errors
    assert served_before > 0 and any(at > limits_back_at for at, _, _ in load.responses)
    assert {status for _, what, status in load.responses if what == "write"} == {200}
    assert {status for _, what, status in load.responses if what == "read"} == {200}
    # /health never unhealthy (PostgreSQL is fine), and healthy again at the end.
    assert {code for _, code, _ in load.health} == {200}
    assert [status for _, _, status in load.health[-2:]] == ["healthy", "healthy"]
    degraded = [at for at, _, status in load.health if status == "degraded"]
    figures = {
        "requests": len(load.responses), "server_errors": len(server_errors),
        "promoted_after_s": round(promoted_at - switched_at, 2),
        "limits_resumed_after_s": round(resumed["limits"], 2), "cache_resumed_after_s": round(resumed["cache"], 2),
        "both_limiters_back_after_s": round(limits_back_at - switched_at, 2),
        "degraded_from_s": round(min(degraded) - switched_at, 2) if degraded else None,
        "degraded_until_s": round(max(degraded) - switched_at, 2) if degraded else None,
    }
    return new, figures, switched_at


def _shared_again(new: Node, instances: list[LiveServer], shop: Shop, peers, factory, address: str,
                  switched_at: float) -> dict[str, float]:
    """Limits, pages, Socket.IO events and revocations cross the two instances through the new primary. How long
    after the switch both instances listened on it, by channel."""
    a, b = instances
    admin = {"Authorization": f"Bearer {shop.admin}"}
    # A limit counts exactly across both instances, on the new primary.
    counted = [requests.post(f"{server.url}/api/v1/auth/login", headers={"X-Forwarded-For": address}, timeout=30,
                             json={"email": "nobody@example.com", "password": "wrong-password"})
               for server in (a, b, a, b, a, b)]
    assert [r.status_code for r in counted] == [401] * AUTH_LIMIT + [429] * (len(counted) - AUTH_LIMIT)
    assert [r.headers["X-RateLimit-Remaining"] for r in counted] == ["3", "2", "1", "0", "0", "0"]
    assert any(True for _ in new.client().scan_iter(match=f"{LIMITS_PREFIX}*{address}*"))
    # The page cache is shared again: a write through A invalidates, A computes the page, B reads it from Redis.
    # Until then B may miss (an instance whose cache met an error skips it for CACHE_BREAKER_SECONDS) or, after a
    # failover the sentinels were asked for, read a page as it was (a connection the old primary served until its
    # demotion, or the demoted primary serving its old data while it copies the new primary's).
    product_url = f"/api/v1/products/{shop.product.id}"

    def shared_page() -> bool:
        assert requests.patch(f"{a.url}{product_url}/stock", json={"delta": 1}, headers=admin, timeout=30).ok
        first = requests.get(f"{a.url}{product_url}", timeout=30)
        second = requests.get(f"{b.url}{product_url}", timeout=30)
        assert first.status_code == second.status_code == 200
        caching = (first.headers["X-Cache"], second.headers["X-Cache"])
        return caching == ("MISS", "HIT") and first.json() == second.json()

    _wait_for(shared_page, 15, "a page A cached read by B")

    # Both instances listen on the new primary (python-socketio's queue and the revocations channel).
    resubscribed = {}
    for channel in LISTENERS:
        _wait_for(lambda channel=channel: new.client().pubsub_numsub(channel) == [(channel.encode(), 2)], 30,
                  f"both instances listening to {channel} on the new primary",
                  lambda: new.client().pubsub_numsub(*LISTENERS))
        resubscribed[channel.removeprefix(CACHE_PREFIX)] = round(time.monotonic() - switched_at, 2)
    # An event caused through A reaches a client held by B.
    tracker = peers(b, "tracker on B")
    quantity = tracker.call("track_inventory", shop.product.id)["quantity"]
    assert requests.patch(f"{a.url}{product_url}/stock", json={"delta": 1}, headers=admin, timeout=30).ok
    update = tracker.wait_for("inventory_update")[-1]
    assert (update["productId"], update["quantity"]) == (shop.product.id, quantity + 1)
    # A sign-out through A ends the customer's sockets on A (at once) and on B (the revocations channel: the sweep,
    # which would end it too, runs once a minute).
    token = factory.token(factory.user())
    on_a, on_b = peers(a, "customer on A", token), peers(b, "customer on B", token)
    assert requests.post(f"{a.url}/api/v1/auth/logout", headers={"Authorization": f"Bearer {token}"},
                         timeout=30).status_code == 204
    assert on_a.wait_for("auth_error") == REVOKED
    assert on_b.wait_for("auth_error", timeout=15) == REVOKED
    return resubscribed


@pytest.mark.parametrize("backend", ["postgresql"])
def test_the_app_follows_sentinel_failovers_under_load_without_a_5xx(
        topology, instances, shop, peers, factory, record_property):
    """Two failovers, each under load, on one topology and one pair of instances (one test, so that xdist never
    splits them over two workers, each starting its own):

    1. SENTINEL FAILOVER: the old primary stays up and becomes a replica. Until the sentinels demote it (their next
       look at it, up to 10 s) it still takes the writes of connections open to it; then they close its clients,
       and a connection that meets it answering READONLY drops itself: every user reconnects to the new primary.
    2. SIGKILL of the primary: until the sentinels promote the replica there is no primary at all, and the app
       serves as without Redis (/health degraded, limits in memory, the cache skipped).
    """

    def fail_over(_primary: Node) -> None:
        assert topology.sentinels[0].client().execute_command("SENTINEL", "FAILOVER", SERVICE)

    new, graceful, switched_at = _switch_under_load(topology, instances, shop, peers, fail_over)
    _wait_for(lambda: topology.other(new).client().info("replication")["role"] == "slave", 15,
              "the old primary demoted")
    graceful["resubscribed_after_s"] = _shared_again(new, instances, shop, peers, factory, "203.0.113.1", switched_at)

    new, killed, switched_at = _switch_under_load(topology, instances, shop, peers, lambda primary: primary.kill())
    # While no primary answered: degraded (only since the kill), then healthy again (checked in the helper).
    assert killed["degraded_from_s"] is not None, "/health never said degraded: the failover went unnoticed"
    assert killed["degraded_from_s"] >= 0
    killed["resubscribed_after_s"] = _shared_again(new, instances, shop, peers, factory, "203.0.113.2", switched_at)

    # `flask announce` checks the queue first: the primary the sentinels name now, or an error naming the sentinels
    # (and no password).
    queue = config.sentinel_url(topology.sentinel_setting, SERVICE, DATA_PASSWORD, SENTINEL_PASSWORD)
    check_queue(queue)
    with pytest.raises(click.ClickException) as refused:
        check_queue(config.sentinel_url(f"127.0.0.1:{free_port()}", SERVICE, DATA_PASSWORD, SENTINEL_PASSWORD))
    assert "is unreachable: No master found for 'shop'" in refused.value.message
    assert DATA_PASSWORD not in refused.value.message and SENTINEL_PASSWORD not in refused.value.message

    record_property("failovers", {"graceful": graceful, "killed": killed})
    print("SENTINEL FAILOVER:", graceful)
    print("SIGKILL:", killed)
