"""Vectorised sweeps: the 2-D EMA equals the 1-D one bit for bit, batched signals equal single
ones, and every trial's figures equal a single backtest's with the same parameters."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from tradebot.strategies import BacktestSettings, Candles, get_strategy, run_backtest, strategy_names
from tradebot.strategies.ema import ema, ema_rows
from tradebot.strategies.ema_cross import EmaCrossParams
from tradebot.strategies.ema_crossover import EmaCrossoverParams
from tradebot.strategies.sweep import RATIO_CAP, BatchSignals, figures_of, objective_value, sweep


def walk(n: int, seed: int = 7, flat_from: int | None = None) -> Candles:
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 2e-3, n)))
    if flat_from is not None:
        close[flat_from:] = close[flat_from]  # ties: the EMA meets the close exactly
    open_ = np.concatenate(([100.0], close[:-1]))
    high = np.maximum(open_, close) * 1.001
    low = np.minimum(open_, close) * 0.999
    ts = 1_700_000_000_000 + np.arange(n, dtype=np.int64) * 60_000
    return Candles.from_arrays(ts, open_, high, low, close, np.ones(n))


@pytest.mark.parametrize("n", [0, 1, 4, 5, 1023, 1025, 70_001])
def test_ema_rows_equal_ema_bit_for_bit(n: int) -> None:
    x = walk(max(n, 1)).close[:n]
    periods = [2, 3, 5, 6, 7, 20, 64, 1000]
    rows = ema_rows(x, periods)
    assert rows.shape == (len(periods), n)
    for row, period in zip(rows, periods, strict=True):
        assert np.array_equal(row, ema(x, period), equal_nan=True), period


def test_ema_rows_keep_a_flat_market_exact() -> None:
    x = np.full(3000, 123.456)
    rows = ema_rows(x, [2, 10, 200])
    assert np.all(rows[:, 199:] == 123.456)


@pytest.mark.parametrize("allow_short", [False, True])
def test_batched_signals_equal_single_ones(allow_short: bool) -> None:
    candles = walk(20_000, flat_from=15_000)
    cross = get_strategy("ema_cross")
    assert isinstance(cross, BatchSignals)
    params_c = [EmaCrossParams(p, allow_short) for p in (2, 9, 20, 21, 150)]
    for p, got in zip(params_c, cross.signals_batch(candles, params_c), strict=True):
        want = cross.signals(candles, p)
        assert np.array_equal(got.target, want.target) and np.array_equal(got.ema, want.ema, equal_nan=True)
    over = get_strategy("ema_crossover")
    assert isinstance(over, BatchSignals)
    params_o = [EmaCrossoverParams(f, s, allow_short) for f, s in ((2, 3), (5, 20), (12, 26), (20, 300))]
    for p2, got in zip(params_o, over.signals_batch(candles, params_o), strict=True):
        want = over.signals(candles, p2)
        assert np.array_equal(got.target, want.target) and np.array_equal(got.ema, want.ema, equal_nan=True)


def _grid(strategy: str) -> list[dict[str, Any]]:
    if strategy == "ema_cross":
        return [{"ema_period": p, "allow_short": s, "order_size_pct": o}
                for p in (3, 10, 40) for s in (False, True) for o in (10.0, 50.0)]  # fmt: skip
    if strategy == "ema_crossover":
        return [{"fast_period": f, "slow_period": s, "leverage": 2.0} for f, s in ((3, 8), (5, 30), (12, 26))]
    return [{}, {"allow_short": True, "stop_loss_pct": 1.0, "take_profit_pct": 2.0}]


@pytest.mark.parametrize("strategy", strategy_names())
def test_every_trial_equals_its_backtest(strategy: str) -> None:
    candles = walk(6000)
    trials = _grid(strategy)
    got = sweep(candles, strategy, trials, timeframe="1m", initial_balance=5000.0, fee_rate=0.0004,
                slippage_bps=2.0, batch=4)  # fmt: skip
    assert len(got) == len(trials)
    for trial, figures in zip(trials, got, strict=True):
        sizing = {k: v for k, v in trial.items() if k in ("order_size_pct", "leverage", "stop_loss_pct",
                                                           "take_profit_pct")}  # fmt: skip
        params = {k: v for k, v in trial.items() if k not in sizing}
        settings = BacktestSettings(initial_balance=5000.0, fee_rate=0.0004, slippage_bps=2.0, **sizing)
        want = figures_of(run_backtest(candles, settings, strategy=strategy, params=params, timeframe="1m"))
        assert figures == want, trial  # exact: the same arithmetic on the same targets


def test_figures_ratios() -> None:
    candles = walk(3000)
    (figures,) = sweep(candles, "ema_cross", [{"ema_period": 5}], timeframe="1m", initial_balance=1000.0)
    assert figures.trades_count > 10
    assert 0.0 < figures.profit_factor < RATIO_CAP
    assert figures.calmar == pytest.approx(figures.return_pct / figures.max_drawdown_pct)
    assert objective_value(figures, "sharpe") == figures.sharpe
    five = np.full(100, 5.0)
    flat = Candles.from_arrays(np.arange(100, dtype=np.int64) * 60_000, five, five, five, five, np.ones(100))
    (none,) = sweep(flat, "ema_cross", [{"ema_period": 5}], timeframe="1m", initial_balance=1000.0)
    assert (none.trades_count, none.profit_factor, none.calmar) == (0, 0.0, 0.0)
    with pytest.raises(ValueError):
        objective_value(figures, "nope")
