"""An instance killed with SIGKILL mid-load (issue 15): two instances behind nginx (deploy/local_cluster.py) on the
suite's PostgreSQL and Redis, 30 buyers placing orders with idempotency keys and retrying on errors, and the
official JavaScript client tracking orders through nginx over both transports.

nginx keeps a client address on one instance (`hash $remote_addr consistent`), and every loopback address is this
machine's own, so each buyer and each tracking client gets an address of its own (127.0.0.X): the test learns
which instance each address reaches before the load, and so knows which clients the kill takes away.

The kill lands in the middle of the victim's transactions: a third of the way through the load the test locks the
hot product's row, waits until every buyer's order in flight waits for it (its order row written, uncommitted),
and kills the instance's master and worker then. PostgreSQL ends the orphaned transactions when their backends
find the client gone, and the buyers' retries, now through the survivor, wait for that on the Idempotency-Key's
unique index.

What must hold: the surviving instance serves every buyer to the end; each order exists once however often its
request was retried (nginx never replays a POST; the buyer does, with the same Idempotency-Key: a customer who
gave up the answer to an order while the row was held gets back the order its instance placed, or has it placed
then when its instance died first); the stock taken is exactly the ordered quantities; the killed instance's
sockets reconnect through nginx to the survivor and hear the next status change of their order, while the
survivor's sockets never notice; and once the instance runs again, nginx sends its clients back to it (counted
by the instance itself).

The figures (requests that failed and were retried, how long the kill was visible, how long sockets took to
reconnect) are printed as one line, `cluster-kill figures: {...}` (run with -s to see it).
"""

from __future__ import annotations

import contextlib
import json
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from uuid import uuid4

import pytest
import requests
from flask import Flask
from prometheus_client.parser import text_string_to_metric_families
from requests.adapters import HTTPAdapter
from sqlalchemy import func, select, text

from config import TestingConfig
from deploy.local_cluster import Cluster, Instance
from fantasize.extensions import db
from fantasize.models import Order, OrderLine, Product
from tests.conftest import database_url
from tests.factories import Factory
from tests.js_clients import TRANSPORTS, Tracker, node_program
from tests.live_server import free_port
from tests.support import delete_prefix, shared_redis

pytestmark = pytest.mark.parametrize("backend", ["postgresql"])

BUYERS_EACH = 15  # buyers whose address reaches each instance: 30 in all
ORDERS_EACH = 6  # orders each buyer places, one after another
KILL_AFTER = 2 * BUYERS_EACH * ORDERS_EACH // 3  # orders answered when the instance is killed: mid-load
CANDIDATES = [f"127.0.0.{n}" for n in range(2, 90)]  # client addresses probed for the instance they reach
LAMP_STOCK, MUG_STOCK = 2000, 1000
RETRY_STATUSES = frozenset({502, 503, 504})  # what a buyer retries, besides a refused, reset or timed-out connection
REQUEST_TIMEOUT = 10  # seconds a buyer waits for one answer before it retries
LOST_AFTER = 0.5  # seconds after which a customer gives up the answer to an order held up by a locked row
BUYING_DEADLINE = 45  # seconds a buyer may keep retrying before the test fails
FAIL_TIMEOUT = 5  # nginx's fail_timeout: how long a failed instance is skipped before it is tried again


@pytest.fixture(scope="module")
def prefix() -> Iterator[str]:
    """This module's Redis keys: the cluster's cache, limits and Socket.IO channel, and the tests' own app's cache."""
    redis = shared_redis(TestingConfig.TEST_REDIS_URL)
    prefix = f"test:{uuid4().hex}:"
    yield prefix
    delete_prefix(redis, prefix)


@pytest.fixture(scope="module")
def cluster(tmp_root, prefix) -> Iterator[Cluster]:
    node_program()  # skip (fail in CI) before starting anything when Node cannot run the tracking clients
    env = {
        "FLASK_ENV": "testing",
        "JWT_SECRET": TestingConfig.JWT_SECRET,  # tokens minted here (tests.factories) work there
        "DATABASE_URL": database_url("postgresql", tmp_root),  # migrated by the suite: no prepare()
        "REDIS_URL": TestingConfig.TEST_REDIS_URL,
        "SOCKETIO_MESSAGE_QUEUE": TestingConfig.TEST_REDIS_URL,  # testing leaves it off
        "CACHE_KEY_PREFIX": prefix,
        "RATE_LIMIT_KEY_PREFIX": f"{prefix}limits",
    }
    log_dir = tmp_root / "cluster-kill"
    with Cluster(instances=2, port=free_port(), env=env, state_dir=log_dir / "state", log_dir=log_dir) as running:
        yield running


