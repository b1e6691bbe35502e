"""Where cached pages, domain generations and recompute locks live (Redis, or this process's memory), and the
circuit breaker that keeps a dead Redis from slowing or failing requests.

Generations are counters, one key per domain: invalidating a domain is one INCR whatever the number of cached
pages, and a page key embeds the generations it was computed under, so old pages are simply never asked for
again and expire on their own. Pages are stored as bytes, never pickled: whoever can write to Redis cannot make
the app unpickle objects.
"""

from __future__ import annotations

import logging
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

from redis import Redis
from redis.exceptions import RedisError

log = logging.getLogger("fantasize.cache")
T = TypeVar("T")

# Deletes a lock only while it still holds our token, so a request whose lock expired cannot free a later one's.
_RELEASE = """
if redis.call("get", KEYS[1]) == ARGV[1] then
    return redis.call("del", KEYS[1])
end
return 0
"""
# Sets a mark only if it still has the value it was read with, so a stale reader cannot undo a writer's update.
_REPLACE = """
local current = redis.call("get", KEYS[1])
if (current == false and ARGV[1] == "") or current == ARGV[1] then
    redis.call("set", KEYS[1], ARGV[2])
end
return 0
"""
_GLOB_SPECIALS = re.compile(r"([*?\[\]\\])")
_DELETE_BATCH = 500


def _fresh_generation() -> int:
    # A generation key that went missing (evicted, deleted, Redis restarted empty) starts again at the clock in
    # nanoseconds, never at 0, so it cannot come back to a value whose old pages are still stored.
    return time.time_ns()


class Backend(Protocol):
    def generations(self, domains: Sequence[str], mark: str | None = None) -> tuple[list[int], bytes | None]: ...
    def bump(self, domains: Iterable[str], marks: Mapping[str, bytes | None]) -> None: ...
    def replace_mark(self, name: str, old: bytes | None, new: bytes) -> None: ...
    def get(self, key: str) -> bytes | None: ...
    def put(self, key: str, value: bytes, ttl: int) -> None: ...
    def lock(self, key: str, ms: int) -> str | None: ...
    def unlock(self, key: str, token: str) -> None: ...
    def delete_pages(self) -> int | None: ...


class RedisBackend:
    """Keys `<prefix>gen:<domain>`, `<prefix>mark:<name>`, `<prefix>page:<hash>`, `<prefix>lock:<hash>`, on the
    client Flask-Caching uses. The raw client is used because cachelib's `add` sets a key and its expiry in two
    commands: a lock taken by a request that dies between them would never expire.
    """

    def __init__(self, client: Redis, prefix: str) -> None:
        self.client = client
        self.prefix = prefix
        self._release = client.register_script(_RELEASE)
        self._replace = client.register_script(_REPLACE)

    def _gen(self, domain: str) -> str:
        return f"{self.prefix}gen:{domain}"

    def _mark(self, name: str) -> str:
        return f"{self.prefix}mark:{name}"

    def generations(self, domains: Sequence[str], mark: str | None = None) -> tuple[list[int], bytes | None]:
        """The domains' generations and, in the same round trip, the value of one mark."""
        keys = [self._gen(domain) for domain in domains]
        values = self.client.mget([*keys, self._mark(mark)] if mark else keys)
        marked = values.pop() if mark else None
        if None in values:
            pipe = self.client.pipeline(transaction=False)
            for key, value in zip(keys, values, strict=True):
                if value is None:
                    pipe.set(key, _fresh_generation(), nx=True)
            pipe.mget(keys)
            values = pipe.execute()[-1]
        return [int(value) for value in values], marked

    def bump(self, domains: Iterable[str], marks: Mapping[str, bytes | None]) -> None:
        pipe = self.client.pipeline(transaction=False)
        for domain in sorted(domains):
            pipe.set(self._gen(domain), _fresh_generation(), nx=True)
            pipe.incr(self._gen(domain))
        for name, value in marks.items():
            if value is None:
                pipe.delete(self._mark(name))
            else:
                pipe.set(self._mark(name), value)
        pipe.execute()

    def replace_mark(self, name: str, old: bytes | None, new: bytes) -> None:
        self._replace(keys=[self._mark(name)], args=[old or b"", new])

    def get(self, key: str) -> bytes | None:
        return self.client.get(f"{self.prefix}page:{key}")

    def put(self, key: str, value: bytes, ttl: int) -> None:
        self.client.set(f"{self.prefix}page:{key}", value, ex=ttl)

    def lock(self, key: str, ms: int) -> str | None:
        token = secrets.token_hex(8)
        return token if self.client.set(f"{self.prefix}lock:{key}", token, nx=True, px=ms) else None

    def unlock(self, key: str, token: str) -> None:
        self._release(keys=[f"{self.prefix}lock:{key}"], args=[token])

    def delete_pages(self) -> int:
        """SCAN (never KEYS) this app's pages and unlink them in batches; other keys in the database stay."""
        pattern = _GLOB_SPECIALS.sub(r"\\\1", self.prefix) + "page:*"
        deleted, batch = 0, []
        for key in self.client.scan_iter(match=pattern, count=1000):
            batch.append(key)
            if len(batch) >= _DELETE_BATCH:
                deleted += self.client.unlink(*batch)
                batch = []
        if batch:
            deleted += self.client.unlink(*batch)
        return deleted


