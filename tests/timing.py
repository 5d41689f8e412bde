"""Time in tests: poll for a condition with a deadline, and a clock the test moves by hand."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, overload

T = TypeVar("T")


@overload
async def eventually(
    probe: Callable[[], Awaitable[T]], *, timeout: float = ..., interval: float = ..., what: str = ...
) -> T: ...


@overload
async def eventually(
    probe: Callable[[], T], *, timeout: float = ..., interval: float = ..., what: str = ...
) -> T: ...


async def eventually(
    probe: Callable[[], Any],
    *,
    timeout: float = 10.0,
    interval: float = 0.02,
    what: str = "condition",
) -> Any:
    """Poll `probe` (plain or async) until it returns something truthy, and return that; never a
    fixed sleep. Fails the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        outcome = probe()
        last = await outcome if inspect.isawaitable(outcome) else outcome
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")
        await asyncio.sleep(interval)


class ManualClock:
    """A clock (tradebot.runtime.clock.Clock, and callable as a `() -> float` time source) that
    only moves when the test moves it.

    `now` is its monotonic time in seconds; the wall time is `now` in ms unless `wall_ms` pins it.
    `sleep` records what was asked in `slept`, moves `now` on by that much and yields to the loop
    once, so restart backoffs and deadlines are exercised without waiting.

    `real_time=True` keeps only the wall time manual: `monotonic` and `sleep` are the real ones
    (sleeps capped at 10 ms), for a runtime whose loops must keep running against real Redis
    leases while the test moves the date.
    """

    def __init__(self, now: float = 1000.0, *, wall_ms: int | None = None, real_time: bool = False) -> None:
        self.now = now
        self.wall_ms = wall_ms
        self.slept: list[float] = []
        self._real_time = real_time

    def __call__(self) -> float:
        return self.monotonic()

    def now_ms(self) -> int:
        return self.wall_ms if self.wall_ms is not None else int(self.now * 1000)

    def advance_wall(self, ms: int) -> None:
        self.wall_ms = self.now_ms() + ms

    def monotonic(self) -> float:
        return time.monotonic() if self._real_time else self.now

    async def sleep(self, seconds: float) -> None:
        if self._real_time:
            await asyncio.sleep(min(seconds, 0.01))
            return
        self.slept.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)
