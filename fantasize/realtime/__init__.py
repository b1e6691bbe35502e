"""Real time (API.md "Real time"): Flask-SocketIO on the app, one server per app.

- `handlers`: the client events (authenticate, track_*), with the per-socket event limit;
- `outbox`: what reaches clients, emitted after the change commits (the events seam), never in the request's way;
- `guard`: sessions that outlive their token end (expiry, sign-out, deactivation, role change);
- `stats`: who is connected, per instance and in total;
- `live`: GET /live, the reference browser client;
- `admission`: who may open a socket here (the worker, the client address's connections a minute);
- `conduct`: misbehaving sockets, logged once a minute each with counts.

Async mode: gevent where gevent serves (gunicorn's gevent worker, `python wsgi.py`), threads elsewhere (a `flask`
command, a gthread worker, the unit tests). Threads can emit but a gunicorn thread worker serves no socket (each
would hold one of its threads): `admission` refuses them there. With SOCKETIO_MESSAGE_QUEUE (REDIS_URL by default)
every emit also travels through Redis, so an event raised in any process reaches the clients of every instance.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
import time
import uuid
from functools import cached_property
from typing import Any
from urllib.parse import urlsplit

import socketio as python_socketio
from flask import Flask
from flask_socketio import SocketIO
from redis import Redis

from config import ConfigError
from fantasize.platform import redis_clients
from fantasize.platform.proxy import behind_proxies
from fantasize.realtime import conduct, guard, handlers, inbound, live, outbox
from fantasize.realtime.sockets import Registry, SignedIn, Socket, admin_inventory_room, order_room, user_room

log = logging.getLogger("fantasize.realtime")
EXTENSION = "fantasize.realtime"
MIN_MESSAGE_BYTES = 8192  # SOCKET_MAX_MESSAGE_BYTES at least: a sign-in (a token of up to 4,096 characters) fits


def under_gevent() -> bool:
    """True when gevent has patched this process (its gunicorn worker, or `python wsgi.py`)."""
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and monkey.is_module_patched("socket")


class Realtime:
    """The app's Socket.IO server, its sockets, and the background work that serves them."""

    def __init__(self, app: Flask) -> None:
        cfg = app.config
        self.app = app
        self.registry = Registry()
        self.queue_url: str | None = cfg.get("SOCKETIO_MESSAGE_QUEUE") or None
        self.prefix = f"{cfg['CACHE_KEY_PREFIX']}realtime:"
        self.instance_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.sweep_seconds = max(1, cfg["SOCKET_SWEEP_SECONDS"])
        self.async_mode = "gevent" if under_gevent() else "threading"
        # What an outage repeats (emits, sweeps, figures that fail while Redis or the database is away): each
        # message once a minute, with how many were held back.
        self.quiet_log = conduct.QuietLogger(log)
        self.max_message_bytes = cfg["SOCKET_MAX_MESSAGE_BYTES"]
        if self.max_message_bytes < MIN_MESSAGE_BYTES:  # a sign-in carries a token: below this, nobody could
            raise ConfigError(f"SOCKET_MAX_MESSAGE_BYTES must be at least {MIN_MESSAGE_BYTES}")
        manager = None
        if self.queue_url:
            # A read timeout bounds a publish to a Redis that accepts and never answers (redis-py's default, 5 s,
            # twice per emit, held the outbox 10 s an event); the listener's blocking read is not subject to it.
            # With Sentinel its listener, on losing the primary, reconnects through the sentinels and subscribes
            # again on the new one (python-socketio retries after 1, 2, 4... s).
            url, options = redis_clients.socketio_queue(self.queue_url, socket_connect_timeout=1, socket_timeout=1)
            manager = python_socketio.RedisManager(url, channel=f"{cfg['CACHE_KEY_PREFIX']}socketio",
                                                   redis_options=options)
        self.socketio = SocketIO(
            app,
            async_mode=self.async_mode,
            client_manager=manager,
            cors_allowed_origins=self.origin_allowed,
            manage_session=False,  # a socket's state lives in `registry`, not in a Flask session
            max_http_buffer_size=self.max_message_bytes,  # long-polling; the websocket's bound is inbound's
            serializer=inbound.TextPacket,  # no binary packets, no malformed events
            logger=False,
            engineio_logger=False,
        )
        # What a client sends is checked first (inbound: a refused packet closes its socket with one line), then
        # counted (conduct: whatever else Socket.IO cannot take, a line a minute per socket).
        inbound.install(self.socketio.server, self.max_message_bytes)
        self.conduct = conduct.Conduct()
        conduct.install(self.socketio.server, self.conduct)
        self._route_only_socket_paths(app)
        self.outbox = outbox.Outbox(self)
        self._loop_lock = threading.Lock()
        self._session_lock = threading.Lock()
        self._loop_started = False
        self.stopped = False
        handlers.register(self.socketio, lambda: cfg["SOCKET_EVENTS_PER_MINUTE"])

    def _route_only_socket_paths(self, app: Flask) -> None:
        """Send only /socket.io/ requests through Flask-SocketIO's middleware, behind the trusted proxies (as the
        app's own requests), the admission gate and the input checks of long-polling bodies and handshakes
        (inbound.refuse_request); every other request goes straight to the app (the middleware copies each environ
        and engine.io builds a class per request: ~2% of a cached read)."""
        from fantasize.realtime import admission  # it imports the API, which imports this package

        middleware = app.wsgi_app
        plain = middleware.wsgi_app
        path = middleware.engineio_path.rstrip("/") + "/"
        server, max_bytes = self.socketio.server, self.max_message_bytes
        gate = admission.Gate(self, middleware,
                              check=lambda environ: inbound.refuse_request(server, environ, max_bytes))
        sockets = behind_proxies(app, gate)

        def dispatch(environ: dict[str, Any], start_response: Any) -> Any:
            if environ.get("PATH_INFO", "").startswith(path):
                return sockets(environ, start_response)
            return plain(environ, start_response)

        app.wsgi_app = dispatch

    def serves_sockets(self, environ: dict[str, Any]) -> bool:
        """False where a socket would hold a thread of a fixed pool for its whole life: threads (not gevent) under
        gunicorn, whose gthread and sync workers have GUNICORN_THREADS (or one) each. Flask's test client and its
        development server (a thread per request) still serve them."""
        return self.async_mode == "gevent" or not environ.get("SERVER_SOFTWARE", "").startswith("gunicorn/")

    # Origins: the app's own (its /live page) and CORS_ORIGIN's

    def origin_allowed(self, origin: str | None, environ: dict[str, Any]) -> bool:
        from fantasize.platform.security import cors_origins

        if not origin:
            return True  # not a browser: nothing for CORS to protect
        # The scheme the request arrived with (ProxyFix keeps it aside when it takes the forwarded one).
        scheme = environ.get("werkzeug.proxy_fix.orig", {}).get("wsgi.url_scheme") or environ.get("wsgi.url_scheme")
        own = {f"{scheme or 'http'}://{environ.get('HTTP_HOST', '')}"}
        if self.app.config.get("PROXY_COUNT", 0) > 0 and environ.get("HTTP_X_FORWARDED_PROTO"):
            scheme = environ["HTTP_X_FORWARDED_PROTO"].split(",")[-1].strip()
            host = environ.get("HTTP_X_FORWARDED_HOST", environ.get("HTTP_HOST", "")).split(",")[-1].strip()
            own.add(f"{scheme}://{host}")
        public = urlsplit(self.app.config.get("PUBLIC_BASE_URL") or "")
        if public.scheme and public.netloc:
            own.add(f"{public.scheme}://{public.netloc}")
        return origin in own or cors_origins(self.app).allows(origin)

    @cached_property
    def redis(self) -> Redis:
        """A client of the message queue's Redis for what is not Socket.IO's own traffic (revocations, figures):
        short timeouts, so a request reading the figures never hangs on a dead Redis."""
        return redis_clients.client(self.queue_url, socket_connect_timeout=0.5, socket_timeout=1)

    # Sessions

    def session_expired(self, signed_in: SignedIn) -> bool:
        return signed_in.expires_at <= time.time()

    def end_session(self, sock: Socket, message: str | None = None, only: SignedIn | None = None) -> bool:
        """The socket no longer speaks for its user: it leaves their room, every order room and every admin
        inventory room (it keeps the public inventory rooms it tracks), and hears why.

        `only`: end that session, not one the socket began since. False when there was nothing to end.
        """
        with self._session_lock:
            signed_in = sock.signed_in
            if signed_in is None or (only is not None and signed_in is not only):
                return False
            sock.signed_in = None
        server = self.socketio.server
        server.leave_room(sock.sid, user_room(signed_in.user_id), namespace="/")
        for order_id in list(sock.orders):
            server.leave_room(sock.sid, order_room(order_id), namespace="/")
        sock.orders.clear()
        for product_id in list(sock.products):
            server.leave_room(sock.sid, admin_inventory_room(product_id), namespace="/")
        if message:
            self.socketio.emit("auth_error", {"message": message}, to=sock.sid, ignore_queue=True)
        return True

    # Background work: one loop per process that holds sockets

    def stop(self) -> None:
        """Let the background loop end (at its next wake-up): an app that is done with, as in tests."""
        self.stopped = True

    def ensure_loop(self) -> None:
        if self._loop_started or self.stopped:
            return
        with self._loop_lock:
            if not self._loop_started:
                self._loop_started = True
                self.socketio.start_background_task(guard.run, self)


def init_app(app: Flask) -> Realtime:
    realtime = Realtime(app)
    app.extensions[EXTENSION] = realtime
    outbox.subscribe()
    live.init_app(app)
    return realtime


def realtime_of(app: Flask) -> Realtime:
    return app.extensions[EXTENSION]
