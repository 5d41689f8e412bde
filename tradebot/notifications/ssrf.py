"""Where a webhook may point: the SSRF guard (CONTRACT.md "Webhooks", DESIGN.md "Outbound notifications").

In production a webhook URL must resolve only to public addresses: loopback, private, link-local,
multicast, reserved and other non-global addresses are refused, at creation (a 422) and again at
every send. The check at send time is what defeats DNS rebinding (a name that resolved to a public
address when the webhook was made and to 127.0.0.1 now): the HTTP client connects only to the
addresses `GuardedResolver` returned, and those are the addresses it checked, so there is no second
lookup to race. IP literals never reach a resolver (aiohttp connects to them directly, and refuses
the legacy numeric forms such as 2130706433), so `check_url` checks them itself.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

MAX_URL_CHARS = 2048


class UnsafeUrl(Exception):
    """The URL is not one tradebot will send to; the message says why (never the resolved address
    of somebody else's network in more detail than the rule it broke)."""


class BlockedAddress(OSError):
    """Raised inside the HTTP client's resolver: the name resolves to a refused address."""


def refused_address(address: str) -> str | None:
    """Why `address` may not be a webhook target in production, or None when it is public."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_multicast:
        return "a multicast address"
    if ip.is_unspecified or not ip.is_global:
        return "a private or reserved address"
    return None


def parse_url(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an http(s) URL, or UnsafeUrl saying what is wrong with it."""
    if len(url) > MAX_URL_CHARS:
        raise UnsafeUrl(f"must be at most {MAX_URL_CHARS} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise UnsafeUrl(f"is not a valid URL ({e})") from None
    if parts.scheme not in ("http", "https"):
        raise UnsafeUrl("must be an http:// or https:// URL")
    host = parts.hostname
    if not host:
        raise UnsafeUrl("must name a host")
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in url):
        raise UnsafeUrl("must not contain spaces or control characters")
    return parts.scheme, host, port or (443 if parts.scheme == "https" else 80)


def _is_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class AddressPolicy:
    """`allow_private`: development and test (and TRADEBOT_WEBHOOK_ALLOW_PRIVATE=1) send anywhere."""

    allow_private: bool

    def check_addresses(self, host: str, addresses: list[str]) -> None:
        if self.allow_private:
            return
        if not addresses:
            raise UnsafeUrl(f"{host} does not resolve")
        for address in addresses:
            reason = refused_address(address)
            if reason is not None:
                raise UnsafeUrl(f"{host} resolves to {reason}, which webhooks may not target")

    def check_name(self, host: str) -> None:
        if self.allow_private:
            return
        name = host.rstrip(".").lower()
        if name == "localhost" or name.endswith(".localhost"):  # RFC 6761: always loopback
            raise UnsafeUrl(f"{host} is a loopback name, which webhooks may not target")
        if _is_literal(host):
            self.check_addresses(host, [host])


class GuardedResolver(AbstractResolver):
    """An aiohttp resolver that returns only addresses the policy allows (else BlockedAddress)."""

    def __init__(self, policy: AddressPolicy, inner: AbstractResolver | None = None) -> None:
        self.policy = policy
        self._inner = inner or DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        try:
            self.policy.check_name(host)
            self.policy.check_addresses(host, [r["host"] for r in results])
        except UnsafeUrl as e:
            raise BlockedAddress(str(e)) from None
        return results

    async def check_url(self, url: str) -> None:
        """The whole check of a URL as creation makes it: shape, name and every resolved address."""
        _, host, port = parse_url(url)
        self.policy.check_name(host)
        if self.policy.allow_private or _is_literal(host):
            return
        try:
            await self.resolve(host, port, socket.AF_UNSPEC)
        except BlockedAddress as e:
            raise UnsafeUrl(str(e)) from None
        except (OSError, ValueError) as e:  # ValueError: a name IDNA cannot encode
            raise UnsafeUrl(f"{host} does not resolve") from e

    async def close(self) -> None:
        await self._inner.close()
