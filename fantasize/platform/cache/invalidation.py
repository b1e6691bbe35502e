"""Invalidation on commit: the session notes which catalogue tables a transaction wrote, and once it commits
(before the response is sent) moves the generation of their domains.

Writes are found where they happen instead of being announced by each service: objects added, changed or
deleted in a flush, and ORM UPDATE/DELETE/INSERT statements (the atomic stock moves of orders, stock changes
and the inventory sync). HTTP writes, CLI commands such as `flask seed` and tests' factories all commit
through the same session, so none can forget to invalidate. A rolled-back transaction invalidates nothing.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import has_app_context
from sqlalchemy import event as sa_event
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import ORMExecuteState, Session, SessionTransaction, UOWTransaction

from fantasize.extensions import db
from fantasize.platform.cache.domains import WATCHED_TABLES, Watch
from fantasize.platform.cache.pages import OFFER_CHANGE, offer_change_mark, page_store

log = logging.getLogger("fantasize.cache")
TOUCHED_KEY = "fantasize.cache.touched"


def _watch(obj: Any) -> Watch | None:
    table = getattr(type(obj), "__table__", None)
    return WATCHED_TABLES.get(table.name) if table is not None else None


def _changed(session: Session, obj: Any, watch: Watch) -> bool:
    if watch.columns is None:
        return session.is_modified(obj)
    attrs = sa_inspect(obj).attrs
    return any(attrs[column].history.has_changes() for column in watch.columns)


def _note(session: Session, domain: str) -> None:
    session.info.setdefault(TOUCHED_KEY, set()).add(domain)


def _after_flush(session: Session, _flush_context: UOWTransaction) -> None:
    # Run after the flush, whose new/dirty/deleted sets and attribute histories still describe what it wrote.
    for obj in session.new:
        watch = _watch(obj)
        if watch is not None and watch.inserts:
            _note(session, watch.domain)
    for obj in session.deleted:
        watch = _watch(obj)
        if watch is not None:
            _note(session, watch.domain)
    for obj in session.dirty:
        watch = _watch(obj)
        if watch is not None and _changed(session, obj, watch):
            _note(session, watch.domain)


def _on_statement(state: ORMExecuteState) -> None:
    if state.is_update or state.is_delete or state.is_insert:
        table = getattr(state.statement, "table", None)
        watch = WATCHED_TABLES.get(getattr(table, "name", None))
        if watch is not None:
            _note(state.session, watch.domain)


def _offer_marks(domains: set[str]) -> dict[str, bytes | None]:
    if "offers" not in domains:
        return {}
    try:
        # The session cannot run SQL once committed; a connection of its own reads what was just committed.
        with db.engine.connect() as connection:
            return {OFFER_CHANGE: offer_change_mark(connection)}
    except SQLAlchemyError:
        log.exception("could not read the offers' next change; readers will")
        return {OFFER_CHANGE: None}


def _after_commit(session: Session) -> None:
    domains = session.info.pop(TOUCHED_KEY, None)
    store = page_store() if domains and has_app_context() else None
    if store is not None:
        store.invalidate(domains, _offer_marks(domains))


def _after_rollback(session: Session, previous: SessionTransaction) -> None:
    if previous.parent is None:  # the whole transaction is gone; a savepoint's rollback leaves earlier writes
        session.info.pop(TOUCHED_KEY, None)


def init_session_events() -> None:
    """Listen on the app's session (idempotent: every app shares Flask-SQLAlchemy's session class)."""
    listeners = (("after_flush", _after_flush), ("do_orm_execute", _on_statement),
                 ("after_commit", _after_commit), ("after_soft_rollback", _after_rollback))
    for name, listener in listeners:
        if not sa_event.contains(db.session, name, listener):
            sa_event.listen(db.session, name, listener)

