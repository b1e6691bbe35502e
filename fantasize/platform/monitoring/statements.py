"""Slow SQL: every statement is timed by two engine events; one slower than SLOW_QUERY_THRESHOLD ms is logged at
warning with the request id, kept for the summary's `slowQueries`, and handed to the slow-query listeners.

What is logged and kept is the statement as SQLAlchemy sent it to the driver: bound values are placeholders there
(`%(email_1)s`), and the parameters themselves are never read, so no value a user sent (a password hash, an email,
a token) reaches the log. Per statement the cost is one perf_counter and a dict write on the connection's info;
the events are registered only while monitoring is on.
"""

from __future__ import annotations

import logging
import re
from time import perf_counter
from typing import TYPE_CHECKING

from flask import Flask
from sqlalchemy import event
from sqlalchemy.engine import Engine

from fantasize.platform.request_log import request_id

if TYPE_CHECKING:
    from fantasize.platform.monitoring import Monitoring

log = logging.getLogger("fantasize.monitoring.sql")

STARTED = "fantasize.statement_started"
STATEMENT_CHARS = 1000
_SPACE = re.compile(r"\s+")


def shown(statement: str) -> str:
    """The statement on one line, cut to STATEMENT_CHARS."""
    text = _SPACE.sub(" ", statement).strip()
    return text if len(text) <= STATEMENT_CHARS else text[: STATEMENT_CHARS - 1] + "…"


def watch(app: Flask, engine: Engine, monitoring: Monitoring) -> None:
    threshold = app.config["SLOW_QUERY_THRESHOLD"] / 1000

    def before(conn, _cursor, _statement, _parameters, _context, _executemany) -> None:
        conn.info[STARTED] = perf_counter()

    def after(conn, _cursor, statement, _parameters, _context, _executemany) -> None:
        started = conn.info.pop(STARTED, None)
        if started is None:
            return
        seconds = perf_counter() - started
        if seconds <= threshold:
            return
        text = shown(statement)
        rid = request_id()
        log.warning("slow SQL statement: %.0f ms (request %s): %s", seconds * 1000, rid, text,
                    extra={"durationMs": round(seconds * 1000, 2)})
        for listener in monitoring.slow_query_listeners:
            listener(text, seconds, rid)

    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "after_cursor_execute", after)
    monitoring.statement_events = (before, after)
