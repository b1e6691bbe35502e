"""The page cache under load: the product list served by gunicorn (gevent) on PostgreSQL + Redis, uncached and cached.

    .venv/bin/python -m bench.cache [--clients 16] [--seconds 10] [--bumps 2000]

The demo shop (`flask seed`: 200 products) is built in a fresh database. Each run asks for the first five pages of
/api/v1/products (20 products each) round-robin, first with CACHE_ENABLED=false, then with the cache on; it prints
requests per second and p50/p99 latency for both and their ratio. Then the cost of an invalidation: the time of
one generation bump with an empty cache and with 10,000 pages stored (it must not grow), and the latency of the
first read after a bump (a miss, computed again) next to that of a hit.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
from uuid import uuid4

import requests
from flask import Flask
from flask_migrate import upgrade
from redis import Redis

from bench.database import fresh_database
from config import TestingConfig
from fantasize import create_app
from fantasize.extensions import db
from fantasize.platform.cache.pages import page_store
from fantasize.seed import seed_demo_shop
from tests.live_server import LiveServer

BENCH_DB = "postgresql://postgres@127.0.0.1:5432/fantasize_bench_cache"
PAGES = [f"/api/v1/products?page={n}" for n in range(1, 6)]
STORED_PAGES = 10_000


def prepare(settings: dict[str, str]) -> Flask:
    app = create_app(TestingConfig, {"SQLALCHEMY_DATABASE_URI": BENCH_DB, **settings})
    with app.app_context():
        upgrade()
        seed_demo_shop()
        db.engine.dispose()
    return app


def load(url: str, clients: int, seconds: float) -> tuple[list[float], dict[str, int]]:
    """`clients` threads asking for PAGES round-robin for `seconds`: every latency, and the X-Cache counts."""
    latencies: list[float] = []
    states: dict[str, int] = {}
    lock = threading.Lock()
    start = threading.Barrier(clients + 1)
    deadline: list[float] = []

    def client(offset: int) -> None:
        session = requests.Session()
        mine: list[float] = []
        seen: dict[str, int] = {}
        n = offset
        start.wait()
        while time.monotonic() < deadline[0]:
            began = time.perf_counter()
            response = session.get(f"{url}{PAGES[n % len(PAGES)]}", timeout=30)
            mine.append(time.perf_counter() - began)
            state = response.headers.get("X-Cache", "-") if response.status_code == 200 else str(response.status_code)
            seen[state] = seen.get(state, 0) + 1
            n += 1
        with lock:
            latencies.extend(mine)
            for state, count in seen.items():
                states[state] = states.get(state, 0) + count

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    deadline.append(time.monotonic() + seconds)
    start.wait()
    for thread in threads:
        thread.join()
    return latencies, states


def percentile(ordered: list[float], p: float) -> float:
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000


def report(name: str, latencies: list[float], states: dict[str, int], seconds: float) -> float:
    ordered = sorted(latencies)
    rate = len(ordered) / seconds
    print(f"{name:<9} {rate:8.1f} req/s   p50 {percentile(ordered, 0.5):6.1f} ms   "
          f"p99 {percentile(ordered, 0.99):6.1f} ms   X-Cache {dict(sorted(states.items()))}")
    return rate


def bump_cost(app: Flask, bumps: int) -> float:
    """Mean microseconds of one invalidation of the products domain."""
    with app.app_context():
        store = page_store()
        began = time.perf_counter()
        for _ in range(bumps):
            store.invalidate(["products"])
        return (time.perf_counter() - began) / bumps * 1e6


def store_fake_pages(redis: Redis, prefix: str, count: int) -> None:
    pipe = redis.pipeline(transaction=False)
    for n in range(count):
        pipe.set(f"{prefix}page:bench-{n:06d}", b"{}\n[]", ex=600)
    pipe.execute()


def first_read_after_bump(app: Flask, url: str, rounds: int) -> tuple[list[float], list[float]]:
    """Latencies (s) of the first read after a bump (a miss) and of the read right after it (a hit)."""
    session = requests.Session()
    misses, hits = [], []
    for _ in range(rounds):
        bump_cost(app, 1)
        for into, expected in ((misses, "MISS"), (hits, "HIT")):
            began = time.perf_counter()
            response = session.get(f"{url}{PAGES[0]}", timeout=30)
            into.append(time.perf_counter() - began)
            assert response.headers.get("X-Cache") == expected, response.headers
    return misses, hits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--bumps", type=int, default=2000)
    parser.add_argument("--redis", default=TestingConfig.TEST_REDIS_URL, help="Redis URL (keys under bench:<id>:)")
    args = parser.parse_args()

    redis = Redis.from_url(args.redis)
    prefix = f"bench:{uuid4().hex}:"
    cache = {"REDIS_URL": args.redis, "CACHE_KEY_PREFIX": prefix}
    fresh_database(BENCH_DB)
    app = prepare(cache)
    env = {"DATABASE_URL": BENCH_DB, **cache}
    print(f"{args.clients} clients, one gunicorn process (one gevent worker), PostgreSQL + Redis, "
          f"{args.seconds:.0f}s per run; {len(PAGES)} product-list pages of 20, round-robin")
    try:
        rates = {}
        for name, enabled in (("uncached", "false"), ("cached", "true")):
            with LiveServer({**env, "CACHE_ENABLED": enabled}, workers=1) as server:
                load(server.url, args.clients, 2)  # warm-up: connections, and for the cached run its pages
                latencies, states = load(server.url, args.clients, args.seconds)
                rates[name] = report(name, latencies, states, args.seconds)
                if enabled == "true":
                    misses, hits = first_read_after_bump(app, server.url, 50)
        print(f"cached / uncached: {rates['cached'] / rates['uncached']:.1f}x")

        empty = bump_cost(app, args.bumps)
        store_fake_pages(redis, prefix, STORED_PAGES)
        full = bump_cost(app, args.bumps)
        print(f"invalidation (one INCR): {empty:.0f} us per bump with the cache nearly empty, "
              f"{full:.0f} us with {STORED_PAGES:,} more pages stored")
        print(f"first read after a bump (miss): median {statistics.median(misses) * 1000:.1f} ms, "
              f"max {max(misses) * 1000:.1f} ms; the next read (hit): median {statistics.median(hits) * 1000:.1f} ms")
    finally:
        keys = list(redis.scan_iter(match=f"{prefix}*", count=1000))
        for n in range(0, len(keys), 1000):
            redis.delete(*keys[n:n + 1000])


if __name__ == "__main__":
    main()