@pytest.fixture
def app(make_app, prefix) -> Iterator[Flask]:
    """The tests' own app writes the rows (users, products, tracked orders) to the cluster's database."""
    application = make_app(CACHE_KEY_PREFIX=prefix)
    with application.app_context():
        yield application


# Client addresses


class _FromAddress(HTTPAdapter):
    """Connections from one source address (127.0.0.0/8 is all this machine's)."""

    def __init__(self, address: str) -> None:
        self.address = address  # before HTTPAdapter's __init__, which builds the pool
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, source_address=(self.address, 0), **kwargs)


def session_from(address: str) -> requests.Session:
    session = requests.Session()
    session.trust_env = False
    session.mount("http://", _FromAddress(address))
    return session


def addresses_by_instance(cluster: Cluster, wanted: int) -> dict[int, list[str]]:
    """`wanted` client addresses for each instance, by the instance nginx sends each to."""
    with ThreadPoolExecutor(8) as pool:
        reached = list(pool.map(lambda address: cluster.instance_for(address).index, CANDIDATES))
    found = {instance.index: [a for a, i in zip(CANDIDATES, reached, strict=True) if i == instance.index]
             for instance in cluster.instances}
    if min(len(addresses) for addresses in found.values()) < wanted:
        pytest.fail(f"nginx's hash gave too few of {len(CANDIDATES)} addresses to an instance: {found}")
    return {index: addresses[:wanted] for index, addresses in found.items()}


def requests_counted(instance: Instance, method: str, route: str, status: int) -> int:
    """The instance's own count of answered requests (fantasize_http_requests_total), read from it directly."""
    scrape = requests.get(f"{instance.url}/metrics", timeout=10)
    assert scrape.status_code == 200, scrape.text
    labels = {"method": method, "route": route, "status": str(status)}
    return int(sum(sample.value for family in text_string_to_metric_families(scrape.text)
                   for sample in family.samples
                   if sample.name == "fantasize_http_requests_total" and sample.labels == labels))


# Buyers


@dataclass
class Buyer:
    """One customer at one address, placing ORDERS_EACH orders, each retried with its key until it is answered."""

    index: int
    url: str  # nginx
    user_id: int
    token: str
    address: str
    instance: int  # the instance its address reaches
    products: tuple[int, int]
    placed: dict[str, int] = field(default_factory=dict)  # Idempotency-Key -> order id
    quantities: dict[str, int] = field(default_factory=dict)  # Idempotency-Key -> lamps ordered
    answered_at: list[float] = field(default_factory=list)  # time.monotonic() of each order's final answer
    failures: list[tuple[float, str]] = field(default_factory=list)  # (when, what) of each failed request
    retried: int = 0  # orders answered only after a failed attempt
    replays: int = 0  # retries answered with the order an earlier attempt had placed
    unexpected: list[str] = field(default_factory=list)

    def buy(self, progress: Progress) -> None:
        with session_from(self.address) as client:
            for n in range(ORDERS_EACH):
                if not self.order(client, n):
                    return
                progress.one_more()

    def request(self, n: int) -> tuple[str, int, dict[str, Any], dict[str, str]]:
        """Order `n`: its Idempotency-Key, the lamps it orders, its body and headers."""
        lamp, mug = self.products
        key = f"kill-{self.index}-{n}"
        lamps = 1 + (self.index + n) % 3
        body = {"items": [{"productId": lamp, "quantity": lamps}, {"productId": mug, "quantity": 1}]}
        return key, lamps, body, {"Authorization": f"Bearer {self.token}", "Idempotency-Key": key}

    def order(self, client: requests.Session, n: int, tried: int = 0) -> bool:
        """Order `n` placed (or its buyer gave up: False); `tried`, attempts made already."""
        key, lamps, body, headers = self.request(n)
        answer = self._place(client, body, headers, tried)
        if answer is None:
            return False
        self.placed[key], self.quantities[key] = answer, lamps
        self.answered_at.append(time.monotonic())
        return True

    def lose_the_answer(self, n: int) -> None:
        """Send order `n` and give its answer up for lost before it comes, as a client whose connection dropped
        (the order must be waiting for something, or it would be answered in time)."""
        _, _, body, headers = self.request(n)
        with session_from(self.address) as client, pytest.raises(requests.Timeout):
            client.post(f"{self.url}/api/v1/orders", json=body, headers=headers, timeout=LOST_AFTER)
        self.failures.append((time.monotonic(), "timeout"))

    def _place(self, client: requests.Session, body: dict, headers: dict[str, str], tried: int) -> int | None:
        """The order's id once placed (201) or replayed (200); None when the buyer gives up."""
        deadline = time.monotonic() + BUYING_DEADLINE
        attempts = tried
        while time.monotonic() < deadline:
            attempts += 1
            try:
                response = client.post(f"{self.url}/api/v1/orders", json=body, headers=headers,
                                       timeout=REQUEST_TIMEOUT)
            except requests.Timeout:
                self.failures.append((time.monotonic(), "timeout"))
            except requests.ConnectionError as exc:
                self.failures.append((time.monotonic(), f"connection: {type(exc).__name__}"))
            else:
                if response.status_code in (200, 201):
                    replayed = response.headers.get("Idempotent-Replayed") == "true"
                    if replayed != (response.status_code == 200) or (replayed and attempts == 1):
                        self.unexpected.append(f"{response.status_code} replayed={replayed} attempt {attempts}")
                    self.replays += replayed
                    self.retried += attempts > 1
                    return response.json()["id"]
                if response.status_code not in RETRY_STATUSES:
                    self.unexpected.append(f"{response.status_code}: {response.text[:300]}")
                    return None
                self.failures.append((time.monotonic(), str(response.status_code)))
            time.sleep(0.05 * min(attempts, 10))  # a short backoff: the survivor is busy enough
        self.unexpected.append(f"gave up after {attempts} attempts in {BUYING_DEADLINE}s")
        return None


