"""python-socketio clients for the real-time tests: each records every event it hears, in the order it heard them.

python-socketio's client hands each incoming message to a new thread, so two events sent in order may be recorded
out of order. `Peer` dispatches them on the transport's reader thread instead (its handlers only append to a
list), so `heard()` is the order the server sent them in.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import engineio
import pytest
import socketio

ISO_MILLIS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


class Timestamp:
    """Equal to any ISO 8601 UTC time with milliseconds (`2025-01-31T12:00:00.000Z`), the payloads' timestamps."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and ISO_MILLIS.fullmatch(other) is not None

    def __repr__(self) -> str:
        return "<ISO timestamp>"


class Message:
    """Equal to any non-empty string: a human-readable message whose wording the contract leaves open."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and bool(other.strip())

    def __repr__(self) -> str:
        return "<message>"


TIMESTAMP, MESSAGE = Timestamp(), Message()


class _InOrderEngineIO(engineio.Client):
    def _trigger_event(self, event, *args, **kwargs):
        if event == "message":
            kwargs["run_async"] = False  # on the reader thread: in the order received
        return super()._trigger_event(event, *args, **kwargs)


class _InOrderClient(socketio.Client):
    def _engineio_client_class(self):
        return _InOrderEngineIO


class Peer:
    """One Socket.IO client over the websocket transport, and everything it heard."""

    def __init__(self, url: str, name: str) -> None:
        self.url, self.name = url, name
        self.sio = _InOrderClient(reconnection=False)
        self.received: list[tuple[str, Any]] = []
        self.arrived: list[float] = []  # time.time() as each of `received` was recorded, after it arrived
        self._mark = 0
        self._changed = threading.Condition()
        self.sio.on("*", self._record)

    def _record(self, event: str, *args: Any) -> None:
        with self._changed:
            self.arrived.append(time.time())
            self.received.append((event, args[0] if len(args) == 1 else list(args)))
            self._changed.notify_all()

    def connect(self, token: str | None = None) -> Peer:
        self.sio.connect(self.url, transports=["websocket"], auth={"token": token} if token is not None else None,
                         wait_timeout=10)
        return self

    def call(self, event: str, data: Any = None, timeout: float = 10) -> Any:
        """Send a client event and return its acknowledgement."""
        return self.sio.call(event, data, timeout=timeout)

    def events(self, name: str) -> list[Any]:
        with self._changed:
            return [data for event, data in self.received if event == name]

    def wait_for(self, name: str, count: int = 1, timeout: float = 10, where=None) -> list[Any]:
        """Block until this client has heard `count` events named `name` (matching `where`); those events."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = [data for event, data in self.received if event == name and (where is None or where(data))]
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    pytest.fail(f"{self.name} heard no {count} x {name!r} within {timeout}s; heard: {self.received}")
                self._changed.wait(left)

    def arrivals(self, name: str) -> list[float]:
        """When each event named `name` was recorded (epoch seconds): never before the server sent it."""
        with self._changed:
            return [at for (event, _), at in zip(self.received, self.arrived, strict=True) if event == name]

    def mark(self) -> None:
        """Forget what was heard so far, for `heard()`."""
        with self._changed:
            self._mark = len(self.received)

    def heard(self, ignore=lambda event, data: False) -> list[tuple[str, Any]]:
        """What this client heard since the last mark, in order, but for what `ignore` accepts."""
        with self._changed:
            return [(event, data) for event, data in self.received[self._mark:] if not ignore(event, data)]

    def close(self) -> None:
        self.sio.shutdown()


def close_all(peers: Iterable[Peer]) -> None:
    """Close clients together: a websocket-client close waits up to 3 s for the server's close frame, which
    `python wsgi.py` is sometimes slow to send."""
    peers = list(peers)
    if peers:
        with ThreadPoolExecutor(len(peers)) as pool:
            list(pool.map(Peer.close, peers))
