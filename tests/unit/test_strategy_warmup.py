"""The warm-up count a strategy asks for: a fresh live state over that many of the latest candles
decides like the full history (DESIGN.md, Strategies as plugins)."""

from __future__ import annotations

import numpy as np
import pytest

from tradebot.strategies import Candle, EmaCrossParams, EmaCrossState, decide, ema_cross_signals, get_strategy
from tradebot.strategies.ema_cross import WARMUP_TOLERANCE, ema_warmup_candles

MINUTE = 60_000


def test_known_counts() -> None:
    assert ema_warmup_candles(20) == 297
    assert ema_warmup_candles(500) == 7408
    assert ema_warmup_candles(1000) == 14816


@pytest.mark.parametrize("period", [2, 3, 5, 20, 137, 500, 999, 1000])
def test_the_seed_weight_falls_below_the_tolerance_at_the_count_and_not_before(period: int) -> None:
    decay = 1.0 - 2.0 / (period + 1)
    updates = ema_warmup_candles(period) - period
    assert decay**updates < WARMUP_TOLERANCE <= decay ** (updates - 1)


def test_the_count_grows_with_the_period_and_with_a_tighter_tolerance() -> None:
    counts = [ema_warmup_candles(p) for p in range(2, 1001)]
    assert counts == sorted(counts) and all(c > p for c, p in zip(counts, range(2, 1001), strict=True))
    assert ema_warmup_candles(50, 1e-15) > ema_warmup_candles(50) > ema_warmup_candles(50, 1e-6)


def test_bad_arguments_are_refused() -> None:
    for period in (0, -3, True):
        with pytest.raises(ValueError):
            ema_warmup_candles(period)
    for tolerance in (0.0, 1.0, -1e-3):
        with pytest.raises(ValueError):
            ema_warmup_candles(20, tolerance)


def test_the_registry_asks_the_strategy() -> None:
    strategy = get_strategy("ema_cross")
    for period in (2, 20, 1000):
        assert strategy.warmup_candles(EmaCrossParams(period, allow_short=True)) == ema_warmup_candles(period)


def _random_walk(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    # A long drift then a reversal: the full-history EMA is far from a short window's seed.
    steps = rng.normal(0.0, 0.002, n) + np.where(np.arange(n) < n - 3000, 0.0004, -0.0008)
    return np.asarray(100.0 * np.exp(np.cumsum(steps)), dtype=np.float64)


def _live_from(closes: np.ndarray, start: int, params: EmaCrossParams) -> tuple[list[int], list[float]]:
    """Targets and EMA values of a fresh live state fed closes[start:] (from candle `start` on)."""
    state = EmaCrossState.start(params)
    targets: list[int] = []
    values: list[float] = []
    for i in range(start, closes.shape[0]):
        c = float(closes[i])
        decision, state = decide(Candle(i * MINUTE, c, c, c, c, 1.0), state, params)
        targets.append(-128 if decision.target is None else int(decision.target))
        values.append(float("nan") if decision.ema is None else decision.ema)
    return targets, values


@pytest.mark.parametrize("period", [20, 500, 1000])
def test_a_fresh_state_over_the_warmup_decides_like_the_full_history(period: int) -> None:
    params = EmaCrossParams(period, allow_short=True)
    warmup = ema_warmup_candles(period)
    later = 3000
    closes = _random_walk(warmup + later + 5000, seed=period)
    full = ema_cross_signals(closes, params)
    start = closes.shape[0] - later - warmup  # the bot's warm-up read ends at candle n - later - 1
    targets, values = _live_from(closes, start, params)
    live_targets = np.array(targets[warmup:])
    live_values = np.array(values[warmup:])
    assert np.array_equal(live_targets, full.target[-later:])
    assert np.allclose(live_values, full.ema[-later:], rtol=WARMUP_TOLERANCE, atol=0.0)


def test_the_old_thousand_candle_warmup_was_not_enough_for_period_1000() -> None:
    params = EmaCrossParams(1000, allow_short=True)
    later = 3000
    closes = _random_walk(ema_warmup_candles(1000) + later + 5000, seed=1000)
    full = ema_cross_signals(closes, params)
    targets, _ = _live_from(closes, closes.shape[0] - later - 1000, params)
    assert not np.array_equal(np.array(targets[1000:]), full.target[-later:])
