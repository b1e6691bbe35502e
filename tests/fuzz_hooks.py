"""Schemathesis hooks for tests/test_fuzz.py, loaded by the `st` process (SCHEMATHESIS_HOOKS=tests.fuzz_hooks).

Signing out (`POST /auth/logout`) and changing the password end every session of their user, the fuzzer's own
token included, and the rest of the run would then test nothing but 401s. Those operations are sent with the
token of a throwaway account instead: one is registered on first use and signed in again before each call (the
previous call may have revoked its token); if it can no longer sign in (an admin fuzz case deactivated it, say),
another is registered.
"""

from __future__ import annotations

import os
import threading
import uuid

import requests
import schemathesis

# The operations that end the caller's sessions, by their path without the version prefix.
SESSION_ENDING = {("POST", "/auth/logout"), ("PUT", "/users/me/password")}
PASSWORD = "throwaway-password-1"

_lock = threading.Lock()
_account: dict[str, str] = {}


def _base_url() -> str:
    return os.environ["FUZZ_BASE_URL"]


def _register() -> str:
    email = f"throwaway-{uuid.uuid4().hex[:12]}@example.com"
    response = requests.post(f"{_base_url()}/api/v1/auth/register", timeout=30,
                             json={"email": email, "password": PASSWORD, "username": "throwaway"})
    response.raise_for_status()
    return email


def _login(email: str) -> str | None:
    response = requests.post(f"{_base_url()}/api/v1/auth/login", timeout=30,
                             json={"email": email, "password": PASSWORD})
    return response.json()["accessToken"] if response.status_code == 200 else None


def throwaway_token() -> str:
    with _lock:
        token = _login(_account["email"]) if "email" in _account else None
        if token is None:
            _account["email"] = _register()
            token = _login(_account["email"])
        assert token, "the throwaway account cannot sign in"
        return token


def _unversioned(path: str) -> str:
    parts = path.split("/", 3)  # "", "api", "v1", rest
    return "/" + parts[3] if len(parts) == 4 else path


@schemathesis.hook
def before_call(context, case, kwargs):
    role_token = os.environ.get("FUZZ_TOKEN")
    if not role_token or (case.method.upper(), _unversioned(case.path)) not in SESSION_ENDING:
        return
    headers = case.headers if case.headers is not None else {}
    # Only the role's own token is swapped: a case that fuzzes the Authorization header keeps its value.
    if headers.get("Authorization", "") in ("", f"Bearer {role_token}"):
        headers["Authorization"] = f"Bearer {throwaway_token()}"
        case.headers = headers
