"""The client-side bucket every ccxt client gets: background reads spend only what orders do not need."""

from __future__ import annotations

import asyncio

from tradebot.exchange.rate_limit import TimeCreditingThrottler


def _throttler(tokens: float, refill_per_ms: float) -> TimeCreditingThrottler:
    t = TimeCreditingThrottler({"refillRate": refill_per_ms, "delay": 0.001, "capacity": 20.0, "cost": 1.0})
    t.config["tokens"] = tokens
    return t


async def test_a_background_read_waits_until_it_leaves_the_reserve() -> None:
    throttler = _throttler(tokens=0.0, refill_per_ms=1.0)  # 1 weight a millisecond
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        await asyncio.sleep(seconds)

    await throttler.spare(cost=5.0, reserve=12.0, sleep=sleep)
    assert waits, "it went out with an empty bucket"
    assert throttler.config["tokens"] >= 17.0


async def test_a_background_read_with_spare_weight_goes_at_once() -> None:
    throttler = _throttler(tokens=20.0, refill_per_ms=0.02)
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    await throttler.spare(cost=5.0, reserve=12.0, sleep=sleep)
    assert waits == []


async def test_a_queued_order_goes_before_a_background_read() -> None:
    throttler = _throttler(tokens=20.0, refill_per_ms=1.0)
    order = asyncio.get_running_loop().create_future()
    throttler.queue.append((order, 1.0))
    waited = 0

    async def sleep(seconds: float) -> None:
        nonlocal waited
        waited += 1
        throttler.queue.popleft()  # the bucket's loop sends the order meanwhile
        await asyncio.sleep(0)

    await throttler.spare(cost=5.0, reserve=12.0, sleep=sleep)
    assert waited == 1
