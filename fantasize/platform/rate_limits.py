"""Rate limits (API.md "Rate limits"): Flask-Limiter on Redis, shared by every instance, memory when embedded.

Tiers, each from config.py:
- general, on every route, counted per route (all versions of a route share one counter): a signed-in user by
  user id gets RATE_LIMIT_MAX_REQUESTS x RATE_LIMIT_AUTH_MULTIPLIER per RATE_LIMIT_WINDOW_MS, anyone else by IP
  gets RATE_LIMIT_MAX_REQUESTS;
- auth (per IP), admin, monitoring (the figures /ops polls), upload and order (per user): one budget per client
  for all the routes of the tier;
- password-email: forgot-password also per email address, whichever IP asks.
Admin routes are the views whose `@endpoint` declares auth="admin"; the others are named in TIERS. Both are
read when the app is built, which is why `init_app` runs after the API is registered (also so that a 429 comes
after version resolution and carries API-Version).

Counters live in limit_storage's Redis storage: a hit is one round trip that also answers the figures of the
X-RateLimit-* headers, and a cached read's page lookup rides in it (DESIGN.md "The request budget"). Which limits
apply to a route is worked out on its first request and kept (RouteLimits), not rebuilt on every request.

Limits run before the view authenticates, so the client key checks the bearer token itself (tokens.session_user_id:
signature, expiry, and the token version through a short in-process cache, so a signed-out or deactivated user's
token loses the signed-in budget); a bad or revoked token is simply an anonymous client. When Redis fails,
Flask-Limiter counts in this process's memory until a ping succeeds again (it retries after 1, 2, 4 ... 32 seconds,
then from 1 again).

One Limiter per app, kept in app.extensions: Flask-Limiter keeps its storage and settings on the instance, so a
module-level object would be shared by every app a process builds (the test suite builds many, some side by side).
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from flask import Flask, Response, has_request_context, request
from flask_limiter import Limit, Limiter, RateLimitExceeded, RequestLimit
from flask_limiter._limits import RuntimeLimit
from flask_limiter._manager import LimitManager
from limits import parse, parse_many
from limits.storage import MemoryStorage
from redis.backoff import NoBackoff
from redis.retry import Retry
from werkzeug.exceptions import HTTPException

from fantasize.errors import AppError, Unauthorized
from fantasize.platform.cache.pages import request_rider
from fantasize.platform.limit_storage import SCHEME_PREFIX
from fantasize.platform.monitoring import counts
from fantasize.services.accounts import normalise_email
from fantasize.services.tokens import session_user_id
from fantasize.web import MOUNTS, bearer_token, error_response, json_body

log = logging.getLogger("fantasize.rate_limits")

EXTENSION = "fantasize.rate_limits"
# A probe or a scrape must never be told to back off; the docs page itself stays under the general limit.
EXEMPT_PATHS = ("/health", "/metrics", "/api/docs/static")
FORGOT_PASSWORD = "POST /auth/password/forgot"
_MOUNT_PREFIXES = dict(MOUNTS)
_UNSET = object()
_USER_ID = "fantasize.rate_limits.user_id"


# Who is asking


def signed_in_user_id() -> int | None:
    """The user id of a valid, unrevoked access token in this request; None otherwise."""
    # Kept in the WSGI environ, which lives exactly as long as the request (an app context, and `g`, may outlive it).
    cached = request.environ.get(_USER_ID, _UNSET)
    if cached is _UNSET:
        cached = request.environ[_USER_ID] = _user_id_from_token()
    return cached


def _user_id_from_token() -> int | None:
    try:
        token = bearer_token()
    except Unauthorized:
        return None
    # A reset token is signed with the same key but is no proof of a session: session_user_id refuses it.
    return None if token is None else session_user_id(token)


def client_address() -> str:
    """The client's address (after ProxyFix); IPv6 clients by their /64, the block one subscriber usually holds."""
    return address_of(request.remote_addr)


def address_of(remote_addr: str | None) -> str:
    """A REMOTE_ADDR (after ProxyFix) as the limits count it: IPv6 by its /64, IPv4-mapped IPv6 as IPv4."""
    try:
        address = ipaddress.ip_address(remote_addr or "")
    except ValueError:
        return remote_addr or "unknown"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def ip_key() -> str:
    return f"ip:{client_address()}"


