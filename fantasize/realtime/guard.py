"""Sessions that outlive their token end: a socket's authentication holds only while its token would still work.

A socket signed in with a token keeps the token's expiry, the user's token version and role. Its session ends (it
leaves its user's room and every order room, and gets `auth_error`) when:
- the token expires (checked at the socket's next event, and by the sweep);
- the user's tokens are revoked (sign-out, password change or reset, deactivation, role change). The process that
  commits the revocation checks its own sockets at once and, with a message queue, publishes the user id on a
  Redis channel that every instance's loop listens to, so theirs end at once too;
- whatever slipped past both (a revocation made while Redis was down, by a process without the queue): every
  SOCKET_SWEEP_SECONDS each instance re-reads the users of all its signed-in sockets in one query.
The same loop publishes the instance's figures for `stats`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError
from sqlalchemy import select

from fantasize.extensions import db
from fantasize.models import User
from fantasize.platform import redis_clients
from fantasize.realtime import stats

if TYPE_CHECKING:
    from fantasize.realtime import Realtime

log = logging.getLogger("fantasize.realtime")
EXPIRED = "Token has expired"
REVOKED = "Token has been revoked"
# How soon a lost revocations channel is subscribed to again (at most the sweep interval): a Sentinel failover
# names a new primary within seconds, and until the channel is back only the sweep ends revoked sessions elsewhere.
RESUBSCRIBE_SECONDS = 2


def check(realtime: Realtime, user_ids: Iterable[int] | None = None) -> int:
    """End the sessions of this process's sockets whose token no longer works; how many ended. Needs an app context."""
    wanted = None if user_ids is None else set(user_ids)
    # Each socket with the session it had when we looked: a socket that signs in afresh meanwhile is not judged
    # by what was read for its previous session.
    sessions = [(sock, sock.signed_in) for sock in realtime.registry.signed_in()
                if sock.signed_in is not None and (wanted is None or sock.signed_in.user_id in wanted)]
    if not sessions:
        return 0
    now = time.time()
    ended = 0
    alive = []
    for sock, signed_in in sessions:
        if signed_in.expires_at <= now:
            ended += realtime.end_session(sock, EXPIRED, only=signed_in)
        else:
            alive.append((sock, signed_in))
    ids = {signed_in.user_id for _, signed_in in alive}
    current = {}
    if ids:
        rows = db.session.execute(select(User.id, User.token_version, User.is_active, User.role)
                                  .where(User.id.in_(ids)))
        current = {row.id: row for row in rows}
        db.session.rollback()  # end the read; nothing was written
    for sock, signed_in in alive:
        if sock.signed_in is not signed_in:  # signed out or in again meanwhile (a switch during the query)
            continue
        row = current.get(signed_in.user_id)
        if row is None or not row.is_active or row.token_version != signed_in.token_version \
                or row.role != signed_in.role:
            ended += realtime.end_session(sock, REVOKED, only=signed_in)
    return ended


def channel(realtime: Realtime) -> str:
    return f"{realtime.prefix}revoked"


def revoked(realtime: Realtime, user_id: int) -> None:
    """A user's tokens were revoked (committed): end their sessions here, and tell the other instances."""
    check(realtime, [user_id])
    if realtime.queue_url:
        try:
            realtime.redis.publish(channel(realtime), json.dumps({"userId": user_id}))
        except RedisError:
            realtime.quiet_log.warning("could not publish a revocation; other instances catch up within their "
                                       "sweep", extra={"userId": user_id})


def _first_expiry(realtime: Realtime) -> float:
    """When the earliest token of this process's signed-in sockets expires, on the monotonic clock."""
    expiries = [sock.signed_in.expires_at for sock in realtime.registry.signed_in() if sock.signed_in is not None]
    if not expiries:
        return float("inf")
    return time.monotonic() + max(0.0, min(expiries) - time.time())


def _listen(realtime: Realtime) -> Any:
    """A subscription to the revocations channel, or None while Redis is away (tried again RESUBSCRIBE_SECONDS on).
    A read timeout, so a Redis that accepts and never answers holds the loop for a second, not for good: its
    waits for messages are polls (`get_message(timeout=...)`), which no read timeout cuts short."""
    pubsub = None
    try:
        listener = redis_clients.client(realtime.queue_url, socket_connect_timeout=1, socket_timeout=1)
        pubsub = listener.pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe(channel(realtime))
        return pubsub
    except (RedisError, OSError):
        realtime.quiet_log.warning("cannot listen for revocations; the sweep alone ends revoked sessions until "
                                   "Redis answers")
        if pubsub is not None:
            with contextlib.suppress(Exception):  # closing a broken connection
                pubsub.close()
        return None


def run(realtime: Realtime) -> None:
    """The loop of a process that holds sockets: revocations as they come, a sweep and the figures every interval.
    The sweep does not depend on Redis: while the queue is away it is what ends revoked sessions."""
    interval = realtime.sweep_seconds
    resubscribe = min(interval, RESUBSCRIBE_SECONDS)
    pubsub = None
    listen_at = time.monotonic()  # when to (re)subscribe next, while not subscribed
    next_sweep = time.monotonic()  # at once: the instance's figures are published from its first socket on
    while not realtime.stopped:
        try:
            if realtime.queue_url and pubsub is None and time.monotonic() >= listen_at:
                pubsub = _listen(realtime)
                listen_at = time.monotonic() + resubscribe
            # Wake for the next sweep, or sooner when a token expires first (its socket leaves its rooms then).
            next_sweep = min(next_sweep, _first_expiry(realtime))
            wait = max(0.0, next_sweep - time.monotonic())
            message = None
            if pubsub is None:
                if realtime.queue_url:  # or sooner to subscribe again
                    wait = min(wait, max(0.0, listen_at - time.monotonic()))
                realtime.socketio.sleep(wait)
            else:
                try:
                    message = pubsub.get_message(timeout=wait)
                except (RedisError, OSError):
                    realtime.quiet_log.warning("lost the revocations channel; the sweep alone ends revoked sessions "
                                               "meanwhile")
                    with contextlib.suppress(Exception):  # closing a broken connection
                        pubsub.close()
                    pubsub = None
                    listen_at = time.monotonic() + resubscribe
            if message and message.get("type") == "message":
                user_id = json.loads(message["data"]).get("userId")
                if isinstance(user_id, int):
                    with realtime.app.app_context():
                        check(realtime, [user_id])
            if time.monotonic() >= next_sweep:
                next_sweep = time.monotonic() + interval
                with realtime.app.app_context():
                    check(realtime)
                stats.publish(realtime)
        except Exception:  # the database away, or a bad message: keep serving, try again next interval
            realtime.quiet_log.warning("real-time sweep failed; retrying", exc_info=True)
            realtime.socketio.sleep(interval)
            next_sweep = time.monotonic()
