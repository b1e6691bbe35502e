"""What one process knows of its own sockets: who each is signed in as, what it tracks, how many events it sent.

A socket lives on one instance for its whole life (websocket, or long-polling behind sticky sessions), so this
per-process registry is the truth for it; what other instances hold travels through Redis (`stats`).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field


def user_room(user_id: int) -> str:
    return f"user:{user_id}"


def order_room(order_id: int) -> str:
    return f"order:{order_id}"


def inventory_room(product_id: int) -> str:
    """The public's room: it hears a product's stock only while the product is active."""
    return f"inventory:{product_id}"


def admin_inventory_room(product_id: int) -> str:
    """Signed-in administrators tracking the product: they hear its stock whether it is active or not, and leave
    the room when their session ends."""
    return f"admin-inventory:{product_id}"


@dataclass(frozen=True)
class SignedIn:
    """Who a socket speaks for, and what its session rests on (the token's expiry, the user's version and role)."""

    user_id: int
    role: str
    token_version: int
    expires_at: int  # epoch seconds

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


@dataclass
class Socket:
    sid: str
    signed_in: SignedIn | None = None
    orders: set[int] = field(default_factory=set)
    products: set[int] = field(default_factory=set)
    sent: deque[float] = field(default_factory=deque)  # monotonic times of the events of the last minute

    def allow_event(self, per_minute: int, now: float | None = None) -> bool:
        """Count one more event from this socket; False once it sent `per_minute` in the last 60 seconds."""
        now = time.monotonic() if now is None else now
        while self.sent and self.sent[0] <= now - 60:
            self.sent.popleft()
        if len(self.sent) >= per_minute:
            return False
        self.sent.append(now)
        return True


class Registry:
    """The sockets connected to this process (thread-safe: handlers run in greenlets or threads)."""

    def __init__(self) -> None:
        self._sockets: dict[str, Socket] = {}
        self._lock = threading.Lock()

    def add(self, sid: str) -> Socket:
        with self._lock:
            return self._sockets.setdefault(sid, Socket(sid))

    def get(self, sid: str) -> Socket | None:
        return self._sockets.get(sid)

    def remove(self, sid: str) -> Socket | None:
        with self._lock:
            return self._sockets.pop(sid, None)

    def __len__(self) -> int:
        return len(self._sockets)

    def snapshot(self) -> list[Socket]:
        with self._lock:
            return list(self._sockets.values())

    def signed_in(self) -> Iterator[Socket]:
        return (socket for socket in self.snapshot() if socket.signed_in is not None)
