"""Reviews: public listing, one review per user and item, verified purchases, deletion and the item's rating."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import text

from fantasize.extensions import db

REVIEW_KEYS = {"id", "rating", "comment", "verifiedPurchase", "user", "productId", "packageId", "createdAt",
               "updatedAt"}


def review(client, factory, user, item, rating=4, comment="Lovely", kind="products"):
    return client.post(f"/api/v1/{kind}/{item.id}/reviews", json={"rating": rating, "comment": comment},
                       headers=factory.headers(user))


def rating_of(client, path):
    body = client.get(f"/api/v2/{path}").json["data"]
    return body["rating"]["average"], body["rating"]["count"]


# Creating


def test_a_user_reviews_a_product_and_gets_the_review_back(client, factory):
    user = factory.user(username="Ann", email="ann@example.com")
    product = factory.product()
    response = review(client, factory, user, product, rating=5, comment="Exactly as pictured")
    assert response.status_code == 201
    body = response.json
    assert set(body) == REVIEW_KEYS
    assert body["rating"] == 5 and body["comment"] == "Exactly as pictured"
    assert body["user"] == {"displayName": "Ann"}
    assert body["productId"] == product.id and body["packageId"] is None
    assert body["verifiedPurchase"] is False
    assert body["createdAt"].endswith("Z")


def test_a_user_reviews_a_package(client, factory):
    package = factory.package()
    response = review(client, factory, factory.user(), package, rating=3, comment=None, kind="packages")
    assert response.status_code == 201
    assert response.json["packageId"] == package.id and response.json["productId"] is None
    assert response.json["comment"] is None


def test_a_comment_is_optional_and_stored_verbatim(client, factory):
    product = factory.product()
    user = factory.user()
    response = client.post(f"/api/v1/products/{product.id}/reviews", json={"rating": 2}, headers=factory.headers(user))
    assert response.status_code == 201 and response.json["comment"] is None
    comment = "O'Brien says: DROP earrings -- 50% off; Select your size"
    response = review(client, factory, factory.user(), product, comment=comment)
    assert response.json["comment"] == comment


def test_a_second_review_of_the_same_item_is_409(client, factory):
    user = factory.user()
    product = factory.product()
    assert review(client, factory, user, product).status_code == 201
    response = review(client, factory, user, product, rating=1)
    assert response.status_code == 409
    assert response.json["error"]["code"] == "CONFLICT"
    assert "already reviewed" in response.json["error"]["message"]
    assert rating_of(client, f"products/{product.id}") == (4.0, 1)


def test_the_same_user_may_review_different_items(client, factory):
    user = factory.user()
    product, package = factory.product(), factory.package()
    assert review(client, factory, user, product).status_code == 201
    assert review(client, factory, user, package, kind="packages").status_code == 201


@pytest.mark.parametrize("rating", [0, 6, -1, "4", 4.5, True, None])
def test_rating_must_be_an_integer_from_1_to_5(client, factory, rating):
    response = review(client, factory, factory.user(), factory.product(), rating=rating)
    assert response.status_code == 422
    assert "rating" in response.json["error"]["details"]


def test_rating_is_required_and_unknown_fields_are_refused(client, factory):
    product, headers = factory.product(), factory.headers(factory.user())
    missing = client.post(f"/api/v1/products/{product.id}/reviews", json={"comment": "Hi"}, headers=headers)
    assert missing.status_code == 422 and "rating" in missing.json["error"]["details"]
    unknown = client.post(f"/api/v1/products/{product.id}/reviews", json={"rating": 3, "userId": 1}, headers=headers)
    assert unknown.status_code == 422 and "userId" in unknown.json["error"]["details"]


def test_a_comment_over_2000_characters_is_422(client, factory):
    product = factory.product()
    assert review(client, factory, factory.user(), product, comment="x" * 2000).status_code == 201
    response = review(client, factory, factory.user(), product, comment="x" * 2001)
    assert response.status_code == 422 and "comment" in response.json["error"]["details"]


def test_reviewing_needs_a_token(client, factory):
    product = factory.product()
    assert client.post(f"/api/v1/products/{product.id}/reviews", json={"rating": 3}).status_code == 401


def test_unknown_or_inactive_items_cannot_be_reviewed(client, factory):
    user = factory.user()
    assert review(client, factory, user, factory.product(is_active=False)).status_code == 404
    assert review(client, factory, user, factory.package(is_active=False), kind="packages").status_code == 404
    response = client.post("/api/v1/products/999999/reviews", json={"rating": 3}, headers=factory.headers(user))
    assert response.status_code == 404


# Verified purchases


@pytest.mark.parametrize("status", ["delivered", "completed"])
def test_a_review_after_a_delivered_or_completed_order_is_a_verified_purchase(client, factory, status):
    user = factory.user()
    product, package = factory.product(), factory.package()
    factory.order_of(user, product, package, status=status)
    assert review(client, factory, user, product).json["verifiedPurchase"] is True
    assert review(client, factory, user, package, kind="packages").json["verifiedPurchase"] is True


@pytest.mark.parametrize("status", ["pending", "confirmed", "shipped", "cancelled", "returned"])
def test_an_order_that_did_not_arrive_does_not_verify_a_review(client, factory, status):
    user = factory.user()
    product = factory.product()
    factory.order_of(user, product, status=status)
    assert review(client, factory, user, product).json["verifiedPurchase"] is False


def test_only_the_reviewers_own_order_of_that_item_verifies(client, factory):
    user, other = factory.user(), factory.user()
    product, bought = factory.product(), factory.product()
    factory.order_of(other, product, status="delivered")
    factory.order_of(user, bought, status="delivered")
    assert review(client, factory, user, product).json["verifiedPurchase"] is False


# Listing


def test_reviews_are_public_newest_first_and_paginated(client, factory):
    product = factory.product()
    users = [factory.user(username=f"reviewer{n}") for n in range(3)]
    ids = [review(client, factory, user, product, rating=n + 1).json["id"] for n, user in enumerate(users)]
    response = client.get(f"/api/v1/products/{product.id}/reviews?limit=2")
    assert response.status_code == 200
    assert [r["id"] for r in response.json] == [ids[2], ids[1]]
    assert response.headers["X-Total-Count"] == "3"
    assert 'rel="next"' in response.headers["Link"]
    second = client.get(f"/api/v1/products/{product.id}/reviews?limit=2&page=2").json
    assert [r["id"] for r in second] == [ids[0]]
    assert set(second[0]) == REVIEW_KEYS
    assert "email" not in second[0]["user"]


def test_review_lists_name_reviewers_by_display_name_never_by_id_or_email(client, factory):
    product, package = factory.product(), factory.package()
    ann = factory.user(username="Ann", email="ann.private@example.com")
    review(client, factory, ann, product)
    review(client, factory, ann, package, kind="packages")
    for path in (f"/api/v1/products/{product.id}/reviews", f"/api/v1/packages/{package.id}/reviews"):
        response = client.get(path)
        assert [r["user"] for r in response.json] == [{"displayName": "Ann"}]
        assert "ann.private" not in response.get_data(as_text=True)
    v2 = client.get(f"/api/v2/products/{product.id}/reviews").json["data"]
    assert [r["user"] for r in v2] == [{"displayName": "Ann"}]


def test_reviews_in_v2_come_in_the_envelope_with_pagination(client, factory):
    package = factory.package()
    review(client, factory, factory.user(), package, kind="packages")
    body = client.get(f"/api/v2/packages/{package.id}/reviews").json
    assert body["success"] is True
    assert len(body["data"]) == 1 and body["data"][0]["packageId"] == package.id
    assert body["meta"]["pagination"] == {"page": 1, "limit": 20, "total": 1, "pages": 1}


def test_an_items_reviews_list_only_that_items_reviews(client, factory):
    user = factory.user()
    product, other, package = factory.product(), factory.product(), factory.package()
    review(client, factory, user, product)
    review(client, factory, user, other)
    assert len(client.get(f"/api/v1/products/{product.id}/reviews").json) == 1
    assert client.get(f"/api/v1/packages/{package.id}/reviews").json == []


def test_reviews_of_unknown_or_inactive_items_are_404(client, factory):
    assert client.get("/api/v1/products/999999/reviews").status_code == 404
    assert client.get("/api/v1/packages/999999/reviews").status_code == 404
    assert client.get(f"/api/v1/products/{factory.product(is_active=False).id}/reviews").status_code == 404
    assert client.get(f"/api/v1/packages/{factory.package(is_active=False).id}/reviews").status_code == 404


def test_bad_page_values_are_400(client, factory):
    product = factory.product()
    assert client.get(f"/api/v1/products/{product.id}/reviews?limit=0").status_code == 400
    assert client.get(f"/api/v1/products/{product.id}/reviews?page=abc").status_code == 400


# Rating figures


def test_rating_figures_follow_every_review_added_and_deleted(client, factory):
    product = factory.product()
    assert rating_of(client, f"products/{product.id}") == (0.0, 0)
    a, b, c = factory.user(), factory.user(), factory.user()
    first = review(client, factory, a, product, rating=5).json["id"]
    assert rating_of(client, f"products/{product.id}") == (5.0, 1)
    review(client, factory, b, product, rating=4)
    review(client, factory, c, product, rating=4)
    assert rating_of(client, f"products/{product.id}") == (4.33, 3)
    assert client.get(f"/api/v1/products/{product.id}").json["ratingAverage"] == 4.33
    assert client.delete(f"/api/v1/reviews/{first}", headers=factory.headers(a)).status_code == 204
    assert rating_of(client, f"products/{product.id}") == (4.0, 2)


def test_rating_average_is_rounded_to_two_places(client, factory):
    package = factory.package()
    for rating in (5, 5, 4):
        review(client, factory, factory.user(), package, rating=rating, kind="packages")
    assert rating_of(client, f"packages/{package.id}") == (4.67, 3)
    review(client, factory, factory.user(), package, rating=1, kind="packages")
    assert rating_of(client, f"packages/{package.id}") == (3.75, 4)


def test_deleting_the_last_review_resets_the_figures_to_zero(client, factory):
    user, product = factory.user(), factory.product()
    review_id = review(client, factory, user, product, rating=2).json["id"]
    client.delete(f"/api/v1/reviews/{review_id}", headers=factory.headers(user))
    assert rating_of(client, f"products/{product.id}") == (0.0, 0)


def test_another_items_reviews_do_not_move_an_items_figures(client, factory):
    product, other = factory.product(), factory.product()
    review(client, factory, factory.user(), product, rating=2)
    review(client, factory, factory.user(), other, rating=5)
    assert rating_of(client, f"products/{product.id}") == (2.0, 1)


def test_a_refused_duplicate_leaves_the_figures_alone(client, factory):
    user, product = factory.user(), factory.product()
    assert review(client, factory, user, product, rating=3).status_code == 201
    refused = review(client, factory, user, product, rating=5)
    assert refused.status_code == 409 and refused.json["error"]["code"] == "CONFLICT"
    assert rating_of(client, f"products/{product.id}") == (3.0, 1)


# Deleting


def test_the_author_deletes_their_review(client, factory):
    user, product = factory.user(), factory.product()
    review_id = review(client, factory, user, product).json["id"]
    assert client.delete(f"/api/v1/reviews/{review_id}", headers=factory.headers(user)).status_code == 204
    assert client.get(f"/api/v1/products/{product.id}/reviews").json == []
    assert review(client, factory, user, product).status_code == 201  # and may review again


def test_an_admin_deletes_anyones_review(client, factory):
    product = factory.product()
    review_id = review(client, factory, factory.user(), product).json["id"]
    admin = factory.headers(factory.admin())
    assert client.delete(f"/api/v1/reviews/{review_id}", headers=admin).status_code == 204
    assert client.delete(f"/api/v1/reviews/{review_id}", headers=admin).status_code == 404


def test_another_customer_gets_404_as_for_an_unknown_review(client, factory):
    product = factory.product()
    review_id = review(client, factory, factory.user(), product).json["id"]
    stranger = factory.headers(factory.user())
    response = client.delete(f"/api/v1/reviews/{review_id}", headers=stranger)
    assert response.status_code == 404
    unknown = client.delete("/api/v1/reviews/999999", headers=stranger)
    assert unknown.status_code == 404
    assert response.json["error"]["code"] == unknown.json["error"]["code"] == "NOT_FOUND"
    assert len(client.get(f"/api/v1/products/{product.id}/reviews").json) == 1


def test_deleting_needs_a_token(client, factory):
    review_id = review(client, factory, factory.user(), factory.product()).json["id"]
    assert client.delete(f"/api/v1/reviews/{review_id}").status_code == 401


def test_a_review_of_an_item_withdrawn_later_can_still_be_deleted(client, factory):
    user, product = factory.user(), factory.product()
    review_id = review(client, factory, user, product, rating=5).json["id"]
    product.is_active = False
    db.session.commit()
    assert client.delete(f"/api/v1/reviews/{review_id}", headers=factory.headers(user)).status_code == 204


# Concurrency (PostgreSQL: real row locks)


def _wait_for_a_lock_wait() -> None:
    """Until some session of this database waits for a row lock (polled on fresh connections: no stale stats)."""
    deadline = time.monotonic() + 60  # only a broken build waits this long
    while time.monotonic() < deadline:
        with db.engine.connect() as probe:
            waiting = probe.scalar(text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
            ))
        if waiting:
            return
        time.sleep(0.02)
    pytest.fail("the second review never waited for the first")


@pytest.mark.parametrize("backend", ["postgresql"])
def test_a_review_committed_while_another_waits_is_counted_in_the_average(app, factory):
    """Another writer adds a review and updates the figures but has not committed; ours must wait and count it."""
    product_id = factory.product().id
    first_id, headers = factory.user().id, factory.headers(factory.user())
    db.session.remove()
    statuses: list[int] = []

    def review_concurrently() -> None:
        with app.app_context():  # its own session, as a request on another worker would have
            response = app.test_client().post(f"/api/v1/products/{product_id}/reviews", json={"rating": 3},
                                              headers=headers)
            statuses.append(response.status_code)

    with db.engine.connect() as other:
        other.execute(text(
            "INSERT INTO reviews (user_id, product_id, rating, verified_purchase, created_at, updated_at) "
            "VALUES (:user, :product, 5, false, now(), now())"
        ), {"user": first_id, "product": product_id})
        other.execute(text(
            "UPDATE products SET rating_average = 5, rating_count = 1 WHERE id = :product"
        ), {"product": product_id})
        thread = threading.Thread(target=review_concurrently)
        thread.start()
        _wait_for_a_lock_wait()
        other.commit()
    thread.join()
    assert statuses == [201]
    assert rating_of(app.test_client(), f"products/{product_id}") == (4.0, 2)
