"""Where cached pages, domain generations and recompute locks live (Redis, or this process's memory), and the
circuit breaker that keeps a dead Redis from slowing or failing requests.

Generations are counters, one key per domain: invalidating a domain is one INCR whatever the number of cached
pages, and a page key embeds the generations it was computed under, so old pages are simply never asked for
again and expire on their own. Pages are stored as bytes, never pickled: whoever can write to Redis cannot make
the app unpickle objects.

The request budget (DESIGN.md): a read looks its page up in one round trip, a Lua script that reads the
generations (and a mark), builds the page key from them, reads the page and, when it is missing, takes the
stampede lock, all at once (so nobody can store the page between our read and our lock). The same script rides
along with the rate limiter's counter when a limiter on the same Redis hits first (fantasize.platform.limit_storage),
so a cached read costs one round trip in all. A miss then stores its page and lets go of the lock in one more.
"""

from __future__ import annotations

import logging
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from redis import Redis
from redis.exceptions import RedisError

log = logging.getLogger("fantasize.cache")
T = TypeVar("T")

# Sets a mark only if it still has the value it was read with, so a stale reader cannot undo a writer's update.
_REPLACE = """
local current = redis.call("get", KEYS[1])
if (current == false and ARGV[1] == "") or current == ARGV[1] then
    redis.call("set", KEYS[1], ARGV[2])
end
return 0
"""
# The lookup, written as a rider (see limit_storage.Rider) so it can also travel with the limiter's counter.
# KEYS: the generation keys, then the mark's key when ARGV[1] is "1". ARGV: that flag, the page and lock key
# prefixes, the page's base key, the lock's lifetime in ms and our token. A missing generation starts at the
# clock in nanoseconds, as _fresh_generation does. Answers {key, page or nil, locked 1/0, mark or nil, generations}.
_LOOKUP = """
local function ride(KEYS, ARGV)
    local marked = ARGV[1] == "1"
    local count = #KEYS - (marked and 1 or 0)
    local generations = {}
    for i = 1, count do
        local value = redis.call("get", KEYS[i])
        if not value then
            local now = redis.call("time")
            value = now[1] .. string.format("%06d", tonumber(now[2])) .. "000"
            redis.call("set", KEYS[i], value)
        end
        generations[i] = value
    end
    local mark = false
    if marked then
        mark = redis.call("get", KEYS[#KEYS])
    end
    local key = ARGV[4] .. ":" .. table.concat(generations, ".")
    local page = redis.call("get", ARGV[2] .. key)
    local locked = 0
    if not page and redis.call("set", ARGV[3] .. key, ARGV[6], "NX", "PX", ARGV[5]) then
        locked = 1
    end
    return {key, page, locked, mark, unpack(generations)}
end
"""
# Stores a page (unless ARGV[2], its lifetime in seconds, is 0) and lets go of the lock only while it still holds
# our token, so a request whose lock expired cannot free a later one's.
_FINISH = """
if ARGV[2] ~= "0" then
    redis.call("set", KEYS[1], ARGV[1], "EX", ARGV[2])
end
if ARGV[3] ~= "" and redis.call("get", KEYS[2]) == ARGV[3] then
    redis.call("del", KEYS[2])
end
return 0
"""
_GLOB_SPECIALS = re.compile(r"([*?\[\]\\])")
_DELETE_BATCH = 500


def _fresh_generation() -> int:
    # A generation key that went missing (evicted, deleted, Redis restarted empty) starts again at the clock in
    # nanoseconds, never at 0, so it cannot come back to a value whose old pages are still stored.
    return time.time_ns()


def page_key(base: str, generations: Sequence[int | str]) -> str:
    """A page's key: its base (what was asked) and the generations it is computed under."""
    return f"{base}:{'.'.join(map(str, generations))}"


@dataclass(frozen=True)
class Query:
    """What a read looks up: the domains it shows, the mark it needs (or None), its base key, the lock's lifetime."""

    domains: tuple[str, ...]
    mark: str | None
    base: str
    lock_ms: int


@dataclass
class Found:
    """A lookup's answer: the generations, the mark's value, the page key, the page if stored, and our lock token
    if the page was missing and nobody else was computing it."""

    generations: list[int]
    mark: bytes | None
    key: str
    page: bytes | None
    token: str | None


class Backend(Protocol):
    def lookup(self, query: Query) -> Found: ...
    def bump(self, domains: Iterable[str], marks: Mapping[str, bytes | None]) -> None: ...
    def replace_mark(self, name: str, old: bytes | None, new: bytes) -> None: ...
    def get(self, key: str) -> bytes | None: ...
    def lock(self, key: str, ms: int) -> str | None: ...
    def finish(self, key: str, page: bytes | None, ttl: int, token: str | None) -> None: ...
    def delete_pages(self) -> int | None: ...


