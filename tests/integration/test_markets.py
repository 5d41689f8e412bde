"""The market cache (ccxt against the simulator, real Redis) and GET /api/v1/markets through the real app."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from aiohttp import web
from pytest_aiohttp import AiohttpClient

from tests.integration.auth_helpers import Client, bearer, problem, user_token
from tests.simulator_helpers import SimControl, eventually
from tradebot.config import Secrets, Settings
from tradebot.exchange.errors import ExchangeError
from tradebot.exchange.markets import CcxtMarketLoader, MarketCache
from tradebot.exchange.simulator import RunningSimulator, SimulatorConfig
from tradebot.http.app import create_app
from tradebot.http.appkeys import MARKET_CACHE

pytest_plugins = ("tests.simulator_fixtures",)

SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT")


@pytest.fixture
def simulator_config() -> SimulatorConfig:
    return SimulatorConfig(port=0, mode="manual", history_candles=10, symbols=SYMBOLS)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def unreachable_redis() -> AsyncIterator[aioredis.Redis]:
    # Port 1: nothing listens there; every command fails at once with a connection error.
    client = aioredis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    yield client
    await client.aclose()


def new_cache(
    redis: aioredis.Redis, prefix: str, simulator: RunningSimulator, clock: FakeClock | None = None
) -> tuple[MarketCache, CcxtMarketLoader]:
    loader = CcxtMarketLoader(simulator.base_url)
    cache = MarketCache(redis, prefix, loader, clock=clock or FakeClock())
    return cache, loader


async def test_markets_load_through_ccxt_with_the_limits_bots_need(
    redis_client: aioredis.Redis, redis_prefix: str, simulator: RunningSimulator
) -> None:
    cache, loader = new_cache(redis_client, redis_prefix, simulator)
    markets = await cache.get_markets("futures")
    assert [m.symbol for m in markets] == sorted(f"{s[:-4]}/USDT:USDT" for s in SYMBOLS)
    btc = next(m for m in markets if m.id == "BTCUSDT")
    assert (btc.symbol, btc.base, btc.quote, btc.type) == ("BTC/USDT:USDT", "BTC", "USDT", "futures")
    assert (btc.amount_step, btc.amount_precision, btc.price_step, btc.price_precision) == (0.001, 3, 0.1, 1)
    assert (btc.min_amount, btc.min_notional) == (0.001, 100.0)
    # Binance publishes leverage brackets to signed requests only: unknown to a public load.
    assert btc.max_leverage is None and btc.leverage_allowed(20) and not btc.leverage_allowed(0)
    assert btc.round_amount_down(0.0019) == 0.001
    assert btc.round_amount_down(1.2345678) == 1.234
    assert btc.round_amount_down(0.3) == 0.3  # no binary-float surprise (0.3 / 0.001 = 299.99…)
    assert not btc.meets_minimums(0.001, 60_000) and btc.meets_minimums(0.002, 60_000)
    assert loader.exchange_loads == 1
    await cache.get_markets("futures")
    assert loader.exchange_loads == 1  # the in-process copy


async def test_resolve_symbol_normalises_what_users_type(
    redis_client: aioredis.Redis, redis_prefix: str, simulator: RunningSimulator
) -> None:
    cache, _ = new_cache(redis_client, redis_prefix, simulator)
    for text in ("BTCUSDT", "btcusdt", "BTC/USDT:USDT", "BTC/USDT", "btc/usdt", " BTC-USDT ", "btc_usdt"):
        resolved = await cache.resolve_symbol(text)
        assert resolved is not None and resolved.symbol == "BTC/USDT:USDT", text
    eth = await cache.resolve_symbol("ethusdt")
    assert eth is not None and eth.id == "ETHUSDT"
    for text in ("DOGEUSDT", "BTC/USDT:BTC", "BTC", "", "  "):
        assert await cache.resolve_symbol(text) is None, text


async def test_a_second_replica_reads_redis_not_the_exchange(
    redis_client: aioredis.Redis, redis_prefix: str, simulator: RunningSimulator
) -> None:
    first, first_loader = new_cache(redis_client, redis_prefix, simulator)
    loaded = await first.get_markets()
    key = f"{redis_prefix}:markets:futures"
    assert 3500 <= await redis_client.ttl(key) <= 3600

    second, second_loader = new_cache(redis_client, redis_prefix, simulator)
    assert await second.get_markets() == loaded
    assert (first_loader.exchange_loads, second_loader.exchange_loads) == (1, 0)
    assert second.redis_hits == 1


async def test_redis_down_serves_from_the_exchange_then_the_in_process_copy(
    unreachable_redis: aioredis.Redis, redis_prefix: str, simulator: RunningSimulator
) -> None:
    cache, loader = new_cache(unreachable_redis, redis_prefix, simulator)
    assert len(await cache.get_markets()) == len(SYMBOLS)
    assert (await cache.resolve_symbol("xrpusdt")) is not None
    assert loader.exchange_loads == 1 and cache.redis_errors >= 1


async def test_exchange_down_serves_the_stale_copy(
    redis_client: aioredis.Redis, redis_prefix: str, simulator: RunningSimulator, sim: SimControl
) -> None:
    clock = FakeClock()
    cache, loader = new_cache(redis_client, redis_prefix, simulator, clock)
    before = await cache.get_markets()
    clock.now += 7200  # the copy expired
    await redis_client.delete(f"{redis_prefix}:markets:futures")  # and so did Redis's
    await sim.faults(fail_next_requests=1000)
    assert await cache.get_markets() == before
    assert cache.stale_served == 1 and loader.exchange_loads == 2

    # With no copy at all, the failure is the caller's to see.
    empty, _ = new_cache(redis_client, f"{redis_prefix}-empty", simulator)
    with pytest.raises(ExchangeError):
        await empty.get_markets()


async def test_spot_is_empty_against_the_simulator_without_asking_it(
    redis_client: aioredis.Redis, redis_prefix: str, simulator: RunningSimulator
) -> None:
    cache, loader = new_cache(redis_client, redis_prefix, simulator)
    assert await cache.get_markets("spot") == []
    assert await cache.resolve_symbol("BTCUSDT", "spot") is None
    assert loader.exchange_loads == 0


async def test_background_refresh_warms_and_is_cancelled_at_close(
    redis_client: aioredis.Redis, redis_prefix: str, simulator: RunningSimulator
) -> None:
    cache, loader = new_cache(redis_client, redis_prefix, simulator)
    cache.start()
    try:

        async def warmed() -> bool:
            return await redis_client.get(f"{redis_prefix}:markets:futures") is not None

        await eventually(warmed)
    finally:
        await cache.close()
    assert loader.exchange_loads == 1
    assert not [t for t in asyncio.all_tasks() if t.get_name() == "market-cache-refresh"]


# ---- the route -------------------------------------------------------------------------------------------


@pytest.fixture
async def exchange_app(
    settings: Settings, test_secrets: Secrets, clean_db: str, redis_url: str, simulator: RunningSimulator
) -> web.Application:
    with_exchange = settings.model_copy(update={"exchange_url": simulator.base_url})
    return create_app(with_exchange, test_secrets, database_url=clean_db, redis_url=redis_url, replica_id="t")


@pytest.fixture
async def exchange_client(aiohttp_client: AiohttpClient, exchange_app: web.Application) -> Client:
    return await aiohttp_client(exchange_app)


async def test_get_markets_lists_the_cache_page_by_page(exchange_client: Client) -> None:
    _, token = await user_token(exchange_client)
    r = await exchange_client.get("/api/v1/markets", headers=bearer(token))
    assert r.status == 200, await r.text()
    body = await r.json()
    assert body["next_cursor"] is None
    assert [m["id"] for m in body["items"]] == ["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT"]
    btc = body["items"][0]
    assert {"symbol", "id", "base", "quote", "type", "max_leverage", "min_amount", "amount_precision"} <= set(btc)
    assert (btc["symbol"], btc["type"], btc["amount_precision"], btc["price_precision"]) == (
        "BTC/USDT:USDT",
        "futures",
        3,
        1,
    )

    seen: list[str] = []
    cursor: str | None = None
    while True:
        params = {"limit": "3", **({"cursor": cursor} if cursor else {})}
        r = await exchange_client.get("/api/v1/markets", params=params, headers=bearer(token))
        page = await r.json()
        seen += [m["id"] for m in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT"]

    r = await exchange_client.get("/api/v1/markets", params={"type": "spot"}, headers=bearer(token))
    assert (await r.json()) == {"items": [], "next_cursor": None}
    assert exchange_client.app[MARKET_CACHE] is not None


async def test_get_markets_rejects_bad_input_and_anonymous_callers(exchange_client: Client) -> None:
    _, token = await user_token(exchange_client)
    body = await problem(
        await exchange_client.get("/api/v1/markets", params={"type": "options"}, headers=bearer(token)), 422
    )
    assert body["errors"][0]["field"] == "type"
    body = await problem(
        await exchange_client.get("/api/v1/markets", params={"cursor": "!!"}, headers=bearer(token)), 422
    )
    await problem(await exchange_client.get("/api/v1/markets"), 401)


async def test_get_markets_without_an_exchange_is_503(client: Client) -> None:
    _, token = await user_token(client)
    await problem(await client.get("/api/v1/markets", headers=bearer(token)), 503)
