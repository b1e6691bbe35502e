"""Who is connected: this instance's figures, live, and every instance's through Redis.

Each instance that holds sockets writes its figures to one Redis hash every SOCKET_SWEEP_SECONDS (field = instance
id); an entry older than three intervals belongs to an instance that stopped, and is dropped. Without a message
queue there is only this process.
"""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError

from fantasize.models.base import iso_utc

if TYPE_CHECKING:
    from fantasize.realtime import Realtime

ROOM_KINDS = ("user", "order", "inventory")


def _key(realtime: Realtime) -> str:
    return f"{realtime.prefix}instances"


def local(realtime: Realtime) -> dict[str, Any]:
    """This instance's figures, with the ids of its signed-in users (for the total's distinct count)."""
    sockets = realtime.registry.snapshot()
    users = {sock.signed_in.user_id for sock in sockets if sock.signed_in is not None}
    rooms = {
        "user": {"rooms": len(users), "members": sum(1 for sock in sockets if sock.signed_in is not None)},
        "order": {"rooms": len({o for sock in sockets for o in sock.orders}),
                  "members": sum(len(sock.orders) for sock in sockets)},
        "inventory": {"rooms": len({p for sock in sockets for p in sock.products}),
                      "members": sum(len(sock.products) for sock in sockets)},
    }
    return {
        "instance": realtime.instance_id,
        "pid": os.getpid(),
        "asyncMode": realtime.async_mode,
        "connectedClients": len(sockets),
        "authenticatedClients": rooms["user"]["members"],
        "authenticatedUsers": len(users),
        "rooms": rooms,
        "updatedAt": time.time(),
        # Its own interval decides when its entry is stale, whatever the reader's.
        "staleAfter": time.time() + realtime.sweep_seconds * 3,
        "userIds": sorted(users),
    }


def publish(realtime: Realtime) -> None:
    if not realtime.queue_url:
        return
    key = _key(realtime)
    try:
        pipe = realtime.redis.pipeline(transaction=False)
        pipe.hset(key, realtime.instance_id, json.dumps(local(realtime)))
        # Stale entries are skipped by their staleAfter; the expiry only clears the hash once every instance stopped.
        pipe.expire(key, max(3600, realtime.sweep_seconds * 3))
        pipe.execute()
    except RedisError:
        realtime.quiet_log.warning("could not publish real-time figures", exc_info=True)


def _public(figures: dict[str, Any]) -> dict[str, Any]:
    shown = {key: value for key, value in figures.items() if key not in ("userIds", "staleAfter")}
    shown["updatedAt"] = iso_utc(datetime.fromtimestamp(figures["updatedAt"], UTC))
    return shown


def collect(realtime: Realtime) -> dict[str, Any]:
    """GET /api/v1/admin/realtime/stats: this instance, every live instance, and the total."""
    here = local(realtime)
    instances = {realtime.instance_id: here}
    shared = realtime.queue_url is not None
    reachable = True
    if shared:
        try:
            now = time.time()
            for field, raw in realtime.redis.hgetall(_key(realtime)).items():
                instance = field.decode()
                figures = json.loads(raw)
                if instance == realtime.instance_id:
                    continue
                if figures.get("staleAfter", 0) < now:
                    realtime.redis.hdel(_key(realtime), instance)
                    continue
                instances[instance] = figures
        except (RedisError, ValueError):
            reachable = False
            realtime.quiet_log.warning("could not read other instances' real-time figures", exc_info=True)
    every = list(instances.values())
    total = {
        "instances": len(every),
        "connectedClients": sum(f["connectedClients"] for f in every),
        "authenticatedClients": sum(f["authenticatedClients"] for f in every),
        "authenticatedUsers": len({user for f in every for user in f["userIds"]}),
        "rooms": {kind: {"members": sum(f["rooms"][kind]["members"] for f in every)} for kind in ROOM_KINDS},
    }
    return {
        "messageQueue": "redis" if shared else None,
        "complete": not shared or reachable,
        "instance": _public(here),
        "instances": [_public(f) for f in sorted(every, key=lambda f: f["instance"])],
        "total": total,
    }