def client_key() -> str:
    user_id = signed_in_user_id()
    return f"user:{user_id}" if user_id is not None else ip_key()


def requested_email() -> str | None:
    """The normalised `email` of a JSON body, or None; a malformed or oversized body is the view's to reject."""
    try:
        body = json_body()  # the views' own decoding, with its depth bound (no recursion on a hostile body)
    except (AppError, HTTPException):
        return None
    email = body.get("email") if isinstance(body, dict) else None
    if not isinstance(email, str) or not email.strip():
        return None
    return normalise_email(email)


def email_key() -> str:
    # Hashed: limiter keys live in Redis and in logs, addresses should not.
    return "email:" + hashlib.sha256((requested_email() or "").encode()).hexdigest()


@dataclass(frozen=True)
class Tier:
    setting: str  # the config key of its limit string
    key: Callable[[], str]
    routes: tuple[str, ...] = ()  # method and path without the version prefix, as API.md names them
    admin_routes: bool = False  # also every view declared with auth="admin"
    needs_email: bool = False


# Read-only figures that an administrator's dashboard (/ops) asks for every few seconds: a tier of their own, so
# watching the shop does not spend the budget of the admin routes that change it.
MONITORING_READS = ("GET /admin/performance/metrics", "GET /admin/performance/slow-requests",
                    "GET /admin/performance/summary", "GET /admin/realtime/stats")

TIERS = {
    "auth": Tier("RATE_LIMIT_AUTH", ip_key, ("POST /auth/login", "POST /auth/register", FORGOT_PASSWORD,
                                             "POST /auth/password/reset")),
    "admin": Tier("RATE_LIMIT_ADMIN", client_key, admin_routes=True),
    "monitoring": Tier("RATE_LIMIT_MONITORING", client_key, MONITORING_READS),
    "upload": Tier("RATE_LIMIT_UPLOAD", client_key, ("POST /uploads",)),
    "order": Tier("RATE_LIMIT_ORDER", client_key, ("POST /orders",)),
    "password-email": Tier("RATE_LIMIT_PASSWORD_RESET_PER_EMAIL", email_key, (FORGOT_PASSWORD,), needs_email=True),
}


# The limits


def window(milliseconds: int) -> str:
    """RATE_LIMIT_WINDOW_MS as a limit string's period: 900000 -> "15 minute"."""
    seconds = max(1, math.ceil(milliseconds / 1000))
    for unit, size in (("hour", 3600), ("minute", 60)):
        if seconds % size == 0:
            return f"{seconds // size} {unit}"
    return f"{seconds} second"


def route_name(endpoint: str) -> str:
    """The endpoint without its version mount: v1.orders.place_order and api.orders.place_order are one route."""
    mount, _, name = endpoint.partition(".")
    return name if mount in _MOUNT_PREFIXES and name else endpoint


def route_tiers(app: Flask) -> dict[tuple[str, str], frozenset[str]]:
    """(endpoint, method) -> the tiers that route belongs to, for every versioned route in at least one tier."""
    table: dict[tuple[str, str], frozenset[str]] = {}
    unmatched = {route for tier in TIERS.values() for route in tier.routes}
    for rule in app.url_map.iter_rules():
        prefix = _MOUNT_PREFIXES.get(rule.endpoint.partition(".")[0])
        if prefix is None or not rule.rule.startswith(prefix):
            continue
        spec = getattr(app.view_functions[rule.endpoint], "endpoint_spec", None)
        admin_only = spec is not None and spec.auth == "admin"
        for method in rule.methods - {"OPTIONS"}:  # HEAD runs the GET view: it counts like GET
            route = f"{'GET' if method == 'HEAD' else method} {rule.rule[len(prefix):]}"
            tiers = frozenset(name for name, tier in TIERS.items()
                              if route in tier.routes
                              or (tier.admin_routes and admin_only and route not in MONITORING_READS))
            if tiers and spec is not None and spec.cache and method in ("GET", "HEAD"):
                # A cached read's budget is one Redis round trip: the general limit's hit, carrying the page lookup.
                raise RuntimeError(f"rate-limit tiers {sorted(tiers)} would add Redis round trips to the cached "
                                   f"read {route}")
            if tiers:
                table[(rule.endpoint, method)] = tiers
                unmatched.discard(route)
    if unmatched:  # a renamed route must not silently lose its limit
        raise RuntimeError(f"rate-limit tiers name routes no view serves: {', '.join(sorted(unmatched))}")
    return table


