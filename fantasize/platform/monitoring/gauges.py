"""The figures /metrics reads rather than counts (readings.py) as Prometheus gauges.

One process (the default layout): ScrapeFigures reads them when scraped. Several gunicorn workers (multiprocess
mode): a scrape is answered by one worker, which cannot read the others' pools or sockets, so each worker writes its
own to multiprocess gauges every REFRESH_SECONDS (WorkerFigures: live workers' values summed, memory the largest),
and the scrape reads Redis alone (one PING is per instance, whichever worker sends it).
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from typing import Any

from flask import Flask
from prometheus_client import Gauge
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from fantasize.platform import monitoring
from fantasize.platform.monitoring import readings

log = logging.getLogger("fantasize.monitoring")

NAMESPACE = "fantasize"
REFRESH_SECONDS = 1.0


def _gauge(name: str, help_text: str, value: float, labels: dict[str, str] | None = None) -> GaugeMetricFamily:
    family = GaugeMetricFamily(f"{NAMESPACE}_{name}", help_text, labels=list(labels or ()))
    family.add_metric(list((labels or {}).values()), value)
    return family


class ScrapeFigures(Collector):
    """The pool, sockets and Redis as they are at the scrape (this process's: the single-process mode), and Redis
    alone in multiprocess mode (one PING per scrape is per instance, whichever worker answers)."""

    def __init__(self, app: Flask, redis_only: bool = False) -> None:
        self.app = app
        self.redis_only = redis_only

    def collect(self) -> Any:
        up = readings.redis_up(self.app)
        if up is not None:
            yield _gauge("redis_up", "1 when Redis answered a PING at this scrape, 0 when it did not", float(up))
        yield _gauge("monitoring_enabled", "1 when ENABLE_PERFORMANCE_MONITORING records requests",
                     float(monitoring.state(self.app) is not None))
        if self.redis_only:
            return
        pool = readings.pool(self.app)
        if pool is not None:
            yield _gauge("db_pool_size", "Connections the database pool keeps", pool.size)
            yield _gauge("db_pool_checked_out", "Database connections in use now", pool.checked_out)
            yield _gauge("db_pool_overflow", "Database connections open beyond the pool size now", pool.overflow)
        held = readings.sockets(self.app)
        if held is not None:
            yield _gauge("socketio_connected_clients", "Socket.IO clients connected to this instance", held.clients)
            rooms = GaugeMetricFamily(f"{NAMESPACE}_socketio_rooms", "Socket.IO rooms with members on this "
                                      "instance, by kind", labels=["kind"])
            for kind in readings.ROOM_KINDS:
                rooms.add_metric([kind], held.rooms[kind])
            yield rooms


class WorkerFigures:
    """Multiprocess mode: this worker's pool, sockets and memory written to gauges every REFRESH_SECONDS (values are
    files, summed or maxed over live workers by MultiProcessCollector)."""

    def __init__(self, app: Flask, tally: Any = None) -> None:
        self.app = app
        self.tally = tally  # prometheus.Tally: this worker's pending counts, written with the figures
        self.pool_size = Gauge("db_pool_size", "Connections the database pools keep (all workers)",
                               namespace=NAMESPACE, multiprocess_mode="livesum", registry=None)
        self.checked_out = Gauge("db_pool_checked_out", "Database connections in use now (all workers)",
                                 namespace=NAMESPACE, multiprocess_mode="livesum", registry=None)
        self.overflow = Gauge("db_pool_overflow", "Database connections beyond the pool size now (all workers)",
                              namespace=NAMESPACE, multiprocess_mode="livesum", registry=None)
        self.clients = Gauge("socketio_connected_clients", "Socket.IO clients connected (all workers)",
                             namespace=NAMESPACE, multiprocess_mode="livesum", registry=None)
        self.rooms = Gauge("socketio_rooms", "Socket.IO rooms with members, by kind (summed over workers)",
                           ["kind"], namespace=NAMESPACE, multiprocess_mode="livesum", registry=None)
        self.memory = Gauge("process_resident_memory_bytes", "The largest live worker's resident memory",
                            multiprocess_mode="livemax", registry=None)

    def refresh(self) -> None:
        if self.tally is not None:
            self.tally.apply()
        pool = readings.pool(self.app)
        if pool is not None:
            self.pool_size.set(pool.size)
            self.checked_out.set(pool.checked_out)
            self.overflow.set(pool.overflow)
        held = readings.sockets(self.app)
        if held is not None:
            self.clients.set(held.clients)
            for kind in readings.ROOM_KINDS:
                self.rooms.labels(kind).set(held.rooms[kind])
        self.memory.set(readings.resident_memory())

    def run(self) -> None:
        while True:
            try:
                self.refresh()
            except Exception:  # a figure that fails now (the database away) is tried again next time
                log.debug("worker figures not refreshed", exc_info=True)
            time.sleep(REFRESH_SECONDS)

    def start(self) -> None:
        self.refresh()
        # Under gevent threading is patched: this is a greenlet of the worker's hub.
        threading.Thread(target=self.run, name="prometheus-figures", daemon=True).start()
        if self.tally is not None:
            atexit.register(self.tally.apply)  # a worker on its way out writes what it counted since the last refresh
