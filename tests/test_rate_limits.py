"""Rate limits through HTTP: the tiers, who counts as one client, the headers, and Redis going away and coming back.

Apps count on the tests' real Redis under a key prefix of their own (deleted afterwards). The limiter never touches
the database, so these tests run on one backend: SQLite, and PostgreSQL for the Redis outage.
"""

from __future__ import annotations

import io
import logging
import math
import time
from collections.abc import Iterator
from datetime import timedelta

import jwt
import pytest
from flask import Flask
from sqlalchemy import event

from config import ProductionConfig, TestingConfig
from fantasize import create_app
from fantasize.extensions import db
from fantasize.models.base import utcnow
from fantasize.platform.rate_limits import EXTENSION as LIMITER
from tests.factories import Factory
from tests.support import PrivateRedis, arabic_indic, recorded
from tests.test_uploads import png_bytes

API = "/api/v1"
VERSIONS = f"{API}/versions"
ME = f"{API}/users/me"
LOGIN = f"{API}/auth/login"
FORGOT = f"{API}/auth/password/forgot"
REDIS_URL = TestingConfig.TEST_REDIS_URL


@pytest.fixture
def backend() -> str:
    return "sqlite"


def from_ip(address: str) -> dict:
    return {"environ_base": {"REMOTE_ADDR": address}}


def signed_in(app: Flask, admin: bool = False) -> dict[str, str]:
    with app.app_context():
        factory = Factory(app)
        return factory.headers(factory.admin() if admin else factory.user())


def statuses(responses) -> list[int]:
    return [response.status_code for response in responses]


def assert_rate_limited(response, limit: int, window_seconds: int) -> None:
    assert response.status_code == 429
    body = response.json
    assert body["success"] is False and body["error"]["code"] == "RATE_LIMITED"
    assert body["error"]["message"] and body["meta"]["requestId"] == response.headers["X-Request-ID"]
    assert 1 <= int(response.headers["Retry-After"]) <= window_seconds
    assert response.headers["X-RateLimit-Limit"] == str(limit)
    assert response.headers["X-RateLimit-Remaining"] == "0"


# The general limit


def test_anonymous_clients_are_limited_per_address_and_the_headers_count_down(limited):
    client = limited(RATE_LIMIT_MAX_REQUESTS=3, RATE_LIMIT_WINDOW_MS=60_000).test_client()
    before = int(time.time())
    responses = [client.get(VERSIONS) for _ in range(4)]
    after = math.ceil(time.time())

    assert statuses(responses) == [200, 200, 200, 429]
    assert [r.headers["X-RateLimit-Limit"] for r in responses] == ["3"] * 4
    assert [r.headers["X-RateLimit-Remaining"] for r in responses] == ["2", "1", "0", "0"]
    # The window starts at the first hit, somewhere between `before` and `after`: it resets 60 s later.
    assert all(before < int(r.headers["X-RateLimit-Reset"]) <= after + 60 for r in responses)
    assert "Retry-After" not in responses[0].headers
    assert_rate_limited(responses[-1], limit=3, window_seconds=60)
    assert responses[-1].headers["API-Version"] == "v1"

    other = client.get(VERSIONS, **from_ip("203.0.113.9"))
    assert other.status_code == 200 and other.headers["X-RateLimit-Remaining"] == "2"


def test_signed_in_users_are_limited_per_user_with_the_multiplier(limited):
    app = limited(RATE_LIMIT_MAX_REQUESTS=2, RATE_LIMIT_AUTH_MULTIPLIER=3)
    ada, bob = signed_in(app), signed_in(app)
    client = app.test_client()

    responses = [client.get(ME, headers=ada) for _ in range(7)]
    assert statuses(responses) == [200] * 6 + [429]
    assert_rate_limited(responses[-1], limit=6, window_seconds=900)

    # Same address, other budgets: another user, and the address itself when nobody signs in.
    assert client.get(ME, headers=bob).status_code == 200
    anonymous = client.get(ME)
    assert anonymous.status_code == 401 and anonymous.headers["X-RateLimit-Limit"] == "2"


