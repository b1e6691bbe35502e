"""The page cache of the public catalogue (API.md "Caching"): Flask-Caching on Redis when REDIS_URL is set,
its in-process SimpleCache otherwise.

`domains` says what can be cached and what invalidates it, `store` keeps pages, generations and locks behind a
circuit breaker, `pages` serves views declared with `@endpoint(..., cache=...)`, `invalidation` moves
generations when a transaction that wrote catalogue tables commits.
"""

from __future__ import annotations

from flask import Flask
from redis import Redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from fantasize.extensions import cache
from fantasize.platform import redis_clients
from fantasize.platform.cache.domains import DOMAINS
from fantasize.platform.cache.invalidation import init_session_events
from fantasize.platform.cache.pages import EXTENSION, HEADER, OFFER_CHANGE, page_store, release_unused_lookup
from fantasize.platform.cache.store import LocalBackend, PageStore, RedisBackend
from fantasize.platform.limit_storage import LendingPool, connection_options

# How long a request waits for a free pooled Redis connection before the cache counts as unreachable.
POOL_WAIT_SECONDS = 2
# The pages `flask cache warm` fills: the first page of every catalogue listing and the discovery pages.
WARM_VERSIONS = ("v1", "v2")
WARM_PATHS = ("/products", "/packages", "/categories", "/brands", "/materials", "/offers", "/customizations",
              "/home", "/explore")


def init_app(app: Flask) -> None:
    cfg = app.config
    if cfg.get("REDIS_URL"):
        timeout = cfg["CACHE_REDIS_TIMEOUT_MS"] / 1000
        # One immediate retry lets a pooled connection that Redis dropped (a restart) reconnect; no backoff, so a
        # dead Redis costs at most two short timeouts before the breaker opens. A blocking pool: a request that
        # finds every connection busy waits for one (redis-py's default pool would raise, opening the breaker).
        pool = redis_clients.pool(cfg["REDIS_URL"], LendingPool, max_connections=cfg["REDIS_MAX_CONNECTIONS"],
                                  timeout=POOL_WAIT_SECONDS, socket_timeout=timeout, socket_connect_timeout=timeout,
                                  retry=Retry(NoBackoff(), 1), **connection_options())
        client = Redis(connection_pool=pool)
        cache.init_app(app, config={"CACHE_TYPE": "RedisCache", "CACHE_REDIS_HOST": client})
        backend = RedisBackend(client, cfg["CACHE_KEY_PREFIX"])
    else:
        cache.init_app(app, config={"CACHE_TYPE": "SimpleCache"})
        backend = LocalBackend(app.extensions["cache"][cache])
    app.extensions[EXTENSION] = PageStore(backend, cfg["CACHE_BREAKER_SECONDS"])
    app.teardown_request(release_unused_lookup)
    init_session_events()


def is_shared(app: Flask) -> bool:
    """True when the cache lives in Redis (shared by every process), False for this process's memory."""
    return isinstance(page_store(app).backend, RedisBackend)


def warm(app: Flask) -> list[tuple[str, int, str | None]]:
    """Request the main catalogue pages (each version) so they are cached: (path, status, X-Cache) of each."""
    client = app.test_client()
    results = []
    for version in WARM_VERSIONS:
        for path in WARM_PATHS:
            url = f"/api/{version}{path}"
            response = client.get(url)
            results.append((url, response.status_code, response.headers.get(HEADER)))
    return results


def clear(app: Flask) -> int | None:
    """Invalidate every cached page and delete the stored ones: how many were deleted (None: not counted)."""
    return page_store(app).clear(sorted(DOMAINS), [OFFER_CHANGE])