class Progress:
    """Orders answered so far, and a wait for a count of them."""

    def __init__(self) -> None:
        self.count = 0
        self._changed = threading.Condition()

    def one_more(self) -> None:
        with self._changed:
            self.count += 1
            self._changed.notify_all()

    def wait_for(self, count: int, timeout: float) -> None:
        with self._changed:
            if not self._changed.wait_for(lambda: self.count >= count, timeout):
                pytest.fail(f"only {self.count} of {count} orders answered within {timeout}s")


@pytest.fixture
def trackers() -> Iterator[list[Tracker]]:
    started: list[Tracker] = []
    yield started
    for tracker in started:
        tracker.stop()


def start_tracking(cluster: Cluster, factory: Factory, addresses: dict[int, list[str]], product: Product,
                   started: list[Tracker]) -> dict[int, list[tuple[Tracker, int]]]:
    """One tracking client per transport on each instance (by its address), each following a pending order of its
    own user and reconnecting when it loses its connection; once each has its `tracking` answer."""
    node = node_program()
    tracked: dict[int, list[tuple[Tracker, int]]] = {}
    for instance in cluster.instances:
        tracked[instance.index] = []
        for transport, address in zip(TRANSPORTS, addresses[instance.index], strict=True):
            user = factory.user()
            order_id = factory.order_of(user, product).id
            tracker = Tracker(node, cluster.url, factory.token(user), order_id, transport, timeout=120,
                              local_address=address, reconnect=True)
            started.append(tracker)
            tracked[instance.index].append((tracker, order_id))
    for tracker, order_id in started_pairs(tracked):
        assert tracker.wait_for("tracking") == {"orderId": order_id, "status": "pending"}
    return tracked


def started_pairs(tracked: dict[int, list[tuple[Tracker, int]]]) -> list[tuple[Tracker, int]]:
    return [pair for pairs in tracked.values() for pair in pairs]


def assert_each_order_exists_once(buyers: list[Buyer]) -> list[int]:
    """One row per buyer and Idempotency-Key, the one its answer named, with its two lines; the orders' ids."""
    keys = db.session.execute(
        select(Order.user_id, Order.idempotency_key, func.count(), func.min(Order.id))
        .where(Order.user_id.in_([buyer.user_id for buyer in buyers]))
        .group_by(Order.user_id, Order.idempotency_key)
    ).all()
    assert {(user_id, key): (count, order_id) for user_id, key, count, order_id in keys} == {
        (buyer.user_id, key): (1, order_id) for buyer in buyers for key, order_id in buyer.placed.items()
    }
    orders = [order_id for buyer in buyers for order_id in buyer.placed.values()]
    lines = db.session.execute(select(OrderLine.order_id, func.count()).where(OrderLine.order_id.in_(orders))
                               .group_by(OrderLine.order_id)).all()
    assert sorted(count for _, count in lines) == [2] * len(orders)
    return orders


