"""The EMA cross strategy, registered as ``"ema_cross"``.

On each closed candle ``t`` with the EMA defined: target LONG when ``close > ema``, FLAT when
``close < ema`` (SHORT instead when ``allow_short``), unchanged when they are equal. No decision is
made while the EMA is undefined (the first ``ema_period - 1`` candles), and a tie before the first
decision leaves the target undecided (``None`` / ``NO_TARGET``).

Both faces compare the close with a bit-identical EMA (see :mod:`tradebot.strategies.ema`), so they
agree on every candle, ties included.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from tradebot.strategies.base import (
    NO_TARGET,
    Decision,
    IndicatorLine,
    Indicators,
    ParameterError,
    Signals,
    Target,
    bool_param,
    int_param,
    register,
)
from tradebot.strategies.candles import Candle, Candles
from tradebot.strategies.ema import EmaState, ema, ema_rows
from tradebot.strategies.parameters import IntParameter, ParameterSet

__all__ = [
    "EMA_CROSS",
    "MAX_EMA_PERIOD",
    "MIN_EMA_PERIOD",
    "WARMUP_TOLERANCE",
    "EmaCross",
    "EmaCrossParams",
    "EmaCrossState",
    "StaleCandleError",
    "decide",
    "ema_cross_signals",
    "ema_cross_signals_batch",
    "ema_warmup_candles",
    "warm_up",
]

MIN_EMA_PERIOD: Final = 2
MAX_EMA_PERIOD: Final = 1000
DEFAULT_EMA_PERIOD: Final = 20
_STATE_VERSION: Final = 1
WARMUP_TOLERANCE: Final = 1e-12
"""The weight the warm-up's seed may keep in the EMA (DESIGN.md: the live state equals the
full-history one within this)."""


class StaleCandleError(ValueError):
    """A candle not newer than the last one decided on (a duplicate or out-of-order candle).

    Feeding it would double-count it in the EMA, so :func:`decide` refuses; callers skip candles
    with ``candle.ts <= state.last_candle_ts``."""


@dataclass(frozen=True, slots=True)
class EmaCrossParams:
    ema_period: int
    allow_short: bool = False

    def __post_init__(self) -> None:
        p = self.ema_period
        if isinstance(p, bool) or not isinstance(p, int) or not MIN_EMA_PERIOD <= p <= MAX_EMA_PERIOD:
            raise ParameterError(
                "ema_period", f"must be an integer between {MIN_EMA_PERIOD} and {MAX_EMA_PERIOD}, got {p!r}"
            )
        if not isinstance(self.allow_short, bool):
            raise ParameterError("allow_short", f"must be true or false, got {self.allow_short!r}")

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> EmaCrossParams:
        return cls(
            ema_period=int_param(raw, "ema_period", MIN_EMA_PERIOD, MAX_EMA_PERIOD, DEFAULT_EMA_PERIOD),
            allow_short=bool_param(raw, "allow_short", False),
        )

    def to_dict(self) -> dict[str, Any]:
        return {"ema_period": self.ema_period, "allow_short": self.allow_short}


@dataclass(frozen=True, slots=True)
class EmaCrossState:
    """Live state: the incremental EMA, the standing target and its sequence number, and the open
    time of the last candle consumed."""

    ema: EmaState
    target: Target | None = None
    seq: int = 0
    last_candle_ts: int | None = None

    @classmethod
    def start(cls, params: EmaCrossParams) -> EmaCrossState:
        return cls(EmaState.start(params.ema_period))

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": _STATE_VERSION,
            "ema": self.ema.to_dict(),
            "target": None if self.target is None else self.target.name.lower(),
            "seq": self.seq,
            "last_candle_ts": self.last_candle_ts,
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> EmaCrossState:
        if raw.get("version") != _STATE_VERSION:
            raise ValueError(f"unsupported ema_cross state version {raw.get('version')!r}")
        ema_raw = raw.get("ema")
        if not isinstance(ema_raw, Mapping):
            raise ValueError("ema_cross state lacks its 'ema' object")
        ema_state = EmaState.from_dict(ema_raw)
        target_raw = raw.get("target")
        if target_raw is None:
            target = None
        elif isinstance(target_raw, str) and target_raw.upper() in Target.__members__:
            target = Target[target_raw.upper()]
        else:
            raise ValueError(f"ema_cross state has an invalid target {target_raw!r}")
        seq = raw.get("seq")
        if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
            raise ValueError(f"ema_cross state has an invalid seq {seq!r}")
        if (target is None) != (seq == 0):
            raise ValueError(f"ema_cross state target {target_raw!r} is inconsistent with seq {seq}")
        ts = raw.get("last_candle_ts")
        if ts is not None and (isinstance(ts, bool) or not isinstance(ts, int)):
            raise ValueError(f"ema_cross state has an invalid last_candle_ts {ts!r}")
        if (ts is None) != (ema_state.count == 0):
            raise ValueError("ema_cross state last_candle_ts is inconsistent with the EMA's count")
        return cls(ema_state, target, seq, ts)


def decide(candle: Candle, state: EmaCrossState, params: EmaCrossParams) -> tuple[Decision, EmaCrossState]:
    """The live face: consumes one closed candle. Pure: no I/O, no clock.

    Raises :class:`StaleCandleError` for a candle not newer than the last one, ``ValueError`` for a
    non-finite or non-positive close, or when ``state`` was built for another EMA period (a changed
    period needs a fresh warm-up from history, see :func:`warm_up`).
    """
    if state.last_candle_ts is not None and candle.ts <= state.last_candle_ts:
        raise StaleCandleError(f"candle {candle.ts} is not after the last candle decided on ({state.last_candle_ts})")
    if state.ema.period != params.ema_period:
        raise ValueError(f"state was built for ema_period {state.ema.period}, parameters say {params.ema_period}")
    close = float(candle.close)
    if not (math.isfinite(close) and close > 0.0):
        raise ValueError(f"candle {candle.ts} has an invalid close {candle.close!r}")
    ema_state = state.ema.update(close)
    target = state.target
    value = ema_state.value
    if value is not None:
        if close > value:
            target = Target.LONG
        elif close < value:
            target = Target.SHORT if params.allow_short else Target.FLAT
    changed = target is not state.target
    seq = state.seq + 1 if changed else state.seq
    decision = Decision(candle.ts, target, changed, seq, value)
    return decision, EmaCrossState(ema_state, target, seq, candle.ts)


def ema_warmup_candles(period: int, tolerance: float = WARMUP_TOLERANCE) -> int:
    """Candles an EMA(``period``) must consume so that where it started stops mattering.

    Two EMAs over the same closes that differ by ``delta`` at some candle differ by
    ``delta * (1 - alpha)**n`` after ``n`` more updates. A warm-up of ``period + n`` candles seeds
    on its first ``period`` (a mean that differs from the full-history EMA there) and then updates
    ``n`` times, so ``n`` is the least with ``(1 - alpha)**n < tolerance``: 297 candles for
    period 20, 7,408 for 500 and 14,816 for 1000.
    """
    if isinstance(period, bool) or not isinstance(period, int) or period < 1:
        raise ValueError(f"period must be a positive integer, got {period!r}")
    if not 0.0 < tolerance < 1.0:
        raise ValueError(f"tolerance must lie strictly between 0 and 1, got {tolerance!r}")
    decay = (period - 1) / (period + 1)  # 1 - alpha
    if decay == 0.0:  # period 1: the EMA is the close itself
        return period
    n = max(1, math.ceil(math.log(tolerance) / math.log(decay)))
    # The logarithms may be an ulp off: settle n on the powers themselves.
    while decay**n >= tolerance:
        n += 1
    while n > 1 and decay ** (n - 1) < tolerance:
        n -= 1
    return period + n


def warm_up(candles: Iterable[Candle], params: EmaCrossParams) -> EmaCrossState:
    """The state after deciding on ``candles`` in order (for a bot starting from history)."""
    state = EmaCrossState.start(params)
    for candle in candles:
        _, state = decide(candle, state, params)
    return state


def ema_cross_signals(close: NDArray[np.float64], params: EmaCrossParams) -> Signals:
    """The vectorised face over an array of closes (finite and > 0)."""
    close = np.ascontiguousarray(close, dtype=np.float64)
    n = close.shape[0]
    values = np.empty(n)
    target = np.full(n, NO_TARGET, dtype=np.int8)
    ema(close, params.ema_period, out=values, on_chunk=_ChunkDecider(close, values, target, params.allow_short))
    return Signals(values, target)


def ema_cross_signals_batch(close: NDArray[np.float64], params: Sequence[EmaCrossParams]) -> list[Signals]:
    """:func:`ema_cross_signals` for many parameter sets at once (a sweep): the EMAs of every
    period as one 2-D array (:func:`ema_rows`, bit-identical rows), then each row's targets decided
    by the same rule, so every result equals the single run's exactly."""
    close = np.ascontiguousarray(close, dtype=np.float64)
    n = close.shape[0]
    periods = sorted({p.ema_period for p in params})
    rows = ema_rows(close, periods)
    row_of = {period: i for i, period in enumerate(periods)}
    out = []
    for p in params:
        values = rows[row_of[p.ema_period]]
        target = np.full(n, NO_TARGET, dtype=np.int8)
        if n >= p.ema_period:
            _ChunkDecider(close, values, target, p.allow_short)(p.ema_period - 1, n)
        out.append(Signals(values, target))
    return out


