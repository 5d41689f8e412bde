"""The simulator's one clock: the wall clock in manual mode, a faster one in random-walk mode.

In random-walk mode one base candle (1m) passes every `candle_seconds` real seconds, so simulated time
runs (60 ÷ candle_seconds) times faster than the wall clock, and `/fapi/v1/time`, event times and
candle times all read this clock. It never runs backwards across mode changes: resuming the random
walk starts from the later of the wall clock and where the walk stopped. Signed requests' timestamps
are checked against the wall clock instead (a client stamps them with its own clock).
"""

from __future__ import annotations

from collections.abc import Callable

from tradebot.exchange.simulator.candles import BASE_INTERVAL_MS


def speed_for(candle_seconds: float) -> float:
    """How many simulated milliseconds pass per wall-clock millisecond at `candle_seconds` per candle."""
    return BASE_INTERVAL_MS / (candle_seconds * 1000)


class SimulatedClock:
    """Epoch milliseconds in simulated time, anchored to the wall clock whenever the pace changes."""

    def __init__(self, wall: Callable[[], int]) -> None:
        self._wall = wall
        now = wall()
        self._fast = False
        self._speed = 1.0
        self._anchor_wall = now
        self._anchor_sim = now
        self._stopped_at = now

    def now(self) -> int:
        wall = self._wall()
        if not self._fast:
            return wall
        return self._anchor_sim + int((wall - self._anchor_wall) * self._speed)

    def run_fast(self, speed: float) -> None:
        """Random-walk mode (entered, or its pace changed): time runs at `speed` from here on."""
        start = self.now() if self._fast else max(self._wall(), self._stopped_at)
        self._anchor_wall = self._wall()
        self._anchor_sim = start
        self._speed = speed
        self._fast = True

    def follow_wall(self) -> None:
        """Manual mode: the wall clock; where the fast clock stood is kept for the next `run_fast`."""
        if self._fast:
            self._stopped_at = self.now()
        self._fast = False
