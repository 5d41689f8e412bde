"""Hub pieces without a network: backoff policy, the candle queue, and the reconnect loop's timing
(driven by an injected clock, sleep and rng against a stand-in client that always fails to connect)."""

from __future__ import annotations

import asyncio
from typing import Any

import ccxt
import pytest

from tests.candle_queue import BoundedCandleQueue
from tradebot.backoff import Backoff
from tradebot.runtime.candles import Candle, timeframe_ms
from tradebot.runtime.market_data_hub import MarketDataHub


def candle(open_time: int) -> Candle:
    return Candle("BTC/USDT:USDT", "1m", open_time, 1.0, 2.0, 0.5, 1.5, 3.0)


def test_backoff_doubles_from_base_to_cap_with_full_jitter() -> None:
    b = Backoff(base=0.2, cap=10.0)
    assert [b.delay(n, lambda: 1.0) for n in range(8)] == [0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 10.0, 10.0]
    assert b.delay(3, lambda: 0.0) == 0.0
    assert b.delay(3, lambda: 0.5) == 0.8
    assert b.delay(10_000, lambda: 1.0) == 10.0  # no overflow however long the outage


def test_candle_close_time_and_timeframes() -> None:
    assert candle(120_000).close_time == 180_000
    assert timeframe_ms("4h") == 4 * 3_600_000
    with pytest.raises(ValueError, match="unsupported timeframe"):
        timeframe_ms("1M")


async def test_bounded_queue_drops_oldest_and_counts() -> None:
    q = BoundedCandleQueue(maxsize=3)
    for t in range(5):
        q.offer(candle(t))
    assert (len(q), q.dropped, q.offered) == (3, 2, 5)
    assert (await q.get()).open_time == 2
    assert [c.open_time for c in q.drain()] == [3, 4]
    with pytest.raises(asyncio.QueueEmpty):
        q.get_nowait()
    waiter = asyncio.create_task(q.get())
    await asyncio.sleep(0)
    q.offer(candle(9))
    assert (await asyncio.wait_for(waiter, 1)).open_time == 9
    with pytest.raises(ValueError):
        BoundedCandleQueue(maxsize=0)


class Unreachable:
    """A stand-in exchange client whose every call fails like a refused connection."""

    def __init__(self) -> None:
        self.calls = 0
        self.closed = False
        self.clients: dict[str, Any] = {}
        self.kline_tap: Any = None
        self.ack_tap: Any = None

    async def load_markets(self) -> None:
        self.calls += 1
        raise ccxt.NetworkError("connection refused")

    async def close(self) -> None:
        self.closed = True


class FakeTime:
    """Clock and sleep in one: a sleep advances the clock at once and records the delay."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []
        self.slept = asyncio.Event()

    def clock(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        self.sleeps.append(delay)
        self.now += delay
        self.slept.set()
        await asyncio.sleep(0)

    async def wait_sleeps(self, count: int) -> None:
        async with asyncio.timeout(5):
            while len(self.sleeps) < count:
                self.slept.clear()
                await self.slept.wait()


async def test_reconnects_back_off_exponentially_and_stop_when_unsubscribed() -> None:
    fake = Unreachable()
    t = FakeTime()
    hub = MarketDataHub(
        client_builder=lambda exchange, url: fake,
        clock=t.clock,
        sleep=t.sleep,
        rng=lambda: 1.0,
    )
    sub = hub.subscribe("BTC/USDT:USDT", "1m", BoundedCandleQueue())
    await t.wait_sleeps(8)
    assert t.sleeps[:8] == [0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 10.0, 10.0]
    assert hub.reconnects >= 8 and not sub.live.is_set()
    (status,) = hub.streams()
    assert status.state == "backoff" and status.last_error is not None and "connection refused" in status.last_error

    hub.unsubscribe(sub)
    (task,) = hub.tasks()
    await asyncio.wait_for(asyncio.wait([task]), 1)
    assert task.exception() is None and hub.tasks() == []
    await hub.close()
    assert fake.closed


async def test_backoff_resets_after_a_healthy_period() -> None:
    t = FakeTime()

    class HealthyThenFails(Unreachable):
        async def load_markets(self) -> None:
            self.calls += 1
            if self.calls == 4:
                t.now += 60.0  # this attempt "ran" healthily for a minute before it broke
            raise ccxt.NetworkError("dropped")

    fake = HealthyThenFails()
    hub = MarketDataHub(
        client_builder=lambda exchange, url: fake,
        clock=t.clock,
        sleep=t.sleep,
        rng=lambda: 1.0,
        healthy_after=30.0,
    )
    hub.subscribe("BTC/USDT:USDT", "1m", BoundedCandleQueue())
    await t.wait_sleeps(6)
    await hub.close()
    assert t.sleeps[:6] == [0.2, 0.4, 0.8, 0.2, 0.4, 0.8]


async def test_subscribe_rejects_unknown_exchange_and_timeframe() -> None:
    hub = MarketDataHub()
    with pytest.raises(ValueError):
        hub.subscribe("BTC/USDT:USDT", "1m", BoundedCandleQueue(), exchange="kraken")
    with pytest.raises(ValueError):
        hub.subscribe("BTC/USDT:USDT", "7m", BoundedCandleQueue())
    with pytest.raises(ValueError, match="unified symbol"):
        hub.subscribe("BTCUSDT", "1m", BoundedCandleQueue())
    assert hub.tasks() == []
    await hub.close()


def test_pages_are_sized_to_the_cheapest_weight_step() -> None:
    from tradebot.runtime.market_data_hub import REST_PAGE_LIMIT, page_for

    assert [page_for(n) for n in (-5, 1, 3, 99, 100, 499, 500, 1000, 5000)] == [
        99, 99, 99, 99, 499, 499, REST_PAGE_LIMIT, REST_PAGE_LIMIT, REST_PAGE_LIMIT]