class _ChunkDecider:
    """Decides the targets of each chunk as soon as its EMA values are final (still in cache).

    ``close > ema``: LONG; ``close < ema``: FLAT (SHORT with ``allow_short``); a tie keeps the
    target of the candle before its run of ties (``NO_TARGET`` before any decision)."""

    def __init__(
        self, close: NDArray[np.float64], values: NDArray[np.float64], target: NDArray[np.int8], allow_short: bool
    ) -> None:
        self.close = close
        self.values = values
        self.target = target
        self.allow_short = allow_short
        self.carry = np.int8(NO_TARGET)  # the target on the candle before the current chunk
        self.above = np.empty(0, dtype=np.bool_)
        self.below = np.empty(0, dtype=np.bool_)

    def __call__(self, start: int, stop: int) -> None:
        m = stop - start
        if self.above.shape[0] < m:
            self.above = np.empty(m, dtype=np.bool_)
            self.below = np.empty(m, dtype=np.bool_)
        c = self.close[start:stop]
        e = self.values[start:stop]
        out = self.target[start:stop]
        above = np.greater(c, e, out=self.above[:m])
        below = np.less(c, e, out=self.below[:m])
        if self.allow_short:
            np.subtract(above.view(np.int8), below.view(np.int8), out=out)
        else:
            np.copyto(out, above.view(np.int8))
        decided = np.logical_or(above, below, out=above)
        ties = np.flatnonzero(~decided)
        if ties.size:
            run_first = np.empty(ties.shape[0], dtype=np.bool_)
            run_first[0] = True
            np.not_equal(ties[1:], ties[:-1] + 1, out=run_first[1:])
            run_start = np.maximum.accumulate(np.where(run_first, ties, 0))
            source = run_start - 1
            out[ties] = np.where(source >= 0, out[np.maximum(source, 0)], self.carry)
        self.carry = out[-1]


