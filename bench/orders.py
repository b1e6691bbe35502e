"""Order placement under load: 50 concurrent clients against gunicorn (gevent) on PostgreSQL.

    .venv/bin/python -m bench.orders [--clients 50] [--seconds 15] [--workers 2]

Two scenarios: orders spread over 40 products, and every client ordering the same hot product (row
contention on one stock row). Prints orders per second and p50/p95/p99 latency for each.
"""

from __future__ import annotations

import argparse
import random
import statistics
import threading
import time
from decimal import Decimal

import requests
from flask_migrate import upgrade

from bench.database import fresh_database
from config import TestingConfig
from fantasize import create_app
from fantasize.extensions import db
from fantasize.models import Brand, Category, Product, SubCategory, User
from fantasize.services.passwords import hash_password
from fantasize.services.tokens import issue_access_token
from tests.live_server import LiveServer

BENCH_DB = "postgresql://postgres@127.0.0.1:5432/fantasize_bench"


def prepare(url: str, clients: int) -> tuple[list[str], list[int]]:
    app = create_app(TestingConfig, {"SQLALCHEMY_DATABASE_URI": url})
    with app.app_context():
        upgrade()
        brand = Brand(name="Bench Brand")
        sub = SubCategory(name="Bench Sub", slug="bench-sub", category=Category(name="Bench", slug="bench"))
        products = [
            Product(name=f"Bench product {i}", slug=f"bench-product-{i}", price=Decimal("9.99") + i,
                    quantity=10_000_000, brand=brand, sub_category=sub)
            for i in range(40)
        ]
        password = hash_password("bench-password")
        users = [User(email=f"bench{i}@example.com", username=f"bench{i}", password_hash=password)
                 for i in range(clients)]
        db.session.add_all([*products, *users])
        db.session.commit()
        tokens = [issue_access_token(user)[0] for user in users]
        product_ids = [p.id for p in products]
        db.engine.dispose()
    return tokens, product_ids


def run_clients(url: str, tokens: list[str], pick_items, seconds: float) -> tuple[list[float], dict[int, int]]:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    start = threading.Barrier(len(tokens))
    deadline_holder: list[float] = []

    def client(token: str, seed: int) -> None:
        rng = random.Random(seed)
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {token}"
        mine: list[float] = []
        codes: dict[int, int] = {}
        start.wait()
        while time.monotonic() < deadline_holder[0]:
            began = time.perf_counter()
            response = session.post(f"{url}/api/v1/orders", json={"items": pick_items(rng)}, timeout=60)
            mine.append(time.perf_counter() - began)
            codes[response.status_code] = codes.get(response.status_code, 0) + 1
        with lock:
            latencies.extend(mine)
            for code, count in codes.items():
                statuses[code] = statuses.get(code, 0) + count

    deadline_holder.append(time.monotonic() + seconds + 0.5)
    threads = [threading.Thread(target=client, args=(token, i)) for i, token in enumerate(tokens)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, statuses


def report(name: str, latencies: list[float], statuses: dict[int, int], seconds: float) -> None:
    ordered = sorted(latencies)
    placed = statuses.get(201, 0)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000

    print(f"{name}: {placed} orders in {seconds:.0f}s = {placed / seconds:.1f} orders/s; "
          f"latency p50 {pct(0.50):.1f} ms, p95 {pct(0.95):.1f} ms, p99 {pct(0.99):.1f} ms, "
          f"mean {statistics.fmean(ordered) * 1000:.1f} ms; statuses {dict(sorted(statuses.items()))}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn processes (one gevent worker each)")
    args = parser.parse_args()

    fresh_database(BENCH_DB)
    tokens, product_ids = prepare(BENCH_DB, args.clients)
    env = {"DATABASE_URL": BENCH_DB, "RATE_LIMIT_ORDER": "1000000 per hour",
           "RATE_LIMIT_MAX_REQUESTS": "1000000"}
    print(f"{args.clients} clients, {args.workers} gunicorn gevent workers, PostgreSQL, {args.seconds:.0f}s each")
    with LiveServer(env, workers=args.workers) as server:
        def spread(rng: random.Random) -> list[dict]:
            return [{"productId": pid, "quantity": rng.randint(1, 3)} for pid in rng.sample(product_ids, 2)]

        def hot(_rng: random.Random) -> list[dict]:
            return [{"productId": product_ids[0], "quantity": 1}]

        for name, picker in (("spread over 40 products", spread), ("one hot product", hot)):
            latencies, statuses = run_clients(server.url, tokens, picker, args.seconds)
            report(name, latencies, statuses, args.seconds)


if __name__ == "__main__":
    main()
