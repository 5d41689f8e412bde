"""What the API shows about itself (issue #14 item 9): /cluster for operators only, no version in
`Server`, the docs page's policy, static 404s as problems; and the per-user bot cap (item 8)."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from aiohttp import web

from tests.integration.auth_helpers import Client, bearer, login, new_email, problem, register
from tests.integration.bots_helpers import MARKETS, new_user, settings_for
from tradebot.config import Settings
from tradebot.http.appkeys import SYMBOLS

OPERATOR = new_email("operator")
BOT_CAP = 3


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"admin_emails": f"someone@example.com, {OPERATOR.upper()}",
                                       "max_bots_per_user": BOT_CAP})


@pytest.fixture
async def app(app: web.Application) -> web.Application:
    app[SYMBOLS] = MARKETS
    return app


async def test_cluster_answers_operators_only(client: Client) -> None:
    user = await new_user(client, "tenant")
    body = await problem(await client.get("/api/v1/cluster", headers=user.headers), 404)
    # The same answer as a route that does not exist: nothing tells a tenant the endpoint is there.
    unknown = await problem(await client.get("/api/v1/clusterx", headers=user.headers), 404)
    assert body["detail"].replace("/api/v1/cluster", "") == unknown["detail"].replace("/api/v1/clusterx", "")
    await register(client, OPERATOR)
    r = await client.get("/api/v1/cluster", headers=bearer(await login(client, OPERATOR)))
    assert r.status == 200, await r.text()
    assert set(await r.json()) == {"leader", "replicas"}


async def test_server_header_carries_no_version(client: Client) -> None:
    for path in ("/healthz", "/nope", "/static/js/main.js", "/"):
        server = (await client.get(path)).headers.get("Server", "")
        assert "aiohttp" not in server and "Python" not in server and not any(c.isdigit() for c in server), server


async def test_docs_page_has_the_dashboards_strict_directives(client: Client) -> None:
    csp = (await client.get("/api/docs")).headers["Content-Security-Policy"]
    for directive in ("object-src 'none'", "base-uri 'none'", "frame-ancestors 'none'", "script-src 'self'"):
        assert directive in csp, csp


async def test_a_missing_static_file_is_a_problem(client: Client) -> None:
    for path in ("/static/nope.js", "/static/js/", "/api/docs/assets/nope.css", "/static/../pyproject.toml"):
        await problem(await client.get(path), 404)


async def test_bots_per_user_are_capped_even_for_concurrent_creates(client: Client, pool: asyncpg.Pool) -> None:
    alice = await new_user(client, "alice")
    answers = await asyncio.gather(*(
        client.post("/api/v1/bots", json=settings_for(alice, name=f"b{i}"), headers=alice.headers)
        for i in range(BOT_CAP + 5)
    ))
    statuses = sorted(r.status for r in answers)
    assert statuses == [201] * BOT_CAP + [409] * 5, statuses
    refused = next(r for r in answers if r.status == 409)
    assert f"{BOT_CAP} bots" in (await problem(refused, 409))["detail"]
    assert await pool.fetchval("SELECT count(*) FROM bot_configs WHERE user_id = $1", alice.id) == BOT_CAP
    # Deleting one frees a place; another user has places of their own.
    first = (await (await client.get("/api/v1/bots", headers=alice.headers)).json())["items"][0]
    assert (await client.delete(f"/api/v1/bots/{first['id']}", headers=alice.headers)).status == 204
    r = await client.post("/api/v1/bots", json=settings_for(alice), headers=alice.headers)
    assert r.status == 201, await r.text()
    bob = await new_user(client, "bob")
    r = await client.post("/api/v1/bots", json=settings_for(bob), headers=bob.headers)
    assert r.status == 201, await r.text()
