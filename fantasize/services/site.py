"""The shop's own pages: contact messages from visitors and the admin-edited site texts."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite

from fantasize.extensions import db
from fantasize.models import ContactMessage, SiteContent
from fantasize.models.base import utcnow
from fantasize.services.common import Page, commit, paginate

SITE_TEXT_KEYS = ("about", "contact")
_UPSERTS = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}


def create_contact_message(data: dict[str, Any]) -> ContactMessage:
    message = ContactMessage(**data)
    db.session.add(message)
    commit()
    return message


def list_contact_messages(page: int, limit: int) -> Page:
    """Newest first."""
    stmt = select(ContactMessage).order_by(ContactMessage.created_at.desc(), ContactMessage.id.desc())
    return paginate(stmt, page, limit)


def site_texts() -> dict[str, str]:
    """Every site text, "" where none has been written."""
    stored = dict(db.session.execute(
        select(SiteContent.key, SiteContent.body).where(SiteContent.key.in_(SITE_TEXT_KEYS))
    ).tuples().all())
    return {key: stored.get(key, "") for key in SITE_TEXT_KEYS}


def update_site_texts(texts: dict[str, str]) -> dict[str, str]:
    """Write the given texts in one statement; an upsert, so two first-time writers never collide on the key."""
    if texts:
        now = utcnow()
        insert = _UPSERTS[db.session.get_bind().dialect.name](SiteContent).values(
            [{"key": key, "body": body, "created_at": now, "updated_at": now} for key, body in texts.items()]
        )
        db.session.execute(insert.on_conflict_do_update(
            index_elements=[SiteContent.key],
            set_={"body": insert.excluded.body, "updated_at": insert.excluded.updated_at},
        ))
        commit()
    return site_texts()
