"""The EMA crossover strategy, registered as ``"ema_crossover"`` (CONTRACT.md, Strategies).

From the first candle where EMA_slow is defined (index ``slow_period - 1``): target LONG when
``EMA_fast > EMA_slow``, FLAT (SHORT with ``allow_short``) when ``<``, else unchanged (FLAT if
nothing was decided before). Both EMAs come from :mod:`tradebot.strategies.ema`, whose two faces
are bit-identical, so the live and vectorised faces compare the same numbers on every candle. A flat
market gives two EMAs exactly equal to the price: no trade.

``Decision.ema`` and ``Signals.ema`` carry EMA_slow; :func:`ema_crossover_indicators` gives both.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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
    register,
)
from tradebot.strategies.candles import Candle, Candles
from tradebot.strategies.ema import EmaState, ema, ema_rows
from tradebot.strategies.ema_cross import ema_warmup_candles
from tradebot.strategies.parameters import IntParameter, ParameterSet
from tradebot.strategies.targets import (
    check_candle,
    hold_through_ties,
    next_seq,
    short_or_flat,
    target_from_json,
    target_to_json,
)

__all__ = [
    "EMA_CROSSOVER",
    "EMA_CROSSOVER_PARAMETERS",
    "EmaCrossover",
    "EmaCrossoverIndicators",
    "EmaCrossoverParams",
    "EmaCrossoverState",
    "ema_crossover_indicators",
    "ema_crossover_signals",
    "ema_crossover_signals_batch",
]

NAME: Final = "ema_crossover"
_STATE_VERSION: Final = 1

EMA_CROSSOVER_PARAMETERS: Final = ParameterSet(
    NAME,
    (
        IntParameter("fast_period", 2, 999, 12, "Period of the fast EMA (candles); less than slow_period."),
        IntParameter("slow_period", 3, 1000, 26, "Period of the slow EMA (candles)."),
    ),
)


def check_fast_below_slow(fast: int, slow: int) -> None:
    if not fast < slow:
        raise ParameterError("fast_period", f"must be less than slow_period ({slow}), got {fast}")


@dataclass(frozen=True, slots=True)
class EmaCrossoverParams:
    fast_period: int = 12
    slow_period: int = 26
    allow_short: bool = False

    def __post_init__(self) -> None:
        EMA_CROSSOVER_PARAMETERS.check({"fast_period": self.fast_period, "slow_period": self.slow_period})
        check_fast_below_slow(self.fast_period, self.slow_period)
        ParameterSet.allow_short({"allow_short": self.allow_short})

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> EmaCrossoverParams:
        values = EMA_CROSSOVER_PARAMETERS.parse(raw)
        fast, slow = int(values["fast_period"]), int(values["slow_period"])
        check_fast_below_slow(fast, slow)
        return cls(fast, slow, ParameterSet.allow_short(raw))

    def to_dict(self) -> dict[str, Any]:
        return {"fast_period": self.fast_period, "slow_period": self.slow_period, "allow_short": self.allow_short}


@dataclass(frozen=True, slots=True)
class EmaCrossoverState:
    """Live state: both incremental EMAs, the standing target and its sequence number, and the
    open time of the last candle consumed."""

    fast: EmaState
    slow: EmaState
    target: Target | None = None
    seq: int = 0
    last_candle_ts: int | None = None

    @classmethod
    def start(cls, params: EmaCrossoverParams) -> EmaCrossoverState:
        return cls(EmaState.start(params.fast_period), EmaState.start(params.slow_period))

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": _STATE_VERSION,
            "fast": self.fast.to_dict(),
            "slow": self.slow.to_dict(),
            "target": target_to_json(self.target),
            "seq": self.seq,
            "last_candle_ts": self.last_candle_ts,
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], params: EmaCrossoverParams) -> EmaCrossoverState:
        if raw.get("version") != _STATE_VERSION:
            raise ValueError(f"unsupported {NAME} state version {raw.get('version')!r}")
        emas = []
        for key, period in (("fast", params.fast_period), ("slow", params.slow_period)):
            sub = raw.get(key)
            if not isinstance(sub, Mapping):
                raise ValueError(f"{NAME} state lacks its {key!r} object")
            state = EmaState.from_dict(sub)
            if state.period != period:
                raise ValueError(f"saved {key} EMA has period {state.period}, parameters say {period}")
            emas.append(state)
        fast, slow = emas
        target, seq, ts = target_from_json(raw, NAME)
        if fast.count != slow.count or (ts is None) != (slow.count == 0):
            raise ValueError(f"{NAME} state counts are inconsistent")
        if (target is None) != (slow.value is None):
            raise ValueError(f"{NAME} state target is inconsistent with the slow EMA")
        return cls(fast, slow, target, seq, ts)


def decide(candle: Candle, state: EmaCrossoverState, params: EmaCrossoverParams) -> tuple[Decision, EmaCrossoverState]:
    """The live face: consumes one closed candle. Pure."""
    close = check_candle(candle, state.last_candle_ts)
    if (state.fast.period, state.slow.period) != (params.fast_period, params.slow_period):
        raise ValueError("state was built for other EMA periods than the parameters say")
    fast = state.fast.update(close)
    slow = state.slow.update(close)
    target = state.target
    if slow.value is not None and fast.value is not None:
        if fast.value > slow.value:
            target = Target.LONG
        elif fast.value < slow.value:
            target = short_or_flat(params.allow_short)
        elif target is None:
            target = Target.FLAT
    changed, seq = next_seq(state.target, target, state.seq)
    return Decision(candle.ts, target, changed, seq, slow.value), EmaCrossoverState(fast, slow, target, seq, candle.ts)


@dataclass(frozen=True, slots=True)
class EmaCrossoverIndicators:
    """Both EMAs over a series (NaN while undefined)."""

    fast: NDArray[np.float64]
    slow: NDArray[np.float64]


def ema_crossover_indicators(close: NDArray[np.float64], params: EmaCrossoverParams) -> EmaCrossoverIndicators:
    close = np.ascontiguousarray(close, dtype=np.float64)
    return EmaCrossoverIndicators(ema(close, params.fast_period), ema(close, params.slow_period))


def ema_crossover_signals(close: NDArray[np.float64], params: EmaCrossoverParams) -> Signals:
    """The vectorised face over an array of closes (finite and > 0)."""
    ind = ema_crossover_indicators(close, params)
    return _decide(ind.fast, ind.slow, params)


def _decide(fast: NDArray[np.float64], slow: NDArray[np.float64], params: EmaCrossoverParams) -> Signals:
    n = slow.shape[0]
    target = np.full(n, NO_TARGET, dtype=np.int8)
    start = params.slow_period - 1
    if n > start:
        f, s = fast[start:], slow[start:]
        target[start:] = hold_through_ties(f > s, f < s, params.allow_short)
    return Signals(slow, target)


def ema_crossover_signals_batch(close: NDArray[np.float64], params: Sequence[EmaCrossoverParams]) -> list[Signals]:
    """:func:`ema_crossover_signals` for many parameter sets: the EMA of every period any of them
    names as one 2-D array (bit-identical rows, :func:`ema_rows`), each pair then compared."""
    close = np.ascontiguousarray(close, dtype=np.float64)
    periods = sorted({p.fast_period for p in params} | {p.slow_period for p in params})
    rows = ema_rows(close, periods)
    row_of = {period: i for i, period in enumerate(periods)}
    return [_decide(rows[row_of[p.fast_period]], rows[row_of[p.slow_period]], p) for p in params]


class EmaCrossover:
    """The ``"ema_crossover"`` strategy (implements :class:`tradebot.strategies.base.Strategy`)."""

    @property
    def name(self) -> str:
        return NAME

    @property
    def title(self) -> str:
        return "EMA crossover"

    @property
    def description(self) -> str:
        return "Long while the fast EMA is above the slow EMA, flat (or short) while below."

    def parameters_schema(self) -> dict[str, Any]:
        return EMA_CROSSOVER_PARAMETERS.json_schema()

    def parse_params(self, raw: Mapping[str, Any]) -> EmaCrossoverParams:
        return EmaCrossoverParams.from_mapping(raw)

    def initial_state(self, params: EmaCrossoverParams) -> EmaCrossoverState:
        return EmaCrossoverState.start(params)

    def decide(
        self, candle: Candle, state: EmaCrossoverState, params: EmaCrossoverParams
    ) -> tuple[Decision, EmaCrossoverState]:
        return decide(candle, state, params)

    def signals(self, candles: Candles, params: EmaCrossoverParams) -> Signals:
        return ema_crossover_signals(candles.close, params)

    def indicators(self, candles: Candles, params: EmaCrossoverParams) -> Indicators:
        ind = ema_crossover_indicators(candles.close, params)
        return Indicators(
            (
                IndicatorLine("fast", f"EMA {params.fast_period}", ind.fast),
                IndicatorLine("slow", f"EMA {params.slow_period}", ind.slow),
            )
        )

    def signals_batch(self, candles: Candles, params: Sequence[EmaCrossoverParams]) -> list[Signals]:
        """Many parameter sets' signals at once, each equal to :meth:`signals` (sweeps)."""
        return ema_crossover_signals_batch(candles.close, params)

    def warmup_candles(self, params: EmaCrossoverParams) -> int:
        """Enough for both EMAs' seeds to weigh less than 1e-12 (see ``ema_warmup_candles``)."""
        return max(ema_warmup_candles(params.fast_period), ema_warmup_candles(params.slow_period))

    def state_to_dict(self, state: EmaCrossoverState) -> dict[str, Any]:
        return state.to_dict()

    def state_from_dict(self, raw: Mapping[str, Any], params: EmaCrossoverParams) -> EmaCrossoverState:
        return EmaCrossoverState.from_dict(raw, params)


EMA_CROSSOVER: Final = EmaCrossover()
register(EMA_CROSSOVER)
