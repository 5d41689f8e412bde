"""The dashboard's server side: page routes, security headers, and GET /api/v1/bots/{id}/candles.

In-process app with the bot runtime (for its market-data hub) and the in-process simulator; the
pages themselves are exercised in a real browser by tests/browser/.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest
from pytest_aiohttp import AiohttpClient

from tests.integration.auth_helpers import Client, bearer, problem, user_token
from tests.runtime_fixtures import FAST, manual_simulator
from tests.simulator_helpers import Credentials, SimControl
from tradebot.config import Secrets, Settings
from tradebot.exchange.simulator import RunningSimulator, SimulatorConfig
from tradebot.http.app import create_app
from tradebot.runtime_context import runtime_context
from tradebot.strategies.ema import ema

START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
MINUTE = 60_000


@pytest.fixture
def simulator_config() -> SimulatorConfig:
    return manual_simulator()


@pytest.fixture
async def client(
    aiohttp_client: AiohttpClient, settings: Settings, test_secrets: Secrets, clean_db: str, redis_url: str,
    simulator: RunningSimulator,
) -> AsyncIterator[Client]:
    settings = settings.model_copy(update={"exchange_url": simulator.base_url, "runtime_enabled": True})
    app = create_app(settings, test_secrets, database_url=clean_db, redis_url=redis_url, replica_id="replica-a",
                     extra_contexts=[runtime_context(timing=FAST)])
    yield await aiohttp_client(app)


async def new_bot(client: Client, token: str, account: Credentials, **settings: Any) -> int:
    r = await client.post("/api/v1/api-keys", headers=bearer(token), json={
        "label": "sim", "exchange": "binanceusdm", "api_key": account.api_key, "secret_key": account.secret})
    assert r.status == 201, await r.text()
    key_id = (await r.json())["id"]
    body = {"api_key_id": key_id, "symbol": "BTCUSDT", "timeframe": "1m", "ema_period": 3, **settings}
    r = await client.post("/api/v1/bots", headers=bearer(token), json=body)
    assert r.status == 201, await r.text()
    return int((await r.json())["id"])


async def test_candles_carry_the_strategy_ema(client: Client, sim: SimControl, account: Credentials) -> None:
    closes = [100.0, 101.0, 103.0, 102.0, 99.0, 98.0, 100.0, 104.0, 107.0, 105.0]
    await sim.push_klines("BTCUSDT", "1m", [
        [START_MS + i * MINUTE, c - 0.5, c + 1, c - 1, c, 5.0] for i, c in enumerate(closes)])
    _, token = await user_token(client, "charts")
    bot = await new_bot(client, token, account)

    r = await client.get(f"/api/v1/bots/{bot}/candles?limit=6", headers=bearer(token))
    assert r.status == 200, await r.text()
    body = await r.json()
    assert (body["symbol"], body["timeframe"], body["ema_period"]) == ("BTC/USDT:USDT", "1m", 3)
    got = body["candles"]
    assert [c["time"] for c in got] == [START_MS + i * MINUTE for i in range(4, 10)]
    assert [c["close"] for c in got] == closes[4:]
    expected = ema(np.array(closes), 3)[4:]
    assert [c["ema"] for c in got] == pytest.approx(list(expected), rel=1e-12)

    # Too few candles for the EMA yet: null, not NaN (which is not JSON).
    r = await client.get(f"/api/v1/bots/{bot}/candles?limit=10", headers=bearer(token))
    first = (await r.json())["candles"][:3]
    assert [c["ema"] is None for c in first] == [True, True, False]


async def test_candles_are_the_owners_only(client: Client, account: Credentials) -> None:
    _, alice = await user_token(client, "alice")
    _, bob = await user_token(client, "bob")
    bot = await new_bot(client, alice, account)
    await problem(await client.get(f"/api/v1/bots/{bot}/candles", headers=bearer(bob)), 404)
    await problem(await client.get(f"/api/v1/bots/{bot}/candles"), 401)
    body = await problem(await client.get(f"/api/v1/bots/{bot}/candles?limit=0", headers=bearer(alice)), 422)
    assert body["errors"][0]["field"] == "limit"


async def test_openapi_declares_the_candles_endpoint(client: Client) -> None:
    doc = await (await client.get("/api/openapi.json")).json()
    op = doc["paths"]["/api/v1/bots/{id}/candles"]["get"]
    assert op["security"] == [{"bearerAuth": []}]
    assert "CandlesOut" in str(op["responses"]["200"])
    assert not any(path == "/" or path.startswith("/bots") for path in doc["paths"])  # pages are not API


@pytest.mark.parametrize("path", ["/", "/login", "/register", "/forgot-password", "/reset-password?token=abc",
                                  "/keys", "/bots", "/bots/new", "/bots/12", "/bots/12/edit", "/backtests",
                                  "/backtests/3"])
async def test_pages_are_the_shell_with_a_strict_policy(client: Client, path: str) -> None:
    r = await client.get(path)
    assert r.status == 200
    assert r.content_type == "text/html"
    html = await r.text()
    assert '<script type="module" src="/static/js/main.js"></script>' in html
    assert "<script>" not in html and " style=" not in html and " on" + "click=" not in html
    csp = r.headers["Content-Security-Policy"]
    for directive in ("default-src 'self'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'",
                      "object-src 'none'", "base-uri 'none'"):
        assert directive in csp
    assert "unsafe" not in csp
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["Referrer-Policy"] == "no-referrer"
    assert r.headers["X-Frame-Options"] == "DENY"
    assert r.headers["Cache-Control"] == "no-store"


async def test_static_assets_and_api_answers_carry_the_headers_too(client: Client) -> None:
    r = await client.get("/static/js/main.js")
    assert r.status == 200 and r.content_type in ("application/javascript", "text/javascript")
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["Cache-Control"] == "no-cache"  # revalidated, so an upgrade is picked up at once
    r = await client.get("/healthz")
    assert r.headers["X-Content-Type-Options"] == "nosniff" and r.headers["Referrer-Policy"] == "no-referrer"
    # The Swagger UI page keeps its own, looser policy.
    r = await client.get("/api/docs")
    assert "'unsafe-inline'" in r.headers["Content-Security-Policy"]


async def test_unknown_pages_are_404_problems(client: Client) -> None:
    await problem(await client.get("/bots/abc"), 404)
    await problem(await client.get("/nope"), 404)
