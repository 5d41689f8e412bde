"""The simulator's one clock, and the random walk closing candles by it (pure, injected wall clock)."""

from __future__ import annotations

from tradebot.exchange.simulator.candles import BASE_INTERVAL_MS, RandomWalk
from tradebot.exchange.simulator.markets import market_spec
from tradebot.exchange.simulator.simclock import SimulatedClock, speed_for

START = 1_700_000_000_000 - 1_700_000_000_000 % BASE_INTERVAL_MS


class Wall:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> int:
        return self.now


def test_manual_mode_is_the_wall_clock_and_random_walk_runs_sixty_over_candle_seconds() -> None:
    wall = Wall()
    clock = SimulatedClock(wall)
    wall.now += 5_000
    assert clock.now() == wall.now
    clock.run_fast(speed_for(3.0))  # one 1m candle per 3 s: 20x
    wall.now += 300_000  # five minutes of wall time
    assert clock.now() == START + 5_000 + 20 * 300_000


def test_the_clock_never_runs_backwards_across_mode_and_pace_changes() -> None:
    wall = Wall()
    clock = SimulatedClock(wall)
    clock.run_fast(speed_for(1.0))  # 60x
    wall.now += 1_000
    fast = clock.now()
    assert fast == START + 60_000
    clock.run_fast(speed_for(60.0))  # a pace change re-anchors where the clock stands
    assert clock.now() == fast
    clock.follow_wall()
    assert clock.now() == wall.now  # manual mode: the wall clock
    clock.run_fast(speed_for(60.0))  # resumes from where the fast clock stopped, which is later
    assert clock.now() == fast
    wall.now += 10_000
    assert clock.now() == fast + 10_000


def test_the_walk_closes_candles_when_the_clock_passes_their_end_and_fills_skipped_ones() -> None:
    walk = RandomWalk({"BTCUSDT": market_spec("BTCUSDT")}, seed=1, start_ms=START, history=3)
    assert walk.advance_to("BTCUSDT", START + BASE_INTERVAL_MS - 1) == []
    walk.step("BTCUSDT")
    [closed] = walk.advance_to("BTCUSDT", START + BASE_INTERVAL_MS)
    assert closed.open_time == START and closed.closed
    # Five minutes later: the four candles in between are closed too, each with a price path.
    skipped = walk.advance_to("BTCUSDT", START + 6 * BASE_INTERVAL_MS + 1)
    assert [c.open_time for c in skipped] == [START + i * BASE_INTERVAL_MS for i in range(1, 6)]
    assert all(c.trades > 0 for c in skipped[1:])
    assert walk.forming("BTCUSDT").open_time == START + 6 * BASE_INTERVAL_MS
