"""Helpers shared by the tests of real concurrency and real Redis: barriers, the tests' Redis, private servers."""

from __future__ import annotations

import contextlib
import logging
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from redis import Redis
from redis.exceptions import RedisError

from config import TestingConfig
from tests.live_server import free_port


def all_at_once(calls: list[Callable[[], Any]]) -> list[Any]:
    """Run every call in its own thread, released together by a barrier; results in call order."""
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], Any]) -> Any:
        barrier.wait()
        return call()

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(run, calls))


def skip_or_fail(message: str) -> None:
    """A missing service skips the test locally and fails it in CI (TestingConfig.REQUIRE_SERVICES): in CI
    nothing may skip silently."""
    if TestingConfig.REQUIRE_SERVICES:
        pytest.fail(message)
    pytest.skip(message)


def shared_redis(url: str = TestingConfig.TEST_REDIS_URL) -> Redis:
    """The tests' Redis, or a skip (a failure in CI) when it does not answer."""
    client = Redis.from_url(url, socket_connect_timeout=1, socket_timeout=2)
    try:
        client.ping()
    except RedisError as exc:
        skip_or_fail(f"Redis is not reachable at {url}: {exc}")
    return client


@contextlib.contextmanager
def recorded(logger: str) -> Iterator[list[logging.LogRecord]]:
    """The records a logger emits meanwhile, from any thread (the app's loggers do not propagate to pytest's)."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    logging.getLogger(logger).addHandler(handler)
    try:
        yield records
    finally:
        logging.getLogger(logger).removeHandler(handler)


def arabic_indic(number: int) -> str:
    """The number in Arabic-Indic digits, which int() reads as the number and str.isdigit() accepts."""
    return "".join(chr(0x660 + int(digit)) for digit in str(number))


def delete_prefix(client: Redis, prefix: str) -> None:
    """Remove one test's keys (SCAN, never KEYS or FLUSHDB: other tests share this Redis)."""
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    if keys:
        client.delete(*keys)


class PrivateRedis:
    """A redis-server of a test's own on a free port, to stop and start at will (never the shared one). With
    `keep_in`, what it holds survives a stop (an append-only file written on every command). Without the
    redis-server program its tests are skipped locally and fail in CI."""

    def __init__(self, keep_in: Path | None = None) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.keep_in = keep_in
        self.process: subprocess.Popen | None = None

    def start(self) -> PrivateRedis:
        if shutil.which("redis-server") is None:
            skip_or_fail("redis-server is not installed (apt-get install redis-server)")
        persistence = ["--appendonly", "no"]
        if self.keep_in is not None:
            persistence = ["--appendonly", "yes", "--appendfsync", "always", "--dir", str(self.keep_in)]
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--daemonize", "no",
             *persistence], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if Redis(port=self.port, socket_timeout=0.2).ping():
                    return self
            except RedisError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def key_count(self) -> int:
        """Keys held, leaving out the monitoring window's: every app on this Redis writes those from a background
        task once a second (fantasize.platform.monitoring.window), whatever the test is counting."""
        client = Redis(port=self.port, socket_timeout=1)
        return sum(1 for key in client.scan_iter(count=1000) if b"monitoring:" not in key)


class SilentServer:
    """A TCP server on a free loopback port that accepts every connection and never answers nor closes it, as a
    hung Redis (or a black-holed route) does: a client connects at once, then waits for a reply that never comes.
    What it accepted is closed on `stop`."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0), backlog=128)
        self.port = self._listener.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.accepted: list[socket.socket] = []
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="silent-server", daemon=True)

    def start(self) -> SilentServer:
        self._thread.start()
        return self

    def _accept(self) -> None:
        self._listener.settimeout(0.2)
        while not self._stopped.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted.append(conn)  # held open, never read from nor written to

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=5)
        self._listener.close()
        for conn in self.accepted:
            conn.close()

    def __enter__(self) -> SilentServer:
        return self.start()

    def __exit__(self, *_exc) -> None:
        self.stop()