def test_who_is_asking_is_decided_for_each_request_even_in_one_app_context(limited):
    app = limited(RATE_LIMIT_MAX_REQUESTS=2, RATE_LIMIT_AUTH_MULTIPLIER=3)
    ada = signed_in(app)
    with app.app_context():  # as under the `app` fixture: every request shares this context and its `g`
        client = app.test_client()
        assert client.get(VERSIONS, headers=ada).headers["X-RateLimit-Limit"] == "6"
        assert client.get(VERSIONS).headers["X-RateLimit-Limit"] == "2"


def test_what_applies_is_kept_per_route_and_caller_and_forgotten_when_a_declaration_changes(limited):
    app = limited(RATE_LIMIT_MAX_REQUESTS=2, RATE_LIMIT_AUTH_MULTIPLIER=3, RATE_LIMIT_ORDER="4 per hour")
    ada = signed_in(app)
    client = app.test_client()
    # The same route for an anonymous caller and a signed-in one, and a route of a tier, each from what was kept.
    for _ in range(2):
        assert client.get(f"{API}/brands").headers["X-RateLimit-Limit"] == "2"
        assert client.get(f"{API}/brands", headers=ada).headers["X-RateLimit-Limit"] == "6"
    assert client.post(f"{API}/orders", headers=ada, json={}).headers["X-RateLimit-Limit"] == "4"
    # Flask-Limiter's own declarations made after the app served requests still count.
    limiter = app.extensions[LIMITER]
    limiter.exempt(app.view_functions["v1.taxonomy.list_brands"])
    assert "X-RateLimit-Limit" not in client.get(f"{API}/brands").headers
    assert client.get(VERSIONS).headers["X-RateLimit-Limit"] == "2"


def test_every_version_of_a_route_shares_one_counter(limited):
    client = limited(RATE_LIMIT_MAX_REQUESTS=3).test_client()
    responses = [client.get("/api/v1/versions"), client.get("/api/v2/versions"),
                 client.get("/api/versions", headers={"API-Version": "v2"}), client.get("/api/v1/versions")]

    assert statuses(responses) == [200, 200, 200, 429]
    assert responses[-1].headers["API-Version"] == "v1"
    assert client.get(f"{API}/brands").status_code == 200  # each route has its own general budget


def test_a_bad_bearer_token_counts_as_an_anonymous_client(limited):
    app = limited(RATE_LIMIT_MAX_REQUESTS=2)
    with app.app_context():
        user_id = Factory(app).user().id
    secret = TestingConfig.JWT_SECRET
    claims = {"sub": str(user_id), "role": "customer", "ver": 0, "iat": utcnow(), "exp": utcnow() + timedelta(hours=1)}
    bad_tokens = [
        "not-a-jwt",
        jwt.encode(claims, "another-secret-another-secret-another-secret", algorithm="HS256"),
        jwt.encode(claims, None, algorithm="none"),
        jwt.encode({**claims, "exp": utcnow() - timedelta(minutes=1)}, secret, algorithm="HS256"),
        jwt.encode({**claims, "purpose": "reset"}, secret, algorithm="HS256"),
    ]
    client = app.test_client()
    responses = [client.get(VERSIONS, headers={"Authorization": f"Bearer {token}"}) for token in bad_tokens]
    responses.append(client.get(VERSIONS, headers={"Authorization": "Basic dXNlcjpwYXNz"}))

    assert statuses(responses) == [200, 200] + [429] * 4
    assert {r.headers["X-RateLimit-Limit"] for r in responses} == {"2"}


# Revoked and malformed tokens: the signed-in budget needs a session that still stands


def budget(client, headers: dict[str, str]) -> str:
    return client.get(VERSIONS, headers=headers).headers["X-RateLimit-Limit"]


