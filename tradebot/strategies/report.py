"""Backtest results: the entry point :func:`run_backtest`, the summary metrics and the equity-curve
downsampling used by the API and the CLI."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from tradebot.strategies.backtest import BacktestSettings, Simulation, TradeLog, simulate
from tradebot.strategies.base import ParameterError, Signals, check_timeframe, get_strategy
from tradebot.strategies.candles import Candles
from tradebot.strategies.metrics import max_drawdown_pct, sharpe_ratio
from tradebot.timeframes import NOMINAL_MS

__all__ = [
    "BacktestResult",
    "downsample",
    "max_drawdown_pct",
    "periods_per_year",
    "run_backtest",
    "sharpe_ratio",
    "split_parameters",
    "summarize",
]


@dataclass(frozen=True, slots=True)
class BacktestResult:
    """A finished backtest. Percentages are in percent (``12.5`` = 12.5 %).

    - ``trades_count``: round trips (a position open at the end is closed at the last close);
      ``win_rate``: the fraction 0-1 of them with a positive PnL after both fees (0 if none).
    - ``max_drawdown_pct``: the largest fall of the marked-to-market equity from its running peak,
      in percent of that peak (a positive number).
    - ``sharpe``: mean / sample standard deviation of per-candle equity returns, times
      ``sqrt(365 * 24 * 60 / timeframe minutes)``; 0 if the deviation is 0.
    - ``exposure_pct``: share of candles during which a position was held (entered at or before
      the candle's open; a candle in which a stop fires counts).
    - ``equity``: marked to market at each candle's close, stamped with the candle's open time
      ``ts``; ``equity[-1] == final_balance``.
    """

    strategy: str
    strategy_params: Mapping[str, Any]
    settings: BacktestSettings
    timeframe: str
    initial_balance: float
    final_balance: float
    total_pnl: float
    return_pct: float
    trades_count: int
    win_rate: float
    max_drawdown_pct: float
    sharpe: float
    exposure_pct: float
    fees_paid: float
    ts: NDArray[np.int64]
    equity: NDArray[np.float64]
    trades: TradeLog
    signals: Signals | None = None


def run_backtest(
    candles: Candles,
    settings: BacktestSettings,
    *,
    strategy: str = "ema_cross",
    params: Mapping[str, Any],
    timeframe: str,
) -> BacktestResult:
    """Runs ``strategy`` (by registry name, ``params`` validated by it) over ``candles`` and
    summarises. Raises ``ParameterError`` / ``UnknownStrategyError`` for bad input."""
    impl = get_strategy(strategy)
    parsed = impl.parse_params(params)
    check_timeframe(timeframe)  # validate before doing any work
    signals = impl.signals(candles, parsed)
    sim = simulate(candles, signals.target, settings)
    return summarize(
        candles,
        sim,
        timeframe=timeframe,
        strategy=strategy,
        strategy_params=parsed.to_dict(),
        signals=signals,
    )


_SETTINGS_IN_PARAMETERS = ("order_size_pct", "leverage", "stop_loss_pct", "take_profit_pct")


def split_parameters(
    parameters: Mapping[str, Any],
    *,
    initial_balance: float,
    fee_rate: float | None = None,
    slippage_bps: float | None = None,
    strategy: str = "ema_cross",
) -> tuple[BacktestSettings, dict[str, Any]]:
    """Splits an API request's ``parameters`` (strategy parameters mixed with ``order_size_pct``,
    ``leverage``, ``stop_loss_pct``, ``take_profit_pct``) into validated :class:`BacktestSettings`
    and the strategy's validated parameters. Raises ``ParameterError`` naming the field."""
    settings_fields: dict[str, Any] = {"initial_balance": initial_balance}
    if fee_rate is not None:
        settings_fields["fee_rate"] = fee_rate
    if slippage_bps is not None:
        settings_fields["slippage_bps"] = slippage_bps
    strategy_fields: dict[str, Any] = {}
    for key, value in parameters.items():
        if key in _SETTINGS_IN_PARAMETERS:
            if value is not None or key in ("stop_loss_pct", "take_profit_pct"):
                settings_fields[key] = value
        else:
            strategy_fields[key] = value
    impl = get_strategy(strategy)
    parsed = impl.parse_params(strategy_fields).to_dict()
    unknown = sorted(set(strategy_fields) - set(parsed))
    if unknown:
        raise ParameterError(unknown[0], "is not a parameter of " + strategy)
    return BacktestSettings.from_mapping(settings_fields), parsed


def summarize(
    candles: Candles,
    sim: Simulation,
    *,
    timeframe: str,
    strategy: str,
    strategy_params: Mapping[str, Any],
    signals: Signals | None = None,
) -> BacktestResult:
    """The summary metrics of a simulation."""
    settings = sim.settings
    bal0 = float(settings.initial_balance)
    trades = sim.trades
    count = len(trades)
    n = len(candles)
    return BacktestResult(
        strategy=strategy,
        strategy_params=dict(strategy_params),
        settings=settings,
        timeframe=timeframe,
        initial_balance=bal0,
        final_balance=sim.final_balance,
        total_pnl=sim.final_balance - bal0,
        return_pct=(sim.final_balance / bal0 - 1.0) * 100.0,
        trades_count=count,
        win_rate=float(np.count_nonzero(trades.pnl > 0.0)) / count if count else 0.0,
        max_drawdown_pct=sim.equity_summary.max_drawdown_pct,
        sharpe=sim.equity_summary.sharpe(periods_per_year(timeframe)),
        exposure_pct=100.0 * sim.bars_in_position / n if n else 0.0,
        fees_paid=float(np.sum(trades.entry_fee) + np.sum(trades.exit_fee)),
        ts=candles.ts,
        equity=sim.equity,
        trades=trades,
        signals=signals,
    )


def periods_per_year(timeframe: str) -> float:
    """Candles per year of 365 days (12 for ``1M``)."""
    return 365.0 * 86_400_000 / NOMINAL_MS[check_timeframe(timeframe)]


def downsample(
    ts: NDArray[np.int64], values: NDArray[np.float64], max_points: int = 1000
) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """At most ``max_points`` evenly spaced points of a curve, always keeping the first and last."""
    if max_points < 2:
        raise ValueError("max_points must be at least 2")
    n = ts.shape[0]
    if n <= max_points:
        return ts, values
    idx = np.unique(np.linspace(0, n - 1, max_points).round().astype(np.int64))
    return ts[idx], values[idx]
