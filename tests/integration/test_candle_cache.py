"""The PostgreSQL candle cache and the history loader against the exchange simulator through ccxt."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import numpy as np
import pytest
from ccxt.async_support.base.exchange import Exchange

from tests.integration.backtests_helpers import MINUTE_MS, T0, walk_candles
from tests.simulator_helpers import SimControl
from tradebot.backtests.candle_cache import CandleCache, subtract_ranges
from tradebot.backtests.errors import HistoryUnavailable
from tradebot.backtests.history import HistoryLoader
from tradebot.exchange.simulator import SimulatorConfig

pytest_plugins = ("tests.simulator_fixtures",)

EX, SYM = "binanceusdm", "BTC/USDT:USDT"
DAY_MS = 86_400_000


@pytest.fixture
def simulator_config() -> SimulatorConfig:
    return SimulatorConfig(port=0, mode="manual", history_candles=10)


async def no_sleep(_: float) -> None:
    await asyncio.sleep(0)


def loader_for(pool: asyncpg.Pool, exchange: Exchange) -> HistoryLoader:
    return HistoryLoader(CandleCache(pool), lambda: exchange, sleep=no_sleep)


def test_subtract_ranges() -> None:
    assert subtract_ranges((0, 100), []) == [(0, 100)]
    assert subtract_ranges((0, 100), [(0, 100)]) == []
    assert subtract_ranges((0, 100), [(-50, 500)]) == []
    assert subtract_ranges((0, 100), [(10, 20), (30, 40)]) == [(0, 10), (20, 30), (40, 100)]
    assert subtract_ranges((0, 100), [(-10, 20), (20, 30), (90, 200)]) == [(30, 90)]
    assert subtract_ranges((50, 60), [(0, 10), (100, 110)]) == [(50, 60)]


async def test_store_and_load_round_trip_exactly(pool: asyncpg.Pool) -> None:
    cache = CandleCache(pool)
    rows = [[T0 + i * MINUTE_MS, 1e-8 * (i + 1), 2e6 + i, 1e-9, 0.1 + 0.2, 123.456 * i] for i in range(5)]
    await cache.store(EX, SYM, "1m", rows)
    await cache.store(EX, SYM, "1m", rows[:2])  # stored again: kept once
    got = await cache.load(EX, SYM, "1m", T0, T0 + 5 * MINUTE_MS)
    assert got is not None and len(got) == 5
    assert got.ts.tolist() == [r[0] for r in rows]
    for k, name in enumerate(("open", "high", "low", "close", "volume"), start=1):
        assert getattr(got, name).tolist() == [r[k] for r in rows]  # bit for bit
    half_open = await cache.load(EX, SYM, "1m", T0 + MINUTE_MS, T0 + 3 * MINUTE_MS)
    assert half_open is not None and half_open.ts.tolist() == [T0 + MINUTE_MS, T0 + 2 * MINUTE_MS]
    assert await cache.load(EX, SYM, "5m", T0, T0 + 5 * MINUTE_MS) is None
    assert await cache.load(EX, "ETH/USDT:USDT", "1m", T0, T0 + 5 * MINUTE_MS) is None


async def test_coverage_ranges_merge(pool: asyncpg.Pool) -> None:
    cache = CandleCache(pool)
    await cache.mark_covered(EX, SYM, "1m", 0, 10)
    await cache.mark_covered(EX, SYM, "1m", 20, 30)
    assert await cache.covered(EX, SYM, "1m", 0, 100) == [(0, 10), (20, 30)]
    assert await cache.missing(EX, SYM, "1m", 5, 40) == [(10, 20), (30, 40)]
    await cache.mark_covered(EX, SYM, "1m", 10, 20)  # touches both: one range remains
    assert await cache.covered(EX, SYM, "1m", 0, 100) == [(0, 30)]
    await cache.mark_covered(EX, SYM, "1m", 5, 25)  # inside: nothing changes
    assert await cache.covered(EX, SYM, "1m", 0, 100) == [(0, 30)]
    assert await cache.covered(EX, SYM, "5m", 0, 100) == []


async def test_loader_pages_then_serves_from_the_cache(
    pool: asyncpg.Pool, sim: SimControl, public_exchange: Exchange
) -> None:
    candles = walk_candles(2500)
    await sim.push_klines("BTCUSDT", "1m", candles)
    loader = loader_for(pool, public_exchange)
    end = T0 + 2500 * MINUTE_MS
    history = await loader.load(EX, SYM, "1m", T0, end)
    assert history.count == history.expected == 2500 and history.missing == 0
    assert history.candles is not None
    assert np.array_equal(history.candles.close, np.array([c[4] for c in candles]))
    assert loader.stats.exchange_requests == 3 and loader.stats.candles_downloaded == 2500
    again = await loader.load(EX, SYM, "1m", T0 + 7 * MINUTE_MS, end - 3 * MINUTE_MS)
    assert again.count == 2490 and loader.stats.exchange_requests == 3
    # A wider range asks only for the two missing ends (both empty on the exchange: a gap, counted).
    wider = await loader.load(EX, SYM, "1m", T0 - 100 * MINUTE_MS, end + 100 * MINUTE_MS)
    assert (wider.count, wider.expected, wider.missing) == (2500, 2700, 200)
    assert loader.stats.exchange_requests == 5
    # ...and the gaps are covered now: not asked for again.
    await loader.load(EX, SYM, "1m", T0 - 100 * MINUTE_MS, end + 100 * MINUTE_MS)
    assert loader.stats.exchange_requests == 5


async def test_a_start_between_candles_begins_at_the_next_one(
    pool: asyncpg.Pool, sim: SimControl, public_exchange: Exchange
) -> None:
    await sim.push_klines("BTCUSDT", "1m", walk_candles(10))
    history = await loader_for(pool, public_exchange).load(EX, SYM, "1m", T0 + 30_000, T0 + 5 * MINUTE_MS + 1)
    assert history.candles is not None
    assert history.candles.ts.tolist() == [T0 + i * MINUTE_MS for i in range(1, 6)]
    assert history.expected == 5


async def test_only_closed_candles_are_taken_or_cached(
    pool: asyncpg.Pool, sim: SimControl, public_exchange: Exchange
) -> None:
    today = int(time.time() * 1000) // DAY_MS * DAY_MS
    # Ten closed days and today's candle, which is still forming (as a real exchange serves it).
    days = walk_candles(11, start_ms=today - 10 * DAY_MS, step_ms=DAY_MS)
    await sim.push_klines("BTCUSDT", "1d", days)
    cache = CandleCache(pool)
    loader = HistoryLoader(cache, lambda: public_exchange, sleep=no_sleep)
    history = await loader.load(EX, SYM, "1d", today - 10 * DAY_MS, today + DAY_MS)
    assert history.candles is not None and history.candles.ts[-1] == today - DAY_MS
    assert history.count == history.expected == 10
    assert await cache.covered(EX, SYM, "1d", 0, 2**62) == [(today - 10 * DAY_MS, today)]
    assert await cache.load(EX, SYM, "1d", today, today + DAY_MS) is None


async def test_a_range_entirely_in_the_future_has_nothing(
    pool: asyncpg.Pool, sim: SimControl, public_exchange: Exchange
) -> None:
    today = int(time.time() * 1000) // DAY_MS * DAY_MS
    history = await loader_for(pool, public_exchange).load(EX, SYM, "1d", today + 2 * DAY_MS, today + 5 * DAY_MS)
    assert history.candles is None and history.expected == 0


async def test_transient_exchange_errors_are_retried(
    pool: asyncpg.Pool, sim: SimControl, public_exchange: Exchange
) -> None:
    await sim.push_klines("BTCUSDT", "1m", walk_candles(100))
    await public_exchange.load_markets()
    await sim.faults(fail_next_requests=2)
    loader = loader_for(pool, public_exchange)
    history = await loader.load(EX, SYM, "1m", T0, T0 + 100 * MINUTE_MS)
    assert history.count == 100
    assert loader.stats.exchange_requests == 3


async def test_an_exchange_that_keeps_failing_is_history_unavailable(
    pool: asyncpg.Pool, sim: SimControl, public_exchange: Exchange
) -> None:
    await sim.push_klines("BTCUSDT", "1m", walk_candles(100))
    await public_exchange.load_markets()
    await sim.faults(fail_next_requests=50)
    cache = CandleCache(pool)
    with pytest.raises(HistoryUnavailable, match="did not answer"):
        await HistoryLoader(cache, lambda: public_exchange, sleep=no_sleep).load(
            EX, SYM, "1m", T0, T0 + 100 * MINUTE_MS
        )
    assert await cache.covered(EX, SYM, "1m", 0, 2**62) == []  # nothing claimed as downloaded


async def test_concurrent_loads_of_one_range_agree(
    pool: asyncpg.Pool, sim: SimControl, public_exchange: Exchange
) -> None:
    await sim.push_klines("BTCUSDT", "1m", walk_candles(1200))
    cache = CandleCache(pool)
    loaders = [HistoryLoader(cache, lambda: public_exchange, sleep=no_sleep) for _ in range(3)]
    results = await asyncio.gather(*(ld.load(EX, SYM, "1m", T0, T0 + 1200 * MINUTE_MS) for ld in loaders))
    assert all(h.count == 1200 for h in results)
    assert await cache.covered(EX, SYM, "1m", 0, 2**62) == [(T0, T0 + 1200 * MINUTE_MS)]
    assert await pool.fetchval("SELECT count(*) FROM candles") == 1200


def _month_open(year: int, month: int) -> int:
    import datetime as dt

    y, m = divmod(month - 1, 12)
    return int(dt.datetime(year + y, m + 1, 1, tzinfo=dt.UTC).timestamp() * 1000)


async def test_monthly_candles_load_and_cache_on_calendar_months(
    pool: asyncpg.Pool, sim: SimControl, public_exchange: Exchange
) -> None:
    """1M candles are 28-31 days apart: the loader steps, counts and caches them by calendar month."""
    opens = [_month_open(2023, m) for m in range(1, 25)]  # 2023-01 .. 2024-12, February 2024 has 29 days
    rows = [[t, 100.0 + i, 101.0 + i, 99.0 + i, 100.5 + i, 1.0] for i, t in enumerate(opens)]
    await sim.push_klines("BTCUSDT", "1M", rows)
    cache = CandleCache(pool)
    loader = HistoryLoader(cache, lambda: public_exchange, sleep=no_sleep)
    # From mid-January 2023 to mid-December 2024: February 2023 .. December 2024 open in the range.
    start, end = opens[0] + 15 * DAY_MS, opens[-1] + 10 * DAY_MS
    history = await loader.load(EX, SYM, "1M", start, end)
    assert history.candles is not None
    assert history.candles.ts.tolist() == opens[1:]
    assert history.count == history.expected == 23 and history.missing == 0
    assert await cache.covered(EX, SYM, "1M", 0, 2**62) == [(opens[1], end)]
    requests = loader.stats.exchange_requests
    again = await loader.load(EX, SYM, "1M", opens[13], opens[14] + 1)  # 2024-02 and 2024-03
    assert again.candles is not None and again.candles.ts.tolist() == opens[13:15]
    assert again.expected == 2 and loader.stats.exchange_requests == requests
