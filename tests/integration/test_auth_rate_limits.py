"""Auth rate limits: 429 with Retry-After, shared through Redis, local (not open, not closed) without it."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from pytest_aiohttp import AiohttpClient

from tests.integration.auth_helpers import PASSWORD, Client, bearer, login, new_email, problem, register
from tradebot.config import Secrets, Settings
from tradebot.http.app import create_app
from tradebot.security.rate_limit import Limit, RateLimiter

MakeClient = Callable[..., Awaitable[Client]]
UNREACHABLE_REDIS = "redis://127.0.0.1:1/0"


@pytest.fixture
def make_client(
    aiohttp_client: AiohttpClient, settings: Settings, test_secrets: Secrets, clean_db: str, redis_url: str
) -> MakeClient:
    async def make(*, redis: str = redis_url, **overrides: Any) -> Client:
        app = create_app(
            settings.model_copy(update=overrides),
            test_secrets,
            database_url=clean_db,
            redis_url=redis,
            replica_id="test-replica",
        )
        client: Client = await aiohttp_client(app)
        return client

    return make


async def attempt(client: Client, email: str, password: str = "wrong password", **headers: str) -> Any:
    return await client.post("/api/v1/auth/login", json={"email": email, "password": password}, headers=headers)


async def assert_429(response: Any) -> int:
    await problem(response, 429)
    retry_after = int(response.headers["Retry-After"])
    assert retry_after >= 1
    return retry_after


async def test_login_per_account(make_client: MakeClient) -> None:
    # 3 a minute (one more every 20 s) rather than the default 10 (every 6 s): a slow machine
    # cannot spend a refill interval on the attempts themselves.
    client = await make_client(auth_login_per_account_per_min=3)
    email = new_email()
    await register(client, email)
    for _ in range(3):
        await problem(await attempt(client, email), 401)
    # The limit holds for the right password too: a guesser cannot probe past it.
    retry_after = await assert_429(await attempt(client, email, PASSWORD))
    assert retry_after <= 20
    # Another account from the same address is not affected.
    other = new_email()
    await register(client, other)
    await login(client, other)


async def test_only_failed_logins_count(make_client: MakeClient) -> None:
    client = await make_client(auth_login_per_account_per_min=3, auth_login_per_ip_per_min=3)
    email = new_email()
    await register(client, email)
    for _ in range(10):  # a script or a test suite signing in again and again is never locked out
        await login(client, email)
    r = await client.post("/api/v1/auth/password", headers=bearer(await login(client, email)),
                          json={"current_password": PASSWORD, "new_password": PASSWORD + "!"})
    assert r.status == 204
    for _ in range(3):
        await problem(await attempt(client, email), 401)
    await assert_429(await attempt(client, email, PASSWORD + "!"))


async def test_a_malformed_email_is_an_unknown_one(make_client: MakeClient) -> None:
    client = await make_client()
    for email in ("not-an-email", "user@localhost", " "):
        await problem(await attempt(client, email), 401)


def test_default_limits() -> None:
    defaults = Settings.model_validate({})
    assert (
        defaults.auth_login_per_ip_per_min,
        defaults.auth_login_per_account_per_min,
        defaults.auth_register_per_ip_per_min,
        defaults.auth_reset_per_ip_per_min,
    ) == (30, 10, 100, 20)


async def test_login_per_ip(make_client: MakeClient, redis_client: aioredis.Redis, redis_prefix: str) -> None:
    client = await make_client(auth_login_per_ip_per_min=4)
    for i in range(4):
        await problem(await attempt(client, new_email(f"u{i}")), 401)
    await assert_429(await attempt(client, new_email()))
    # The buckets live in Redis, under the deployment's prefix, without the address or email in the key.
    keys = [k async for k in redis_client.scan_iter(match=f"{redis_prefix}:ratelimit:*")]
    assert keys and all("127.0.0.1" not in k and "@" not in k for k in keys)


async def test_replicas_share_the_limit(make_client: MakeClient) -> None:
    a = await make_client(auth_login_per_ip_per_min=4)
    b = await make_client(auth_login_per_ip_per_min=4)
    for i in range(4):
        await problem(await attempt(a if i % 2 else b, new_email()), 401)
    await assert_429(await attempt(a, new_email()))
    await assert_429(await attempt(b, new_email()))


async def test_register_and_reset_per_ip(make_client: MakeClient) -> None:
    client = await make_client(auth_register_per_ip_per_min=2, auth_reset_per_ip_per_min=2)
    await register(client, new_email())
    await register(client, new_email())
    r = await client.post("/api/v1/auth/register", json={"email": new_email(), "password": PASSWORD})
    await assert_429(r)
    for _ in range(2):
        r = await client.post("/api/v1/auth/password-reset/request", json={"email": new_email()})
        assert r.status == 202
    await assert_429(await client.post("/api/v1/auth/password-reset/request", json={"email": new_email()}))


async def test_forwarded_for_counts_only_behind_a_trusted_proxy(make_client: MakeClient) -> None:
    trusting = await make_client(auth_login_per_ip_per_min=2, trusted_proxies="127.0.0.1,::1")
    for client_ip in ("203.0.113.1", "203.0.113.2"):
        for _ in range(2):
            await problem(await attempt(trusting, new_email(), **{"X-Forwarded-For": client_ip}), 401)
    await assert_429(await attempt(trusting, new_email(), **{"X-Forwarded-For": "203.0.113.1"}))


async def test_forwarded_for_is_ignored_from_untrusted_peers(make_client: MakeClient) -> None:
    client = await make_client(auth_login_per_ip_per_min=2)
    for i in range(2):
        await problem(await attempt(client, new_email(), **{"X-Forwarded-For": f"198.51.100.{i}"}), 401)
    await assert_429(await attempt(client, new_email(), **{"X-Forwarded-For": "198.51.100.99"}))


async def test_without_redis_the_limit_is_local_and_auth_still_works(
    make_client: MakeClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="tradebot")
    client = await make_client(redis=UNREACHABLE_REDIS, auth_login_per_account_per_min=3)
    email = new_email()
    await register(client, email)
    token = await login(client, email)  # not failed closed
    assert (await client.get("/api/v1/auth/me", headers=bearer(token))).status == 200
    for _ in range(3):
        await problem(await attempt(client, email), 401)
    await assert_429(await attempt(client, email, PASSWORD))  # not failed open
    # Revocation falls back to PostgreSQL.
    assert (await client.post("/api/v1/auth/logout", headers=bearer(token))).status == 204
    await problem(await client.get("/api/v1/auth/me", headers=bearer(token)), 401)
    degraded = [r for r in caplog.records if "redis unavailable for rate limits" in r.getMessage()]
    assert len(degraded) == 1, "the degradation is logged once, not per request"


async def test_the_redis_script_refills_at_the_limits_rate(redis_client: aioredis.Redis, redis_prefix: str) -> None:
    limiter = RateLimiter(redis_client, redis_prefix)
    limit = Limit("direct", 3, 60)
    decisions = [await limiter.hit(limit, "subject") for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert 19 < decisions[-1].retry_after_s <= 20  # one more every 60/3 s
    [key] = [k async for k in redis_client.scan_iter(match=f"{redis_prefix}:ratelimit:direct:*")]
    assert 0 < await redis_client.pttl(key) <= 60_000  # the bucket expires once it is full again
    assert not limiter.degraded


# Issue #14 item 6: a guesser, or a reset flood, from one address must not lock the owner out.
TRUSTING = {"trusted_proxies": "127.0.0.1,::1"}
ATTACKER = {"X-Forwarded-For": "203.0.113.66"}
OWNER = {"X-Forwarded-For": "198.51.100.7"}


async def test_a_guesser_from_one_address_cannot_lock_the_owner_out(make_client: MakeClient) -> None:
    client = await make_client(**TRUSTING)  # the default limits
    email = new_email()
    await register(client, email)
    through = refused = 0
    owner = []
    started = time.monotonic()
    for i in range(60):  # as fast as the server answers (the audit sent one every 1.5 s)
        r = await attempt(client, email, **ATTACKER)
        if r.status == 401:
            through += 1  # reached the password check
        else:
            await assert_429(r)
            refused += 1
        if i % 20 == 19:  # the owner signs in from another address while the attack runs
            owner.append((await attempt(client, email, PASSWORD, **OWNER)).status)
    elapsed = time.monotonic() - started
    print(f"\nattacker: {through} of 60 guesses reached the password check in {elapsed:.1f} s "
          f"({through / elapsed * 60:.1f}/min), {refused} got 429; owner's logins meanwhile: {owner}")
    assert owner == [200, 200, 200]
    # The pair's burst (10), plus its refill while the attack ran (one per 6 s).
    assert refused > 0 and through <= 10 + elapsed / 6 + 1


async def test_the_account_ceiling_bounds_many_addresses_but_not_a_known_one(make_client: MakeClient) -> None:
    client = await make_client(**TRUSTING, auth_login_per_account_per_min=3,
                               auth_login_per_account_address_per_hour=3, auth_login_account_ceiling_per_hour=5)
    email = new_email()
    await register(client, email)
    assert (await attempt(client, email, PASSWORD, **OWNER)).status == 200  # the owner's address is now known
    through = 0
    for n in range(4):
        for _ in range(3):
            r = await attempt(client, email, **{"X-Forwarded-For": f"203.0.113.{10 + n}"})
            through += r.status == 401
    assert through == 5  # the ceiling: no more guesses at this account from anywhere
    await assert_429(await attempt(client, email, PASSWORD, **{"X-Forwarded-For": "192.0.2.1"}))
    assert (await attempt(client, email, PASSWORD, **OWNER)).status == 200


async def test_a_reset_flood_from_one_address_does_not_block_the_owner(
    make_client: MakeClient, settings: Settings
) -> None:
    assert settings.outbox_dir is not None
    client = await make_client(**TRUSTING)
    email = new_email()
    await register(client, email)
    url = "/api/v1/auth/password-reset/request"
    flood = [(await client.post(url, json={"email": email}, headers=ATTACKER)).status for _ in range(12)]
    assert flood == [202] * 3 + [429] * 9
    r = await client.post(url, json={"email": email}, headers=OWNER)
    assert r.status == 202, await r.text()
    deadline = time.monotonic() + 10
    while len(mails_to(settings.outbox_dir, email)) < 4:
        assert time.monotonic() < deadline, "the owner's reset mail did not arrive"
        await asyncio.sleep(0.05)


def mails_to(folder: Path, address: str) -> list[Path]:
    return [f for f in folder.glob("*.eml") if f"To: {address}" in f.read_text(encoding="ascii")]


async def test_without_redis_one_address_still_cannot_lock_the_owner_out(make_client: MakeClient) -> None:
    client = await make_client(redis=UNREACHABLE_REDIS, auth_login_per_account_per_min=3, **TRUSTING)
    email = new_email()
    await register(client, email)
    for _ in range(3):
        await problem(await attempt(client, email, **ATTACKER), 401)
    await assert_429(await attempt(client, email, PASSWORD, **ATTACKER))  # local, not failed open
    assert (await attempt(client, email, PASSWORD, **OWNER)).status == 200


async def test_without_redis_the_ceiling_and_known_addresses_are_local(make_client: MakeClient) -> None:
    client = await make_client(redis=UNREACHABLE_REDIS, **TRUSTING, auth_login_per_account_per_min=2,
                               auth_login_per_account_address_per_hour=2, auth_login_account_ceiling_per_hour=3)
    email = new_email()
    await register(client, email)
    assert (await attempt(client, email, PASSWORD, **OWNER)).status == 200
    for n in range(3):
        for _ in range(2):
            await attempt(client, email, **{"X-Forwarded-For": f"203.0.113.{20 + n}"})
    await assert_429(await attempt(client, email, PASSWORD, **{"X-Forwarded-For": "192.0.2.1"}))
    assert (await attempt(client, email, PASSWORD, **OWNER)).status == 200