def _check_settings(config: dict) -> None:
    """Bad limits stop the app at start-up; at request time Flask-Limiter would take them for a storage failure."""
    for name in ("RATE_LIMIT_WINDOW_MS", "RATE_LIMIT_MAX_REQUESTS", "RATE_LIMIT_AUTH_MULTIPLIER"):
        if int(config[name]) < 1:
            raise ValueError(f"{name} must be at least 1")
    for tier in TIERS.values():
        try:
            parse_many(config[tier.setting])
        except ValueError:
            raise ValueError(f"{tier.setting}={config[tier.setting]!r} is not a limit such as '10 per hour'") from None


def default_limits(app: Flask) -> list[Limit]:
    """The general limit and the tiers. Each provider answers from the route and from whether a signed-in user asks,
    nothing else: RouteLimits keeps what they resolve to under exactly those."""
    config = app.config
    _check_settings(config)
    tiers_of = route_tiers(app)
    period = window(config["RATE_LIMIT_WINDOW_MS"])
    anonymous = int(config["RATE_LIMIT_MAX_REQUESTS"])
    signed_in = anonymous * int(config["RATE_LIMIT_AUTH_MULTIPLIER"])

    def general() -> str:
        return f"{signed_in if signed_in_user_id() is not None else anonymous} per {period}"

    def tier_limit(name: str, setting: str) -> Callable[[], str]:
        # Outside its routes a tier has no limit at all, rather than an exempt one: Flask-Limiter then parses,
        # builds and sorts nothing for it on every other request.
        def limit() -> str:
            if has_request_context() and name not in tiers_of.get((request.endpoint, request.method), ()):
                return ""
            return setting
        return limit

    def without_email() -> bool:
        return requested_email() is None  # no address: the view answers 400 or 422

    # shared=True keeps each scope exactly as given (a route name, a tier name), never the versioned endpoint.
    return [
        Limit(general, key_function=client_key, scope=route_name, shared=True),
        *(Limit(tier_limit(name, config[tier.setting]), key_function=tier.key, scope=name, shared=True,
                exempt_when=without_email if tier.needs_email else None) for name, tier in TIERS.items()),
    ]