class LocalBackend:
    """The embedded default: pages in Flask-Caching's SimpleCache (bounded, with expiry), generations and locks
    in this process. Without Redis each process has its own cache, so run one process (or set REDIS_URL)."""

    def __init__(self, pages: Any) -> None:
        self.pages = pages
        self._mutex = threading.Lock()
        self._generations: dict[str, int] = {}
        self._marks: dict[str | None, bytes | None] = {}
        self._locks: dict[str, tuple[str, float]] = {}

    def generations(self, domains: Sequence[str], mark: str | None = None) -> tuple[list[int], bytes | None]:
        with self._mutex:
            return [self._generations.get(domain, 0) for domain in domains], self._marks.get(mark)

    def bump(self, domains: Iterable[str], marks: Mapping[str, bytes | None]) -> None:
        with self._mutex:
            for domain in domains:
                self._generations[domain] = self._generations.get(domain, 0) + 1
            for name, value in marks.items():
                self._marks[name] = value

    def replace_mark(self, name: str, old: bytes | None, new: bytes) -> None:
        with self._mutex:
            if self._marks.get(name) == old:
                self._marks[name] = new

    def get(self, key: str) -> bytes | None:
        return self.pages.get(key)

    def put(self, key: str, value: bytes, ttl: int) -> None:
        self.pages.set(key, value, timeout=ttl)

    def lock(self, key: str, ms: int) -> str | None:
        now = time.monotonic()
        with self._mutex:
            held = self._locks.get(key)
            if held is not None and held[1] > now:
                return None
            token = secrets.token_hex(8)
            self._locks[key] = (token, now + ms / 1000)
            return token

    def unlock(self, key: str, token: str) -> None:
        with self._mutex:
            if self._locks.get(key, ("",))[0] == token:
                del self._locks[key]

    def delete_pages(self) -> None:
        self.pages.clear()


class PageStore:
    """A backend behind a circuit breaker: after a failure Redis is skipped for `cooldown` seconds, and every
    operation answers as if the cache were empty. Invalidations that could not be sent are owed and sent
    before the next generation read, so this process never serves a page it failed to invalidate.

    Marks are small shared values that travel with the generations (the moment the offers next change).
    """

    def __init__(self, backend: Backend, cooldown: float) -> None:
        self.backend = backend
        self.cooldown = cooldown
        self._open_until = 0.0
        self._owed: set[str] = set()
        self._owed_marks: set[str] = set()

    @property
    def available(self) -> bool:
        return time.monotonic() >= self._open_until

    def _call(self, operation: Callable[..., T], *args: Any) -> tuple[bool, T | None]:
        if not self.available:
            return False, None
        try:
            return True, operation(*args)
        except (RedisError, OSError) as exc:
            self._open_until = time.monotonic() + self.cooldown
            log.warning("cache unavailable, skipping it for %ss", self.cooldown,
                        extra={"errorType": type(exc).__name__, "error": str(exc)})
            return False, None

    def generations(self, domains: Sequence[str], mark: str | None = None) -> tuple[list[int], bytes | None] | None:
        if (self._owed or self._owed_marks) and not self._settle({}):
            return None
        return self._call(self.backend.generations, domains, mark)[1]

    def invalidate(self, domains: Iterable[str], marks: Mapping[str, bytes | None] | None = None) -> None:
        self._owed.update(domains)
        if not self._settle(marks or {}):
            # A mark computed now may be stale by the time Redis is back: it is deleted then, and recomputed.
            self._owed_marks.update(marks or {})
            log.warning("cache invalidation postponed until the cache is reachable",
                        extra={"domains": sorted(self._owed)})

    def _settle(self, marks: Mapping[str, bytes | None]) -> bool:
        owed, owed_marks = set(self._owed), set(self._owed_marks)
        ok, _ = self._call(self.backend.bump, owed, {**dict.fromkeys(owed_marks), **marks})
        if ok:
            self._owed -= owed
            self._owed_marks -= owed_marks
        return ok

    def replace_mark(self, name: str, old: bytes | None, new: bytes) -> None:
        self._call(self.backend.replace_mark, name, old, new)

    def get(self, key: str) -> bytes | None:
        return self._call(self.backend.get, key)[1]

    def put(self, key: str, value: bytes, ttl: int) -> None:
        self._call(self.backend.put, key, value, ttl)

    def lock(self, key: str, ms: int) -> str | None:
        return self._call(self.backend.lock, key, ms)[1]

    def unlock(self, key: str, token: str) -> None:
        self._call(self.backend.unlock, key, token)

    def clear(self, domains: Iterable[str], marks: Iterable[str]) -> int | None:
        """Move every generation on, forget the marks (nothing cached is served again), delete the stored pages."""
        self.invalidate(domains, dict.fromkeys(marks))
        ok, deleted = self._call(self.backend.delete_pages)
        if not ok or self._owed:
            raise RuntimeError("the cache is unreachable")
        return deleted