def test_a_signed_out_users_token_has_only_the_anonymous_budget(limited):
    app = limited(RATE_LIMIT_MAX_REQUESTS=2, RATE_LIMIT_AUTH_MULTIPLIER=3)
    ada = signed_in(app)
    client = app.test_client()
    assert budget(client, ada) == "6"
    assert client.post(f"{API}/auth/logout", headers=ada).status_code == 204

    revoked = [client.get(VERSIONS, headers=ada) for _ in range(3)]
    assert [r.headers["X-RateLimit-Limit"] for r in revoked] == ["2"] * 3
    assert statuses(revoked) == [200, 200, 429]  # counted with the address, like anyone without a session


@pytest.mark.parametrize("change", [{"isActive": False}, {"role": "admin"}])
def test_a_deactivated_or_re_roled_users_old_token_has_only_the_anonymous_budget(limited, change):
    app = limited(RATE_LIMIT_MAX_REQUESTS=2, RATE_LIMIT_AUTH_MULTIPLIER=3)
    with app.app_context():
        factory = Factory(app)
        user = factory.user()
        user_id, old, admin = user.id, factory.headers(user), factory.headers(factory.admin())
    client = app.test_client()
    assert budget(client, old) == "6"
    assert client.patch(f"{API}/users/{user_id}", json=change, headers=admin).status_code == 200
    assert budget(client, old) == "2"


def test_a_revocation_on_another_instance_counts_here_within_the_cache_time(limited):
    settings = {"RATE_LIMIT_MAX_REQUESTS": 2, "RATE_LIMIT_AUTH_MULTIPLIER": 3, "TOKEN_VERSION_CACHE_SECONDS": 1}
    here, there = limited(**settings), limited(**settings)
    ada = signed_in(here)
    client = here.test_client()
    assert budget(client, ada) == "6"  # this instance now holds Ada's token version
    assert there.test_client().post(f"{API}/auth/logout", headers=ada).status_code == 204
    time.sleep(1.1)
    assert budget(client, ada) == "2"


def test_a_signed_in_request_checks_its_token_version_without_a_query_while_cached(limited):
    app = limited()
    ada = signed_in(app)
    client = app.test_client()
    statements: list[str] = []
    with app.app_context():
        engine = db.engine

    def count(_conn, _cursor, statement, *_args) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        assert client.get(VERSIONS, headers=ada).status_code == 200
        assert len(statements) == 1  # the version, once
        assert client.get(VERSIONS, headers=ada).status_code == 200
        assert len(statements) == 1
    finally:
        event.remove(engine, "before_cursor_execute", count)


