"""Redis clients and connection pools for every Redis user of the app, from one URL: a plain Redis, or the primary
that Redis Sentinel names.

Each user (the page cache, the limiter, the Socket.IO message queue, the revocations channel, the real-time
figures, the monitoring window, the health check, the CLI) asks here for a client or a pool with its own timeouts,
retries and pool class; what differs between a plain Redis and a Sentinel-managed one stays in this module.

URLs (config.redis_url builds them from the REDIS_* settings):

- `redis://`, `rediss://`, `unix://`: one Redis server, as redis-py reads them.
- `redis+sentinel://[:password@]host:port[,host:port...]/db/service[?sentinel_password=...]`: the sentinels, the
  database number and the service (REDIS_SENTINEL_MASTER); `password` is the data password (the primary's and the
  replicas'), `sentinel_password` the sentinels' own. The layout is python-socketio's, so its message queue reads
  the same URL.

With Sentinel every connection asks the sentinels for the current primary when it connects, and one that meets a
demoted primary (READONLY) drops itself: the next command reconnects to the new primary. While no primary is
known (the old one is down, the new one not yet promoted) connecting fails at once with a ConnectionError, so
each user behaves as it does when Redis is down, and follows the new primary without a restart.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from redis import Redis
from redis.backoff import NoBackoff
from redis.connection import ConnectionPool
from redis.retry import Retry
from redis.sentinel import Sentinel, SentinelConnectionPool

SENTINEL_SCHEME = "redis+sentinel"


@dataclass(frozen=True)
class SentinelTarget:
    """Where a `redis+sentinel://` URL points: the sentinels to ask, the service they watch, and how to log in."""

    sentinels: tuple[tuple[str, int], ...]
    service: str
    db: int = 0
    password: str | None = field(default=None, repr=False)  # the data password (primary and replicas)
    sentinel_password: str | None = field(default=None, repr=False)


def is_sentinel(url: str) -> bool:
    return url.split("://", 1)[0].lower() == SENTINEL_SCHEME


def parse_sentinel_url(url: str) -> SentinelTarget:
    """ValueError naming what is wrong (config.sentinel_url writes these URLs; an operator may too, as REDIS_URL)."""
    parts = urlsplit(url)
    if parts.scheme.lower() != SENTINEL_SCHEME:
        raise ValueError(f"not a {SENTINEL_SCHEME}:// URL")
    path = [piece for piece in parts.path.split("/") if piece]
    if len(path) != 2 or not path[0].isdigit():
        raise ValueError(f"a {SENTINEL_SCHEME}:// URL ends in /db/service (e.g. /0/mymaster)")
    credentials, _, hosts = parts.netloc.rpartition("@")
    sentinels = []
    for entry in hosts.split(","):
        host, colon, port = entry.rpartition(":")
        if not colon or not host or not port.isdigit():
            raise ValueError(f"{entry!r} is not host:port")
        sentinels.append((host.strip("[]"), int(port)))
    password = unquote(credentials.partition(":")[2]) or None
    sentinel_password = parse_qs(parts.query).get("sentinel_password", [None])[0]
    return SentinelTarget(tuple(sentinels), unquote(path[1]), int(path[0]), password, sentinel_password)


def address(url: str) -> str:
    """Where a URL points, without its credentials, for messages and logs."""
    if is_sentinel(url):
        target = parse_sentinel_url(url)
        hosts = ",".join(f"{host}:{port}" for host, port in target.sentinels)
        return f"Sentinel service {target.service!r} ({hosts}), db {target.db}"
    parts = urlsplit(url)
    if parts.hostname is None:
        return f"{parts.scheme}://{parts.path}"
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    return f"{parts.scheme}://{parts.hostname}{port}{parts.path}"


@functools.cache
def _sentinel_variant(pool_class: type[ConnectionPool]) -> type[ConnectionPool]:
    """`pool_class` whose connections go to the primary the sentinels name (SentinelConnectionPool's connection
    class and address lookup, `pool_class`'s lending: a blocking pool stays blocking)."""
    if pool_class is ConnectionPool:
        return SentinelConnectionPool
    return type(f"Sentinel{pool_class.__name__}", (SentinelConnectionPool, pool_class), {"__module__": __name__})


def _sentinel_manager(target: SentinelTarget, options: dict[str, Any]) -> Sentinel:
    # The sentinels get the caller's socket timeouts and no retry of their own: discover_master already asks the
    # next sentinel when one fails, and a caller whose Redis is away must learn it as fast as from one server.
    sentinel_options: dict[str, Any] = {name: value for name, value in options.items() if name.startswith("socket_")}
    sentinel_options["retry"] = Retry(NoBackoff(), 0)
    if target.sentinel_password:
        sentinel_options["password"] = target.sentinel_password
    return Sentinel(list(target.sentinels), sentinel_kwargs=sentinel_options)


def pool(url: str, pool_class: type[ConnectionPool] = ConnectionPool, **options: Any) -> ConnectionPool:
    """A connection pool of `pool_class` on the Redis `url` names; `options` are the connections' and the pool's
    (timeouts, retry, parser_class, max_connections, timeout for a blocking pool)."""
    if not is_sentinel(url):
        return pool_class.from_url(url, **options)
    target = parse_sentinel_url(url)
    manager = _sentinel_manager(target, options)
    return _sentinel_variant(pool_class)(target.service, manager, db=target.db, password=target.password, **options)


def client(url: str, **options: Any) -> Redis:
    """A Redis client with a pool of its own (redis-py's default pool class) on the Redis `url` names."""
    return Redis(connection_pool=pool(url, **options))


def socketio_queue(url: str, **options: Any) -> tuple[str, dict[str, Any]]:
    """The URL and `redis_options` for python-socketio's RedisManager, which builds its own client (and, for a
    `redis+sentinel://` URL, its own Sentinel; it does not unquote the URL's password, so the passwords travel as
    options here)."""
    if not is_sentinel(url):
        return url, options
    target = parse_sentinel_url(url)
    hosts = ",".join(f"{host}:{port}" for host, port in target.sentinels)
    bare = f"{SENTINEL_SCHEME}://{hosts}/{target.db}/{target.service}"
    sentinel_options = {name: value for name, value in options.items() if name.startswith("socket_")}
    if target.sentinel_password:
        sentinel_options["password"] = target.sentinel_password
    redis_options = {**options, "sentinel_kwargs": sentinel_options}
    if target.password:
        redis_options["password"] = target.password
    return bare, redis_options
