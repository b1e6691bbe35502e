"""Serving cached pages: the key, what is stored of a response, and the guard that computes a missing page once.

Only what is the same for every caller is cached: GET (and HEAD) reads of views that declare `cache=`, with a
200, for anonymous callers and signed-in customers; administrators may see inactive items, so their reads
neither come from the cache nor go into it. Errors are never stored.

Round trips (DESIGN.md "The request budget"): the lookup (generations, page, and the lock when the page is
missing) is one script run, and it rides in the rate limiter's round trip when the limiter hits Redis first
(`request_rider`), so a hit costs no round trip of its own; a miss adds one to store the page and let go of the
lock. The rider runs before the view knows who is asking, so a lookup that turns out not to be used (an
administrator, a request refused before the view renders) lets go of any lock it took when the request ends.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable, Sequence
from urllib.parse import urlencode

import orjson
from flask import Flask, Response, current_app, g, request
from sqlalchemy import Connection, func, select
from sqlalchemy.orm import Session

from fantasize.extensions import db
from fantasize.models import Offer
from fantasize.models.base import utcnow
from fantasize.platform.cache.domains import TTL_SETTINGS
from fantasize.platform.cache.store import Found, LookupRider, PageStore, Query
from fantasize.platform.monitoring import counts
from fantasize.web import current_user, iso_now

EXTENSION = "fantasize.cache"
HEADER = "X-Cache"
OFFER_CHANGE = "offers-change"  # the mark holding when an offer next starts or ends
# What a page needs besides its body; the rest (request id, version, rate limits...) is added per request.
KEPT_HEADERS = ("Content-Type", "X-Total-Count", "Link")
FIRST_POLL_SECONDS = 0.01
MAX_POLL_SECONDS = 0.1
_CARRIED = "fantasize.cache.carried"  # request environ: the lookup that rode with the rate limiter's hit


def page_store(app: Flask | None = None) -> PageStore | None:
    return (app or current_app).extensions.get(EXTENSION)


def base_key() -> str:
    """Version + path + the query as the views read it; the page key adds the generations to it (store.page_key).

    Every reader of the query (schemas, versioning, pagination links) takes the first value of a repeated parameter,
    so the key holds exactly that, sorted by name: two URLs share a page only when their answers are the same
    (`?limit=1&limit=3` is `?limit=1`, never `?limit=3&limit=1`).
    """
    query = urlencode(sorted(request.args.to_dict().items())) if request.query_string else ""  # no query: no parse
    parts = (g.get("api_version") or "", request.path, query)
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _query(domains: Sequence[str]) -> Query:
    return Query(tuple(domains), OFFER_CHANGE if "offers" in domains else None, base_key(),
                 current_app.config["CACHE_LOCK_MS"])


def request_rider() -> LookupRider | None:
    """This request's page lookup, to ride in the rate limiter's round trip (limit_storage), or None.

    Asked for while the limiter checks the request, before the view: the view's cache declaration is read from
    the `endpoint_spec` that `@endpoint` puts on it. Whether the caller is an administrator is not known yet;
    `serve` decides whether to use what was found.
    """
    if request.method not in ("GET", "HEAD") or not current_app.config["CACHE_ENABLED"]:
        return None
    spec = getattr(current_app.view_functions.get(request.endpoint or ""), "endpoint_spec", None)
    store = page_store()
    if spec is None or not spec.cache or store is None:
        return None
    rider = store.rider(_query(spec.cache))
    if rider is not None:
        request.environ[_CARRIED] = rider
    return rider


def _carried() -> Found | None:
    rider = request.environ.pop(_CARRIED, None)
    return rider.found if rider is not None else None


def release_unused_lookup(_error: BaseException | None = None) -> None:
    """teardown_request: a lookup that rode with the limiter but was never served lets go of its lock."""
    found = _carried()
    store = page_store()
    if found is not None and found.token is not None and store is not None:
        store.finish(found.key, None, 0, found.token)


def _cacheable() -> bool:
    if request.method not in ("GET", "HEAD") or not current_app.config["CACHE_ENABLED"]:
        return False
    viewer = current_user()
    return viewer is None or not viewer.is_admin


def _encode(response: Response) -> bytes:
    # Links are stored without the scheme and host, so a page cached through one host name is right for another.
    headers = {name: response.headers[name] for name in KEPT_HEADERS if name in response.headers}
    if "Link" in headers:
        headers["Link"] = headers["Link"].replace(f"<{request.host_url}", "</")
    head = {"headers": headers, "envelope": g.get("api_version") == "v2"}
    return orjson.dumps(head) + b"\n" + response.get_data()


def _decode(value: bytes) -> Response:
    raw_head, _, body = value.partition(b"\n")
    head = orjson.loads(raw_head)
    headers = head["headers"]
    if "Link" in headers:
        headers["Link"] = headers["Link"].replace("</", f"<{request.host_url}")
    if head["envelope"]:
        # The envelope's meta names this request, not the one that filled the cache.
        payload = orjson.loads(body)
        payload["meta"].update(requestId=g.get("request_id"), timestamp=iso_now())
        response = current_app.json.response(payload)
        response.headers.update({k: v for k, v in headers.items() if k != "Content-Type"})
        return response
    return current_app.response_class(body, status=200, headers=headers)


def offer_change_mark(executor: Session | Connection) -> bytes:
    """When an offer next starts or ends (epoch seconds; b"none": no offer will), as `executor` sees it now.

    Prices change then without any write, so no page showing offers may be kept past that moment.
    """
    now = utcnow()
    starts = select(func.min(Offer.valid_from)).where(Offer.is_active.is_(True), Offer.valid_from > now)
    ends = select(func.min(Offer.valid_to)).where(Offer.is_active.is_(True), Offer.valid_to > now)
    moments = executor.execute(select(starts.scalar_subquery(), ends.scalar_subquery())).one()
    change = min((moment for moment in moments if moment is not None), default=None)
    return b"none" if change is None else repr(change.timestamp()).encode()


def _offer_change(store: PageStore, mark: bytes | None) -> float | None:
    # Writers of offers share the moment when they commit; a reader recomputes it only when it is unknown
    # (an empty cache) or has passed, and shares it unless someone changed it meanwhile.
    if mark is not None and (mark == b"none" or float(mark) > time.time()):
        return None if mark == b"none" else float(mark)
    fresh = offer_change_mark(db.session)
    store.replace_mark(OFFER_CHANGE, mark, fresh)
    return None if fresh == b"none" else float(fresh)


def _expiry(domains: Sequence[str], store: PageStore, mark: bytes | None) -> float:
    """When a page computed from now on must be gone (epoch seconds): after its domain's lifetime, or as soon as
    an offer starts or ends, whichever comes first. Fixed before the page is computed, so a page whose
    computation spans an offer's start or end is already out of date when it is done, and is not stored."""
    expiry = time.time() + current_app.config[TTL_SETTINGS[domains[0]]]
    if "offers" in domains:
        change = _offer_change(store, mark)
        if change is not None:
            expiry = min(expiry, change)
    return expiry


