"""Shared warm-up reads: one request for concurrent starts of a market, reused while fresh."""

from __future__ import annotations

import asyncio

from tradebot.runtime.candles import Candle
from tradebot.runtime.history_cache import HistoryCache


class Exchange:
    def __init__(self) -> None:
        self.calls = 0
        self.fail = False
        self.gate = asyncio.Event()

    async def fetch(self, symbol: str, timeframe: str, since: int | None, limit: int) -> list[Candle]:
        self.calls += 1
        await self.gate.wait()
        if self.fail:
            raise ConnectionError("exchange unreachable")
        return [Candle(symbol, timeframe, 0, 1, 1, 1, 1, 1)]


async def test_concurrent_and_recent_reads_share_one_request() -> None:
    ex = Exchange()
    cache = HistoryCache(ex.fetch)
    reads = [asyncio.create_task(cache.latest("BTC/USDT:USDT", "1m", 1000)) for _ in range(50)]
    await asyncio.sleep(0)
    ex.gate.set()
    results = await asyncio.gather(*reads)
    assert ex.calls == 1 and all(r == results[0] for r in results)
    await cache.latest("BTC/USDT:USDT", "1m", 1000)
    assert ex.calls == 1  # still fresh
    await cache.latest("ETH/USDT:USDT", "1m", 1000)
    assert ex.calls == 2  # another market is another read


async def test_a_failed_read_is_shared_then_retried() -> None:
    ex = Exchange()
    ex.fail = True
    cache = HistoryCache(ex.fetch)
    reads = [asyncio.create_task(cache.latest("BTC/USDT:USDT", "1m", 10)) for _ in range(3)]
    await asyncio.sleep(0)
    ex.gate.set()
    outcomes = await asyncio.gather(*reads, return_exceptions=True)
    assert all(isinstance(o, ConnectionError) for o in outcomes) and ex.calls == 1
    ex.fail = False
    assert len(await cache.latest("BTC/USDT:USDT", "1m", 10)) == 1
    assert ex.calls == 2  # a failure is never served from the cache


async def test_stale_answers_are_read_again() -> None:
    ex = Exchange()
    ex.gate.set()
    cache = HistoryCache(ex.fetch, fresh_for_s=0.0)
    await cache.latest("BTC/USDT:USDT", "1m", 10)
    await cache.latest("BTC/USDT:USDT", "1m", 10)
    assert ex.calls == 2




class Series:
    """An exchange whose history is candles 0..n-1; each read answers the latest `limit`."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.limits: list[int] = []
        self.gate = asyncio.Event()
        self.gate.set()

    async def fetch(self, symbol: str, timeframe: str, since: int | None, limit: int) -> list[Candle]:
        self.limits.append(limit)
        await self.gate.wait()
        return [Candle(symbol, timeframe, t, 1, 1, 1, 1, 1) for t in range(max(0, self.n - limit), self.n)]


async def test_a_longer_read_serves_a_shorter_one() -> None:
    ex = Series(20_000)
    cache = HistoryCache(ex.fetch)
    ex.gate.clear()
    long_read = asyncio.create_task(cache.latest("BTC/USDT:USDT", "1m", 14_816))
    await asyncio.sleep(0)
    short_read = asyncio.create_task(cache.latest("BTC/USDT:USDT", "1m", 297))  # while the long one is in flight
    await asyncio.sleep(0)
    ex.gate.set()
    long, short = await asyncio.gather(long_read, short_read)
    assert ex.limits == [14_816]
    assert [c.open_time for c in short] == list(range(20_000 - 297, 20_000))
    assert [c.open_time for c in long] == list(range(20_000 - 14_816, 20_000))
    again = await cache.latest("BTC/USDT:USDT", "1m", 7408)  # after it, while fresh
    assert ex.limits == [14_816] and [c.open_time for c in again] == list(range(20_000 - 7408, 20_000))


async def test_a_shorter_read_does_not_serve_a_longer_one() -> None:
    ex = Series(20_000)
    cache = HistoryCache(ex.fetch)
    assert len(await cache.latest("BTC/USDT:USDT", "1m", 297)) == 297
    assert len(await cache.latest("BTC/USDT:USDT", "1m", 14_816)) == 14_816
    assert ex.limits == [297, 14_816]
    assert len(await cache.latest("BTC/USDT:USDT", "1m", 1000)) == 1000  # the longer one serves it now
    assert ex.limits == [297, 14_816]


async def test_a_sharer_reads_again_when_the_bot_whose_read_it_shared_is_stopped() -> None:
    # A failover stops bots mid-start: cancelling the one whose read others share must not end them.
    ex = Exchange()
    cache = HistoryCache(ex.fetch)
    reader = asyncio.create_task(cache.latest("BTC/USDT:USDT", "1m", 10))
    await asyncio.sleep(0)
    sharer = asyncio.create_task(cache.latest("BTC/USDT:USDT", "1m", 10))
    await asyncio.sleep(0)
    reader.cancel()
    await asyncio.sleep(0)
    ex.gate.set()
    assert len(await sharer) == 1 and ex.calls == 2
    assert reader.cancelled()


async def test_a_sharer_that_is_cancelled_itself_stays_cancelled() -> None:
    ex = Exchange()
    cache = HistoryCache(ex.fetch)
    reader = asyncio.create_task(cache.latest("BTC/USDT:USDT", "1m", 10))
    await asyncio.sleep(0)
    sharer = asyncio.create_task(cache.latest("BTC/USDT:USDT", "1m", 10))
    await asyncio.sleep(0)
    sharer.cancel()
    reader.cancel()
    results = await asyncio.gather(sharer, reader, return_exceptions=True)
    assert all(isinstance(r, asyncio.CancelledError) for r in results) and ex.calls == 1
