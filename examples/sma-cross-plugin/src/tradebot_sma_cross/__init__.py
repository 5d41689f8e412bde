"""``sma_cross``: long if close > SMA of the last ``sma_period`` closes, flat (short with
``allow_short``) if close < SMA, else unchanged; first target flat, from candle ``sma_period - 1``.

Both faces reduce every window with :func:`tradebot.strategies.bollinger.window_mean_m2`, which
gives exactly the window's value when all its closes are equal (a flat market never trades) and
performs the same operations on a window whether it is one of a whole series or the live one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from tradebot.strategies.base import NO_TARGET, Decision, IndicatorLine, Indicators, Signals, Target
from tradebot.strategies.bollinger import window_mean_m2
from tradebot.strategies.candles import Candle, Candles
from tradebot.strategies.parameters import IntParameter, ParameterSet
from tradebot.strategies.targets import (
    check_candle,
    hold_through_ties,
    next_seq,
    short_or_flat,
    target_from_json,
    target_to_json,
)

__all__ = ["SMA_CROSS", "SmaCross", "SmaCrossParams", "SmaCrossState"]

NAME: Final = "sma_cross"
_STATE_VERSION: Final = 1

PARAMETERS: Final = ParameterSet(
    NAME, (IntParameter("sma_period", 2, 1000, 20, "Candles in the simple moving average."),)
)


@dataclass(frozen=True, slots=True)
class SmaCrossParams:
    sma_period: int = 20
    allow_short: bool = False

    def __post_init__(self) -> None:
        PARAMETERS.check({"sma_period": self.sma_period})
        ParameterSet.allow_short({"allow_short": self.allow_short})

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> SmaCrossParams:
        v = PARAMETERS.parse(raw)
        return cls(int(v["sma_period"]), ParameterSet.allow_short(raw))

    def to_dict(self) -> dict[str, Any]:
        return {"sma_period": self.sma_period, "allow_short": self.allow_short}


@dataclass(frozen=True, slots=True)
class SmaCrossState:
    """The last ``sma_period`` closes (fewer at the start), the standing target, its sequence
    number and the open time of the last candle consumed: all JSON-safe."""

    window: tuple[float, ...] = ()
    target: Target | None = None
    seq: int = 0
    last_candle_ts: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": _STATE_VERSION,
            "window": list(self.window),
            "target": target_to_json(self.target),
            "seq": self.seq,
            "last_candle_ts": self.last_candle_ts,
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], params: SmaCrossParams) -> SmaCrossState:
        if raw.get("version") != _STATE_VERSION:
            raise ValueError(f"unsupported {NAME} state version {raw.get('version')!r}")
        window = raw.get("window")
        if not isinstance(window, list) or len(window) > params.sma_period:
            raise ValueError(f"{NAME} state window must be a list of at most {params.sma_period} closes")
        values = []
        for v in window:
            if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
                raise ValueError(f"{NAME} state window holds an invalid close {v!r}")
            values.append(float(v))
        target, seq, ts = target_from_json(raw, NAME)
        if (ts is None) != (not values) or (target is None) != (len(values) < params.sma_period):
            raise ValueError(f"{NAME} state is inconsistent with its window")
        return cls(tuple(values), target, seq, ts)


def _sma(window: tuple[float, ...]) -> float:
    mean, _ = window_mean_m2(np.array(window, dtype=np.float64), len(window))
    return float(mean[0])


def decide(candle: Candle, state: SmaCrossState, params: SmaCrossParams) -> tuple[Decision, SmaCrossState]:
    """The live face: consumes one closed candle. Pure."""
    close = check_candle(candle, state.last_candle_ts)
    n = params.sma_period
    window = (*state.window[1 - n :], close)
    target = state.target
    sma: float | None = None
    if len(window) == n:
        sma = _sma(window)
        if close > sma:
            target = Target.LONG
        elif close < sma:
            target = short_or_flat(params.allow_short)
        elif target is None:
            target = Target.FLAT
    changed, seq = next_seq(state.target, target, state.seq)
    return Decision(candle.ts, target, changed, seq, sma), SmaCrossState(window, target, seq, candle.ts)


def sma_series(close: NDArray[np.float64], period: int) -> NDArray[np.float64]:
    """The SMA of every window of ``period`` closes, aligned with them (NaN before index ``period - 1``)."""
    close = np.ascontiguousarray(close, dtype=np.float64)
    sma = np.full(close.shape[0], np.nan)
    if close.shape[0] >= period:
        sma[period - 1 :] = window_mean_m2(close, period)[0]
    return sma


def sma_cross_signals(close: NDArray[np.float64], params: SmaCrossParams) -> Signals:
    """The vectorised face over an array of closes (finite and > 0)."""
    close = np.ascontiguousarray(close, dtype=np.float64)
    n = close.shape[0]
    start = params.sma_period - 1
    sma = sma_series(close, params.sma_period)
    target = np.full(n, NO_TARGET, dtype=np.int8)
    if n > start:
        c, mean = close[start:], sma[start:]
        target[start:] = hold_through_ties(c > mean, c < mean, params.allow_short)
    return Signals(sma, target)


class SmaCross:
    """The ``"sma_cross"`` strategy (implements :class:`tradebot.strategies.base.Strategy`)."""

    @property
    def name(self) -> str:
        return NAME

    @property
    def title(self) -> str:
        return "SMA cross"

    @property
    def description(self) -> str:
        return "Long while the close is above its simple moving average, flat (or short) while below."

    def parameters_schema(self) -> dict[str, Any]:
        return PARAMETERS.json_schema()

    def parse_params(self, raw: Mapping[str, Any]) -> SmaCrossParams:
        return SmaCrossParams.from_mapping(raw)

    def initial_state(self, params: SmaCrossParams) -> SmaCrossState:
        return SmaCrossState()

    def decide(self, candle: Candle, state: SmaCrossState, params: SmaCrossParams) -> tuple[Decision, SmaCrossState]:
        return decide(candle, state, params)

    def signals(self, candles: Candles, params: SmaCrossParams) -> Signals:
        return sma_cross_signals(candles.close, params)

    def indicators(self, candles: Candles, params: SmaCrossParams) -> Indicators:
        """What the dashboard draws: the SMA on the price (optional: a strategy without this method
        is charted without indicators)."""
        sma = sma_series(candles.close, params.sma_period)
        return Indicators((IndicatorLine("sma", f"SMA {params.sma_period}", sma),))

    def warmup_candles(self, params: SmaCrossParams) -> int:
        """The window; the target can still depend on older candles (a tie keeps it), which a bot
        starting without a saved state takes from its warm-up, as CONTRACT.md defines."""
        return params.sma_period

    def state_to_dict(self, state: SmaCrossState) -> dict[str, Any]:
        return state.to_dict()

    def state_from_dict(self, raw: Mapping[str, Any], params: SmaCrossParams) -> SmaCrossState:
        return SmaCrossState.from_dict(raw, params)


SMA_CROSS: Final = SmaCross()
