"""The client events of API.md "Real time": authenticate, track_order/untrack_order, track_inventory/untrack_inventory.

Every event answers with a reply event and, when the client asked for one, the same payload as its
acknowledgement (an error as `{"error": {code, message}}`). Each socket may send SOCKET_EVENTS_PER_MINUTE events; a
token in the connect payload spends one of them (a sign-in reads the database, as `authenticate` does). Events
refused for the limit, and handlers that fail, are counted in `conduct` (a line a minute per socket).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from flask import current_app, request
from flask_socketio import SocketIO, emit, join_room, leave_room
from sqlalchemy import select

from fantasize.errors import Unauthorized
from fantasize.extensions import db
from fantasize.models import Order, Product
from fantasize.models.base import row_id
from fantasize.realtime.conduct import FAILED, REFUSED
from fantasize.realtime.sockets import SignedIn, Socket, admin_inventory_room, inventory_room, order_room, user_room
from fantasize.services import tokens

log = logging.getLogger("fantasize.realtime")
Reply = dict[str, Any]


def _to_caller(event: str, payload: Reply) -> None:
    """Emit to the socket whose event this is. It is connected to this process, so the message queue is not
    used: nothing there is for another instance, and a queue that hangs must not hold the handler (and its
    database connection) nor the caller's acknowledgement."""
    emit(event, payload, ignore_queue=True)


def refuse(event: str, code: str, message: str) -> Reply:
    """Tell the caller its event was refused: an `error` event, and the same through its acknowledgement."""
    _to_caller("error", {"code": code, "message": message, "event": event})
    return {"error": {"code": code, "message": message}}


def reply(event: str, payload: Reply) -> Reply:
    _to_caller(event, payload)
    return payload


def _id_of(value: Any, key: str) -> int | None:
    """An id given as a number, a string of digits or `{key: id}`; None when it is not one."""
    if isinstance(value, dict) and set(value) == {key}:
        value = value[key]
    return row_id(value)


def _untrack(event: str, socket: Socket, value: Any, key: str, tracked: set[int],
             rooms: Callable[[int], tuple[str, ...]]) -> Reply:
    """Leave the rooms the socket joined with the matching track_ event (leaving one it is not in is no error)."""
    ident = _id_of(value, key)
    if ident is None:
        return refuse(event, "VALIDATION_ERROR", f"{key} must be a positive integer")
    if ident in tracked:
        for room in rooms(ident):
            leave_room(room)
        tracked.discard(ident)
    return reply("untracked", {key: ident})


def _realtime():
    return current_app.extensions["fantasize.realtime"]


def _misbehaved(kind: str, error: BaseException | None = None) -> None:
    """Count a misdeed of the socket of this event, by its Engine.IO session (as `conduct` knows its frames)."""
    realtime = _realtime()
    eio_sid = realtime.socketio.server.manager.eio_sid_from_sid(request.sid, "/")
    if eio_sid is not None:
        realtime.conduct.misbehaved(eio_sid, kind, error, request.remote_addr)
    elif kind == FAILED:  # its socket is gone already (a record would outlive it): a bug of ours is logged still
        log.error("socket handler failed", exc_info=error)


def rate_limited(event: str, per_minute: int) -> Reply:
    _misbehaved(REFUSED)
    return refuse(event, "RATE_LIMITED", f"More than {per_minute} events in a minute")


# Sessions


def sign_in(socket: Socket, token: Any) -> Reply:
    if not isinstance(token, str) or not token or len(token) > 4096:
        return _auth_error(socket, "A token is required")
    try:
        user, expires_at = tokens.session_of(token)
    except Unauthorized as exc:
        return _auth_error(socket, exc.message)
    if socket.signed_in is not None and socket.signed_in.user_id != user.id:
        sign_out(socket)  # one socket speaks for one user at a time
    socket.signed_in = SignedIn(user.id, user.role, user.token_version, expires_at)
    join_room(user_room(user.id))
    if socket.signed_in.is_admin:  # what it tracked before signing in, it now hears as an admin
        for product_id in socket.products:
            join_room(admin_inventory_room(product_id))
    return reply("authenticated", {"userId": user.id, "role": user.role})


def _auth_error(socket: Socket, message: str) -> Reply:
    if socket.signed_in is not None:
        sign_out(socket)
    _to_caller("auth_error", {"message": message})
    return {"error": {"code": "UNAUTHENTICATED", "message": message}}


