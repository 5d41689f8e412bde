"""Exponential moving average: a vectorised numpy face and an O(1) incremental face.

Both faces follow TA-Lib's convention: ``alpha = 2 / (period + 1)``, the first value (at index
``period - 1``) is the simple mean of the first ``period`` inputs, earlier values are undefined (NaN
in arrays, ``None`` in the incremental state).

Equal inputs give exactly that value, so a flat market never trades on one-ulp noise. The seed is
``x0 + sum(x[i] - x0) / period`` (deviations from the first input, summed left to right). After the
seed the EMA is carried as its distance to the input, ``y = ema - x``, which follows
``y_t = d * (y_{t-1} - (x_t - x_{t-1}))`` with ``d = 1 - alpha`` (the recurrence
``e <- e + alpha * (x - e)`` rewritten): no input change keeps ``y`` at exactly 0, and a run of
equal inputs after a move only shrinks ``y`` towards 0 without changing its sign. Values are
computed block by block. For the element at offset ``j`` of a block that starts right after the
distance ``Y`` (the *carry*), with ``D_i = x_i - x_{i-1}``::

    P_j   = sum(D_i * d**-i for i in 0..j)                  # scaled prefix sum inside the block
    y_j   = d**(j + 1) * (Y - P_j)                           # closed form of the recurrence
    ema_j = x_j + y_j

``d**-i`` grows within a block, so the block length is chosen per period to keep it at most
``1e150`` (no overflow for any finite price) and at most ``MAX_BLOCK``. The rounding error is of the
order of ``eps / alpha`` times the recent price changes, so this agrees with the plain recurrence to
about 1e-13 even for period 1000.

The incremental face performs *the same floating-point operations in the same order* (the prefix sum
is accumulated left to right, as ``numpy.cumsum`` does), so live and backtest EMAs are bit-identical
over the same candles. That matters: with a flat market the close equals the EMA up to the last bit,
and a one-ulp difference would flip a decision between the live bot and its backtest.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
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
    "ema_rows",
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
    """Per-offset factors of one (period, block length): ``w = d**-j`` and ``g = d**(j+1)`` for
    ``j`` in ``0..block_len-1`` (read-only arrays)."""

    period: int
    block_len: int
    w: FloatArray
    g: FloatArray
    factors: tuple[tuple[float, float], ...]  # (w, g) per offset as Python floats


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
    g = np.power(decay, offsets + 1.0)
    if not (np.all(np.isfinite(w)) and np.all(g > 0.0)):
        raise ValueError(f"block_len {block_len} is too long for period {period}")
    for table in (w, g):
        table.setflags(write=False)
    factors = tuple(zip(w.tolist(), g.tolist(), strict=True))
    return EmaTables(period, block_len, w, g, factors)


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
    # Deviations from the first input, summed left to right as EmaState accumulates them (np.sum
    # would use pairwise summation): equal inputs give exactly that input.
    ref = float(x[0])
    seed = ref + float(np.cumsum(x[:period] - ref)[-1]) / period
    out[period - 1] = seed
    blen = default_block_len(period) if block_len is None else block_len
    tables = ema_tables(period, blen)
    if on_chunk is not None:
        on_chunk(period - 1, period)
    _ema_after_seed(x[period - 1 :], out[period:], seed - float(x[period - 1]), tables, on_chunk, period)
    return out


def _ema_after_seed(
    x: FloatArray,
    out: FloatArray,
    carry: float,
    tables: EmaTables,
    on_chunk: ChunkCallback | None = None,
    offset: int = 0,
) -> None:
    """Fill ``out`` with the EMA of ``x[1:]`` continuing from ``carry``, the distance ``ema - x``
    at ``x[0]`` (blocks start at ``x[1]``); ``on_chunk`` gets the finished ranges shifted by
    ``offset``."""
    blen = tables.block_len
    w, g = tables.w, tables.g
    g_last = float(g[-1])
    n = x.shape[0] - 1
    full_blocks = n // blen
    blocks_per_chunk = max(1, _CHUNK_ELEMENTS // blen)
    carries = np.empty(blocks_per_chunk, dtype=np.float64)
    for first in range(0, full_blocks, blocks_per_chunk):
        last = min(full_blocks, first + blocks_per_chunk)
        count = last - first
        lo, hi = first * blen, last * blen
        o = out[lo:hi].reshape(count, blen)
        np.subtract(x[lo + 1 : hi + 1], x[lo:hi], out=out[lo:hi])
        o *= w
        np.cumsum(o, axis=1, out=o)
        # The carry of each block is the distance at the last element of the previous one; this
        # short loop runs once per block (not per element) and does the same subtraction and product.
        chunk_carries = carries[:count]
        for b, block_sum in enumerate(o[:, -1].tolist()):
            chunk_carries[b] = carry
            carry = g_last * (carry - block_sum)
        np.subtract(chunk_carries[:, None], o, out=o)
        o *= g
        o += x[lo + 1 : hi + 1].reshape(count, blen)
        if on_chunk is not None:
            on_chunk(offset + lo, offset + hi)
    start = full_blocks * blen
    if start < n:
        rest = n - start
        o = out[start:]
        np.subtract(x[start + 1 :], x[start:-1], out=o)
        o *= w[:rest]
        np.cumsum(o, out=o)
        np.subtract(carry, o, out=o)
        o *= g[:rest]
        o += x[start + 1 :]
        if on_chunk is not None:
            on_chunk(offset + start, offset + n)


def ema_rows(values: NDArray[Any], periods: Sequence[int]) -> FloatArray:
    """The EMAs of ``values`` for many periods at once: row ``i`` equals ``ema(values, periods[i])``
    bit for bit (a parameter sweep's indicators as one 2-D array).

    Rows with the same block length (every period above 5) are computed together: the same
    elementwise operations in the same order as :func:`ema`, on a ``(rows, blocks, block_len)``
    array per chunk, and the once-per-block carry step runs once for all rows, so the Python work
    per block is shared by the whole sweep. Each row's blocks start right after its own seed, so a
    row reads the input from its own offset (rows past the input's end compute padding that is
    never written out).
    """
    x = np.ascontiguousarray(values, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"EMA input must be one-dimensional, got shape {x.shape}")
    for period in periods:
        _check_period(period)
    n = x.shape[0]
    out = np.full((len(periods), n), np.nan)
    groups: dict[int, list[int]] = {}
    for row, period in enumerate(periods):
        if n >= period:
            groups.setdefault(default_block_len(int(period)), []).append(row)
    for blen, rows in groups.items():
        _ema_rows_after_seed(x, [int(periods[r]) for r in rows], blen, out, rows)
    return out


def _ema_rows_after_seed(x: FloatArray, periods: list[int], blen: int, out: FloatArray, rows: list[int]) -> None:
    n = x.shape[0]
    count_rows = len(periods)
    tables = [ema_tables(p, blen) for p in periods]
    w = np.stack([t.w for t in tables])[:, None, :]
    g = np.stack([t.g for t in tables])[:, None, :]
    g_last = np.array([float(t.g[-1]) for t in tables])
    seed_at = np.array([p - 1 for p in periods], dtype=np.int64)
    carry = np.empty(count_rows)
    for i, (row, period) in enumerate(zip(rows, periods, strict=True)):
        ref = float(x[0])  # as ema(): deviations from the first input, summed left to right
        seed = ref + float(np.cumsum(x[:period] - ref)[-1]) / period
        out[row, period - 1] = seed
        carry[i] = seed - float(x[period - 1])
    # Element k (0-based) after a row's seed is input index seed_at + 1 + k; the longest row runs
    # from the smallest period.
    length = n - 1 - int(seed_at.min())
    blocks_per_chunk = max(1, _CHUNK_ELEMENTS // blen)
    step = blocks_per_chunk * blen
    row_len = n - 1 - seed_at  # elements after each row's seed
    carries = np.empty((count_rows, blocks_per_chunk))
    diff = np.subtract(x[1:], x[:-1])  # the same subtraction ema() makes, once for every row
    cur = np.empty((count_rows, step))
    o_buf = np.empty((count_rows, step))
    for lo in range(0, length, step):
        hi = min(length, lo + step)
        count = -(-(hi - lo) // blen)  # the last block of the input may be partial
        width = count * blen
        c = cur[:, :width]
        flat = o_buf[:, :width]
        valid = np.clip(row_len - lo, 0, hi - lo)
        for i in range(count_rows):
            v = int(valid[i])
            start = int(seed_at[i]) + 1 + lo
            c[i, :v] = x[start : start + v]
            c[i, v:] = x[-1]
            flat[i, :v] = diff[start - 1 : start - 1 + v]
            flat[i, v:] = 0.0
        o = flat.reshape(count_rows, count, blen)
        o *= w
        np.cumsum(o, axis=2, out=o)
        chunk_carries = carries[:, :count]
        block_sums = o[:, :, -1]
        for b in range(count):
            chunk_carries[:, b] = carry
            carry = g_last * (carry - block_sums[:, b])
        np.subtract(chunk_carries[:, :, None], o, out=o)
        o *= g
        o += c.reshape(count_rows, count, blen)
        for i, row in enumerate(rows):
            v = int(valid[i])
            if v > 0:
                start = int(seed_at[i]) + 1 + lo
                out[row, start : start + v] = flat[i, :v]


@dataclass(frozen=True, slots=True)
class EmaState:
    """Incremental EMA: O(1) per value, JSON-serialisable, bit-identical to :func:`ema`.

    ``count`` values have been consumed; ``last`` is the last of them. Until ``count == period``
    only ``seed_sum`` (the sum of the deviations from the first value, ``first``) moves; then
    ``value`` is the EMA of the last value and ``distance`` is ``value - last`` as the recurrence
    carries it. ``carry`` (the distance before the current block) and ``block_sum`` are the block
    recurrence's state (see the module docstring); ``block_len`` is stored so a state saved by one
    version keeps its arithmetic after an upgrade.
    """

    period: int
    block_len: int
    count: int = 0
    seed_sum: float = 0.0
    value: float | None = None
    carry: float = 0.0
    block_sum: float = 0.0
    first: float = 0.0
    last: float = 0.0
    distance: float = 0.0

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
            first = x if count == 0 else self.first
            seed_sum = 0.0 if count == 0 else self.seed_sum + (x - first)
            if count + 1 < period:
                return EmaState(period, self.block_len, count + 1, seed_sum, first=first, last=x)
            seed = first + seed_sum / period
            return EmaState(period, self.block_len, count + 1, seed_sum, seed, 0.0, 0.0, first, x, seed - x)
        j = (count - period) % self.block_len
        w, g = ema_tables(period, self.block_len).factors[j]
        carry = self.distance if j == 0 else self.carry
        block_sum = (x - self.last) * w if j == 0 else self.block_sum + (x - self.last) * w
        distance = g * (carry - block_sum)
        value = x + distance
        return EmaState(
            period, self.block_len, count + 1, self.seed_sum, value, carry, block_sum, self.first, x, distance
        )

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
            "first": self.first,
            "last": self.last,
            "distance": self.distance,
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
            # A state saved before these fields existed used another arithmetic: refusing it makes
            # the caller rebuild the state from history.
            first = _float_field(raw, "first")
            last = _float_field(raw, "last")
            distance = _float_field(raw, "distance")
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
        return cls(period, block_len, count, seed_sum, value, carry, block_sum, first, last, distance)


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
