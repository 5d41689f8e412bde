"""The RSI reversion strategy, registered as ``"rsi_reversion"`` (CONTRACT.md, Strategies).

From candle ``rsi_period`` (where Wilder's RSI is defined, see :mod:`tradebot.strategies.rsi`),
starting flat:

- from flat: long if RSI < oversold, else short if RSI > overbought, else flat;
- from long: short if RSI > overbought, else flat if RSI >= exit_level, else long;
- from short: long if RSI < oversold, else flat if RSI <= exit_level, else short;

with ``allow_short`` false, "short" reads "flat". The live face steps this rule candle by candle;
the vectorised face runs the same comparisons through one exact state machine
(:func:`tradebot.strategies.targets.reversion_targets`). A flat market has an RSI of exactly 50:
no trade.

The position the rule holds can depend on candles older than the RSI's warm-up (a long stays
long while the RSI sits between oversold and exit_level); a bot starting without a saved state takes
the warm-up's position, as CONTRACT.md defines.

``Decision.ema`` and ``Signals.ema`` carry the RSI.
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
from tradebot.strategies.parameters import IntParameter, ParameterSet
from tradebot.strategies.rsi import RsiState, rsi, rsi_warmup_candles
from tradebot.strategies.targets import (
    check_candle,
    next_seq,
    reversion_step,
    reversion_targets,
    target_from_json,
    target_to_json,
)

__all__ = [
    "RSI_REVERSION",
    "RSI_REVERSION_PARAMETERS",
    "RsiReversion",
    "RsiReversionParams",
    "RsiReversionState",
    "rsi_reversion_signals",
]

NAME: Final = "rsi_reversion"
_STATE_VERSION: Final = 1

RSI_REVERSION_PARAMETERS: Final = ParameterSet(
    NAME,
    (
        IntParameter("rsi_period", 2, 100, 14, "Period of Wilder's RSI (candles)."),
        IntParameter("oversold", 1, 49, 30, "Go long when the RSI falls below this level."),
        IntParameter("overbought", 51, 99, 70, "Go short (or flat) when the RSI rises above this level."),
        IntParameter(
            "exit_level", 1, 99, 50, "Close a long when the RSI reaches this level (a short when it falls to it)."
        ),
    ),
)


@dataclass(frozen=True, slots=True)
class RsiReversionParams:
    rsi_period: int = 14
    oversold: int = 30
    overbought: int = 70
    exit_level: int = 50
    allow_short: bool = False

    def __post_init__(self) -> None:
        RSI_REVERSION_PARAMETERS.check(
            {
                "rsi_period": self.rsi_period,
                "oversold": self.oversold,
                "overbought": self.overbought,
                "exit_level": self.exit_level,
            }
        )
        ParameterSet.allow_short({"allow_short": self.allow_short})

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> RsiReversionParams:
        v = RSI_REVERSION_PARAMETERS.parse(raw)
        return cls(
            int(v["rsi_period"]),
            int(v["oversold"]),
            int(v["overbought"]),
            int(v["exit_level"]),
            ParameterSet.allow_short(raw),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "rsi_period": self.rsi_period,
            "oversold": self.oversold,
            "overbought": self.overbought,
            "exit_level": self.exit_level,
            "allow_short": self.allow_short,
        }


@dataclass(frozen=True, slots=True)
class RsiReversionState:
    """Live state: the incremental RSI, the standing target and its sequence number, and the open
    time of the last candle consumed."""

    rsi: RsiState
    target: Target | None = None
    seq: int = 0
    last_candle_ts: int | None = None

    @classmethod
    def start(cls, params: RsiReversionParams) -> RsiReversionState:
        return cls(RsiState.start(params.rsi_period))

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": _STATE_VERSION,
            "rsi": self.rsi.to_dict(),
            "target": target_to_json(self.target),
            "seq": self.seq,
            "last_candle_ts": self.last_candle_ts,
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], params: RsiReversionParams) -> RsiReversionState:
        if raw.get("version") != _STATE_VERSION:
            raise ValueError(f"unsupported {NAME} state version {raw.get('version')!r}")
        sub = raw.get("rsi")
        if not isinstance(sub, Mapping):
            raise ValueError(f"{NAME} state lacks its 'rsi' object")
        rsi_state = RsiState.from_dict(sub)
        if rsi_state.period != params.rsi_period:
            raise ValueError(f"saved RSI has period {rsi_state.period}, parameters say {params.rsi_period}")
        target, seq, ts = target_from_json(raw, NAME)
        if (ts is None) != (rsi_state.count == 0) or (target is None) != (rsi_state.value is None):
            raise ValueError(f"{NAME} state is inconsistent with its RSI")
        return cls(rsi_state, target, seq, ts)


def decide(candle: Candle, state: RsiReversionState, params: RsiReversionParams) -> tuple[Decision, RsiReversionState]:
    """The live face: consumes one closed candle. Pure."""
    close = check_candle(candle, state.last_candle_ts)
    if state.rsi.period != params.rsi_period:
        raise ValueError(f"state was built for rsi_period {state.rsi.period}, parameters say {params.rsi_period}")
    rsi_state = state.rsi.update(close)
    value = rsi_state.value
    target = state.target
    if value is not None:
        target = reversion_step(
            target, value, params.oversold, params.overbought, params.exit_level, params.allow_short
        )
    changed, seq = next_seq(state.target, target, state.seq)
    return Decision(candle.ts, target, changed, seq, value), RsiReversionState(rsi_state, target, seq, candle.ts)


def rsi_reversion_signals(close: NDArray[np.float64], params: RsiReversionParams) -> Signals:
    """The vectorised face over an array of closes (finite and > 0)."""
    value = rsi(close, params.rsi_period)
    n = value.shape[0]
    target = np.full(n, NO_TARGET, dtype=np.int8)
    start = params.rsi_period
    if n > start:
        target[start:] = reversion_targets(
            value[start:], params.oversold, params.overbought, params.exit_level, params.allow_short
        )
    return Signals(value, target)


class RsiReversion:
    """The ``"rsi_reversion"`` strategy (implements :class:`tradebot.strategies.base.Strategy`)."""

    @property
    def name(self) -> str:
        return NAME

    @property
    def title(self) -> str:
        return "RSI reversion"

    @property
    def description(self) -> str:
        return "Long when Wilder's RSI is oversold, short (or flat) when overbought, flat again at the exit level."

    def parameters_schema(self) -> dict[str, Any]:
        return RSI_REVERSION_PARAMETERS.json_schema()

    def parse_params(self, raw: Mapping[str, Any]) -> RsiReversionParams:
        return RsiReversionParams.from_mapping(raw)

    def initial_state(self, params: RsiReversionParams) -> RsiReversionState:
        return RsiReversionState.start(params)

    def decide(
        self, candle: Candle, state: RsiReversionState, params: RsiReversionParams
    ) -> tuple[Decision, RsiReversionState]:
        return decide(candle, state, params)

    def signals(self, candles: Candles, params: RsiReversionParams) -> Signals:
        return rsi_reversion_signals(candles.close, params)

    def indicators(self, candles: Candles, params: RsiReversionParams) -> Indicators:
        levels = (float(params.oversold), float(params.exit_level), float(params.overbought))
        return Indicators(
            (IndicatorLine("rsi", f"RSI {params.rsi_period}", rsi(candles.close, params.rsi_period), pane="rsi"),),
            (IndicatorPane("rsi", f"RSI {params.rsi_period}", levels=levels),),
        )

    def warmup_candles(self, params: RsiReversionParams) -> int:
        return rsi_warmup_candles(params.rsi_period)

    def state_to_dict(self, state: RsiReversionState) -> dict[str, Any]:
        return state.to_dict()

    def state_from_dict(self, raw: Mapping[str, Any], params: RsiReversionParams) -> RsiReversionState:
        return RsiReversionState.from_dict(raw, params)


RSI_REVERSION: Final = RsiReversion()
register(RSI_REVERSION)
