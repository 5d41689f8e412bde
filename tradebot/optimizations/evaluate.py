"""One chunk's work: its trials over the train window and the held-out test window (CPU only,
called in a worker's executor)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tradebot.strategies import Candles
from tradebot.strategies.sweep import Figures, objective_value, sweep


@dataclass(frozen=True, slots=True)
class TrialResult:
    parameters: Mapping[str, Any]
    train: Figures
    test: Figures | None
    score: float  # the objective over the train window (what the search ranks by)


def split_index(n: int, test_fraction: float) -> int:
    """Candles ``[0, k)`` are the train window, ``[k, n)`` the held-out test window (the last
    ``floor(n * test_fraction)`` candles)."""
    return n - math.floor(n * test_fraction)


def window(candles: Candles, start: int, stop: int) -> Candles:
    return Candles(candles.ts[start:stop], candles.open[start:stop], candles.high[start:stop],
                   candles.low[start:stop], candles.close[start:stop], candles.volume[start:stop])  # fmt: skip


def evaluate_chunk(
    candles: Candles,
    split: int,
    *,
    strategy: str,
    timeframe: str,
    objective: str,
    initial_balance: float,
    fee_rate: float | None,
    slippage_bps: float | None,
    trials: Sequence[Mapping[str, Any]],
) -> list[TrialResult]:
    n = len(candles)
    kw: dict[str, Any] = {"timeframe": timeframe, "initial_balance": initial_balance, "fee_rate": fee_rate,
                          "slippage_bps": slippage_bps}  # fmt: skip
    train = sweep(window(candles, 0, split), strategy, trials, **kw)
    test: list[Figures | None] = [None] * len(trials)
    if split < n:
        test = list(sweep(window(candles, split, n), strategy, trials, **kw))
    return [
        TrialResult(t, tr, te, objective_value(tr, objective))
        for t, tr, te in zip(trials, train, test, strict=True)
    ]