def assert_stock_adds_up(buyers: list[Buyer], lamp_id: int, mug_id: int) -> None:
    """Each product's stock is its initial stock less what the buyers ordered, as the order lines say too."""
    lamps = sum(quantity for buyer in buyers for quantity in buyer.quantities.values())
    mugs = sum(len(buyer.placed) for buyer in buyers)
    db.session.expire_all()
    assert db.session.get(Product, lamp_id).quantity == LAMP_STOCK - lamps >= 0
    assert db.session.get(Product, mug_id).quantity == MUG_STOCK - mugs >= 0
    sold = db.session.execute(select(OrderLine.product_id, func.sum(OrderLine.quantity))
                              .where(OrderLine.product_id.in_([lamp_id, mug_id])).group_by(OrderLine.product_id))
    assert dict(sold.all()) == {lamp_id: lamps, mug_id: mugs}


@contextlib.contextmanager
def holding_row(model: type[Product], ident: int) -> Iterator[Callable[[Callable[[], int]], None]]:
    """A row locked FOR UPDATE by a transaction of the test's own while the block runs; inside, a wait until as
    many stock UPDATEs wait for a lock as `count()` says."""
    waiting = text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                   "AND wait_event_type = 'Lock' AND query LIKE 'UPDATE products%'")

    def wait_for_orders(count: Callable[[], int]) -> None:
        deadline = time.monotonic() + 30
        while True:
            # A transaction of its own each time: PostgreSQL keeps one snapshot of pg_stat_activity per transaction.
            with db.engine.connect() as probe:
                found = probe.execute(waiting).scalar_one()
            if found >= count():
                return
            if time.monotonic() > deadline:
                pytest.fail(f"{found} of {count()} orders wait for the locked row")
            time.sleep(0.05)

    with db.engine.connect() as connection, connection.begin() as transaction:
        connection.execute(select(model.id).where(model.id == ident).with_for_update())
        yield wait_for_orders
        transaction.rollback()


def wait_until_sent_to(cluster: Cluster, instance: Instance, address: str) -> float:
    """Until nginx sends a client at `address` to `instance` again, which it tries only once fail_timeout has
    passed since the last failure; every nginx worker then knows (the upstream's state is in a shared zone). How
    long it took."""
    started = time.monotonic()
    while cluster.instance_for(address) is not instance:
        if time.monotonic() - started > 4 * FAIL_TIMEOUT:
            pytest.fail(f"nginx does not send {address} to instance {instance.index} {4 * FAIL_TIMEOUT}s on")
        time.sleep(0.25)
    return time.monotonic() - started


def seconds(value: float) -> float:
    return round(value, 2)


