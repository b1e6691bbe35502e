"""The shop's own pages: visitors' contact messages (read by admins) and the about and contact texts."""

from __future__ import annotations

from datetime import timedelta

import pytest

from fantasize.extensions import db
from fantasize.models import ContactMessage, SiteContent
from fantasize.models.base import utcnow

MESSAGE = {
    "name": "Siobhán O'Brien", "email": "siobhan@example.com", "subject": "Select your size",
    "message": "DROP earrings -- 50% off; do you ship to Cork?",
}


def test_a_visitor_can_send_a_message_stored_exactly_as_written(client):
    response = client.post("/api/v1/contact", json=MESSAGE)
    assert response.status_code == 201, response.json
    assert {key: response.json[key] for key in MESSAGE} == MESSAGE
    assert response.json["createdAt"].endswith("Z")
    stored = db.session.get(ContactMessage, response.json["id"])
    assert (stored.name, stored.subject, stored.message) == (MESSAGE["name"], MESSAGE["subject"], MESSAGE["message"])


@pytest.mark.parametrize("change", [
    {"name": ""}, {"name": "x" * 101}, {"email": "not-an-email"}, {"subject": ""}, {"subject": "x" * 201},
    {"message": ""}, {"message": "x" * 5001}, {"message": 5}, {"phone": "123"},
])
def test_a_message_that_fails_validation_is_422_and_not_stored(client, change):
    response = client.post("/api/v1/contact", json={**MESSAGE, **change})
    assert response.status_code == 422
    assert response.json["error"]["code"] == "VALIDATION_ERROR"
    assert db.session.query(ContactMessage).count() == 0


def test_missing_fields_are_named(client):
    response = client.post("/api/v1/contact", json={"name": "Ann"})
    assert response.status_code == 422
    assert set(response.json["error"]["details"]) == {"email", "subject", "message"}


def test_admins_read_contact_messages_newest_first_page_by_page(client, factory):
    now = utcnow()
    for n in range(3):
        db.session.add(ContactMessage(name=f"Visitor {n}", email=f"v{n}@example.com", subject="Hi", message="Hello",
                                      created_at=now - timedelta(hours=3 - n)))
    db.session.commit()
    headers = factory.headers(factory.admin())
    first = client.get("/api/v1/admin/contact?limit=2", headers=headers)
    assert first.status_code == 200
    assert [m["name"] for m in first.json] == ["Visitor 2", "Visitor 1"]
    assert first.headers["X-Total-Count"] == "3" and 'rel="next"' in first.headers["Link"]
    second = client.get("/api/v2/admin/contact?limit=2&page=2", headers=headers).json
    assert [m["name"] for m in second["data"]] == ["Visitor 0"]
    assert second["meta"]["pagination"]["total"] == 3


def test_only_admins_read_contact_messages(client, factory):
    assert client.get("/api/v1/admin/contact").status_code == 401
    assert client.get("/api/v1/admin/contact", headers=factory.headers(factory.user())).status_code == 403


def test_site_texts_are_empty_until_written(client):
    assert client.get("/api/v1/site").json == {"about": "", "contact": ""}
    assert client.get("/api/v2/site").json["data"] == {"about": "", "contact": ""}


def test_an_admin_writes_site_texts_and_a_later_write_keeps_what_it_leaves_out(client, factory):
    headers = factory.headers(factory.admin())
    about = "We make gifts.\nO'Brien & Sons -- since 1999; 100% handmade."
    response = client.put("/api/v1/site", json={"about": about}, headers=headers)
    assert response.status_code == 200
    assert response.json == {"about": about, "contact": ""}

    response = client.put("/api/v1/site", json={"contact": "Call us", "about": "Updated"}, headers=headers)
    assert response.json == {"about": "Updated", "contact": "Call us"}
    response = client.put("/api/v1/site", json={"contact": "Write to us"}, headers=headers)
    assert response.json == {"about": "Updated", "contact": "Write to us"}
    assert client.get("/api/v1/site").json == {"about": "Updated", "contact": "Write to us"}
    assert db.session.query(SiteContent).count() == 2


def test_an_empty_put_changes_nothing(client, factory):
    headers = factory.headers(factory.admin())
    client.put("/api/v1/site", json={"about": "Kept"}, headers=headers)
    response = client.put("/api/v1/site", json={}, headers=headers)
    assert response.status_code == 200 and response.json == {"about": "Kept", "contact": ""}


@pytest.mark.parametrize("body", [{"about": "x" * 20_001}, {"contact": None}, {"footer": "x"}, {"about": 3}])
def test_site_texts_are_validated(client, factory, body):
    response = client.put("/api/v1/site", json=body, headers=factory.headers(factory.admin()))
    assert response.status_code == 422
    assert client.get("/api/v1/site").json == {"about": "", "contact": ""}


def test_the_longest_site_text_is_accepted(client, factory):
    text = "y" * 20_000
    response = client.put("/api/v1/site", json={"contact": text}, headers=factory.headers(factory.admin()))
    assert response.status_code == 200 and response.json["contact"] == text


def test_only_admins_write_site_texts(client, factory):
    assert client.put("/api/v1/site", json={"about": "x"}).status_code == 401
    customer = factory.headers(factory.user())
    assert client.put("/api/v1/site", json={"about": "x"}, headers=customer).status_code == 403
    assert client.get("/api/v1/site").json == {"about": "", "contact": ""}
