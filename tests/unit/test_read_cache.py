"""The exchange read cache: one read in flight per key, answers kept `ttl_s`, failures `error_ttl_s`."""

from __future__ import annotations

import asyncio

from tradebot.exchange.read_cache import ReadCache


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_concurrent_callers_share_one_read_and_answers_expire() -> None:
    clock = Clock()
    cache: ReadCache[str, int] = ReadCache(ttl_s=30, error_ttl_s=5, clock=clock)
    calls = 0
    gate = asyncio.Event()

    async def read() -> int:
        nonlocal calls
        calls += 1
        await gate.wait()
        return calls

    waiting = [asyncio.create_task(cache.get("k", read)) for _ in range(5)]
    await asyncio.sleep(0)
    gate.set()
    assert [e.value for e in await asyncio.gather(*waiting)] == [1] * 5
    clock.now = 29.9
    assert (await cache.get("k", read)).value == 1 and calls == 1
    clock.now = 30.0
    assert (await cache.get("k", read)).value == 2


async def test_a_failure_is_kept_briefly_and_never_becomes_a_value() -> None:
    clock = Clock()
    cache: ReadCache[str, int] = ReadCache(ttl_s=30, error_ttl_s=5, clock=clock)
    calls = 0

    async def failing() -> int:
        nonlocal calls
        calls += 1
        raise ConnectionError("down")

    first = await cache.get("k", failing)
    assert first.value is None and isinstance(first.error, ConnectionError)
    clock.now = 4.9
    await cache.get("k", failing)
    assert calls == 1
    clock.now = 5.0
    await cache.get("k", failing)
    assert calls == 2


async def test_the_oldest_entry_goes_when_full() -> None:
    cache: ReadCache[int, int] = ReadCache(ttl_s=30, error_ttl_s=5, max_entries=2, clock=Clock())
    reads: list[int] = []

    async def read(k: int) -> int:
        reads.append(k)
        return k

    for k in (1, 2, 3, 2, 1):
        await cache.get(k, lambda k=k: read(k))  # type: ignore[misc]
    assert reads == [1, 2, 3, 1]
