"""Vectorised parameter sweeps: many trials of one strategy over the same candles, evaluated together.

A trial is what ``POST /backtests`` takes as ``parameters`` (the strategy's own parameters beside the
sizing keys). Trials are parsed with the backtest's own rules (:func:`split_parameters`), then:

- trials that share strategy parameters (they differ only in sizing) share one signal series;
- the distinct strategy parameters are evaluated in batches through the strategy's
  ``signals_batch`` when it has one (the EMA strategies: every period's EMA as one 2-D array,
  :func:`tradebot.strategies.ema.ema_rows`), else through its vectorised ``signals`` one by one
  (any plugin works);
- each trial then runs through the backtest engine (:func:`simulate`) and :func:`summarize`, the
  exact path of :func:`run_backtest`, so a trial's figures equal a backtest's with the same
  parameters, to the last bit.

Pure: no I/O, no clock.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol, runtime_checkable

import numpy as np

from tradebot.strategies.backtest import BacktestSettings, simulate
from tradebot.strategies.base import Signals, get_strategy
from tradebot.strategies.candles import Candles
from tradebot.strategies.report import BacktestResult, split_parameters, summarize

__all__ = [
    "OBJECTIVES",
    "SIZING_KEYS",
    "BatchSignals",
    "Figures",
    "figures_of",
    "objective_value",
    "parse_trial",
    "sweep",
]

SIZING_KEYS: Final = ("order_size_pct", "leverage", "allow_short", "stop_loss_pct", "take_profit_pct")
"""Keys a trial may set beside the strategy's parameters (the backtest's sizing keys)."""

OBJECTIVES: Final = ("sharpe", "return_pct", "calmar", "profit_factor")

# profit_factor without a losing trade, and calmar without a drawdown, have no finite value; they
# are capped here so they stay JSON numbers and rank above every finite one.
RATIO_CAP: Final = 1e6
# Trials per batch of signals: a batch's indicators are one (batch, bars) float64 array, 8 rows of
# 1M bars is 64 MB, and more rows stop paying once the per-block work is shared.
BATCH: Final = 8


@runtime_checkable
class BatchSignals(Protocol):
    """A strategy that computes many parameter sets' signals together (each equal to ``signals``)."""

    def signals_batch(self, candles: Candles, params: Sequence[Any]) -> list[Signals]: ...


@dataclass(frozen=True, slots=True)
class Figures:
    """A trial's summary over one window. Percentages in percent, ``win_rate`` a fraction 0-1;
    ``profit_factor`` = gross profit / gross loss of the round trips after fees (0 without trades,
    capped at :data:`RATIO_CAP` without a loss); ``calmar`` = return_pct / max_drawdown_pct (capped
    likewise when there is no drawdown)."""

    return_pct: float
    sharpe: float
    max_drawdown_pct: float
    trades_count: int
    win_rate: float
    profit_factor: float
    calmar: float
    final_balance: float

    def to_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


def figures_of(result: BacktestResult) -> Figures:
    pnl = result.trades.pnl
    gains = float(np.sum(pnl[pnl > 0.0]))
    losses = float(-np.sum(pnl[pnl < 0.0]))
    if losses > 0.0:
        profit_factor = min(gains / losses, RATIO_CAP)
    else:
        profit_factor = RATIO_CAP if gains > 0.0 else 0.0
    dd = result.max_drawdown_pct
    if dd > 0.0:
        calmar = max(-RATIO_CAP, min(result.return_pct / dd, RATIO_CAP))
    else:
        calmar = RATIO_CAP if result.return_pct > 0.0 else 0.0
    return Figures(
        return_pct=result.return_pct,
        sharpe=result.sharpe,
        max_drawdown_pct=dd,
        trades_count=result.trades_count,
        win_rate=result.win_rate,
        profit_factor=profit_factor,
        calmar=calmar,
        final_balance=result.final_balance,
    )


def objective_value(figures: Figures, objective: str) -> float:
    """The number a search maximises (a non-finite one ranks last)."""
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown objective {objective!r}")
    value = float(getattr(figures, objective))
    return value if math.isfinite(value) else -math.inf


def parse_trial(
    strategy: str,
    parameters: Mapping[str, Any],
    *,
    initial_balance: float,
    fee_rate: float | None,
    slippage_bps: float | None,
) -> tuple[BacktestSettings, dict[str, Any]]:
    """A trial's settings and strategy parameters, by the backtest's rules (raises
    ``ParameterError`` / ``UnknownStrategyError``)."""
    return split_parameters(
        parameters, initial_balance=initial_balance, fee_rate=fee_rate, slippage_bps=slippage_bps, strategy=strategy
    )


def sweep(
    candles: Candles,
    strategy: str,
    trials: Sequence[Mapping[str, Any]],
    *,
    timeframe: str,
    initial_balance: float,
    fee_rate: float | None = None,
    slippage_bps: float | None = None,
    batch: int = BATCH,
) -> list[Figures]:
    """Every trial's figures over ``candles``, in the order of ``trials``; each equals
    ``figures_of(run_backtest(...))`` of a backtest with those parameters."""
    impl = get_strategy(strategy)
    parsed: list[tuple[BacktestSettings, dict[str, Any]]] = [
        parse_trial(strategy, t, initial_balance=initial_balance, fee_rate=fee_rate, slippage_bps=slippage_bps)
        for t in trials
    ]
    # Trials that differ only in sizing share one signal series.
    keys: list[tuple[tuple[str, Any], ...]] = [tuple(sorted(p.items())) for _, p in parsed]
    distinct: dict[tuple[tuple[str, Any], ...], int] = {}
    for key in keys:
        distinct.setdefault(key, len(distinct))
    by_signal: list[list[int]] = [[] for _ in distinct]
    for i, key in enumerate(keys):
        by_signal[distinct[key]].append(i)
    ordered = list(distinct)
    out: list[Figures | None] = [None] * len(trials)
    for lo in range(0, len(ordered), max(1, batch)):
        chunk = ordered[lo : lo + max(1, batch)]
        params = [impl.parse_params(dict(key)) for key in chunk]
        signals = impl.signals_batch(candles, params) if isinstance(impl, BatchSignals) else [
            impl.signals(candles, p) for p in params
        ]
        for j, (p, sig) in enumerate(zip(params, signals, strict=True)):
            for i in by_signal[lo + j]:
                settings = parsed[i][0]
                sim = simulate(candles, sig.target, settings)
                result = summarize(candles, sim, timeframe=timeframe, strategy=strategy,
                                   strategy_params=p.to_dict(), signals=sig)  # fmt: skip
                out[i] = figures_of(result)
    return [f for f in out if f is not None]
