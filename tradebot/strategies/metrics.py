"""Equity-curve statistics computed in one streaming pass over chunks: maximum drawdown and the
moments of per-bar returns (for the Sharpe ratio).

The engine feeds each chunk of equity while it is still in cache, so a 10-million-bar curve is
read once; :func:`max_drawdown_pct` and :func:`sharpe_ratio` run the same code over a whole array.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "CHUNK",
    "EquityStats",
    "EquitySummary",
    "max_drawdown_pct",
    "sharpe_ratio",
]

CHUNK: Final = 1 << 16
"""Bars per chunk in the engine's streaming passes (512 KiB of float64: stays in L2)."""

_DD_BLOCK: Final = 1024

FloatArray = NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class EquitySummary:
    """What the statistics need from an equity curve: its largest drawdown (a fraction), and the
    count, mean and centred sum of squares of the growth factors ``equity[t] / equity[t-1]``."""

    max_drawdown: float
    returns_count: int
    mean_growth: float
    m2: float
    min_equity: float

    @property
    def max_drawdown_pct(self) -> float:
        dd = self.max_drawdown * 100.0
        return dd if math.isfinite(dd) and dd > 0.0 else 0.0

    def sharpe(self, periods_per_year: float) -> float:
        """Annualised Sharpe ratio of per-bar returns (risk-free rate 0, sample standard deviation,
        times ``sqrt(periods_per_year)``); 0 when there are fewer than two returns, when the
        deviation is 0 or when the equity is not positive throughout."""
        n = self.returns_count
        if n < 2 or not self.min_equity > 0.0:
            return 0.0
        var = self.m2 / (n - 1)
        std = math.sqrt(var) if var >= 0.0 else math.nan
        if not (math.isfinite(std) and std > 0.0):
            return 0.0
        ratio = (self.mean_growth - 1.0) / std * math.sqrt(periods_per_year)
        return ratio if math.isfinite(ratio) else 0.0


class EquityStats:
    """Streaming accumulator: call :meth:`update` with consecutive chunks, then :meth:`summary`."""

    __slots__ = ("_count", "_last", "_m2", "_mean", "_min", "_peak", "_worst")

    def __init__(self) -> None:
        self._peak = -math.inf
        self._worst = 0.0
        self._last = math.nan
        self._count = 0
        self._mean = 0.0
        self._m2 = 0.0
        self._min = math.inf

    def update(self, x: FloatArray) -> None:
        m = x.shape[0]
        if m == 0:
            return
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            self._update_drawdown(x)
            self._update_returns(x)

    def _update_drawdown(self, x: FloatArray) -> None:
        # Blocked: a block whose maximum does not exceed the peak before it has that peak all
        # along, so its worst point is its minimum; only blocks making a new high need a running
        # maximum.
        nb = x.shape[0] // _DD_BLOCK
        worst = self._worst
        peak = self._peak
        if nb:
            blocks = x[: nb * _DD_BLOCK].reshape(nb, _DD_BLOCK)
            block_max = blocks.max(axis=1)
            block_min = blocks.min(axis=1)
            peak_before = np.empty(nb)
            peak_before[0] = peak
            if nb > 1:
                np.maximum.accumulate(block_max[:-1], out=peak_before[1:])
                np.maximum(peak_before[1:], peak, out=peak_before[1:])
            self._min = min(self._min, float(block_min.min()))
            quiet = block_max <= peak_before
            if quiet.any():
                worst = max(worst, float(np.max(1.0 - block_min[quiet] / peak_before[quiet])))
            rising = np.flatnonzero(~quiet)
            if rising.size:
                sub = blocks[rising]
                # One running maximum over the rising blocks in time order: each earlier value is
                # at most the block's peak_before, so max(run, peak_before) is the true peak.
                run = np.maximum.accumulate(sub.reshape(-1)).reshape(sub.shape)
                np.maximum(run, peak_before[rising, None], out=run)
                np.divide(sub, run, out=run)
                worst = max(worst, 1.0 - float(run.min()))
            peak = max(peak, float(block_max.max()))
        tail = x[nb * _DD_BLOCK :]
        if tail.shape[0]:
            self._min = min(self._min, float(tail.min()))
            run = np.maximum.accumulate(tail)
            np.maximum(run, peak, out=run)
            np.divide(tail, run, out=run)
            worst = max(worst, 1.0 - float(run.min()))
            peak = max(peak, float(tail.max()))
        self._worst = worst
        self._peak = peak

    def _update_returns(self, x: FloatArray) -> None:
        m = x.shape[0]
        first = 0 if math.isnan(self._last) else 1
        k = m - 1 + first
        if k > 0:
            growth = np.empty(k)
            if first:
                growth[0] = x[0] / self._last
            np.divide(x[1:], x[:-1], out=growth[first:])
            mean_c = float(np.sum(growth)) / k
            growth -= mean_c
            np.square(growth, out=growth)
            m2_c = float(np.sum(growth))  # (no BLAS dot: its thread start-up costs more here)
            # Chan et al.'s pairwise combination of (count, mean, M2).
            total = self._count + k
            delta = mean_c - self._mean
            self._mean += delta * k / total
            self._m2 += m2_c + delta * delta * self._count * k / total
            self._count = total
        self._last = float(x[-1])

    def summary(self) -> EquitySummary:
        return EquitySummary(self._worst, self._count, self._mean, self._m2, self._min)


def summarize_equity(equity: FloatArray) -> EquitySummary:
    stats = EquityStats()
    for a in range(0, equity.shape[0], CHUNK):
        stats.update(equity[a : a + CHUNK])
    return stats.summary()


def max_drawdown_pct(equity: FloatArray) -> float:
    """Largest fall from a running peak, in percent of that peak (a positive number; 0 if none)."""
    return summarize_equity(equity).max_drawdown_pct


def sharpe_ratio(equity: FloatArray, periods_per_year: float) -> float:
    """See :meth:`EquitySummary.sharpe`."""
    return summarize_equity(equity).sharpe(periods_per_year)
