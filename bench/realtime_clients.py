"""One load-generating process of `bench/realtime`: many python-socketio asyncio clients tracking one product.

    python -m bench.realtime_clients --url http://127.0.0.1:PORT --product 1 --count 500

bench/realtime.py starts one or more of these and talks to each over its stdin and stdout, a JSON object a line:

- Each of `--count` clients connects over the websocket transport only (`socketio.AsyncClient`, no reconnection,
  one aiohttp session shared by all), at most `--concurrency` connecting at a time, and sends `track_inventory
  <product>` asking for the acknowledgement, which must carry that `productId`. Then the process prints
  `{"ready": connected, "failed": n, "errors": [...], "connect_s": s}`.
- Every `inventory_update` is stamped on arrival with CLOCK_MONOTONIC (`time.monotonic()`, one clock for every
  process of the machine, so the parent can subtract its own send times), keyed by the event's `quantity` (the
  bench sets a distinct quantity per change). When every connected client holds a given quantity the process
  prints `{"complete": quantity}` at once, so the parent need not wait out its timeout.
- stdin `dump` -> `{"receipts": {quantity: [arrival, ...]}, "duplicates": n, "dropped": n, "other": n}`
  (each client's first arrival per quantity; `dropped`: clients disconnected by the server, `other`: updates for
  another product); stdin `quit` (or end of input) disconnects every client and exits after `{"bye": n}`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from collections import defaultdict

import aiohttp
import socketio


def say(message: dict) -> None:
    sys.stdout.write(json.dumps(message, separators=(",", ":")) + "\n")
    sys.stdout.flush()


class Fleet:
    """The clients of this process and what they received."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.clients: list[socketio.AsyncClient] = []
        self.receipts: dict[int, list[float]] = defaultdict(list)
        self.duplicates = 0
        self.dropped = 0
        self.other = 0
        self.errors: list[str] = []
        self.failed = 0
        self.closing = False
        self.session: aiohttp.ClientSession | None = None

    def client(self) -> socketio.AsyncClient:
        sio = socketio.AsyncClient(reconnection=False, handle_sigint=False, http_session=self.session,
                                   request_timeout=self.args.timeout)
        seen: set[int] = set()
        product = self.args.product

        @sio.on("inventory_update")
        async def inventory_update(data):
            now = time.monotonic()
            if not isinstance(data, dict) or data.get("productId") != product:
                self.other += 1
                return
            quantity = data.get("quantity")
            if quantity in seen:
                self.duplicates += 1
                return
            seen.add(quantity)
            arrivals = self.receipts[quantity]
            arrivals.append(now)
            if len(arrivals) == len(self.clients):
                say({"complete": quantity})

        @sio.on("disconnect")
        async def disconnected(*_reason):
            if not self.closing:
                self.dropped += 1

        return sio

    async def connect_one(self, gate: asyncio.Semaphore) -> socketio.AsyncClient | None:
        sio = self.client()
        async with gate:
            try:
                await sio.connect(self.args.url, transports=["websocket"], wait_timeout=self.args.timeout)
                ack = await sio.call("track_inventory", self.args.product, timeout=self.args.timeout)
                if not isinstance(ack, dict) or ack.get("productId") != self.args.product:
                    raise RuntimeError(f"track_inventory acknowledged {ack!r}")
                return sio
            except Exception as exc:  # noqa: BLE001 - a client that cannot connect is counted and reported
                self.failed += 1
                if len(self.errors) < 5:
                    self.errors.append(f"{type(exc).__name__}: {exc}"[:300])
                if sio.connected:
                    await sio.disconnect()
                return None

    async def connect_all(self) -> None:
        self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        gate = asyncio.Semaphore(self.args.concurrency)
        began = time.monotonic()
        made = await asyncio.gather(*(self.connect_one(gate) for _ in range(self.args.count)))
        self.clients = [sio for sio in made if sio is not None]
        say({"ready": len(self.clients), "failed": self.failed, "errors": self.errors,
             "connect_s": round(time.monotonic() - began, 3)})

    def dump(self) -> None:
        say({"receipts": {str(q): times for q, times in self.receipts.items()}, "duplicates": self.duplicates,
             "dropped": self.dropped, "other": self.other})
        self.receipts.clear()

    async def close(self) -> None:
        self.closing = True
        gate = asyncio.Semaphore(self.args.concurrency)

        async def one(sio: socketio.AsyncClient) -> None:
            async with gate:
                with contextlib.suppress(Exception):  # the server may be gone already
                    await asyncio.wait_for(sio.disconnect(), self.args.timeout)

        await asyncio.gather(*(one(sio) for sio in self.clients))
        if self.session is not None:
            await self.session.close()
        say({"bye": len(self.clients)})


async def main(args: argparse.Namespace) -> None:
    fleet = Fleet(args)
    await fleet.connect_all()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        line = (await reader.readline()).decode().strip()
        if line == "dump":
            fleet.dump()
        elif line in ("quit", ""):
            break
    await fleet.close()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.realtime_clients", description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True, help="the server's base URL (Socket.IO at /socket.io)")
    parser.add_argument("--product", type=int, required=True, help="the product every client tracks")
    parser.add_argument("--count", type=int, required=True, help="clients in this process")
    parser.add_argument("--concurrency", type=int, default=50, help="clients connecting at once (default 50)")
    parser.add_argument("--timeout", type=float, default=30, help="seconds for a connect or an acknowledgement")
    return parser.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
