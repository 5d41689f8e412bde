"""Bollinger bands: SMA and population standard deviation over the last ``n`` closes, each a pure
function of the window's values, with the two faces bit-identical.

A rolling sum drifts and depends on where it started; here every window is reduced on its own, by
a fixed tree of exact-size blocks. Level ``k`` holds, for every start position, the mean and the
sum of squared deviations (``m2``) of the ``2**k`` values from there, each made from two halves of
level ``k - 1``; a window of ``n`` joins the levels of ``n``'s binary digits, largest block first.
Two blocks ``A`` (``a`` values, first) and ``B`` (``b`` values) join as (Chan, Golub and LeVeque's
pairwise update)::

    delta = mean_B - mean_A
    mean  = mean_A + delta * (b / (a + b))
    m2    = (m2_A + m2_B) + (delta * delta) * (a * b / (a + b))

so a window of equal values has ``delta = 0`` at every join: mean exactly that value, ``m2``
exactly 0, bands exactly on the price. Work is ``O(N log n)`` numpy operations for a series of
``N`` closes. The live face keeps the last ``n`` closes and applies the same function to them (one
window), which performs the same floating-point operations in the same order on the same values.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from tradebot.strategies.targets import int_field

__all__ = ["BollingerBands", "BollingerState", "bollinger", "window_mean_m2"]

_OWNER: Final = "Bollinger"

_CHUNK: Final = 1 << 14
"""Windows reduced per step by :func:`bollinger`."""


def _check_period(period: int) -> None:
    if isinstance(period, bool) or not isinstance(period, int) or period < 2:
        raise ValueError(f"Bollinger period must be an integer >= 2, got {period!r}")


def window_mean_m2(x: NDArray[np.float64], n: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Mean and sum of squared deviations of every window ``x[s : s + n]``, for ``s`` in
    ``0 .. len(x) - n`` (empty arrays when ``len(x) < n``)."""
    _check_period(n)
    x = np.ascontiguousarray(x, dtype=np.float64)
    count = x.shape[0] - n + 1
    if count <= 0:
        return np.empty(0), np.empty(0)
    level_mean = x
    level_m2: NDArray[np.float64] | None = None  # level 0: single values, m2 = 0
    size = 1
    acc_mean: NDArray[np.float64] | None = None
    acc_m2: NDArray[np.float64] | None = None
    acc_size = 0
    while True:
        if n & size:
            offset = n & ~(2 * size - 1)  # the block of this size sits after the larger ones
            b_mean = level_mean[offset : offset + count]
            b_m2 = np.zeros(count) if level_m2 is None else level_m2[offset : offset + count]
            if acc_mean is None or acc_m2 is None:
                acc_mean, acc_m2 = b_mean.copy(), b_m2.copy()
            else:
                acc_mean, acc_m2 = _join(b_mean, b_m2, size, acc_mean, acc_m2, acc_size)
            acc_size += size
        if 2 * size > n:
            break
        length = level_mean.shape[0] - size
        level_mean, level_m2 = _join(
            level_mean[:length],
            None if level_m2 is None else level_m2[:length],
            size,
            level_mean[size : size + length],
            None if level_m2 is None else level_m2[size : size + length],
            size,
        )
        size *= 2
    assert acc_mean is not None and acc_m2 is not None
    return acc_mean, acc_m2


def _join(
    a_mean: NDArray[np.float64],
    a_m2: NDArray[np.float64] | None,
    a: int,
    b_mean: NDArray[np.float64],
    b_m2: NDArray[np.float64] | None,
    b: int,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Joins blocks ``A`` (first) and ``B``; ``None`` for an ``m2`` of single values (0)."""
    total = a + b
    delta = b_mean - a_mean
    mean = delta * (b / total)
    mean += a_mean
    m2 = delta * delta
    m2 *= a * b / total
    if a_m2 is not None and b_m2 is not None:
        m2 += a_m2 + b_m2
    return mean, m2


@dataclass(frozen=True, slots=True)
class BollingerBands:
    """Per candle (NaN while undefined): ``mid`` (SMA), ``upper`` and ``lower`` (``mid`` ±
    ``width`` times the population standard deviation)."""

    mid: NDArray[np.float64]
    upper: NDArray[np.float64]
    lower: NDArray[np.float64]


def _bands(mean: NDArray[np.float64], m2: NDArray[np.float64], n: int, width: float) -> BollingerBands:
    half = np.sqrt(m2 / n)
    half *= width
    return BollingerBands(mean, mean + half, mean - half)


def bollinger(close: NDArray[np.float64], period: int, width: float) -> BollingerBands:
    """The bands over a series of closes (NaN before index ``period - 1``).

    Windows are reduced :data:`_CHUNK` at a time (each chunk's closes plus the ``period - 1``
    before it), which keeps the working set in cache; every window is a pure function of its
    values, so chunking changes no bit."""
    close = np.ascontiguousarray(close, dtype=np.float64)
    total = close.shape[0]
    mid, upper, lower = np.full(total, np.nan), np.full(total, np.nan), np.full(total, np.nan)
    for start in range(0, max(0, total - period + 1), _CHUNK):
        stop = min(total - period + 1, start + _CHUNK)
        mean, m2 = window_mean_m2(close[start : stop + period - 1], period)
        bands = _bands(mean, m2, period, width)
        at = slice(start + period - 1, stop + period - 1)
        mid[at], upper[at], lower[at] = bands.mid, bands.upper, bands.lower
    return BollingerBands(mid, upper, lower)


@dataclass(frozen=True, slots=True)
class BollingerState:
    """Incremental bands: the last ``period`` closes (fewer at the start) and, once the window is
    full, the bands over it."""

    period: int
    width: float
    window: tuple[float, ...] = ()
    mid: float | None = None
    upper: float | None = None
    lower: float | None = None

    @classmethod
    def start(cls, period: int, width: float) -> BollingerState:
        _check_period(period)
        if not (math.isfinite(width) and width > 0.0):
            raise ValueError(f"Bollinger width must be a positive number, got {width!r}")
        return cls(period, float(width))

    def update(self, x: float) -> BollingerState:
        """The state after consuming the close ``x`` (finite)."""
        window = (*self.window[1 - self.period :], float(x))
        if len(window) < self.period:
            return BollingerState(self.period, self.width, window)
        mean, m2 = window_mean_m2(np.array(window, dtype=np.float64), self.period)
        bands = _bands(mean, m2, self.period, self.width)
        return BollingerState(
            self.period, self.width, window, float(bands.mid[0]), float(bands.upper[0]), float(bands.lower[0])
        )

    def to_dict(self) -> dict[str, Any]:
        return {"period": self.period, "width": self.width, "window": list(self.window)}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> BollingerState:
        """Inverse of :meth:`to_dict` (the bands are recomputed from the window, identically)."""
        period = int_field(raw, "period", _OWNER)
        width = raw.get("width")
        if isinstance(width, bool) or not isinstance(width, int | float):
            raise ValueError(f"Bollinger state width must be a number, got {width!r}")
        window = raw.get("window")
        if not isinstance(window, list) or len(window) > period:
            raise ValueError(f"Bollinger state window must be a list of at most {period} closes")
        values: list[float] = []
        for v in window:
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                raise ValueError(f"Bollinger state window holds an invalid close {v!r}")
            values.append(float(v))
        state = cls.start(period, float(width))
        if len(values) < period:
            return cls(period, state.width, tuple(values))
        return cls(period, state.width, tuple(values[:-1])).update(values[-1])
