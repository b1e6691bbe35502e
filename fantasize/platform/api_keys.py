"""API keys for server-to-server calls: API_KEYS parsed once per app, and the `X-API-Key` check.

API_KEYS is comma-separated; each key may carry `@` and a `|`-separated allow-list of IPs or CIDR networks:
`k1,k2@10.0.0.0/8|192.168.1.7`. Only SHA-256 digests of the keys are kept, every configured key is compared
(in constant time) on every check, and no key is ever logged or put in an error message.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Flask, current_app, request

from fantasize.errors import Forbidden, Unauthorized

HEADER = "X-API-Key"
EXTENSION = "fantasize.api_keys"

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class ApiKey:
    digest: bytes
    networks: tuple[Network, ...] = ()  # empty: any address may use the key

    def allows(self, address: Address | None) -> bool:
        if not self.networks:
            return True
        return address is not None and any(address in network for network in self.networks)


def _digest(key: str) -> bytes:
    # Digests have one length, so comparing them reveals nothing about a key's length either.
    return hashlib.sha256(key.encode()).digest()


def parse_api_keys(raw: str) -> tuple[ApiKey, ...]:
    """The keys of an API_KEYS value; a malformed entry raises ValueError naming its position, never the key."""
    keys = []
    for position, entry in enumerate(raw.split(","), start=1):
        if not entry.strip():
            continue
        key, has_list, allow_list = entry.partition("@")
        key = key.strip()
        if not key:
            raise ValueError(f"API_KEYS entry {position} has no key")
        networks: tuple[Network, ...] = ()
        if has_list:
            parts = [part.strip() for part in allow_list.split("|") if part.strip()]
            if not parts:
                raise ValueError(f"API_KEYS entry {position} has '@' but no addresses after it")
            try:
                networks = tuple(ipaddress.ip_network(part, strict=False) for part in parts)
            except ValueError as exc:
                raise ValueError(f"API_KEYS entry {position}: {exc}") from None
        keys.append(ApiKey(_digest(key), networks))
    return tuple(keys)


def init_app(app: Flask) -> None:
    """Parse the app's API_KEYS once, at start-up, so a malformed value stops the app from starting."""
    app.extensions[EXTENSION] = parse_api_keys(app.config.get("API_KEYS") or "")


def _client_address(remote_addr: str | None) -> Address | None:
    try:
        address = ipaddress.ip_address(remote_addr or "")
    except ValueError:
        return None
    # A dual-stack socket reports IPv4 clients as ::ffff:a.b.c.d; allow-lists name them as IPv4.
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def check_api_key(provided: str | None, remote_addr: str | None) -> None:
    """401 unless `provided` is a configured key; 403 when it is, but not for this address."""
    keys: tuple[ApiKey, ...] = current_app.extensions[EXTENSION]
    digest = _digest(provided or "")
    # Every key is compared, matching or not, so the time taken says nothing about which key matched.
    matches = [key for key in keys if hmac.compare_digest(key.digest, digest)]
    if not provided or not matches:
        raise Unauthorized(f"Send a valid {HEADER} header", code="INVALID_API_KEY")
    if not any(key.allows(_client_address(remote_addr)) for key in matches):
        raise Forbidden("This API key may not be used from your address", code="ADDRESS_NOT_ALLOWED")


def require_api_key(view: Callable[..., Any]) -> Callable[..., Any]:
    """Check `X-API-Key` before anything else the view does (place it above `@endpoint`)."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        check_api_key(request.headers.get(HEADER), request.remote_addr)
        return view(*args, **kwargs)

    wrapper.api_key_header = HEADER  # read by the OpenAPI document (its apiKeyAuth security scheme)
    return wrapper