EMA_CROSS_PARAMETERS: Final = ParameterSet(
    "ema_cross",
    (IntParameter("ema_period", MIN_EMA_PERIOD, MAX_EMA_PERIOD, DEFAULT_EMA_PERIOD, "Period of the EMA (candles)."),),
)
"""The schema of ema_cross's parameters (parsing stays :meth:`EmaCrossParams.from_mapping`'s)."""


class EmaCross:
    """The ``"ema_cross"`` strategy (implements :class:`tradebot.strategies.base.Strategy`)."""

    @property
    def name(self) -> str:
        return "ema_cross"

    @property
    def title(self) -> str:
        return "EMA cross"

    @property
    def description(self) -> str:
        return "Long while the close is above its EMA, flat (or short) while below."

    def parameters_schema(self) -> dict[str, Any]:
        return EMA_CROSS_PARAMETERS.json_schema()

    def parse_params(self, raw: Mapping[str, Any]) -> EmaCrossParams:
        return EmaCrossParams.from_mapping(raw)

    def initial_state(self, params: EmaCrossParams) -> EmaCrossState:
        return EmaCrossState.start(params)

    def decide(self, candle: Candle, state: EmaCrossState, params: EmaCrossParams) -> tuple[Decision, EmaCrossState]:
        return decide(candle, state, params)

    def signals(self, candles: Candles, params: EmaCrossParams) -> Signals:
        return ema_cross_signals(candles.close, params)

    def indicators(self, candles: Candles, params: EmaCrossParams) -> Indicators:
        values = ema(candles.close, params.ema_period)
        return Indicators((IndicatorLine("ema", f"EMA {params.ema_period}", values),))

    def signals_batch(self, candles: Candles, params: Sequence[EmaCrossParams]) -> list[Signals]:
        """Many parameter sets' signals at once, each equal to :meth:`signals` (sweeps)."""
        return ema_cross_signals_batch(candles.close, params)

    def warmup_candles(self, params: EmaCrossParams) -> int:
        return ema_warmup_candles(params.ema_period)

    def state_to_dict(self, state: EmaCrossState) -> dict[str, Any]:
        return state.to_dict()

    def state_from_dict(self, raw: Mapping[str, Any], params: EmaCrossParams) -> EmaCrossState:
        state = EmaCrossState.from_dict(raw)
        if state.ema.period != params.ema_period:
            raise ValueError(f"saved state is for ema_period {state.ema.period}, parameters say {params.ema_period}")
        return state


EMA_CROSS: Final = EmaCross()
register(EMA_CROSS)
