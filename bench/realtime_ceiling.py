"""The ceiling of `bench/realtime`: the least a Flask-SocketIO app can do for an inventory tracker.

    gunicorn -c gunicorn.conf.py --workers 1 bench.realtime_ceiling:app

Served like Fantasize (the same gunicorn.conf.py, worker class and one worker), with no database, Redis, auth,
limits or logging of its own: Flask and Flask-SocketIO (`async_mode="gevent"`) only.

- Socket.IO `track_inventory <productId>` joins the room `inventory:<productId>` and answers `tracking
  {productId, quantity}`, as an event and as the acknowledgement (as Fantasize does, API.md "Real time").
- HTTP `PATCH /products/<id>/stock` with `{"quantity": n}` sets the product's stock (a dict in memory) and emits
  `inventory_update {productId, quantity, previousQuantity, details, timestamp}` to that room, the payload Fantasize
  sends, then answers the product as JSON.
- `GET /health` answers 200 (the bench waits for it).

BENCH_CEILING_MESSAGE_QUEUE=redis://... routes the emit through a Redis message queue as Fantasize's does (off by
default: the ceiling is the in-process emit).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

from flask import Flask, abort, jsonify, request
from flask_socketio import SocketIO, emit, join_room

INITIAL_STOCK = 10


def create_app(message_queue: str | None = None) -> tuple[Flask, SocketIO]:
    app = Flask(__name__)
    socketio = SocketIO(app, async_mode="gevent", message_queue=message_queue or None)
    stock: dict[int, int] = {}

    @socketio.on("track_inventory")
    def track_inventory(product_id):
        if isinstance(product_id, bool) or not isinstance(product_id, int) or product_id < 1:
            error = {"error": {"code": "VALIDATION_ERROR", "message": "productId must be a positive integer"}}
            emit("error", error["error"])
            return error
        join_room(f"inventory:{product_id}")
        payload = {"productId": product_id, "quantity": stock.get(product_id, INITIAL_STOCK)}
        emit("tracking", payload)
        return payload

    @app.patch("/products/<int:product_id>/stock")
    def change_stock(product_id: int):
        body = request.get_json(silent=True)
        quantity = body.get("quantity") if isinstance(body, dict) else None
        if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 0:
            abort(422)
        previous = stock.get(product_id, INITIAL_STOCK)
        stock[product_id] = quantity
        socketio.emit("inventory_update", {
            "productId": product_id, "quantity": quantity, "previousQuantity": previous,
            "details": {"change": "set"}, "timestamp": datetime.now(UTC).isoformat(),
        }, to=f"inventory:{product_id}")
        return jsonify({"id": product_id, "quantity": quantity})

    @app.get("/health")
    def health():
        return jsonify({"status": "ok"})

    return app, socketio


app, socketio = create_app(os.environ.get("BENCH_CEILING_MESSAGE_QUEUE"))
