"""Who may read GET /metrics: METRICS_ALLOW's addresses and networks, or a caller with a valid API key.

The address judged is `request.remote_addr`, which ProxyFix has already set to the client's through PROXY_COUNT
proxies: behind nginx (PROXY_COUNT=1) the proxy's own loopback address does not count, so a public request relayed
by it stays out. An API key (API_KEYS, with its own address allow-list if it has one) is taken from X-API-Key or
from `Authorization: Bearer <key>`, the header Prometheus' `authorization` scrape setting sends. Everyone else gets
the 404 of a route that does not exist: the endpoint's existence is nobody else's business.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from flask import Flask, request

from config import ConfigError
from fantasize.errors import AppError
from fantasize.platform import api_keys

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
EXTENSION = "fantasize.prometheus.allow"


def parse_allow(raw: str) -> tuple[Network, ...]:
    """METRICS_ALLOW's networks; an entry that is not an IP or CIDR network is a ConfigError naming it."""
    networks = []
    for entry in raw.split(","):
        entry = entry.strip()
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ConfigError(f"METRICS_ALLOW entry {entry!r} is not an IP address or CIDR network "
                              "(e.g. 127.0.0.1/8,::1,10.0.0.0/8)") from None
    return tuple(networks)


def init_app(app: Flask) -> None:
    app.extensions[EXTENSION] = parse_allow(app.config.get("METRICS_ALLOW") or "")
    if api_keys.EXTENSION not in app.extensions:  # normally parsed by the integrations blueprint
        api_keys.init_app(app)


def _address(remote_addr: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(remote_addr or "")
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped  # a dual-stack socket's IPv4 client
    return address


def address_allowed(networks: Sequence[Network], remote_addr: str | None) -> bool:
    address = _address(remote_addr)
    return address is not None and any(address in network for network in networks)


def presented_key() -> str | None:
    key = request.headers.get(api_keys.HEADER)
    if key:
        return key
    scheme, _, credentials = (request.headers.get("Authorization") or "").partition(" ")
    return credentials.strip() or None if scheme.lower() == "bearer" else None


def allowed(app: Flask) -> bool:
    if address_allowed(app.extensions[EXTENSION], request.remote_addr):
        return True
    key = presented_key()
    if key is None:
        return False
    try:
        api_keys.check_api_key(key, request.remote_addr)
    except AppError:
        return False
    return True
