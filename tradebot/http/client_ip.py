"""The client's address for rate limits: the peer, or X-Forwarded-For behind a trusted proxy only.

A client can write any X-Forwarded-For it likes, so it is read only when the connection comes from
a proxy listed in TRADEBOT_TRUSTED_PROXIES (addresses or CIDR ranges), and then from the right: the
first address that is not itself a trusted proxy is the one that connected to our proxies.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from functools import lru_cache

from aiohttp import web

from tradebot.http.appkeys import SETTINGS

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=32)
def _networks(spec: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(p, strict=False) for p in spec)


def _parse(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(value.strip())
    except ValueError:
        return None


def resolve_client_ip(peer: str | None, forwarded_for: str | None, trusted: Sequence[str]) -> str:
    peer_addr = _parse(peer or "")
    if peer_addr is None:
        return peer or "unknown"
    networks = _networks(tuple(trusted))
    if not forwarded_for or not any(peer_addr in n for n in networks):
        return str(peer_addr)
    hops = [_parse(h) for h in forwarded_for.split(",")]
    for hop in reversed(hops):
        if hop is None:
            return str(peer_addr)  # a malformed chain: trust nothing in it
        if not any(hop in n for n in networks):
            return str(hop)
    first = hops[0]
    return str(first) if first is not None else str(peer_addr)


def client_ip(request: web.Request) -> str:
    settings = request.app[SETTINGS]
    return resolve_client_ip(request.remote, request.headers.get("X-Forwarded-For"), settings.trusted_proxy_list)
