"""The MACD cross strategy, registered as ``"macd_cross"`` (CONTRACT.md, Strategies).

``MACD = EMA_fast - EMA_slow`` from the candle where EMA_slow is defined (index ``slow - 1``), both
EMAs seeded with the mean of the first ``period`` closes; ``signal`` = EMA(``signal_period``) of
the MACD series, seeded with the mean of its first ``signal_period`` values, so defined from index
``slow + signal - 2``. From there: LONG when ``MACD > signal``, FLAT (SHORT with ``allow_short``)
when ``<``, else unchanged (FLAT if nothing was decided before).

This differs from TA-Lib's ``TA_MACD``, which seeds the fast EMA with the mean of the ``fast``
closes *ending* at index ``slow - 1`` (so that both EMAs start together) and outputs nothing before
the signal is defined; the two MACDs converge as the seeds decay. The signal line is the same
construction in both.

Every EMA is :mod:`tradebot.strategies.ema`'s (the signal is that EMA over the MACD values, which
start later than the closes), so the two faces are bit-identical. A flat market gives EMAs equal to
the price, a MACD and a signal of exactly 0: no trade.

``Decision.ema`` and ``Signals.ema`` carry the MACD line; :func:`macd_indicators` gives all three.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from tradebot.strategies.base import (
    NO_TARGET,
    Decision,
    IndicatorLine,
    IndicatorPane,
    Indicators,
    Signals,
    Target,
    register,
)
from tradebot.strategies.candles import Candle, Candles
from tradebot.strategies.ema import EmaState, ema
from tradebot.strategies.ema_cross import ema_warmup_candles
from tradebot.strategies.ema_crossover import check_fast_below_slow
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
    "MACD_CROSS",
    "MACD_CROSS_PARAMETERS",
    "MacdCross",
    "MacdCrossParams",
    "MacdCrossState",
    "MacdIndicators",
    "macd_cross_signals",
    "macd_indicators",
]

NAME: Final = "macd_cross"
_STATE_VERSION: Final = 1

MACD_CROSS_PARAMETERS: Final = ParameterSet(
    NAME,
    (
        IntParameter("fast_period", 2, 999, 12, "Period of the fast EMA (candles); less than slow_period."),
        IntParameter("slow_period", 3, 1000, 26, "Period of the slow EMA (candles)."),
        IntParameter("signal_period", 2, 1000, 9, "Period of the signal line, an EMA of the MACD (candles)."),
    ),
)


@dataclass(frozen=True, slots=True)
class MacdCrossParams:
    fast_period: int = 12
    slow_period: int = 26
    signal_period: int = 9
    allow_short: bool = False

    def __post_init__(self) -> None:
        MACD_CROSS_PARAMETERS.check(
            {"fast_period": self.fast_period, "slow_period": self.slow_period, "signal_period": self.signal_period}
        )
        check_fast_below_slow(self.fast_period, self.slow_period)
        ParameterSet.allow_short({"allow_short": self.allow_short})

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> MacdCrossParams:
        values = MACD_CROSS_PARAMETERS.parse(raw)
        fast, slow = int(values["fast_period"]), int(values["slow_period"])
        check_fast_below_slow(fast, slow)
        return cls(fast, slow, int(values["signal_period"]), ParameterSet.allow_short(raw))

    def to_dict(self) -> dict[str, Any]:
        return {
            "fast_period": self.fast_period,
            "slow_period": self.slow_period,
            "signal_period": self.signal_period,
            "allow_short": self.allow_short,
        }


@dataclass(frozen=True, slots=True)
class MacdCrossState:
    """Live state: the two price EMAs, the signal EMA (fed the MACD once EMA_slow is defined), the
    standing target and its sequence number, and the open time of the last candle consumed."""

    fast: EmaState
    slow: EmaState
    signal: EmaState
    target: Target | None = None
    seq: int = 0
    last_candle_ts: int | None = None

    @classmethod
    def start(cls, params: MacdCrossParams) -> MacdCrossState:
        return cls(
            EmaState.start(params.fast_period), EmaState.start(params.slow_period), EmaState.start(params.signal_period)
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": _STATE_VERSION,
            "fast": self.fast.to_dict(),
            "slow": self.slow.to_dict(),
            "signal": self.signal.to_dict(),
            "target": target_to_json(self.target),
            "seq": self.seq,
            "last_candle_ts": self.last_candle_ts,
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], params: MacdCrossParams) -> MacdCrossState:
        if raw.get("version") != _STATE_VERSION:
            raise ValueError(f"unsupported {NAME} state version {raw.get('version')!r}")
        emas = []
        for key, period in (
            ("fast", params.fast_period),
            ("slow", params.slow_period),
            ("signal", params.signal_period),
        ):
            sub = raw.get(key)
            if not isinstance(sub, Mapping):
                raise ValueError(f"{NAME} state lacks its {key!r} object")
            state = EmaState.from_dict(sub)
            if state.period != period:
                raise ValueError(f"saved {key} EMA has period {state.period}, parameters say {period}")
            emas.append(state)
        fast, slow, signal = emas
        target, seq, ts = target_from_json(raw, NAME)
        macd_count = max(0, slow.count - params.slow_period + 1)
        if fast.count != slow.count or signal.count != macd_count or (ts is None) != (slow.count == 0):
            raise ValueError(f"{NAME} state counts are inconsistent")
        if (target is None) != (signal.value is None):
            raise ValueError(f"{NAME} state target is inconsistent with the signal EMA")
        return cls(fast, slow, signal, target, seq, ts)


def decide(candle: Candle, state: MacdCrossState, params: MacdCrossParams) -> tuple[Decision, MacdCrossState]:
    """The live face: consumes one closed candle. Pure."""
    close = check_candle(candle, state.last_candle_ts)
    if (state.fast.period, state.slow.period, state.signal.period) != (
        params.fast_period,
        params.slow_period,
        params.signal_period,
    ):
        raise ValueError("state was built for other periods than the parameters say")
    fast = state.fast.update(close)
    slow = state.slow.update(close)
    signal = state.signal
    macd: float | None = None
    target = state.target
    if slow.value is not None and fast.value is not None:
        macd = fast.value - slow.value
        signal = signal.update(macd)
        if signal.value is not None:
            if macd > signal.value:
                target = Target.LONG
            elif macd < signal.value:
                target = short_or_flat(params.allow_short)
            elif target is None:
                target = Target.FLAT
    changed, seq = next_seq(state.target, target, state.seq)
    return Decision(candle.ts, target, changed, seq, macd), MacdCrossState(fast, slow, signal, target, seq, candle.ts)


@dataclass(frozen=True, slots=True)
class MacdIndicators:
    """The MACD line and its signal line over a series (NaN while undefined)."""

    macd: NDArray[np.float64]
    signal: NDArray[np.float64]


def macd_indicators(close: NDArray[np.float64], params: MacdCrossParams) -> MacdIndicators:
    close = np.ascontiguousarray(close, dtype=np.float64)
    macd = ema(close, params.fast_period)
    macd -= ema(close, params.slow_period)  # NaN before index slow - 1
    signal = np.full(close.shape[0], np.nan)
    start = params.slow_period - 1
    if close.shape[0] > start:
        ema(macd[start:], params.signal_period, out=signal[start:])
    return MacdIndicators(macd, signal)


def macd_cross_signals(close: NDArray[np.float64], params: MacdCrossParams) -> Signals:
    """The vectorised face over an array of closes (finite and > 0)."""
    ind = macd_indicators(close, params)
    n = ind.macd.shape[0]
    target = np.full(n, NO_TARGET, dtype=np.int8)
    start = params.slow_period + params.signal_period - 2
    if n > start:
        m, s = ind.macd[start:], ind.signal[start:]
        target[start:] = hold_through_ties(m > s, m < s, params.allow_short)
    return Signals(ind.macd, target)


def macd_warmup_candles(params: MacdCrossParams) -> int:
    """Candles for the live state to equal the full history's within 1e-12 of the price scale:
    the slow EMA's warm-up (after it, the MACD fed to the signal line has converged), then the
    updates the signal line needs for its own seed to weigh less than 1e-12."""
    price = max(ema_warmup_candles(params.fast_period), ema_warmup_candles(params.slow_period))
    return price + ema_warmup_candles(params.signal_period) - params.signal_period


class MacdCross:
    """The ``"macd_cross"`` strategy (implements :class:`tradebot.strategies.base.Strategy`)."""

    @property
    def name(self) -> str:
        return NAME

    @property
    def title(self) -> str:
        return "MACD cross"

    @property
    def description(self) -> str:
        return "Long while the MACD (fast EMA - slow EMA) is above its signal line, flat (or short) while below."

    def parameters_schema(self) -> dict[str, Any]:
        return MACD_CROSS_PARAMETERS.json_schema()

    def parse_params(self, raw: Mapping[str, Any]) -> MacdCrossParams:
        return MacdCrossParams.from_mapping(raw)

    def initial_state(self, params: MacdCrossParams) -> MacdCrossState:
        return MacdCrossState.start(params)

    def decide(self, candle: Candle, state: MacdCrossState, params: MacdCrossParams) -> tuple[Decision, MacdCrossState]:
        return decide(candle, state, params)

    def signals(self, candles: Candles, params: MacdCrossParams) -> Signals:
        return macd_cross_signals(candles.close, params)

    def indicators(self, candles: Candles, params: MacdCrossParams) -> Indicators:
        ind = macd_indicators(candles.close, params)
        label = f"MACD {params.fast_period}/{params.slow_period}/{params.signal_period}"
        return Indicators(
            (
                IndicatorLine("macd", "MACD", ind.macd, pane="macd"),
                IndicatorLine("signal", f"signal {params.signal_period}", ind.signal, pane="macd"),
            ),
            (IndicatorPane("macd", label, levels=(0.0,)),),
        )

    def warmup_candles(self, params: MacdCrossParams) -> int:
        return macd_warmup_candles(params)

    def state_to_dict(self, state: MacdCrossState) -> dict[str, Any]:
        return state.to_dict()

    def state_from_dict(self, raw: Mapping[str, Any], params: MacdCrossParams) -> MacdCrossState:
        return MacdCrossState.from_dict(raw, params)


MACD_CROSS: Final = MacdCross()
register(MACD_CROSS)