@pytest.mark.parametrize("subject", ["²", "arabic-indic id", "99999999999999999999999"])
def test_a_token_whose_subject_is_not_a_plain_user_id_counts_as_anonymous(limited, subject):
    app = limited(RATE_LIMIT_MAX_REQUESTS=2, RATE_LIMIT_AUTH_MULTIPLIER=3)
    with app.app_context():
        user = Factory(app).user()
        if subject == "arabic-indic id":
            subject = arabic_indic(user.id)  # int() reads it as the user's id
        claims = {"sub": subject, "role": "customer", "ver": user.token_version, "iat": utcnow(),
                  "exp": utcnow() + timedelta(hours=1)}
    token = jwt.encode(claims, TestingConfig.JWT_SECRET, algorithm="HS256")
    response = app.test_client().get(VERSIONS, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200 and response.headers["X-RateLimit-Limit"] == "2"


# Who one client is: X-Forwarded-For


def test_x_forwarded_for_is_ignored_without_trusted_proxies(limited):
    client = limited(RATE_LIMIT_MAX_REQUESTS=1).test_client()
    assert client.get(VERSIONS, headers={"X-Forwarded-For": "203.0.113.1"}).status_code == 200
    assert client.get(VERSIONS, headers={"X-Forwarded-For": "203.0.113.2"}).status_code == 429


def production_app(**settings) -> Flask:
    return create_app(ProductionConfig, {
        "SQLALCHEMY_DATABASE_URI": "sqlite://", "JWT_SECRET": TestingConfig.JWT_SECRET, "SMTP_HOST": "127.0.0.1",
        "PUBLIC_BASE_URL": "https://shop.example.com", "FORCE_HTTPS": False, "REDIS_URL": None, **settings,
    })


def test_production_warns_once_when_requests_come_through_a_proxy_it_does_not_trust():
    # Behind Heroku's router with PROXY_COUNT=0 every client is the router: one budget for the whole shop.
    app = production_app()
    client = app.test_client()
    with recorded("fantasize.proxy") as records:
        assert client.get(VERSIONS).status_code == 200
        assert records == []  # no proxy in front, nothing to say
        for address in ("203.0.113.1", "203.0.113.2", "203.0.113.3"):
            assert client.get(VERSIONS, headers={"X-Forwarded-For": address}).status_code == 200
    [warning] = records
    assert warning.levelno == logging.WARNING and "PROXY_COUNT" in warning.getMessage()


@pytest.mark.parametrize("settings", [{"PROXY_COUNT": 1}, {"ENV_NAME": "development"}])
def test_no_warning_once_the_proxy_is_trusted_or_outside_production(settings):
    client = production_app(**settings).test_client()
    with recorded("fantasize.proxy") as records:
        assert client.get(VERSIONS, headers={"X-Forwarded-For": "203.0.113.1"}).status_code == 200
    assert records == []


def test_x_forwarded_for_is_honoured_through_the_trusted_proxies(limited):
    client = limited(RATE_LIMIT_MAX_REQUESTS=1, PROXY_COUNT=1).test_client()
    assert client.get(VERSIONS, headers={"X-Forwarded-For": "203.0.113.1"}).status_code == 200
    assert client.get(VERSIONS, headers={"X-Forwarded-For": "203.0.113.2"}).status_code == 200
    # Only the hop our one proxy added is trusted; what the client wrote before it is not.
    spoofed = client.get(VERSIONS, headers={"X-Forwarded-For": "198.51.100.7, 203.0.113.1"})
    assert spoofed.status_code == 429


# The tiers


def test_the_auth_tier_is_one_budget_per_address_across_the_sign_in_routes(limited):
    client = limited(RATE_LIMIT_AUTH="4 per 15 minutes").test_client()
    responses = [
        client.post(LOGIN, json={"email": "ada@example.com", "password": "wrong-password"}),
        client.post(f"{API}/auth/register", json={"email": "not-an-email"}),
        client.post(FORGOT, json={"email": "ada@example.com"}),
        client.post(f"{API}/auth/password/reset", json={"token": "bogus", "newPassword": "long-enough-1"}),
        client.post(LOGIN, json={"email": "ada@example.com", "password": "wrong-password"}),
    ]

    assert statuses(responses) == [401, 422, 202, 400, 429]
    assert [r.headers["X-RateLimit-Remaining"] for r in responses] == ["3", "2", "1", "0", "0"]
    assert_rate_limited(responses[-1], limit=4, window_seconds=900)
    other = client.post(LOGIN, json={"email": "ada@example.com", "password": "wrong-password"}, **from_ip("10.1.1.1"))
    assert other.status_code == 401


def test_the_admin_tier_is_one_budget_per_admin_across_the_admin_routes(limited):
    app = limited(RATE_LIMIT_ADMIN="3 per 5 minutes")
    first, second = signed_in(app, admin=True), signed_in(app, admin=True)
    client = app.test_client()
    responses = [client.get(f"{API}/{path}", headers=first)
                 for path in ("admin/dashboard", "users", "admin/inventory/low-stock", "admin/dashboard")]

    assert statuses(responses) == [200, 200, 200, 429]
    assert_rate_limited(responses[-1], limit=3, window_seconds=300)
    assert client.head(f"{API}/admin/dashboard", headers=first).status_code == 429  # HEAD runs the same view
    assert client.get(f"{API}/admin/dashboard", headers=second).status_code == 200
    assert client.get(ME, headers=first).status_code == 200  # not an admin-only route


def test_the_figures_ops_polls_have_a_budget_of_their_own_apart_from_the_admin_tier(limited):
    """/ops reads four figures every few seconds: they spend RATE_LIMIT_MONITORING, never the admin tier's budget
    for the routes that change the shop, and the admin routes do not spend theirs."""
    app = limited(RATE_LIMIT_ADMIN="2 per 5 minutes", RATE_LIMIT_MONITORING="4 per 5 minutes")
    admin, other = signed_in(app, admin=True), signed_in(app, admin=True)
    client = app.test_client()
    reads = [client.get(f"{API}/{path}", headers=admin) for path in (
        "admin/performance/metrics", "admin/performance/slow-requests", "admin/performance/summary",
        "admin/realtime/stats", "admin/performance/metrics")]
    assert statuses(reads) == [200, 200, 200, 200, 429]
    assert_rate_limited(reads[-1], limit=4, window_seconds=300)
    assert client.head(f"{API}/admin/performance/summary", headers=admin).status_code == 429  # HEAD is the GET
    changes = [client.get(f"{API}/admin/dashboard", headers=admin) for _ in range(3)]
    assert statuses(changes) == [200, 200, 429]  # the admin tier's own 2, untouched by the 5 reads
    assert client.get(f"{API}/admin/performance/metrics", headers=other).status_code == 200  # per admin


def test_the_upload_tier_is_per_user(limited):
    app = limited(RATE_LIMIT_UPLOAD="2 per hour")
    ada, bob = signed_in(app), signed_in(app)
    client = app.test_client()

    def upload(headers):
        return client.post(f"{API}/uploads", headers=headers, content_type="multipart/form-data",
                           data={"file": (io.BytesIO(png_bytes()), "photo.png", "image/png")})

    responses = [upload(ada) for _ in range(3)]
    assert statuses(responses) == [201, 201, 429]
    assert_rate_limited(responses[-1], limit=2, window_seconds=3600)
    assert upload(bob).status_code == 201


def test_the_order_tier_counts_idempotent_replays(limited):
    app = limited(RATE_LIMIT_ORDER="2 per hour")
    with app.app_context():
        product_id = Factory(app).product(quantity=10).id
    ada, bob = signed_in(app), signed_in(app)
    client = app.test_client()
    body = {"items": [{"productId": product_id, "quantity": 1}]}

    responses = [client.post(f"{API}/orders", json=body, headers={**ada, "Idempotency-Key": "checkout-1"})
                 for _ in range(3)]
    assert statuses(responses) == [201, 200, 429]
    assert_rate_limited(responses[-1], limit=2, window_seconds=3600)
    assert client.post(f"{API}/orders", json=body, headers=bob).status_code == 201


def test_forgot_password_is_also_limited_per_email_whichever_address_asks(limited):
    client = limited(RATE_LIMIT_PASSWORD_RESET_PER_EMAIL="2 per hour").test_client()
    responses = [
        client.post(FORGOT, json={"email": "ada@example.com"}, **from_ip("10.0.0.1")),
        client.post(FORGOT, json={"email": "  ADA@Example.com "}, **from_ip("10.0.0.2")),
        client.post(FORGOT, json={"email": "ada@example.com"}, **from_ip("10.0.0.3")),
    ]
    assert statuses(responses) == [202, 202, 429]
    assert_rate_limited(responses[-1], limit=2, window_seconds=3600)
    assert client.post(FORGOT, json={"email": "bob@example.com"}, **from_ip("10.0.0.3")).status_code == 202

    # Bodies without a readable address are the view's to reject, and the limiter takes them calmly.
    assert client.post(FORGOT, data="{not json", content_type="application/json").status_code == 400
    assert client.post(FORGOT, json=["ada@example.com"]).status_code == 400
    assert client.post(FORGOT, json={"email": 42}).status_code == 422
    assert client.post(FORGOT, data="email=ada@example.com", content_type="text/plain").status_code == 415


# What is not limited, and switches


def test_docs_assets_are_never_limited_but_the_docs_page_is(limited):
    client = limited(RATE_LIMIT_MAX_REQUESTS=1).test_client()
    assets = [client.get("/api/docs/static/swagger-ui.css") for _ in range(3)]
    assert statuses(assets) == [200] * 3
    assert all("X-RateLimit-Limit" not in r.headers for r in assets)
    assert statuses([client.get("/api/docs"), client.get("/api/docs")]) == [200, 429]


def test_limits_can_be_switched_off(limited):
    client = limited(RATE_LIMIT_MAX_REQUESTS=1, RATELIMIT_ENABLED=False).test_client()
    responses = [client.get(VERSIONS) for _ in range(3)]
    assert statuses(responses) == [200] * 3
    assert all("X-RateLimit-Limit" not in r.headers for r in responses)


def test_without_redis_limits_count_in_process_memory(make_app):
    client = make_app(RATE_LIMIT_MAX_REQUESTS=1).test_client()
    assert statuses([client.get(VERSIONS), client.get(VERSIONS)]) == [200, 429]


@pytest.mark.parametrize("setting", ["RATE_LIMIT_ORDER", "RATE_LIMIT_PASSWORD_RESET_PER_EMAIL"])
def test_a_malformed_limit_stops_the_app_from_starting(make_app, setting):
    with pytest.raises(ValueError, match=setting):
        make_app(**{setting: "often"})


# Redis going away and coming back


@pytest.fixture
def private_redis(tmp_path) -> Iterator[PrivateRedis]:
    server = PrivateRedis().start()
    yield server
    server.stop()


@pytest.mark.parametrize("backend", ["postgresql"])
def test_limits_hold_from_memory_while_redis_is_down_and_are_shared_again_when_it_returns(
        make_app, private_redis, backend):
    app = make_app(REDIS_URL=private_redis.url, RATE_LIMIT_MAX_REQUESTS=3)
    client = app.test_client()
    assert statuses([client.get(VERSIONS), client.get(VERSIONS)]) == [200, 200]
    assert private_redis.key_count() == 1

    private_redis.stop()
    during = [client.get(VERSIONS) for _ in range(4)]
    # Memory starts counting afresh, but it does count: the fourth request in the outage is refused.
    assert statuses(during) == [200, 200, 200, 429]
    assert [r.headers["X-RateLimit-Remaining"] for r in during] == ["2", "1", "0", "0"]

    private_redis.start()  # same port, empty
    # Flask-Limiter pings a dead store again after 1, 2, 4 ... seconds; any limited request can be the one.
    deadline = time.monotonic() + 90
    probes = 0
    while private_redis.key_count() == 0:
        assert time.monotonic() < deadline, "the limiter never went back to Redis"
        probes += 1
        assert client.get(VERSIONS, **from_ip(f"192.0.2.{probes % 250 + 1}")).status_code < 500
        time.sleep(0.2)

    # Shared again: another instance on the same Redis sees the budget this one spent.
    other = make_app(REDIS_URL=private_redis.url, RATE_LIMIT_MAX_REQUESTS=3).test_client()
    caller = from_ip("198.51.100.20")
    assert statuses([client.get(VERSIONS, **caller), client.get(VERSIONS, **caller)]) == [200, 200]
    assert statuses([other.get(VERSIONS, **caller), other.get(VERSIONS, **caller)]) == [200, 429]
