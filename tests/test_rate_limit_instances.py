"""Two instances, one budget: gunicorn servers sharing PostgreSQL and Redis count a client's requests together."""

from __future__ import annotations

import uuid

import pytest
import requests

from config import TestingConfig
from tests.conftest import database_url
from tests.live_server import LiveServer
from tests.support import delete_prefix, shared_redis

pytestmark = pytest.mark.parametrize("backend", ["postgresql"])


@pytest.fixture
def key_prefix():
    client = shared_redis()
    prefix = f"test:{uuid.uuid4().hex}:"
    yield prefix
    delete_prefix(client, prefix)


def test_requests_spread_over_two_instances_share_one_limit(backend, tmp_root, key_prefix):
    env = {
        "DATABASE_URL": database_url("postgresql", tmp_root),
        "REDIS_URL": TestingConfig.TEST_REDIS_URL,
        "RATE_LIMIT_KEY_PREFIX": f"{key_prefix}limits",
        "RATE_LIMIT_AUTH": "4 per 15 minutes",
    }
    log = tmp_root / "rate-limit-instances.log"
    with LiveServer(env, workers=1, log_path=log) as first, LiveServer(env, workers=1, log_path=log) as second:
        responses = [
            requests.post(f"{server.url}/api/v1/auth/login", timeout=30,
                          json={"email": "nobody@example.com", "password": "wrong-password"})
            for server in (first, second, first, second, first)
        ]

    assert [r.status_code for r in responses] == [401, 401, 401, 401, 429]
    assert [r.headers["X-RateLimit-Remaining"] for r in responses] == ["3", "2", "1", "0", "0"]
    # The first instance saw only three requests itself: the fifth overall is refused all the same.
    refused = responses[-1]
    assert refused.json()["error"]["code"] == "RATE_LIMITED" and int(refused.headers["Retry-After"]) >= 1
