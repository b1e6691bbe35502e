"""The command line: `flask seed` builds the demo shop once, `flask create-admin` bootstraps administrators."""

from __future__ import annotations

import random
from datetime import timedelta

from sqlalchemy import func, select

from fantasize.extensions import db
from fantasize.models import (
    Brand,
    Category,
    Customization,
    Material,
    Offer,
    Package,
    Product,
    SubCategory,
    User,
)
from fantasize.models.base import utcnow
from fantasize.seed import DEMO_CUSTOMER_PASSWORD, DEMO_CUSTOMERS, plan_shop

COUNTED = {
    "categories": Category, "subcategories": SubCategory, "brands": Brand, "materials": Material,
    "customizations": Customization, "offers": Offer, "products": Product, "packages": Package, "users": User,
}


def counts() -> dict[str, int]:
    return {kind: db.session.scalar(select(func.count()).select_from(model)) for kind, model in COUNTED.items()}


def catalogue_snapshot() -> list[tuple]:
    products = db.session.scalars(select(Product).order_by(Product.id))
    return [(p.name, p.sku, p.price, p.quantity, p.offer_id, sorted((m.material_id, m.percentage) for m in p.materials),
             [c.id for c in p.customizations]) for p in products]


def seed(runner) -> str:
    result = runner.invoke(args=["seed"])
    assert result.exit_code == 0, result.output
    db.session.expire_all()
    return result.output


def login(client, email: str, password: str):
    return client.post("/api/v1/auth/login", json={"email": email, "password": password})


def test_seed_builds_the_whole_demo_shop(runner):
    output = seed(runner)

    subcategories = [len(c.subcategories) for c in db.session.scalars(select(Category))]
    assert all(2 <= n <= 4 for n in subcategories)
    assert counts() == {
        "categories": 10, "subcategories": sum(subcategories), "brands": 8, "materials": 6,
        "customizations": 9, "offers": 5, "products": 200, "packages": 20, "users": 3,
    }
    products = db.session.scalars(select(Product)).all()
    assert all(sum(m.percentage for m in p.materials) == 100 for p in products)
    assert any(p.quantity == 0 for p in products)
    assert any(1 <= p.quantity <= 5 for p in products)
    assert any(p.customizations for p in products) and not all(p.customizations for p in products)
    assert len({p.price for p in products}) > 100
    assert {c.type for c in db.session.scalars(select(Customization))} == {"button", "text", "image"}
    for package in db.session.scalars(select(Package)):
        assert 2 <= len(package.items) <= 4, package.name

    now = utcnow()
    offers = db.session.scalars(select(Offer)).all()
    assert sum(o.is_current(now) for o in offers) == 3
    assert sum(o.valid_to <= now for o in offers) == 1
    assert sum(o.valid_from > now for o in offers) == 1
    assert all(o.products for o in offers)
    assert any(o.packages for o in offers)

    customers = db.session.scalars(select(User).order_by(User.email)).all()
    assert [u.email for u in customers] == list(DEMO_CUSTOMERS)
    assert {u.role for u in customers} == {"customer"}
    assert "products        200  (200 new)" in output
    assert DEMO_CUSTOMER_PASSWORD in output


def test_seeding_again_changes_nothing(runner):
    seed(runner)
    before, snapshot = counts(), catalogue_snapshot()

    output = seed(runner)

    assert counts() == before
    assert catalogue_snapshot() == snapshot
    assert "(0 new)" in output and "new)" not in output.replace("(0 new)", "")


def test_seed_adds_back_only_what_is_missing(runner):
    seed(runner)
    db.session.delete(db.session.scalar(select(Package).order_by(Package.id)))
    db.session.commit()

    output = seed(runner)

    assert counts()["packages"] == 20
    assert "packages         20  (1 new)" in output


def test_the_same_seed_plans_the_same_shop():
    assert plan_shop(random.Random(42)) == plan_shop(random.Random(42))
    assert plan_shop(random.Random(42)) != plan_shop(random.Random(7))


def test_demo_customers_sign_in_with_the_documented_password(runner, client):
    seed(runner)
    response = login(client, DEMO_CUSTOMERS[0], DEMO_CUSTOMER_PASSWORD)
    assert response.status_code == 200
    assert response.json["user"]["role"] == "customer"


def test_seeded_offers_are_dated_from_now(runner):
    seed(runner)
    expired = db.session.scalar(select(Offer).where(Offer.title == "Winter Clearance"))
    assert utcnow() - timedelta(days=31) < expired.valid_to < utcnow()


def test_create_admin_makes_an_administrator_who_can_sign_in(runner, client):
    result = runner.invoke(args=["create-admin", "--email", "Boss@Example.COM", "--password", "a-long-secret"])

    assert result.exit_code == 0, result.output
    response = login(client, "boss@example.com", "a-long-secret")
    assert response.status_code == 200
    assert response.json["user"]["role"] == "admin"
    assert response.json["user"]["email"] == "boss@example.com"


def test_create_admin_asks_for_the_password_twice_when_not_given(runner, client):
    result = runner.invoke(args=["create-admin", "--email", "asked@example.com"],
                           input="short\nprompted-secret\nprompted-secret\n")

    assert result.exit_code == 0, result.output
    assert "8 to 128 characters" in result.output
    assert login(client, "asked@example.com", "prompted-secret").status_code == 200


def test_create_admin_if_missing_leaves_an_existing_account_alone(runner, client):
    runner.invoke(args=["create-admin", "--email", "boss@example.com", "--password", "first-secret"])

    result = runner.invoke(args=["create-admin", "--email", "BOSS@example.com", "--password", "second-secret",
                                 "--if-missing"])

    assert result.exit_code == 0, result.output
    assert counts()["users"] == 1
    assert login(client, "boss@example.com", "first-secret").status_code == 200
    assert login(client, "boss@example.com", "second-secret").status_code == 401


def test_create_admin_for_a_taken_email_fails(runner, factory):
    factory.user(email="taken@example.com")

    result = runner.invoke(args=["create-admin", "--email", "Taken@example.com", "--password", "a-long-secret"])

    assert result.exit_code == 1
    assert "already exists" in result.output
    assert db.session.scalar(select(User.role).where(User.email == "taken@example.com")) == "customer"


def test_create_admin_refuses_bad_passwords_and_emails(runner):
    for args in (["--email", "a@example.com", "--password", "short"],
                 ["--email", "a@example.com", "--password", "x" * 129],
                 ["--email", "not-an-email", "--password", "a-long-secret"]):
        result = runner.invoke(args=["create-admin", *args])
        assert result.exit_code == 2, result.output
    assert counts()["users"] == 0
