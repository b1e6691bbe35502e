"""The limiter's Redis storage: one round trip per limit hit, the header figures included, and room for a rider.

Flask-Limiter decides which limits apply and enforces them; `limits` stores the counters. Its stock Redis storage
costs a request three round trips: the hit (an INCRBY script), then, for the X-RateLimit-* headers, a GET of the
counter and a TTL of it. This storage's hit script answers the count and the time to live together and keeps them
for the rest of the request, so the headers read no more (they describe the counter right after this request's
hit, which is what "remaining" means).

A rider is another module's Redis work that travels in the same script run, after the counter: the page cache
sends its lookup (generations, page, lock) this way, so a cached read costs one round trip in all. Riders are
asked for by `riders` (a callable given in the storage options) at the first hit of each request; its Lua defines
`local function ride(KEYS, ARGV)`, runs under pcall (a failing rider never fails the limit) and its answer is
handed back through `receive`.

Registered with `limits` under the `fantasize+redis://` scheme (and `fantasize+rediss://`, `fantasize+unix://`,
`fantasize+redis+sentinel://` for the primary Redis Sentinel names: fantasize.platform.redis_clients),
the extension point `limits` documents for custom storages, so Flask-Limiter builds and falls back from it as
from its own. Standalone Redis only: a rider's keys are its own business, not declared for a cluster's slots.
"""

from __future__ import annotations

import select
import sys
import time
from collections.abc import Callable
from typing import Any, Protocol

from flask import has_request_context, request
from limits.storage import RedisStorage
from redis import BlockingConnectionPool
from redis._parsers import _HiredisParser
from redis.utils import HIREDIS_AVAILABLE

from fantasize.platform import redis_clients

SCHEME_PREFIX = "fantasize+"
# How long a request waits for a free pooled connection before Redis counts as failing (limits then count in
# memory). Generous: at saturation every connection is busy for a round trip at a time, and a spurious fallback
# would split the shared budget.
POOL_WAIT_SECONDS = 2
_WINDOWS = "fantasize.limit_storage.windows"  # request environ: storage key -> (count, reset epoch seconds)
_RIDDEN = "fantasize.limit_storage.ridden"

# KEYS[1] the counter, ARGV[1] its window in seconds, ARGV[2] the cost; answers {count, seconds to live}.
# Like `limits`' incr_expire.lua, the first hit of a window sets the expiry; a counter found without one (a
# failure between the two commands elsewhere) gets it too instead of living forever.
_COUNT = """
local key, expiry, amount = KEYS[1], ARGV[1], tonumber(ARGV[2])
local count = redis.call("incrby", key, amount)
local ttl = tonumber(expiry)
if count == amount then
    redis.call("expire", key, expiry)
else
    ttl = redis.call("ttl", key)
    if ttl < 0 then
        redis.call("expire", key, expiry)
        ttl = tonumber(expiry)
    end
end
"""
_ALONE = _COUNT + "return {count, ttl}\n"
# The rider gets KEYS[2..] and ARGV[3..] as its own KEYS and ARGV; its answer, or {0, error} (1 first when fine).
_WITH_RIDER = """
local rider_keys, rider_args = {}, {}
for i = 2, #KEYS do rider_keys[#rider_keys + 1] = KEYS[i] end
for i = 3, #ARGV do rider_args[#rider_args + 1] = ARGV[i] end
local ok, answer = pcall(ride, rider_keys, rider_args)
if not ok then
    answer = {0, type(answer) == "table" and answer.err or tostring(answer)}
else
    answer = {1, answer}
end
return {count, ttl, answer}
"""


def _os_poll() -> Any:
    """The operating system's poll, even where gevent has patched `select` (gevent's own sets up a watcher on its
    event loop for every call)."""
    monkey = sys.modules.get("gevent.monkey")
    return monkey.get_original("select", "poll") if monkey is not None else select.poll


