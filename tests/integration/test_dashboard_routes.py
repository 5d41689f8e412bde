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
from tests.integration.backtests_helpers import MINUTE_MS as MINUTE
from tests.integration.backtests_helpers import T0, iso, settled, submit, walk_candles
from tests.runtime_fixtures import FAST, manual_simulator
from tests.simulator_helpers import Credentials, SimControl
from tradebot.config import Secrets, Settings
from tradebot.exchange.simulator import RunningSimulator, SimulatorConfig
from tradebot.http.app import create_app
from tradebot.runtime_context import runtime_context
from tradebot.strategies import base as strategy_base
from tradebot.strategies import get_strategy
from tradebot.strategies.bollinger import bollinger
from tradebot.strategies.ema import ema
from tradebot.strategies.rsi import rsi

START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z


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
    shorthand = {} if "strategy" in settings else {"ema_period": 3}
    body = {"api_key_id": key_id, "symbol": "BTCUSDT", "timeframe": "1m", **shorthand, **settings}
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
    assert (body["symbol"], body["timeframe"], body["strategy"], body["parameters"]) == (
        "BTC/USDT:USDT", "1m", "ema_cross", {"ema_period": 3})
    got = body["candles"]
    assert [c["time"] for c in got] == [START_MS + i * MINUTE for i in range(4, 10)]
    assert [c["close"] for c in got] == closes[4:]
    assert got[0] == {"time": START_MS + 4 * MINUTE, "open": 98.5, "high": 100.0, "low": 98.0, "close": 99.0,
                      "volume": 5.0}
    assert body["indicators"]["panes"] == []
    [line] = body["indicators"]["lines"]
    assert (line["name"], line["label"], line["pane"]) == ("ema", "EMA 3", "price")
    assert line["values"] == list(ema(np.array(closes), 3)[4:])  # over every candle, bit for bit

    # Too few candles for the EMA yet: null, not NaN (which is not JSON).
    r = await client.get(f"/api/v1/bots/{bot}/candles?limit=10", headers=bearer(token))
    first = (await r.json())["indicators"]["lines"][0]["values"][:3]
    assert [v is None for v in first] == [True, True, False]


async def test_candles_of_a_bot_of_another_strategy_carry_its_indicators(
    client: Client, sim: SimControl, account: Credentials
) -> None:
    rng = np.random.default_rng(5)
    closes = [round(float(v), 2) for v in 100 + np.cumsum(rng.normal(0, 1, 40))]
    await sim.push_klines("BTCUSDT", "1m", [
        [START_MS + i * MINUTE, c, c + 1, c - 1, c, 5.0] for i, c in enumerate(closes)])
    _, token = await user_token(client, "oscillators")
    bot = await new_bot(client, token, account, strategy="rsi_reversion", parameters={"rsi_period": 3, "oversold": 20})

    r = await client.get(f"/api/v1/bots/{bot}/candles?limit=10", headers=bearer(token))
    assert r.status == 200, await r.text()
    body = await r.json()
    assert (body["strategy"], body["parameters"]["rsi_period"], body["parameters"]["oversold"]) == (
        "rsi_reversion", 3, 20)
    assert [c["close"] for c in body["candles"]] == closes[-10:]
    assert body["indicators"]["panes"] == [{"name": "rsi", "label": "RSI 3", "levels": [20.0, 50.0, 70.0]}]
    [line] = body["indicators"]["lines"]
    assert (line["name"], line["pane"], line["label"]) == ("rsi", "rsi", "RSI 3")
    # The strategy's own RSI over every candle fetched (all 40 here), shown for the last 10.
    assert line["values"] == list(rsi(np.array(closes), 3)[-10:])

    r = await client.get(f"/api/v1/bots/{bot}/candles?limit=40", headers=bearer(token))
    assert (await r.json())["indicators"]["lines"][0]["values"][:4] == [None, None, None, float(rsi(np.array(closes), 3)[3])]