def test_an_instance_killed_mid_load_loses_no_order_and_no_socket(cluster, factory, trackers):
    victim, survivor = cluster.instances
    lamp_id = factory.product(name="Kill Lamp", quantity=LAMP_STOCK).id
    mug_id = factory.product(name="Kill Mug", quantity=MUG_STOCK).id
    admin = {"Authorization": f"Bearer {factory.token(factory.admin())}"}
    addresses = addresses_by_instance(cluster, BUYERS_EACH + len(TRANSPORTS) + 1)
    tracked = start_tracking(cluster, factory, {index: found[BUYERS_EACH:-1] for index, found in addresses.items()},
                             factory.product(name="Tracked Thing"), trackers)
    buyers = [
        Buyer(n, cluster.url, user.id, factory.token(user), address, index, (lamp_id, mug_id))
        for n, (index, address) in enumerate((index, address) for index, found in addresses.items()
                                             for address in found[:BUYERS_EACH])
        for user in [factory.user()]
    ]
    # A customer of each instance whose one order's answer is lost: to a client timeout, while the row is held.
    lost = {index: Buyer(len(buyers) + index, cluster.url, user.id, factory.token(user), found[-1], index,
                         (lamp_id, mug_id))
            for index, found in addresses.items() for user in [factory.user()]}

    progress = Progress()
    with ThreadPoolExecutor(len(buyers)) as pool:
        buying = [pool.submit(buyer.buy, progress) for buyer in buyers]
        progress.wait_for(KILL_AFTER, timeout=60)
        # Every buyer's order in flight, its row written and uncommitted, waiting for the lamp's row lock (a buyer
        # may have finished already: no order completes once the row is held): the kill lands in the middle of
        # the victim's transactions, and their retries must wait for PostgreSQL to end them.
        def buying_still() -> int:
            return sum(len(buyer.placed) < ORDERS_EACH for buyer in buyers)

        with holding_row(Product, lamp_id) as waiting:
            waiting(buying_still)
            for customer in lost.values():
                customer.lose_the_answer(0)
            waiting(lambda: buying_still() + len(lost))
            killed_at = time.monotonic()
            victim.kill()
        assert not victim.alive

        # The victim's sockets come back through nginx, on the survivor, and ask for their order again.
        reconnected = []
        for tracker, order_id in tracked[victim.index]:
            tracker.wait_for("disconnect", timeout=15)
            assert tracker.wait_for("tracking", timeout=30) == {"orderId": order_id, "status": "pending"}
            reconnected.append(tracker.arrivals("tracking")[-1] - killed_at)
        for done in buying:
            done.result(timeout=BUYING_DEADLINE + REQUEST_TIMEOUT)
    assert not victim.alive and survivor.alive

    # A lost answer, asked again with its key: the survivor had placed the order, and answers with it; the victim
    # died before placing it, and the survivor places it now.
    for customer in lost.values():
        with session_from(customer.address) as client:
            assert customer.order(client, 0, tried=1)
    assert [lost[survivor.index].replays, lost[victim.index].replays] == [1, 0]

    # The survivor served every buyer to the end, the victim's included, and nothing went wrong but the kill.
    assert {buyer.index: buyer.unexpected for buyer in [*buyers, *lost.values()] if buyer.unexpected} == {}
    assert all(len(buyer.placed) == ORDERS_EACH for buyer in buyers)
    after_kill = [at > killed_at for buyer in buyers if buyer.instance == victim.index for at in buyer.answered_at]
    assert 0 < sum(after_kill) < len(after_kill)  # mid-load: the victim's buyers had orders answered before and after
    failures = sorted((at, what) for buyer in buyers for at, what in buyer.failures)
    assert failures and all(at > killed_at for at, _ in failures), failures  # the kill cut requests, and only it
    assert [buyer.failures for buyer in buyers if buyer.instance == survivor.index] == [[]] * BUYERS_EACH

    orders = assert_each_order_exists_once([*buyers, *lost.values()])
    assert_stock_adds_up([*buyers, *lost.values()], lamp_id, mug_id)

    # The next status change of each tracked order reaches its socket, wherever that is now; the survivor's sockets
    # never lost their connection.
    for _, order_id in started_pairs(tracked):
        moved = requests.patch(f"{cluster.url}/api/v1/orders/{order_id}/status", json={"status": "confirmed"},
                               headers=admin, timeout=10)
        assert moved.status_code == 200, moved.text
    for tracker, order_id in started_pairs(tracked):
        assert tracker.finish() == 0, tracker.lines
        [update] = tracker.events("order_status_update")
        assert (update["orderId"], update["status"], update["previousStatus"]) == (order_id, "confirmed", "pending")
    assert [tracker.events("disconnect") for tracker, _ in tracked[survivor.index]] == [[]] * len(TRANSPORTS)
    assert all(len(tracker.events("connect")) == 1 for tracker, _ in tracked[survivor.index])

    # While the victim is down its clients reach the survivor; once it runs again, nginx sends them back to it, as
    # its own request count shows: each buyer's next request lands on the instance its address hashes to.
    their_address = addresses[victim.index][0]
    assert cluster.instance_for(their_address) is survivor
    victim.start()
    back_after = wait_until_sent_to(cluster, victim, their_address)
    counted = [requests_counted(instance, "GET", "/api/v1/orders", 200) for instance in cluster.instances]
    for buyer in buyers:
        with session_from(buyer.address) as client:
            listed = client.get(f"{cluster.url}/api/v1/orders", headers={"Authorization": f"Bearer {buyer.token}"},
                                timeout=10)
        assert listed.status_code == 200 and len(listed.json()) == ORDERS_EACH
    assert [requests_counted(instance, "GET", "/api/v1/orders", 200) - before
            for instance, before in zip(cluster.instances, counted, strict=True)] == [BUYERS_EACH, BUYERS_EACH]

    figures = {
        "orders": len(orders),  # the buyers' and the two customers' whose answer was lost
        "victim_buyers_orders_after_kill": sum(after_kill),
        "failed_requests": len(failures),
        "failed_by_kind": dict(Counter(what for _, what in failures)),
        "orders_retried": sum(buyer.retried for buyer in buyers),
        "replayed_answers": sum(buyer.replays for buyer in [*buyers, *lost.values()]),
        "kill_to_first_error_s": seconds(failures[0][0] - killed_at),
        "kill_to_cut_orders_served_s": seconds(max(  # the orders whose requests the kill cut, placed again
            min(at for at in buyer.answered_at if at > killed_at) for buyer in buyers if buyer.failures
        ) - killed_at),
        "first_to_last_error_s": seconds(failures[-1][0] - failures[0][0]),
        "socket_reconnect_s": {"max": seconds(max(reconnected)), "median": seconds(statistics.median(reconnected))},
        "restart_to_back_in_nginx_s": seconds(back_after),
    }
    print(f"\ncluster-kill figures: {json.dumps(figures)}")
