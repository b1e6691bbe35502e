"""Who may open a socket here, decided before Socket.IO sees the request (API.md "Real time", README "Real time").

Every `/socket.io/` request passes this gate first:
- a worker that would give each socket a thread of its own for its whole life (any gunicorn worker but gevent:
  gthread, sync) serves none: 503 REALTIME_UNAVAILABLE, at once, so two idle sockets cannot take every thread;
- a new connection (an Engine.IO handshake: a GET without `sid`, on either transport) spends one of its client
  address's SOCKET_CONNECTS_PER_MINUTE, counted like the HTTP limits (Redis, shared by every instance; the address
  through PROXY_COUNT proxies); beyond it, 429 RATE_LIMITED with Retry-After;
- what a client sent that Engine.IO must not read (`check`: realtime.inbound's refusals of long-polling bodies and
  malformed websocket requests) gets 400 (413 over SOCKET_MAX_MESSAGE_BYTES) with the API's error body.
Refusals carry the API's error body and, for an allowed browser origin, the CORS headers a page needs to read it
(socket.io-client reports it as `connect_error` with `err.description` the status, over long-polling).

A websocket whose frame Engine.IO cannot even parse ends there, and the error escapes Engine.IO into the server,
which would log a traceback for each such socket: the gate ends the socket as Engine.IO's websocket driver does,
and logs it through the instance's quiet log (one line a minute, with the count, the traceback of the first).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from flask import Response

from config import ConfigError
from fantasize.platform import request_log
from fantasize.platform.monitoring import counts
from fantasize.platform.rate_limits import LimitOutsideRequests, address_of
from fantasize.web import HTTP_CODES, error_response

if TYPE_CHECKING:
    from fantasize.realtime import Realtime

log = logging.getLogger("fantasize.realtime")
CONNECT_SCOPE = "socket-connect"


def is_handshake(environ: dict[str, Any]) -> bool:
    """A request that opens an Engine.IO session (the later requests of a long-polling socket name its `sid`)."""
    return environ.get("REQUEST_METHOD") == "GET" and "sid" not in parse_qs(environ.get("QUERY_STRING", ""))


class Gate:
    """WSGI: the checks above, then `sockets` (Flask-SocketIO's middleware)."""

    def __init__(self, realtime: Realtime, sockets: Any,
                 check: Callable[[dict[str, Any]], tuple[int, str] | None] | None = None) -> None:
        self.realtime = realtime
        self.sockets = sockets
        self.check = check  # what a client sent, refused before Engine.IO reads it: (status, message) or None
        per_minute = int(realtime.app.config["SOCKET_CONNECTS_PER_MINUTE"])
        if per_minute < 1:
            raise ConfigError("SOCKET_CONNECTS_PER_MINUTE must be at least 1")
        self.connects = LimitOutsideRequests(realtime.app, CONNECT_SCOPE, f"{per_minute} per minute")
        self._warned_threads = False

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if not self.realtime.serves_sockets(environ):
            if not self._warned_threads:
                self._warned_threads = True
                log.warning("socket requests refused: this worker serves with threads (run gunicorn's gevent "
                            "worker to serve sockets)")
            return self.refuse(environ, start_response, 503, "REALTIME_UNAVAILABLE",
                               "Real time is not served by this server: it runs gunicorn's gevent worker only "
                               "(GUNICORN_WORKER_CLASS=gevent)")
        if is_handshake(environ):
            verdict = self.connects.hit(f"ip:{address_of(environ.get('REMOTE_ADDR'))}")
            if verdict is not None and not verdict.allowed:
                counts.rate_limited("socket", self.realtime.app)
                retry = max(1, math.ceil(verdict.reset - time.time()))
                return self.refuse(environ, start_response, 429, "RATE_LIMITED",
                                   f"More than {verdict.limit} socket connections a minute from this address; "
                                   f"try again in {retry} s", {"Retry-After": str(retry)})
        refused = self.check(environ) if self.check is not None else None
        if refused is not None:
            status, message = refused
            return self.refuse(environ, start_response, status, HTTP_CODES[status], message)
        if environ.get("HTTP_UPGRADE", "").lower() != "websocket":
            return self.sockets(environ, start_response)  # Engine.IO answers what it cannot parse over HTTP
        try:
            return self.sockets(environ, start_response)
        except (StopIteration, ConnectionError):  # how the websocket driver ends a socket under gunicorn, werkzeug
            raise
        except Exception:
            self.realtime.quiet_log.exception("a websocket ended on a frame Engine.IO could not take",
                                  extra={"remoteAddr": environ.get("REMOTE_ADDR")})
            return self._end_websocket(environ)

    @staticmethod
    def _end_websocket(environ: dict[str, Any]) -> Iterable[bytes]:
        """End a websocket request as simple-websocket's WSGI wrapper does: the server must not answer it."""
        if "werkzeug.socket" in environ:
            raise ConnectionError("websocket closed")
        if "gunicorn.socket" in environ:
            raise StopIteration
        return []

    def refuse(self, environ: dict[str, Any], start_response: Any, status: int, code: str, message: str,
               headers: dict[str, str] | None = None) -> Iterable[bytes]:
        app = self.realtime.app
        with app.request_context(environ):
            request_log.assign_request_id()
            response: Response = error_response(status, code, message, headers=headers)
            request_log.echo_request_id(response)
        origin = environ.get("HTTP_ORIGIN")
        if origin and self.realtime.origin_allowed(origin, environ):
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Allow-Credentials"] = "true"
        return response(environ, start_response)