async def test_a_bot_whose_strategy_has_no_indicators_gets_its_candles_alone(
    client: Client, sim: SimControl, account: Credentials, monkeypatch: pytest.MonkeyPatch
) -> None:
    await sim.push_klines("BTCUSDT", "1m", [[START_MS + i * MINUTE, 100, 105, 99, 100 + i, 5.0] for i in range(5)])
    _, token = await user_token(client, "plain")
    bot = await new_bot(client, token, account)
    # A plugin written before indicators() existed: the registry's ema_cross without the method.
    monkeypatch.delattr(type(get_strategy("ema_cross")), "indicators")
    r = await client.get(f"/api/v1/bots/{bot}/candles?limit=5", headers=bearer(token))
    assert r.status == 200, await r.text()
    body = await r.json()
    assert [c["close"] for c in body["candles"]] == [100.0, 101.0, 102.0, 103.0, 104.0]
    assert body["indicators"] == {"panes": [], "lines": []}


async def test_a_bot_whose_strategy_is_gone_gets_its_candles_alone(
    client: Client, sim: SimControl, account: Credentials, monkeypatch: pytest.MonkeyPatch
) -> None:
    await sim.push_klines("BTCUSDT", "1m", [[START_MS + i * MINUTE, 100, 105, 99, 100 + i, 5.0] for i in range(3)])
    _, token = await user_token(client, "uninstalled")
    bot = await new_bot(client, token, account, strategy="rsi_reversion", parameters={})
    monkeypatch.delitem(strategy_base._REGISTRY, "rsi_reversion")  # its plugin uninstalled since
    r = await client.get(f"/api/v1/bots/{bot}/candles?limit=5", headers=bearer(token))
    assert r.status == 200, await r.text()
    body = await r.json()
    assert (body["strategy"], len(body["candles"]), body["indicators"]) == (
        "rsi_reversion", 3, {"panes": [], "lines": []})


async def test_a_backtest_chart_has_its_candles_and_indicators(client: Client, sim: SimControl) -> None:
    candles = walk_candles(300, start_ms=T0, seed=3)
    await sim.push_klines("BTCUSDT", "1m", candles)
    _, token = await user_token(client, "quant")
    headers = bearer(token)
    bt = await submit(client, headers, strategy="bollinger_reversion", parameters={"bb_period": 7, "bb_std": 1.5},
                      end_time=iso(T0 + 300 * MINUTE))
    assert (await settled(client, headers, bt))["status"] == "done"

    r = await client.get(f"/api/v1/backtests/{bt}/candles?limit=50", headers=headers)
    assert r.status == 200, await r.text()
    body = await r.json()
    assert (body["symbol"], body["timeframe"], body["strategy"]) == ("BTC/USDT:USDT", "1m", "bollinger_reversion")
    assert (body["parameters"]["bb_period"], body["parameters"]["bb_std"]) == (7, 1.5)
    assert [c["time"] for c in body["candles"]] == [c[0] for c in candles[-50:]]
    assert [c["close"] for c in body["candles"]] == [c[4] for c in candles[-50:]]
    bands = bollinger(np.array([c[4] for c in candles]), 7, 1.5)  # over the whole period, as the backtest did
    lines = {line["name"]: line for line in body["indicators"]["lines"]}
    assert list(lines) == ["upper", "mid", "lower"]
    for name in lines:
        assert lines[name]["pane"] == "price"
        assert lines[name]["values"] == list(getattr(bands, name)[-50:]), name

    _, other = await user_token(client, "other")
    await problem(await client.get(f"/api/v1/backtests/{bt}/candles", headers=bearer(other)), 404)
    body = await problem(await client.get(f"/api/v1/backtests/{bt}/candles?limit=5001", headers=headers), 422)
    assert body["errors"][0]["field"] == "limit"


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
    assert "ChartOut" in str(op["responses"]["200"])
    assert "ChartOut" in str(doc["paths"]["/api/v1/backtests/{id}/candles"]["get"]["responses"]["200"])
    assert not any(path == "/" or path.startswith("/bots") for path in doc["paths"])  # pages are not API


@pytest.mark.parametrize("path", ["/", "/login", "/register", "/forgot-password", "/reset-password?token=abc",
                                  "/keys", "/bots", "/bots/new", "/bots/12", "/bots/12/edit", "/backtests",
                                  "/backtests/3", "/overview", "/optimizations", "/optimizations/new",
                                  "/optimizations/7"])
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