class LookupRider:
    """A lookup travelling in the rate limiter's script run (limit_storage.Rider); `found` once it has run."""

    lua = _LOOKUP

    def __init__(self, backend: RedisBackend, query: Query) -> None:
        self.keys, self.args, self._token = backend.lookup_call(query)
        self.found: Found | None = None
        self.error: str | None = None

    def receive(self, answer: Any, error: str | None) -> None:
        if error is None:
            self.found = _found(answer, self._token)
        else:
            self.error = error


def _found(answer: list[Any], token: str) -> Found:
    key, page, locked, mark, *generations = answer
    return Found([int(value) for value in generations], mark, key.decode(), page, token if locked else None)


class RedisBackend:
    """Keys `<prefix>gen:<domain>`, `<prefix>mark:<name>`, `<prefix>page:<hash>`, `<prefix>lock:<hash>`, on the
    client Flask-Caching uses. The raw client is used because cachelib's `add` sets a key and its expiry in two
    commands: a lock taken by a request that dies between them would never expire.
    """

    def __init__(self, client: Redis, prefix: str) -> None:
        self.client = client
        self.prefix = prefix
        self._replace = client.register_script(_REPLACE)
        self._lookup = client.register_script(_LOOKUP + "return ride(KEYS, ARGV)\n")
        self._finish = client.register_script(_FINISH)

    def _gen(self, domain: str) -> str:
        return f"{self.prefix}gen:{domain}"

    def _mark(self, name: str) -> str:
        return f"{self.prefix}mark:{name}"

    def lookup_call(self, query: Query) -> tuple[list[str], list[Any], str]:
        """The keys and arguments of a lookup script run, and the token its lock would hold."""
        keys = [self._gen(domain) for domain in query.domains]
        if query.mark:
            keys.append(self._mark(query.mark))
        token = secrets.token_hex(8)
        args = ["1" if query.mark else "0", f"{self.prefix}page:", f"{self.prefix}lock:", query.base, query.lock_ms,
                token]
        return keys, args, token

    def lookup(self, query: Query) -> Found:
        keys, args, token = self.lookup_call(query)
        return _found(self._lookup(keys=keys, args=args), token)

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

    def lock(self, key: str, ms: int) -> str | None:
        token = secrets.token_hex(8)
        return token if self.client.set(f"{self.prefix}lock:{key}", token, nx=True, px=ms) else None

    def finish(self, key: str, page: bytes | None, ttl: int, token: str | None) -> None:
        if page is None and token is None:
            return
        self._finish(keys=[f"{self.prefix}page:{key}", f"{self.prefix}lock:{key}"],
                     args=[page or b"", ttl if page is not None else 0, token or ""])

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

    def lookup(self, query: Query) -> Found:
        with self._mutex:
            generations = [self._generations.get(domain, 0) for domain in query.domains]
            mark = self._marks.get(query.mark)
        key = page_key(query.base, generations)
        page = self.pages.get(key)
        return Found(generations, mark, key, page, None if page is not None else self.lock(key, query.lock_ms))

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

    def lock(self, key: str, ms: int) -> str | None:
        now = time.monotonic()
        with self._mutex:
            held = self._locks.get(key)
            if held is not None and held[1] > now:
                return None
            token = secrets.token_hex(8)
            self._locks[key] = (token, now + ms / 1000)
            return token

    def finish(self, key: str, page: bytes | None, ttl: int, token: str | None) -> None:
        if page is not None:
            self.pages.set(key, page, timeout=ttl)
        with self._mutex:
            if token is not None and self._locks.get(key, ("",))[0] == token:
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

    def lookup(self, query: Query) -> Found | None:
        """The generations, the page and, when it is missing, the lock, in one round trip; None: unreachable."""
        if (self._owed or self._owed_marks) and not self._settle({}):
            return None
        return self._call(self.backend.lookup, query)[1]

    def rider(self, query: Query) -> LookupRider | None:
        """The lookup as a rider for the limiter's round trip, when it can go that way: Redis, reachable as far
        as we know, and no invalidation owed (those are sent first, by `lookup`)."""
        if not isinstance(self.backend, RedisBackend) or not self.available or self._owed or self._owed_marks:
            return None
        return LookupRider(self.backend, query)

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

    def lock(self, key: str, ms: int) -> str | None:
        return self._call(self.backend.lock, key, ms)[1]

    def finish(self, key: str, page: bytes | None, ttl: int, token: str | None) -> None:
        """Store a computed page (None: nothing to store) and let go of our lock (None: we hold none)."""
        if page is not None or token is not None:
            self._call(self.backend.finish, key, page, ttl, token)

    def clear(self, domains: Iterable[str], marks: Iterable[str]) -> int | None:
        """Move every generation on, forget the marks (nothing cached is served again), delete the stored pages."""
        self.invalidate(domains, dict.fromkeys(marks))
        ok, deleted = self._call(self.backend.delete_pages)
        if not ok or self._owed:
            raise RuntimeError("the cache is unreachable")
        return deleted
