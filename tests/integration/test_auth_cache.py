"""The per-request token check reads no database row when nothing changed (issue #21 item 1), and
every change that refuses a token is obeyed at once by the replica that made it."""

from __future__ import annotations

import asyncio
import re
import time

import asyncpg
import pytest
from aiohttp import web

from tests.integration.auth_helpers import Client, bearer, login, new_email, register
from tradebot.accounts.session_cache import SessionCache
from tradebot.config import Settings
from tradebot.http.appkeys import SESSION_CACHE

OPERATOR = new_email("operator")


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"admin_emails": OPERATOR})


async def _until_cached(client: Client, app: web.Application, token: str) -> SessionCache:
    """Ask until this replica's cache holds the caller (its subscription must be confirmed first)."""
    cache = app[SESSION_CACHE]
    deadline = time.monotonic() + 15
    while True:
        r = await client.get("/api/v1/auth/me", headers=bearer(token))
        assert r.status == 200, await r.text()
        if cache.trusted() and len(cache) >= 2:  # the user row and the token's jti
            return cache
        assert time.monotonic() < deadline, "the session cache never answered"
        await asyncio.sleep(0.05)


async def test_an_unchanged_token_is_checked_without_reading_postgresql(
    client: Client, app: web.Application, pool: asyncpg.Pool
) -> None:
    email = new_email()
    registered = await register(client, email)
    token = await login(client, email)
    await _until_cached(client, app, token)
    # With the tables locked, any read of a user or revocation row would wait for the lock.
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("LOCK TABLE users, revoked_tokens IN ACCESS EXCLUSIVE MODE")
        async with asyncio.timeout(5):
            r = await client.get("/api/v1/auth/me", headers=bearer(token))
        assert r.status == 200, await r.text()
        body = await r.json()
    assert body["id"] == registered["id"] and body["email"] == email and body["is_active"] is True
    metrics = await (await client.get("/metrics")).text()
    hits = re.search(r'^tradebot_session_cache_checks_total\{answered_by="cache"\} (\S+)$', metrics, re.M)
    assert hits is not None and float(hits.group(1)) >= 1, metrics
    assert re.search(r"^tradebot_session_cache_trusted 1\.0$", metrics, re.M), metrics


async def test_logout_password_change_and_deactivation_are_obeyed_at_once_by_this_replica(
    client: Client, app: web.Application
) -> None:
    email = new_email()
    user = await register(client, email)
    await register(client, OPERATOR)
    operator = await login(client, OPERATOR)

    first, second = await login(client, email), await login(client, email)
    await _until_cached(client, app, first)
    await _until_cached(client, app, second)
    assert (await client.post("/api/v1/auth/logout", headers=bearer(first))).status == 204
    assert (await client.get("/api/v1/auth/me", headers=bearer(first))).status == 401
    assert (await client.get("/api/v1/auth/me", headers=bearer(second))).status == 200

    new_password = "a different horse battery staple"
    r = await client.post("/api/v1/auth/password", headers=bearer(second),
                          json={"current_password": "correct horse battery staple", "new_password": new_password})
    assert r.status == 204, await r.text()
    assert (await client.get("/api/v1/auth/me", headers=bearer(second))).status == 401

    third = await login(client, email, new_password)
    await _until_cached(client, app, third)
    # Only operators deactivate accounts; anybody else sees no such route.
    assert (await client.post(f"/api/v1/admin/users/{user['id']}/deactivate", headers=bearer(third))).status == 404
    r = await client.post(f"/api/v1/admin/users/{user['id']}/deactivate", headers=bearer(operator))
    assert r.status == 204, await r.text()
    assert (await client.get("/api/v1/auth/me", headers=bearer(third))).status == 401
    r = await client.post("/api/v1/auth/login", json={"email": email, "password": new_password})
    assert r.status == 401
    # Reactivated, the account signs in again; the tokens from before stay refused.
    r = await client.post(f"/api/v1/admin/users/{user['id']}/activate", headers=bearer(operator))
    assert r.status == 204, await r.text()
    assert (await client.get("/api/v1/auth/me", headers=bearer(third))).status == 401
    fresh = await login(client, email, new_password)
    assert (await client.get("/api/v1/auth/me", headers=bearer(fresh))).status == 200
    assert (await client.post("/api/v1/admin/users/999999999/deactivate", headers=bearer(operator))).status == 404