class RouteLimits(LimitManager):
    """Flask-Limiter's limit manager, answering each kind of request from a memo.

    Which limits apply depends only on the route (endpoint, blueprint, method) and on whether a signed-in user asks
    (the general limit's size; the tiers are per route): `default_limits` says so. Flask-Limiter would otherwise call
    every provider, parse its limit string, build its limit objects and walk the blueprint exemptions again on every
    request. Declaring a limit or an exemption later (Limiter.limit, .exempt, a blueprint limit) forgets the memo.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._resolved: dict[tuple, tuple[list[RuntimeLimit], list[RuntimeLimit]]] = {}
        self._exemptions: dict[tuple, object] = {}

    @classmethod
    def taking_over(cls, manager: LimitManager) -> RouteLimits:
        return cls(application_limits=manager._application_limits, default_limits=manager._default_limits,
                   decorated_limits=manager._decorated_limits, blueprint_limits=manager._blueprint_limits,
                   route_exemptions=manager._route_exemptions, blueprint_exemptions=manager._blueprint_exemptions)

    def forget(self) -> None:
        self._resolved.clear()
        self._exemptions.clear()

    def resolve_limits(self, app: Flask, endpoint: str | None = None, blueprint: str | None = None,
                       callable_name: str | None = None, in_middleware: bool = False,
                       marked_for_limiting: bool = False) -> tuple[list[RuntimeLimit], ...]:
        key = (endpoint, blueprint, callable_name, in_middleware, marked_for_limiting, request.method,
               signed_in_user_id() is not None)
        resolved = self._resolved.get(key)
        if resolved is None:
            resolved = self._resolved[key] = super().resolve_limits(app, endpoint, blueprint, callable_name,
                                                                    in_middleware, marked_for_limiting)
        return tuple(list(limits) for limits in resolved)

    def exemption_scope(self, app: Flask, endpoint: str | None, blueprint: str | None):
        key = (endpoint, blueprint)
        scope = self._exemptions.get(key)
        if scope is None:
            scope = self._exemptions[key] = super().exemption_scope(app, endpoint, blueprint)
        return scope

    # Whatever changes what a request resolves to forgets the memo.

    def set_application_limits(self, limits) -> None:
        super().set_application_limits(limits)
        self.forget()

    def set_default_limits(self, limits) -> None:
        super().set_default_limits(limits)
        self.forget()

    def add_decorated_limit(self, route, limit, override=False) -> None:
        super().add_decorated_limit(route, limit, override)
        self.forget()

    def add_blueprint_limit(self, blueprint, limit) -> None:
        super().add_blueprint_limit(blueprint, limit)
        self.forget()

    def add_route_exemption(self, route, scope) -> None:
        super().add_route_exemption(route, scope)
        self.forget()

    def add_blueprint_exemption(self, blueprint, scope) -> None:
        super().add_blueprint_exemption(blueprint, scope)
        self.forget()

    def add_endpoint_hint(self, endpoint, callable) -> None:  # noqa: A002 - Flask-Limiter's parameter name
        if callable not in self._endpoint_hints.get(endpoint, ()):
            super().add_endpoint_hint(endpoint, callable)
            self.forget()


# While Redis is away limits count in each process's memory; Redis is tried again this often (a request that
# tries waits at most two RATE_LIMIT_REDIS_TIMEOUT_MS). Flask-Limiter's own retries back off to 32 s, which kept
# the instances' counts apart for up to a minute after a Sentinel failover that took two seconds.
STORAGE_RETRY_SECONDS = 5


class RouteLimiter(Limiter):
    """Flask-Limiter's Limiter with RouteLimits as its limit manager."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.limit_manager = RouteLimits.taking_over(self.limit_manager)
        self._retry_storage_at = 0.0

    def _check_request_limit(self, callable_name: str | None = None, in_middleware: bool = True) -> None:
        """Flask-Limiter's check, back on Redis within STORAGE_RETRY_SECONDS of its return, and without its 500 for
        the requests already waiting on Redis when it fails.

        The first request whose storage call fails marks the storage dead and counts in memory; Flask-Limiter
        re-raises the failure of every other request that was in flight on Redis meanwhile (it finds the storage
        already marked). Those requests count in memory too, as the first one did."""
        if self._storage_dead and self._storage is not None and time.monotonic() >= self._retry_storage_at:
            self._retry_storage_at = time.monotonic() + STORAGE_RETRY_SECONDS  # before the check: one request tries
            if self._storage.check():
                log.info("rate-limit storage answers again; counting there")
                self._storage_dead = False
        try:
            super()._check_request_limit(callable_name, in_middleware)
        except RateLimitExceeded:
            raise
        except Exception:
            if not (self._in_memory_fallback_enabled and self._storage_dead):
                raise
            self.context.seen_limits.clear()
            super()._check_request_limit(callable_name, in_middleware)


def storage_options(config: dict) -> dict:
    """Redis fails fast (short timeouts, one reconnect instead of redis-py's ten backed-off retries); our prefix;
    a pool of REDIS_MAX_CONNECTIONS; the page cache's lookup riding along with the first hit of a request."""
    if not config.get("REDIS_URL"):
        return {}
    timeout = config["RATE_LIMIT_REDIS_TIMEOUT_MS"] / 1000
    return {"key_prefix": config["RATE_LIMIT_KEY_PREFIX"], "socket_timeout": timeout,
            "socket_connect_timeout": timeout, "retry": Retry(NoBackoff(), 1),
            "max_connections": config["REDIS_MAX_CONNECTIONS"], "riders": request_rider}


def exempt_request() -> bool:
    # OPTIONS runs no view (Flask answers it, or the CORS hook a preflight), so there is nothing to protect.
    path = request.path
    return request.method == "OPTIONS" or any(path == p or path.startswith(p + "/") for p in EXEMPT_PATHS)


# Responses


