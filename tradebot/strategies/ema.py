"""Exponential moving average: a vectorised numpy face and an O(1) incremental face.

Both faces follow TA-Lib's convention: ``alpha = 2 / (period + 1)``, the first value (at index
``period - 1``) is the simple mean of the first ``period`` inputs, earlier values are undefined (NaN
in arrays, ``None`` in the incremental state).

After the seed, values are computed block by block. For the element at offset ``j`` of a block
that starts right after the EMA value ``C`` (the *carry*), with ``d = 1 - alpha``::

    S_j   = sum(x[i] * d**-i for i in 0..j)                  # scaled prefix sum inside the block
    ema_j = S_j * (alpha * d**j) + C * d**(j + 1)              # closed form of the recurrence

which is exactly ``ema_j = d * ema_{j-1} + alpha * x_j`` expanded. ``d**-i`` grows within a block,
so the block length is chosen per period to keep it at most ``1e150`` (no overflow for any finite
price) and at most ``MAX_BLOCK``. The relative rounding error is of the order ``eps / alpha``, the
same order as the plain recurrence's, so both agree to about 1e-13 even for period 1000.

The incremental face performs *the same floating-point operations in the same order* (the prefix sum
is accumulated left to right, as ``numpy.cumsum`` does), so live and backtest EMAs are bit-identical
over the same candles. That matters: with a flat market the close equals the EMA up to the last bit,
and a one-ulp difference would flip a decision between the live bot and its backtest.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "MAX_BLOCK",
    "EmaState",
    "EmaTables",
    "default_block_len",
    "ema",
    "ema_tables",
]

MAX_BLOCK: Final = 1024
"""Upper bound of the block length (blocks of this size keep the working set in cache)."""

_MAX_SCALE_LOG10: Final = 150.0
"""The in-block scale factor ``d**-(B-1)`` stays below ``10**150``."""

_CHUNK_ELEMENTS: Final = 1 << 16
"""Elements processed per chunk by :func:`ema` (about 512 KiB of float64, fits in L2)."""

FloatArray = NDArray[np.float64]


def _alpha(period: int) -> float:
    return 2.0 / (period + 1)


def default_block_len(period: int) -> int:
    """The block length used for ``period``: the longest block with ``d**-(B-1) <= 1e150``."""
    _check_period(period)
    decay = 1.0 - _alpha(period)
    by_scale = int(_MAX_SCALE_LOG10 * math.log(10.0) / -math.log(decay)) + 1
    return max(1, min(MAX_BLOCK, by_scale))


@dataclass(frozen=True, slots=True)
class EmaTables:
    """Per-offset factors of one (period, block length): ``w = d**-j``, ``h = alpha*d**j``,
    ``g = d**(j+1)`` for ``j`` in ``0..block_len-1`` (read-only arrays)."""

    period: int
    block_len: int
    w: FloatArray
    h: FloatArray
    g: FloatArray
    factors: tuple[tuple[float, float, float], ...]  # (w, h, g) per offset as Python floats


@lru_cache(maxsize=256)
def ema_tables(period: int, block_len: int) -> EmaTables:
    """The factor tables for ``period`` and ``block_len`` (cached; the arrays are read-only)."""
    _check_period(period)
    if not 1 <= block_len <= MAX_BLOCK:
        raise ValueError(f"block_len must be between 1 and {MAX_BLOCK}, got {block_len}")
    alpha = _alpha(period)
    decay = 1.0 - alpha
    offsets = np.arange(block_len, dtype=np.float64)
    w = np.power(decay, -offsets)
    h = alpha * np.power(decay, offsets)
    g = np.power(decay, offsets + 1.0)
    if not (np.all(np.isfinite(w)) and np.all(g > 0.0)):
        raise ValueError(f"block_len {block_len} is too long for period {period}")
    for table in (w, h, g):
        table.setflags(write=False)
    factors = tuple(zip(w.tolist(), h.tolist(), g.tolist(), strict=True))
    return EmaTables(period, block_len, w, h, g, factors)


def _check_period(period: int) -> None:
    if isinstance(period, bool) or not isinstance(period, int | np.integer) or period < 2:
        raise ValueError(f"EMA period must be an integer >= 2, got {period!r}")


ChunkCallback = Callable[[int, int], None]


def ema(
    values: NDArray[Any],
    period: int,
    *,
    block_len: int | None = None,
    out: FloatArray | None = None,
    on_chunk: ChunkCallback | None = None,
) -> FloatArray:
    """EMA of ``values`` (any real 1-D array; converted to float64). NaN before index ``period-1``.

    Inputs must be finite (a NaN or infinity poisons every later value, as in any EMA); the candle
    loaders and :class:`EmaState` reject them. Runs in O(n) numpy operations plus one Python step
    per block of up to ``MAX_BLOCK`` elements.

    ``out``, if given, receives the result (a float64 array of the input's length, not overlapping
    it). ``on_chunk(start, stop)``, if given, is called as soon as ``out[start:stop]`` is final (in
    order, covering ``period - 1`` to ``n``), so a caller can consume each chunk while it is in
    cache.
    """
    _check_period(period)
    x = np.ascontiguousarray(values, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"EMA input must be one-dimensional, got shape {x.shape}")
    n = x.shape[0]
    if out is None:
        out = np.empty(n, dtype=np.float64)
    elif out.shape != (n,) or out.dtype != np.float64:
        raise ValueError(f"out must be a float64 array of shape ({n},)")
    elif np.may_share_memory(out, x):
        raise ValueError("out must not overlap the input")
    if n < period:
        out.fill(np.nan)
        return out
    out[: period - 1] = np.nan
    # Left-to-right sum, as EmaState accumulates it (np.sum would use pairwise summation).
    seed = float(np.cumsum(x[:period])[-1]) / period
    out[period - 1] = seed
    blen = default_block_len(period) if block_len is None else block_len
    tables = ema_tables(period, blen)
    if on_chunk is not None:
        on_chunk(period - 1, period)
    _ema_after_seed(x[period:], out[period:], seed, tables, on_chunk, period)
    return out


def _ema_after_seed(
    x: FloatArray,
    out: FloatArray,
    carry: float,
    tables: EmaTables,
    on_chunk: ChunkCallback | None = None,
    offset: int = 0,
) -> None:
    """Fill ``out`` with the EMA of ``x`` continuing from the EMA value ``carry`` (blocks start at
    ``x[0]``); ``on_chunk`` gets the finished ranges shifted by ``offset``."""
    blen = tables.block_len
    w, h, g = tables.w, tables.h, tables.g
    g_last = float(g[-1])
    h_last = float(h[-1])
    n = x.shape[0]
    full_blocks = n // blen
    blocks_per_chunk = max(1, _CHUNK_ELEMENTS // blen)
    carries = np.empty(blocks_per_chunk, dtype=np.float64)
    for first in range(0, full_blocks, blocks_per_chunk):
        last = min(full_blocks, first + blocks_per_chunk)
        count = last - first
        xs = x[first * blen : last * blen].reshape(count, blen)
        o = out[first * blen : last * blen].reshape(count, blen)
        np.multiply(xs, w, out=o)
        np.cumsum(o, axis=1, out=o)
        # The carry of each block is the EMA at the last element of the previous one; this short
        # loop runs once per block (not per element) and does the same two products and sum.
        chunk_carries = carries[:count]
        for b, block_sum in enumerate(o[:, -1].tolist()):
            chunk_carries[b] = carry
            carry = block_sum * h_last + carry * g_last
        np.multiply(o, h, out=o)
        o += chunk_carries[:, None] * g
        if on_chunk is not None:
            on_chunk(offset + first * blen, offset + last * blen)
    start = full_blocks * blen
    if start < n:
        rest = n - start
        o = out[start:]
        np.multiply(x[start:], w[:rest], out=o)
        np.cumsum(o, out=o)
        o *= h[:rest]
        o += carry * g[:rest]
        if on_chunk is not None:
            on_chunk(offset + start, offset + n)


@dataclass(frozen=True, slots=True)
class EmaState:
    """Incremental EMA: O(1) per value, JSON-serialisable, bit-identical to :func:`ema`.

    ``count`` values have been consumed. Until ``count == period`` only ``seed_sum`` moves; then
    ``value`` is the EMA of the last value. ``carry`` and ``block_sum`` are the block recurrence's
    state (see the module docstring); ``block_len`` is stored so a state saved by one version keeps
    its arithmetic after an upgrade.
    """

    period: int
    block_len: int
    count: int = 0
    seed_sum: float = 0.0
    value: float | None = None
    carry: float = 0.0
    block_sum: float = 0.0

    @classmethod
    def start(cls, period: int) -> EmaState:
        """A fresh state for ``period`` (nothing consumed yet)."""
        return cls(period=period, block_len=default_block_len(period))

    @property
    def ready(self) -> bool:
        """True once the EMA is defined (``period`` values consumed)."""
        return self.value is not None

    def update(self, x: float) -> EmaState:
        """The state after consuming ``x`` (a finite number)."""
        x = float(x)
        if not math.isfinite(x):
            raise ValueError(f"EMA input must be finite, got {x!r}")
        period = self.period
        count = self.count
        if count < period:
            seed_sum = x if count == 0 else self.seed_sum + x
            if count + 1 < period:
                return EmaState(period, self.block_len, count + 1, seed_sum)
            seed = seed_sum / period
            return EmaState(period, self.block_len, count + 1, seed_sum, seed, seed, 0.0)
        j = (count - period) % self.block_len
        w, h, g = ema_tables(period, self.block_len).factors[j]
        assert self.value is not None  # count >= period
        if j == 0:
            carry = self.value
            block_sum = x * w
        else:
            carry = self.carry
            block_sum = self.block_sum + x * w
        value = block_sum * h + carry * g
        return EmaState(period, self.block_len, count + 1, self.seed_sum, value, carry, block_sum)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (floats round-trip exactly through JSON)."""
        return {
            "period": self.period,
            "block_len": self.block_len,
            "count": self.count,
            "seed_sum": self.seed_sum,
            "value": self.value,
            "carry": self.carry,
            "block_sum": self.block_sum,
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> EmaState:
        """Inverse of :meth:`to_dict`; raises ``ValueError`` on anything inconsistent."""
        try:
            period = _int_field(raw, "period")
            block_len = _int_field(raw, "block_len")
            count = _int_field(raw, "count")
            seed_sum = _float_field(raw, "seed_sum")
            carry = _float_field(raw, "carry")
            block_sum = _float_field(raw, "block_sum")
            value_raw = raw["value"]
        except KeyError as e:
            raise ValueError(f"EMA state is missing field {e.args[0]!r}") from e
        _check_period(period)
        ema_tables(period, block_len)  # validates block_len for this period
        if count < 0:
            raise ValueError(f"EMA state count must be >= 0, got {count}")
        value = None if value_raw is None else _float_field(raw, "value")
        if (value is None) != (count < period):
            raise ValueError(f"EMA state value {value!r} is inconsistent with count {count}")
        return cls(period, block_len, count, seed_sum, value, carry, block_sum)


def _int_field(raw: Mapping[str, Any], name: str) -> int:
    v = raw[name]
    if isinstance(v, bool) or not isinstance(v, int):
        raise ValueError(f"EMA state field {name!r} must be an integer, got {v!r}")
    return v


def _float_field(raw: Mapping[str, Any], name: str) -> float:
    v = raw[name]
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise ValueError(f"EMA state field {name!r} must be a finite number, got {v!r}")
    return float(v)