class QuickCheckParser(_HiredisParser):
    """redis-py's hiredis parser, whose check of a pooled connection before every command asks the kernel directly.

    Before lending a connection, redis-py checks that nothing is waiting on it (data left over, or the server's
    goodbye) with a poll that does not wait; under gevent that poll is gevent's, which registers and removes an
    event-loop watcher each time: about 5% of a cached read's CPU. A zero-timeout poll of the operating system
    cannot block, so it needs no event loop. A socket that does have something to read goes through redis-py's own
    check, which tells pending data from a closed connection as before.
    """

    _poll = staticmethod(_os_poll())

    def can_read(self, timeout: float = 0) -> bool:
        sock, reader = self._sock, self._reader
        if timeout or sock is None or reader is None or hasattr(sock, "pending"):  # TLS may buffer above the socket
            return super().can_read(timeout)
        if reader.has_data():
            return True
        poller = self._poll()
        poller.register(sock.fileno(), select.POLLIN)
        return bool(poller.poll(0)) and super().can_read(timeout)


def connection_options() -> dict[str, Any]:
    """Options for every Redis connection pool of the app (this storage's and the page cache's)."""
    return {"parser_class": QuickCheckParser} if HIREDIS_AVAILABLE else {}


class LendingPool(BlockingConnectionPool):
    """redis-py's blocking pool (a caller waits for a free connection), lending without the deprecation check that
    wraps `get_connection`: redis-py's own calls pass it no arguments, yet the check builds a dict of them for every
    command (about 3% of a cached read's CPU)."""

    get_connection = getattr(BlockingConnectionPool.get_connection, "__wrapped__",
                             BlockingConnectionPool.get_connection)


class Rider(Protocol):
    lua: str  # defines `local function ride(KEYS, ARGV)`
    keys: list[str]
    args: list[Any]

    def receive(self, answer: Any, error: str | None) -> None: ...


class CarryingRedisStorage(RedisStorage):
    STORAGE_SCHEME = [f"{SCHEME_PREFIX}redis", f"{SCHEME_PREFIX}rediss", f"{SCHEME_PREFIX}unix",
                      f"{SCHEME_PREFIX}{redis_clients.SENTINEL_SCHEME}"]

    def __init__(self, uri: str, key_prefix: str = RedisStorage.PREFIX,
                 riders: Callable[[], Rider | None] | None = None, max_connections: int = 50, **options: Any) -> None:
        """`options` go to the connections (timeouts, retry); `max_connections` bounds the pool, whose callers
        wait for a free connection rather than fail (redis-py's default pool raises when it is exhausted)."""
        url = uri.removeprefix(SCHEME_PREFIX)
        pool = redis_clients.pool(url, LendingPool, max_connections=max_connections, timeout=POOL_WAIT_SECONDS,
                                  **{**connection_options(), **options})
        super().__init__(url, connection_pool=pool, key_prefix=key_prefix)
        self._riders = riders
        self._scripts: dict[str, Any] = {}

    def _script(self, lua: str) -> Any:
        script = self._scripts.get(lua)
        if script is None:
            script = self._scripts[lua] = self.get_connection().register_script(lua)
        return script

    def _rider(self) -> Rider | None:
        # The first hit of a request carries the rider; Flask-Limiter hits each applicable limit in turn.
        if self._riders is None or not has_request_context() or request.environ.get(_RIDDEN):
            return None
        request.environ[_RIDDEN] = True
        return self._riders()

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        stored_key = self.prefixed_key(key)
        rider = self._rider()
        if rider is None:
            count, ttl = self._script(_ALONE)([stored_key], [expiry, amount])
        else:
            count, ttl, (ok, answer) = self._script(rider.lua + _COUNT + _WITH_RIDER)(
                [stored_key, *rider.keys], [expiry, amount, *rider.args])
            rider.receive(answer if ok else None, None if ok else _text(answer))
        if has_request_context():
            request.environ.setdefault(_WINDOWS, {})[stored_key] = (int(count), time.time() + max(int(ttl), 0))
        return int(count)

    def _window(self, key: str) -> tuple[int, float] | None:
        if not has_request_context():
            return None
        return request.environ.get(_WINDOWS, {}).get(self.prefixed_key(key))

    def get(self, key: str) -> int:
        window = self._window(key)
        return window[0] if window is not None else super().get(key)

    def get_expiry(self, key: str) -> float:
        window = self._window(key)
        return window[1] if window is not None else super().get_expiry(key)

    def clear(self, key: str) -> None:
        if has_request_context():
            request.environ.get(_WINDOWS, {}).pop(self.prefixed_key(key), None)
        super().clear(key)


def _text(value: Any) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)