def shown_limit(limits: list[RequestLimit]) -> RequestLimit:
    """The limit the headers describe: the one broken, else the one with the fewest requests left."""
    return next((limit for limit in limits if limit.breached), None) or min(limits, key=lambda li: li.remaining)


def add_headers(limiter: Limiter, response: Response) -> Response:
    # Our own headers, not Flask-Limiter's: it would describe the first unshared limit rather than the strictest
    # one, and send Retry-After on every response instead of on 429s only.
    limits = limiter.current_limits
    if not limits:
        return response
    try:
        shown = shown_limit(limits)
        reset_time, remaining = shown.window
    except Exception:  # the storage went away since the check; the next request finds out and falls back
        log.warning("rate-limit headers skipped: storage unavailable", exc_info=True)
        return response
    response.headers["X-RateLimit-Limit"] = str(shown.limit.amount)
    response.headers["X-RateLimit-Remaining"] = str(remaining)
    response.headers["X-RateLimit-Reset"] = str(math.ceil(reset_time))  # Unix seconds
    if response.status_code == 429:
        response.headers["Retry-After"] = str(max(1, math.ceil(reset_time - time.time())))
    return response


def too_many_requests(exc: RateLimitExceeded) -> Response:
    counts.rate_limited("http")
    return error_response(429, "RATE_LIMITED", f"Too many requests (limit: {exc.limit.limit}); try again later")


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    limit: int
    reset: float  # epoch seconds when the window ends


class LimitOutsideRequests:
    """A limit counted outside Flask's request cycle (a Socket.IO handshake never reaches Flask), on the HTTP
    limiter's own storage and strategy: Redis shared by every instance under RATE_LIMIT_KEY_PREFIX, or the
    limiter's memory while it knows Redis is down. Should Redis fail here first, this process counts in memory of
    its own and tries Redis again after RETRY_SECONDS. No limiter (RATELIMIT_ENABLED off): no limit."""

    RETRY_SECONDS = STORAGE_RETRY_SECONDS

    def __init__(self, app: Flask, scope: str, limit: str) -> None:
        self._limiter: Limiter | None = app.extensions.get(EXTENSION)
        self.item = parse(limit)
        self.scope = scope
        self._memory = None
        self._retry_at = 0.0

    def hit(self, key: str) -> Verdict | None:
        """Count one hit for `key` (None without a limiter)."""
        if self._limiter is None:
            return None
        if time.monotonic() >= self._retry_at:
            try:
                return self._hit(self._limiter.limiter, key)
            except Exception:  # the storage failed: the same limit, in this process's memory for a while
                log.warning("rate-limit storage unavailable; counting in memory", extra={"scope": self.scope},
                            exc_info=True)
                self._retry_at = time.monotonic() + self.RETRY_SECONDS
        if self._memory is None:
            self._memory = type(self._limiter.limiter)(MemoryStorage())
        return self._hit(self._memory, key)

    def _hit(self, strategy, key: str) -> Verdict:
        if strategy.hit(self.item, self.scope, key):
            return Verdict(True, self.item.amount, 0.0)
        # Refused: one more round trip for when the window ends (Retry-After)
        return Verdict(False, self.item.amount, strategy.get_window_stats(self.item, self.scope, key).reset_time)


def init_app(app: Flask) -> None:
    """Limit this app's routes; call after the API is registered (the tiers are read from its views)."""
    config = app.config
    if not config["RATELIMIT_ENABLED"]:
        return
    redis_url = config.get("REDIS_URL")
    limiter = RouteLimiter(
        key_func=client_key,
        default_limits=default_limits(app),
        # fantasize+redis:// is limit_storage's storage: one round trip per hit, headers included, riders welcome.
        storage_uri=SCHEME_PREFIX + redis_url if redis_url else "memory://",
        storage_options=storage_options(config),
        # With no fallback limits of its own, memory applies the same limits while Redis is down.
        in_memory_fallback_enabled=bool(redis_url),
        headers_enabled=False,  # see add_headers
    )
    limiter.request_filter(exempt_request)
    limiter.init_app(app)
    app.extensions[EXTENSION] = limiter
    app.after_request(partial(add_headers, limiter))
    app.register_error_handler(RateLimitExceeded, too_many_requests)
