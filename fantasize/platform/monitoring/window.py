"""The request window behind the admin performance endpoints: counted in process, flushed to Redis once a second.

On the request path `record` only adds to counters in this process's memory (figures.py) under a lock: no Redis,
no database. A background task (a daemon thread, which gevent's monkey-patching makes a greenlet, as for the
real-time outbox), started by the first request each process records, then once a second:

- folds what the requests added into this process's own history (10 s slots for the last hour, 5 minute slots for
  the last day), which is what the endpoints report when there is no Redis or it does not answer;
- with REDIS_URL, adds it to the shared keys in ONE pipelined write (MULTI/EXEC): a hash per slot and grain, whose
  counters every instance and every gunicorn worker increments with HINCRBY, so the keys hold the sum of all of
  them by construction, and sorted sets of the latest slow requests and statements. Keys expire on their own
  (2 h for 10 s slots, 25 h for 5 minute slots and the slow lists).

A Redis that is down or slow costs requests nothing: the flush fails after a short timeout, says so in the log once
a minute, and keeps what it could not send to add on the next success (up to an hour of slots; older ones are
dropped). Should a write's reply be lost after Redis applied it, the next one counts its figures twice; that is
the price of never blocking the request path.

A window reads: the shared keys (every instance), plus what this process has counted but not yet sent; without
Redis, or when reading it fails, this process's history (`scope` says which).
"""

from __future__ import annotations

import atexit
import json
import logging
import threading
import time
import weakref
from collections import Counter, deque
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from flask import has_request_context, request
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

from fantasize.platform import redis_clients
from fantasize.platform.monitoring import counting_lock
from fantasize.platform.monitoring.figures import count, merged, report

if TYPE_CHECKING:
    from fantasize.platform.monitoring import Sample

log = logging.getLogger("fantasize.monitoring")

FLUSH_SECONDS = 1.0
FINE = 10  # seconds per fine slot
FINE_KEEP = 3600  # fine slots are read for windows up to an hour
FINE_TTL = 2 * 3600
COARSE = 300  # seconds per coarse slot
COARSE_KEEP = 24 * 3600
COARSE_TTL = 25 * 3600
RECENT = 100  # slow requests, and slow statements, kept (per process and in Redis)
UNSENT_SLOTS = FINE_KEEP // FINE  # fine slots kept for Redis while it is away; older ones are dropped
REDIS_TIMEOUT = 0.5  # seconds, to connect and for each reply
READ_PAUSE = 5.0  # seconds the endpoints read only this process after a failed Redis read (unless a flush works)
QUIET_SECONDS = 60.0

SCOPE_CLUSTER = "cluster"  # every instance, from Redis
SCOPE_INSTANCE = "instance"  # this process only


def iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Recent:
    """The latest slow requests (or statements): kept in process, and queued for Redis's sorted set."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.kept: deque[dict[str, Any]] = deque(maxlen=RECENT)  # this process's, oldest first
        self.pending: deque[dict[str, Any]] = deque(maxlen=RECENT)  # not yet folded by a tick
        self.unsent: deque[dict[str, Any]] = deque(maxlen=RECENT)  # folded, not yet in Redis


class Window:
    def __init__(self, redis_url: str | None, prefix: str, slow_request_ms: float) -> None:
        # One immediate retry lets a connection Redis dropped (a restart) reconnect; no more, so a hung Redis costs
        # a read at most two timeouts.
        self.redis = (redis_clients.client(redis_url, socket_connect_timeout=REDIS_TIMEOUT,
                                           socket_timeout=REDIS_TIMEOUT, retry=Retry(NoBackoff(), 1))
                      if redis_url else None)
        self.prefix = prefix
        self.slow_request_ms = slow_request_ms
        self._lock = counting_lock()  # guards the figures; held only to add or copy, never across I/O
        self._ticking = threading.Lock()  # one tick at a time (the task's, or a test's)
        self._pending: dict[int, Counter] = {}  # fine slot -> figures recorded since the last tick
        self._unsent: dict[int, Counter] = {}  # fine slot -> figures folded but not yet in Redis
        self._fine: dict[int, Counter] = {}  # this process's history
        self._coarse: dict[int, Counter] = {}
        self.slow_requests = Recent(f"{prefix}slow-requests")
        self.slow_queries = Recent(f"{prefix}slow-queries")
        self._thread: threading.Thread | None = None
        self._closed = False
        self._last_complaint = 0.0
        self._reads_paused_until = 0.0  # monotonic; a hung Redis costs the endpoints one timeout per READ_PAUSE
        self.dropped_slots = 0

    # The request path

    def record(self, sample: Sample) -> None:
        """A request listener (monitoring.on_request): count one finished request."""
        method, route, status, seconds = sample.method, sample.route, sample.status, sample.seconds
        ms = seconds * 1000
        slow = ms > self.slow_request_ms
        slot = int(sample.at) // FINE * FINE
        with self._lock:
            slot_figures = self._pending.get(slot)
            if slot_figures is None:
                slot_figures = self._pending[slot] = Counter()
            count(slot_figures, method, route, status, seconds, slow)
        if self._thread is None:
            self._start()
        if slow:
            path = request.path if has_request_context() else None
            entry = {"method": method, "route": route, "path": path, "status": status,
                     "durationMs": round(ms, 2), "requestId": sample.request_id, "at": sample.at}
            with self._lock:
                self.slow_requests.pending.append(entry)
            log.warning("slow request %s %s answered %s in %.0f ms (request %s)", method, route, status, ms,
                        sample.request_id, extra={"method": method, "route": route, "status": status,
                                           "durationMs": round(ms, 2)})

    def note_query(self, statement: str, seconds: float, request_id: str | None) -> None:
        entry = {"statement": statement, "durationMs": round(seconds * 1000, 2), "requestId": request_id,
                 "at": time.time()}
        with self._lock:
            self.slow_queries.pending.append(entry)
        if self._thread is None:
            self._start()

    # The background task

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            # The thread holds the window weakly: an app that is dropped (tests build many) ends its thread.
            self._thread = threading.Thread(target=_run, args=(weakref.ref(self),), name="monitoring-flush",
                                            daemon=True)
            # A worker that exits (a restart, a deploy, max_requests) sends its last second before it goes.
            atexit.register(_last_tick, weakref.ref(self))
        self._thread.start()

    def close(self) -> None:
        self._closed = True

    def tick(self, now: float | None = None) -> None:
        """Fold what requests recorded into this process's history and send it to Redis (once a second)."""
        with self._ticking:
            self._tick(time.time() if now is None else now)

    def _tick(self, now: float) -> None:
        with self._lock:
            batch, self._pending = self._pending, {}
            for slot, slot_figures in batch.items():
                _add(self._fine, slot, slot_figures)
                _add(self._coarse, slot // COARSE * COARSE, slot_figures)
                _add(self._unsent, slot, slot_figures)
            _prune(self._fine, now - FINE_KEEP - FINE)
            _prune(self._coarse, now - COARSE_KEEP - COARSE)
            for recent in (self.slow_requests, self.slow_queries):
                recent.kept.extend(recent.pending)
                recent.unsent.extend(recent.pending)
                recent.pending.clear()
            dropped = 0
            if len(self._unsent) > UNSENT_SLOTS:
                for slot in sorted(self._unsent)[: len(self._unsent) - UNSENT_SLOTS]:
                    del self._unsent[slot]
                    dropped += 1
                self.dropped_slots += dropped
            if self.redis is None:
                self._unsent.clear()
                self.slow_requests.unsent.clear()
                self.slow_queries.unsent.clear()
                return
            unsent = {slot: Counter(slot_figures) for slot, slot_figures in self._unsent.items()}
            slow = {recent.key: list(recent.unsent) for recent in (self.slow_requests, self.slow_queries)}
        if not unsent and not any(slow.values()):
            return
        if dropped:
            self._complain("Redis has been away for over an hour: %s slots of 10 s of request figures (%s in all) "
                           "will never reach it", dropped, self.dropped_slots)
        try:
            self._send(unsent, slow, now)
        except (RedisError, OSError) as exc:
            self._complain("cannot write the monitoring window to Redis; keeping it in process until it answers: %s",
                           exc)
            return
        self._reads_paused_until = 0.0
        with self._lock:
            for slot in unsent:
                del self._unsent[slot]  # only a tick adds to it, and ticks take turns
            for recent in (self.slow_requests, self.slow_queries):
                for _ in slow[recent.key]:
                    if recent.unsent:
                        recent.unsent.popleft()

    def _send(self, unsent: dict[int, Counter], slow: dict[str, list[dict[str, Any]]], now: float) -> None:
        pipe = self.redis.pipeline(transaction=True)
        for slot, slot_figures in unsent.items():
            keys = [(self._key(COARSE, slot // COARSE * COARSE), COARSE_TTL)]
            if slot >= now - FINE_KEEP - FINE:
                keys.append((self._key(FINE, slot), FINE_TTL))
            for key, ttl in keys:
                for name, value in slot_figures.items():
                    pipe.hincrby(key, name, value)
                pipe.expire(key, ttl)
        for key, entries in slow.items():
            if entries:
                pipe.zadd(key, {json.dumps(entry, sort_keys=True): entry["at"] for entry in entries})
                pipe.zremrangebyrank(key, 0, -RECENT - 1)
                pipe.expire(key, COARSE_TTL)
        pipe.execute()

    def _complain(self, message: str, *args: Any) -> None:
        now = time.monotonic()
        if now - self._last_complaint >= QUIET_SECONDS:
            self._last_complaint = now
            log.warning(message, *args)

    def _key(self, grain: int, slot: int) -> str:
        return f"{self.prefix}{grain}:{slot}"

    # Reading

    def figures(self, seconds: float, now: float | None = None) -> tuple[Counter, str]:
        """The figures of the last `seconds`, in whole slots (10 s up to an hour, 5 minutes beyond): the window
        reaches back at most one slot further than asked. And whether they are every instance's or this one's."""
        now = time.time() if now is None else now
        grain = FINE if seconds <= FINE_KEEP else COARSE
        first = int(now - seconds) // grain * grain
        slots = range(first, int(now) // grain * grain + 1, grain)
        stored = None
        if self._redis_readable():
            try:
                pipe = self.redis.pipeline(transaction=False)
                for slot in slots:
                    pipe.hgetall(self._key(grain, slot))
                stored = pipe.execute()
            except (RedisError, OSError) as exc:
                self._read_failed(exc)
        # Read after Redis: a flush that lands meanwhile moves figures from `unsent` to Redis, and this order can
        # only miss them for a moment, never count them twice. Summed under the lock, as requests add to them.
        with self._lock:
            pending = [slot_figures for slot, slot_figures in self._pending.items() if slot >= first]
            if stored is not None:
                unsent = [slot_figures for slot, slot_figures in self._unsent.items() if slot >= first]
                return merged([*stored, *unsent, *pending]), SCOPE_CLUSTER
            history = self._fine if grain == FINE else self._coarse
            return merged([*(history[slot] for slot in slots if slot in history), *pending]), SCOPE_INSTANCE

    def _redis_readable(self) -> bool:
        return self.redis is not None and time.monotonic() >= self._reads_paused_until

    def _read_failed(self, exc: Exception) -> None:
        self._reads_paused_until = time.monotonic() + READ_PAUSE
        self._complain("cannot read the monitoring window from Redis; reporting this process: %s", exc)

    def metrics(self, seconds: float, now: float | None = None) -> dict[str, Any]:
        """The figures of the last `seconds`; the rate is over the span the slots read really cover (from the
        start of the first to now), not `seconds`, which the slots may exceed by up to one slot."""
        now = time.time() if now is None else now
        counted, scope = self.figures(seconds, now)
        grain = FINE if seconds <= FINE_KEEP else COARSE
        covered = now - int(now - seconds) // grain * grain
        return {**report(counted, covered), "scope": scope}

    def recent(self, recent: Recent, limit: int) -> list[dict[str, Any]]:
        """The latest `limit` entries, newest first, every instance's when Redis answers."""
        with self._lock:
            local = [*recent.unsent, *recent.pending]
            kept = [*recent.kept, *recent.pending]
        entries = kept
        if self._redis_readable():
            try:
                stored = [json.loads(member) for member in self.redis.zrevrange(recent.key, 0, limit - 1)]
                entries = _unique([*stored, *local])
            except (RedisError, OSError, ValueError) as exc:
                self._read_failed(exc)
        entries = sorted(entries, key=lambda entry: entry["at"], reverse=True)[:limit]
        return [{**{k: v for k, v in entry.items() if k != "at"}, "timestamp": iso(entry["at"])}
                for entry in entries]


def _add(slots: dict[int, Counter], slot: int, slot_figures: Counter) -> None:
    target = slots.get(slot)
    if target is None:
        slots[slot] = Counter(slot_figures)
    else:
        target.update(slot_figures)


def _prune(slots: dict[int, Counter], before: float) -> None:
    for slot in [slot for slot in slots if slot < before]:
        del slots[slot]


def _unique(entries: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: dict[str, dict[str, Any]] = {}
    for entry in entries:
        seen.setdefault(json.dumps(entry, sort_keys=True), entry)
    return list(seen.values())


def _last_tick(ref: weakref.ref[Window]) -> None:
    window = ref()
    if window is not None and not window._closed:
        try:
            window.tick()
        except Exception:
            log.exception("monitoring flush at exit failed")


def _run(ref: weakref.ref[Window]) -> None:
    while True:
        time.sleep(FLUSH_SECONDS)
        window = ref()
        if window is None or window._closed:
            return
        try:
            window.tick()
        except Exception:  # the task must outlive any surprise; the next tick tries again
            log.exception("monitoring flush failed")
        del window

