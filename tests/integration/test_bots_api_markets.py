"""Bot symbols and leverage checked against the real market cache (ccxt against the simulator)."""

from __future__ import annotations

import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpClient

from tests.integration.auth_helpers import Client, problem
from tests.integration.bots_helpers import new_user, settings_for
from tradebot.config import Secrets, Settings
from tradebot.exchange.simulator import RunningSimulator, SimulatorConfig
from tradebot.http.app import create_app

pytest_plugins = ("tests.simulator_fixtures",)


@pytest.fixture
def simulator_config() -> SimulatorConfig:
    return SimulatorConfig(port=0, mode="manual", history_candles=10, symbols=("BTCUSDT", "ETHUSDT"))


@pytest.fixture
async def exchange_app(
    settings: Settings, test_secrets: Secrets, clean_db: str, redis_url: str, simulator: RunningSimulator
) -> web.Application:
    with_exchange = settings.model_copy(update={"exchange_url": simulator.base_url})
    return create_app(with_exchange, test_secrets, database_url=clean_db, redis_url=redis_url, replica_id="t")


@pytest.fixture
async def exchange_client(aiohttp_client: AiohttpClient, exchange_app: web.Application) -> Client:
    return await aiohttp_client(exchange_app)


async def test_symbols_are_normalised_through_the_market_cache(exchange_client: Client) -> None:
    alice = await new_user(exchange_client, "alice")
    for spelled in ("BTCUSDT", "btcusdt", "BTC/USDT:USDT", "BTC/USDT"):
        r = await exchange_client.post("/api/v1/bots", json=settings_for(alice, symbol=spelled), headers=alice.headers)
        assert r.status == 201, await r.text()
        assert (await r.json())["symbol"] == "BTC/USDT:USDT"
    for unknown in ("DOGEUSDT", "BTC/USDT:BTC", "   "):
        r = await exchange_client.post("/api/v1/bots", json=settings_for(alice, symbol=unknown), headers=alice.headers)
        body = await problem(r, 422)
        assert [e["field"] for e in body["errors"]] == ["symbol"]


async def test_leverage_is_bounded_by_the_markets_maximum(exchange_client: Client) -> None:
    alice = await new_user(exchange_client, "alice")
    markets = await (await exchange_client.get("/api/v1/markets?limit=500", headers=alice.headers)).json()
    ceiling = next(m["max_leverage"] for m in markets["items"] if m["id"] == "ETHUSDT") or 125
    r = await exchange_client.post(
        "/api/v1/bots", json=settings_for(alice, symbol="ETHUSDT", leverage=ceiling), headers=alice.headers
    )
    assert r.status == 201, await r.text()
    bot = await r.json()
    if ceiling < 125:
        r = await exchange_client.post(
            "/api/v1/bots", json=settings_for(alice, symbol="ETHUSDT", leverage=ceiling + 1), headers=alice.headers
        )
        body = await problem(r, 422)
        assert [e["field"] for e in body["errors"]] == ["leverage"]
        r = await exchange_client.patch(f"/api/v1/bots/{bot['id']}", json={"leverage": ceiling + 1},
                                        headers=alice.headers)
        await problem(r, 422)


async def test_without_market_data_creation_is_503_not_a_guess(client: Client) -> None:
    # The plain test app has no exchange configured, so no market cache: nothing can vouch for a symbol.
    alice = await new_user(client, "alice")
    r = await client.post("/api/v1/bots", json=settings_for(alice), headers=alice.headers)
    await problem(r, 503)
    assert "Retry-After" in r.headers