def sign_out(socket: Socket) -> None:
    """The socket no longer speaks for anyone: it leaves its user's room and every order it tracked."""
    _realtime().end_session(socket)


# Handlers


def register(socketio: SocketIO, per_minute: Callable[[], int]) -> None:
    def client_event(name: str) -> Callable[[Callable[..., Reply]], None]:
        def decorate(handle: Callable[..., Reply]) -> None:
            def handler(*args: Any) -> Reply | None:
                socket = _realtime().registry.get(request.sid)
                if socket is None:  # an event racing its socket's disconnect
                    return None
                if not socket.allow_event(per_minute()):
                    return rate_limited(name, per_minute())
                if socket.signed_in is not None and _realtime().session_expired(socket.signed_in):
                    _realtime().end_session(socket, "Token has expired")
                return handle(socket, args[0] if args else None)

            handler.__name__ = f"on_{name}"
            socketio.on(name)(handler)

        return decorate

    @socketio.on("connect")
    def on_connect(auth: Any = None) -> None:
        _realtime().ensure_loop()
        socket = _realtime().registry.add(request.sid)
        token = auth.get("token") if isinstance(auth, dict) else None
        if token is not None:
            # A sign-in here is an `authenticate` event: it spends from the socket's events.
            if socket.allow_event(per_minute()):
                sign_in(socket, token)
            else:
                rate_limited("authenticate", per_minute())

    @socketio.on("disconnect")
    def on_disconnect(*_reason: Any) -> None:
        _realtime().registry.remove(request.sid)  # the server itself drops a gone socket from its rooms

    @client_event("authenticate")
    def authenticate(socket: Socket, token: Any) -> Reply:
        if isinstance(token, dict):
            token = token.get("token")
        return sign_in(socket, token)

    @client_event("track_order")
    def track_order(socket: Socket, value: Any) -> Reply:
        order_id = _id_of(value, "orderId")
        if socket.signed_in is None:
            return refuse("track_order", "UNAUTHENTICATED", "Authenticate before tracking an order")
        if order_id is None:
            return refuse("track_order", "VALIDATION_ERROR", "orderId must be a positive integer")
        row = db.session.execute(select(Order.user_id, Order.status).where(Order.id == order_id)).first()
        if row is None:
            return refuse("track_order", "NOT_FOUND", f"Order {order_id} not found")
        if row.user_id != socket.signed_in.user_id and not socket.signed_in.is_admin:
            return refuse("track_order", "FORBIDDEN", "You may only track your own orders")
        join_room(order_room(order_id))
        socket.orders.add(order_id)
        return reply("tracking", {"orderId": order_id, "status": row.status})

    @client_event("untrack_order")
    def untrack_order(socket: Socket, value: Any) -> Reply:
        return _untrack("untrack_order", socket, value, "orderId", socket.orders, lambda ident: (order_room(ident),))

    @client_event("track_inventory")
    def track_inventory(socket: Socket, value: Any) -> Reply:
        product_id = _id_of(value, "productId")
        if product_id is None:
            return refuse("track_inventory", "VALIDATION_ERROR", "productId must be a positive integer")
        row = db.session.execute(
            select(Product.quantity, Product.is_active).where(Product.id == product_id)).first()
        admin = socket.signed_in is not None and socket.signed_in.is_admin
        if row is None or not (row.is_active or admin):  # an inactive product does not exist for the public
            return refuse("track_inventory", "NOT_FOUND", f"Product {product_id} not found")
        # The public room hears the product only while it is active; an admin also joins the admins' room, which
        # hears it always and which the socket leaves when its session ends.
        join_room(inventory_room(product_id))
        if admin:
            join_room(admin_inventory_room(product_id))
        socket.products.add(product_id)
        return reply("tracking", {"productId": product_id, "quantity": row.quantity})

    @client_event("untrack_inventory")
    def untrack_inventory(socket: Socket, value: Any) -> Reply:
        return _untrack("untrack_inventory", socket, value, "productId", socket.products,
                        lambda ident: (inventory_room(ident), admin_inventory_room(ident)))

    @socketio.on_error_default
    def on_error(exc: Exception) -> Reply:
        # Logged through `conduct`: the first failure of a socket in a minute with its traceback, the rest counted.
        _misbehaved(FAILED, exc)
        db.session.rollback()
        return refuse(str(getattr(request, "event", {}).get("message", "")), "INTERNAL_ERROR",
                      "Something went wrong")

