"""The SSRF guard in production (CONTRACT.md "Webhooks"): URLs that resolve to loopback, private,
link-local or multicast addresses are refused at creation (422 naming `url`) and, against DNS
rebinding, at every send (a failed attempt; nothing reaches the address)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient

from tests.integration.auth_helpers import bearer, problem, user_token
from tests.integration.webhook_helpers import add_webhook, deliveries
from tests.timing import eventually
from tests.webhook_receiver import Receiver
from tradebot.config import Secrets, Settings
from tradebot.http.app import create_app
from tradebot.http.notifications_app import RESOLVER
from tradebot.notifications.ssrf import AddressPolicy, GuardedResolver

Client = TestClient[web.Request, web.Application]


class Dns(AbstractResolver):
    """A name server of the test's own: answers what `names` says right now."""

    def __init__(self) -> None:
        self.names: dict[str, list[str]] = {}

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        if host not in self.names:
            raise OSError(f"{host}: no such name")
        return [{"hostname": host, "host": a, "port": port, "family": socket.AF_INET6 if ":" in a else socket.AF_INET,
                 "proto": 0, "flags": socket.AI_NUMERICHOST} for a in self.names[host]]

    async def close(self) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


def _production(settings: Settings, **extra: Any) -> Settings:
    return settings.model_copy(update={"env": "production", "exchange_url": "http://127.0.0.1:9",
                                       "notifications_poll_s": 0.02, "webhook_retry_s": 0.2, **extra})


async def _client(aiohttp_client: AiohttpClient, settings: Settings, secrets: Secrets, database_url: str,
                  redis_url: str, dns: Dns | None = None) -> Client:
    app = create_app(settings, secrets, database_url=database_url, redis_url=redis_url, replica_id="test-replica")
    if dns is not None:
        app[RESOLVER] = GuardedResolver(AddressPolicy(allow_private=settings.webhooks_may_target_private), dns)
    return await aiohttp_client(app)


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:{port}/hooks/x",
    "http://10.0.0.1/hooks/x",
    "http://localhost:{port}/hooks/x",
    "http://sub.localhost/hooks/x",
    "http://[::1]:{port}/hooks/x",
    "http://[::ffff:127.0.0.1]:{port}/hooks/x",
    "http://169.254.169.254/latest/meta-data",
    "http://192.168.1.1/",
    "http://224.0.0.1/",
    "http://2130706433/",  # 127.0.0.1 as one number: resolves to loopback
])
async def test_production_refuses_urls_that_resolve_to_internal_addresses(
    url: str, aiohttp_client: AiohttpClient, settings: Settings, test_secrets: Secrets, clean_db: str,
    redis_url: str, receiver: Receiver,
) -> None:
    client = await _client(aiohttp_client, _production(settings), test_secrets, clean_db, redis_url)
    _, token = await user_token(client)
    r = await client.post("/api/v1/webhooks", json={"url": url.format(port=receiver.port)}, headers=bearer(token))
    body = await problem(r, 422)
    assert [e["field"] for e in body["errors"]] == ["url"]
    listed = await (await client.get("/api/v1/webhooks", headers=bearer(token))).json()
    assert listed["items"] == []


async def test_production_allows_them_when_told_to(
    aiohttp_client: AiohttpClient, settings: Settings, test_secrets: Secrets, clean_db: str, redis_url: str,
    receiver: Receiver,
) -> None:
    client = await _client(aiohttp_client, _production(settings, webhook_allow_private=True), test_secrets,
                           clean_db, redis_url)
    _, token = await user_token(client)
    await add_webhook(client, token, receiver.url("allowed"))


async def test_dns_rebinding_is_refused_at_send_time_and_nothing_reaches_the_address(
    aiohttp_client: AiohttpClient, settings: Settings, test_secrets: Secrets, clean_db: str, redis_url: str,
    receiver: Receiver,
) -> None:
    dns = Dns()
    dns.names["hooks.example.com"] = ["93.184.216.34"]  # public when the webhook is made
    client = await _client(aiohttp_client, _production(settings), test_secrets, clean_db, redis_url, dns)
    _, token = await user_token(client)
    hook = await add_webhook(client, token, f"http://hooks.example.com:{receiver.port}/hooks/rebound")
    dns.names["hooks.example.com"] = ["127.0.0.1"]  # and loopback (where the receiver listens) at send time
    r = await client.post(f"/api/v1/webhooks/{hook['id']}/test", headers=bearer(token))
    assert r.status == 202

    async def attempted() -> dict[str, Any] | None:
        [d] = await deliveries(client, token, hook["id"])
        return d if d["attempts"] >= 2 else None

    d = await eventually(attempted, timeout=20, what="two refused attempts")
    assert d["status"] == "pending" and d["last_status_code"] is None
    assert d["last_error"].startswith("refused:") and "loopback" in d["last_error"]
    assert receiver.received() == []
    # a name that resolves to a public and a private address is refused as a whole
    dns.names["mixed.example.com"] = ["93.184.216.34", "10.1.2.3"]
    await problem(await client.post("/api/v1/webhooks", json={"url": "http://mixed.example.com/"},
                                    headers=bearer(token)), 422)
