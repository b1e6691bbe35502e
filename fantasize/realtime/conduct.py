"""Misbehaving sockets, logged in proportion: a line per socket per minute with counts, never a traceback a frame.

What a socket is logged for: a frame Socket.IO cannot take (malformed, unexpected), an event refused by its rate
limit, a handler that failed (our bug: that line carries the traceback). The first of a socket's misdeeds is logged
at once; the ones after it are counted, and logged together with the next one that comes a minute or more after the
last line, or when the socket goes. A socket is known by its Engine.IO session id, which its frames carry before it
joins the namespace too; a record exists only for a socket that misbehaved, and goes with the socket.

Engine.IO's own error lines (a long-polling POST it cannot parse, a receive error) name no socket: its logger
lets each message through once a minute, with how many were held back.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("fantasize.realtime")
WINDOW_SECONDS = 60.0

MALFORMED = "malformedFrames"
REFUSED = "refusedEvents"
FAILED = "handlerErrors"


@dataclass
class _Record:
    logged_at: float
    held: Counter[str] = field(default_factory=Counter)  # counted since the last line


class Conduct:
    """Per-socket records of misbehaviour (thread-safe: frames arrive in greenlets or threads)."""

    def __init__(self, window: float = WINDOW_SECONDS) -> None:
        self.window = window
        self._records: dict[str, _Record] = {}
        self._lock = threading.Lock()

    def misbehaved(self, sid: str, kind: str, error: BaseException | None = None, address: str | None = None,
                   now: float | None = None) -> bool:
        """Count one misdeed of socket `sid`; True when it was logged (the first, or the first after a window).
        A frame's error is never logged (its text may quote the client's frame); a handler's is, as a traceback."""
        now = time.monotonic() if now is None else now
        with self._lock:
            record = self._records.get(sid)
            if record is None:
                self._records[sid] = _Record(now)
                counts = Counter({kind: 1})
            else:
                record.held[kind] += 1
                if now - record.logged_at < self.window:
                    return False
                counts, record.held = record.held, Counter()
                record.logged_at = now
        _log(sid, counts, error if kind == FAILED else None, address)
        return True

    def forget(self, sid: str) -> None:
        """The socket is gone: log what it did since its last line, if anything, and drop its record."""
        with self._lock:
            record = self._records.pop(sid, None)
        if record is not None and record.held:
            _log(sid, record.held, None, None, closing=True)

    def __len__(self) -> int:
        return len(self._records)


def _log(sid: str, counts: Counter[str], failure: BaseException | None, address: str | None,
         closing: bool = False) -> None:
    """One line: the counts; with `failure` (a handler's exception, our bug) its traceback too."""
    extra: dict[str, Any] = {"sid": sid, "counts": dict(counts), "windowSeconds": WINDOW_SECONDS}
    if address:
        extra["remoteAddr"] = address
    if closing:
        extra["closed"] = True
    if failure is not None:
        log.error("socket handler failed", extra=extra, exc_info=failure)
    else:
        log.warning("misbehaving socket", extra=extra)


class QuietLogger:
    """Engine.IO's logger, letting each warning or error message through at most once a window (with how many
    were held back since), and anything below as it is (Engine.IO's logger shows errors only)."""

    def __init__(self, logger: logging.Logger, window: float = WINDOW_SECONDS) -> None:
        self.logger = logger
        self.window = window
        self._last: dict[str, tuple[float, int]] = {}  # message template -> (last logged, held back since)
        self._lock = threading.Lock()

    def _allow(self, msg: str) -> int | None:
        now = time.monotonic()
        with self._lock:
            last = self._last.get(msg)
            if last is not None and now - last[0] < self.window:
                self._last[msg] = (last[0], last[1] + 1)
                return None
            if last is None and len(self._last) >= 100:  # templates are Engine.IO's own; bounded all the same
                self._last.clear()
            self._last[msg] = (now, 0)
            return 0 if last is None else last[1]

    def _quiet(self, level: int, msg: str, args: tuple, kwargs: dict[str, Any]) -> None:
        if not self.logger.isEnabledFor(level):
            return
        held = self._allow(str(msg))
        if held is None:
            return
        if held:
            msg = f"{msg} ({held} more like it in the last minute were not logged)"
        self.logger.log(level, msg, *args, **kwargs)

    def warning(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self._quiet(logging.WARNING, msg, args, kwargs)

    def error(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self._quiet(logging.ERROR, msg, args, kwargs)

    def exception(self, msg: str, *args: Any, exc_info: Any = True, **kwargs: Any) -> None:
        self._quiet(logging.ERROR, msg, args, {**kwargs, "exc_info": exc_info})

    def __getattr__(self, name: str) -> Any:  # info, debug, setLevel, level, ...
        return getattr(self.logger, name)


def install(server: Any, conduct: Conduct) -> None:
    """Put `conduct` between Engine.IO and Socket.IO (`server`, a python-socketio Server): a frame Socket.IO
    cannot take (beyond what inbound refuses first) is counted for its socket instead of logged with a traceback by
    Engine.IO, and a socket's record goes with it. Engine.IO's logger becomes a QuietLogger. (What Socket.IO then
    dispatches is an event with a name, inbound.TextPacket's check, and what our handlers raise is caught by
    Flask-SocketIO and counted by handlers.on_error.)"""
    eio = server.eio
    take_message = eio.handlers["message"]
    end = eio.handlers["disconnect"]

    def malformed(eio_sid: str, error: BaseException) -> None:
        environ = server.environ.get(eio_sid) or {}
        conduct.misbehaved(eio_sid, MALFORMED, error, environ.get("REMOTE_ADDR"))

    def on_message(eio_sid: str, data: Any) -> Any:
        try:
            return take_message(eio_sid, data)
        except Exception as exc:  # a frame that is not Socket.IO, or not now: the client's fault, not ours
            malformed(eio_sid, exc)
            return None

    def on_disconnect(eio_sid: str, *args: Any) -> Any:
        try:
            return end(eio_sid, *args)
        finally:
            conduct.forget(eio_sid)

    eio.on("message", on_message)
    eio.on("disconnect", on_disconnect)
    if not isinstance(eio.logger, QuietLogger):
        eio.logger = QuietLogger(eio.logger)
