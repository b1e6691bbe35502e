"""The figures /metrics reads when it is scraped rather than counts as things happen: the database pool, this
instance's Socket.IO clients and rooms, whether Redis answers, the process's memory.

Each is read from memory (the pool's counters, the socket registry) except Redis, which gets one PING with the
page cache's own short timeout (CACHE_REDIS_TIMEOUT_MS): once per scrape, never on a request's path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import psutil
from flask import Flask
from redis.exceptions import RedisError

from fantasize.extensions import db

if TYPE_CHECKING:
    from fantasize.realtime.sockets import Registry

ROOM_KINDS = ("user", "order", "inventory")


@dataclass(frozen=True)
class Pool:
    size: int
    checked_out: int
    overflow: int  # connections open beyond `size` (0 until the pool is full)


def pool(app: Flask) -> Pool | None:
    """The SQLAlchemy QueuePool's figures; None for a pool that keeps none (SQLite in memory)."""
    with app.app_context():
        engine_pool = db.engine.pool
    if not all(hasattr(engine_pool, name) for name in ("size", "checkedout", "overflow")):
        return None
    # QueuePool.overflow() starts at -size and counts up as connections open; above 0 it is the overflow in use.
    return Pool(engine_pool.size(), engine_pool.checkedout(), max(0, engine_pool.overflow()))


@dataclass(frozen=True)
class Sockets:
    clients: int
    rooms: dict[str, int]  # kind -> rooms with at least one member


def sockets(app: Flask) -> Sockets | None:
    realtime = app.extensions.get("fantasize.realtime")  # by name: the platform does not import real time
    if realtime is None:
        return None
    registry: Registry = realtime.registry
    held = registry.snapshot()
    users = {sock.signed_in.user_id for sock in held if sock.signed_in is not None}
    orders = {order for sock in held for order in sock.orders}
    products = {product for sock in held for product in sock.products}
    return Sockets(len(held), {"user": len(users), "order": len(orders), "inventory": len(products)})


def redis_up(app: Flask) -> bool | None:
    """Whether the page cache's Redis answers a PING now (None: no Redis configured, nothing to say)."""
    from fantasize.platform.cache.pages import page_store
    from fantasize.platform.cache.store import RedisBackend

    store = page_store(app)
    if store is None or not isinstance(store.backend, RedisBackend):
        return None
    try:
        return bool(store.backend.client.ping())
    except (RedisError, OSError):
        return False


def resident_memory() -> int:
    return psutil.Process().memory_info().rss