def _marked(response: Response, state: str) -> Response:
    response.headers[HEADER] = state
    counts.page_cache(state == "HIT")
    return response


def _wait_for(store: PageStore, key: str) -> tuple[bytes | None, str | None]:
    """Poll briefly while another request computes the page: its page, or the lock when that request failed
    and let go, or neither when it takes too long (this request then computes on its own)."""
    deadline = time.monotonic() + current_app.config["CACHE_LOCK_WAIT_MS"] / 1000
    pause = FIRST_POLL_SECONDS
    while time.monotonic() < deadline and store.available:
        time.sleep(pause)
        pause = min(pause * 1.5, MAX_POLL_SECONDS)
        stored = store.get(key)
        if stored is not None:
            return stored, None
        token = store.lock(key, current_app.config["CACHE_LOCK_MS"])
        if token is not None:
            return store.get(key), token
    return None, None


def serve(domains: Sequence[str], compute: Callable[[], Response]) -> Response:
    """The page from the cache (X-Cache: HIT), or computed, stored and marked MISS; uncacheable calls pass by."""
    store = page_store()
    carried = _carried()
    if store is None or not _cacheable():
        if carried is not None and store is not None:
            store.finish(carried.key, None, 0, carried.token)  # looked up before we knew: not ours to compute
        return compute()
    found = carried or store.lookup(_query(domains))
    if found is None:  # the cache is unreachable: the database answers
        return _marked(compute(), "MISS")
    key, stored, token = found.key, found.page, found.token
    if stored is None and token is None and store.available:
        stored, token = _wait_for(store, key)  # someone else is computing it
    page, ttl = None, 0
    try:
        if stored is not None:
            return _marked(_decode(stored), "HIT")
        expiry = _expiry(domains, store, found.mark)
        response = compute()
        # Whole seconds rounded down: a page may go a little early, never outlive the price it shows.
        ttl = math.floor(expiry - time.time())
        if response.status_code == 200 and ttl > 0:
            page = _encode(response)
        return _marked(response, "MISS")
    finally:
        store.finish(key, page, ttl, token)
