"""The official JavaScript Socket.IO client (socket.io-client from npm, tests/node) driven from the tests:
tests/node/track_order.js tracks one order and prints one JSON line per event and acknowledgement.

Without Node or its installed packages (`make tests/node/node_modules/.installed`, which `make test` runs) the tests
that need it are skipped locally and fail in CI. They do not install the packages themselves: that needs the npm
registry, which a test run should not reach on its own.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.support import skip_or_fail

NODE_TESTS = Path(__file__).resolve().parent / "node"
TRACK_ORDER = NODE_TESTS / "track_order.js"
TRANSPORTS = ("websocket", "polling")
EXIT_OK, EXIT_REFUSED, EXIT_UNAUTHENTICATED = 0, 2, 3


def node_program(package: str = "socket.io-client") -> str:
    """Node's path, once `package` is installed in tests/node; else a skip (a failure in CI)."""
    path = shutil.which("node")
    if path is None:
        skip_or_fail("Node.js is not installed (Debian: apt-get install nodejs)")
    if not (NODE_TESTS / "node_modules" / package / "package.json").is_file():
        skip_or_fail(f"{package} is not installed: run `make tests/node/node_modules/.installed`")
    return path


class Tracker:
    """track_order.js running against a server: its JSON lines as they come, and how it ended. `local_address`
    connects from that loopback address (a proxy hashing client addresses then picks the instance it maps to)."""

    def __init__(self, node: str, url: str, token: str, order_id: int, transport: str, auth: str = "connect",
                 updates: int = 1, timeout: float = 20, local_address: str | None = None) -> None:
        env = {**os.environ, "FANTASIZE_TOKEN": token}  # not argv: a token in the process list is a leak
        command = [node, str(TRACK_ORDER), "--url", url, "--order", str(order_id), "--transport", transport,
                   "--auth", auth, "--updates", str(updates), "--timeout", str(timeout)]
        if local_address:
            command += ["--local-address", local_address]
        self.process = subprocess.Popen(command, cwd=NODE_TESTS, env=env, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True)
        self.lines: list[dict[str, Any]] = []
        self._incoming: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self._incoming.put(json.loads(line))
        self._incoming.put(None)

    def wait_for(self, event: str, timeout: float = 20) -> dict[str, Any]:
        """The data of the next line naming `event`; lines before it are kept in `lines`."""
        while True:
            try:
                line = self._incoming.get(timeout=timeout)
            except queue.Empty:
                pytest.fail(f"no {event!r} within {timeout}s; so far: {self.lines}")
            if line is None:
                pytest.fail(f"the client exited without {event!r}: {self.lines} {self.process.stderr.read()}")
            self.lines.append(line)
            if line["event"] == event:
                return line["data"]

    def finish(self, timeout: float = 30) -> int:
        """Its exit status, once every line it wrote is in `lines`."""
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            pytest.fail(f"the client did not exit; so far: {self.lines}")
        self._reader.join(timeout=5)
        while not self._incoming.empty():
            line = self._incoming.get_nowait()
            if line is not None:
                self.lines.append(line)
        return code

    def events(self, name: str) -> list[Any]:
        return [line["data"] for line in self.lines if line["event"] == name]

    def acks(self, event: str) -> list[Any]:
        return [data["reply"] for data in self.events("ack") if data["event"] == event]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process.stdout.close()
        self.process.stderr.close()
