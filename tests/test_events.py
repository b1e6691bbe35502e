"""Domain events reach after-commit subscribers only when the transaction commits."""

from __future__ import annotations

import pytest

from fantasize import events
from fantasize.extensions import db


@pytest.fixture
def received():
    seen: list = []

    def record(event):
        seen.append(event)

    events.after_commit(events.StockChanged)(record)
    yield seen
    events.unsubscribe(record)


def test_committed_stock_change_is_delivered_with_before_and_after(client, factory, received):
    product = factory.product(quantity=7)
    response = client.patch(
        f"/api/v1/products/{product.id}/stock", json={"delta": -3}, headers=factory.headers(factory.admin())
    )
    assert response.status_code == 200
    assert [(e.item_type, e.item_id, e.previous_quantity, e.quantity) for e in received] == [
        ("product", product.id, 7, 4)
    ]


def test_refused_stock_change_announces_nothing(client, factory, received):
    product = factory.product(quantity=2)
    response = client.patch(
        f"/api/v1/products/{product.id}/stock", json={"delta": -3}, headers=factory.headers(factory.admin())
    )
    assert response.status_code == 409
    assert received == []


def test_rolled_back_announcement_is_discarded(app, received):
    events.announce(events.StockChanged("product", 1, quantity=0, previous_quantity=1, public=True))
    db.session.rollback()
    db.session.commit()
    assert received == []


def test_a_failing_subscriber_does_not_undo_the_commit(app, factory, received):
    def explode(_event):
        raise RuntimeError("emitter down")

    events.after_commit(events.StockChanged)(explode)
    try:
        events.announce(events.StockChanged("product", 1, quantity=0, previous_quantity=1, public=True))
        db.session.commit()
    finally:
        events.unsubscribe(explode)
    assert len(received) == 1


def test_on_announce_subscribers_run_inside_the_transaction(app, received):
    calls: list = []

    def inside(event):
        calls.append(db.session().in_transaction())

    events.on_announce(events.StockChanged)(inside)
    try:
        db.session.begin()
        events.announce(events.StockChanged("package", 2, quantity=3, previous_quantity=4, public=True))
        db.session.commit()
    finally:
        events.unsubscribe(inside)
    assert calls == [True]
    assert len(received) == 1
