"""The Bollinger reversion strategy, registered as ``"bollinger_reversion"`` (CONTRACT.md,
Strategies).

``mid`` = SMA of the last ``bb_period`` closes, ``upper``/``lower`` = ``mid`` ± ``bb_std`` times
their population standard deviation (see :mod:`tradebot.strategies.bollinger`). From candle
``bb_period - 1``, starting flat:

- from flat: long if close < lower, else short if close > upper;
- from long: short if close > upper, else flat if close >= mid;
- from short: long if close < lower, else flat if close <= mid;

otherwise unchanged; with ``allow_short`` false, "short" reads "flat". The live face steps this
rule; the vectorised face runs the same comparisons through one exact state machine
(:func:`tradebot.strategies.targets.reversion_targets`). A flat market puts all three bands exactly
on the price: no trade.

The bands depend on the window only, so ``bb_period`` candles warm them up exactly; the position
the rule holds can depend on older candles (a long stays long while the close sits between the
lower band and the mid), and a bot starting without a saved state takes the warm-up's position, as
CONTRACT.md defines.

``Decision.ema`` and ``Signals.ema`` carry the mid band; :func:`bollinger` gives all three.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from tradebot.strategies.base import NO_TARGET, Decision, IndicatorLine, Indicators, Signals, Target, register
from tradebot.strategies.bollinger import BollingerState, bollinger
from tradebot.strategies.candles import Candle, Candles
from tradebot.strategies.parameters import IntParameter, NumberParameter, ParameterSet
from tradebot.strategies.targets import (
    check_candle,
    next_seq,
    reversion_step,
    reversion_targets,
    target_from_json,
    target_to_json,
)

__all__ = [
    "BOLLINGER_REVERSION",
    "BOLLINGER_REVERSION_PARAMETERS",
    "BollingerReversion",
    "BollingerReversionParams",
    "BollingerReversionState",
    "bollinger_reversion_signals",
]

NAME: Final = "bollinger_reversion"
_STATE_VERSION: Final = 1

BOLLINGER_REVERSION_PARAMETERS: Final = ParameterSet(
    NAME,
    (
        IntParameter("bb_period", 2, 1000, 20, "Candles in the window of the SMA and the standard deviation."),
        NumberParameter("bb_std", 0.1, 10.0, 2.0, "Band half-width in population standard deviations."),
    ),
)


@dataclass(frozen=True, slots=True)
class BollingerReversionParams:
    bb_period: int = 20
    bb_std: float = 2.0
    allow_short: bool = False

    def __post_init__(self) -> None:
        BOLLINGER_REVERSION_PARAMETERS.check({"bb_period": self.bb_period, "bb_std": self.bb_std})
        ParameterSet.allow_short({"allow_short": self.allow_short})

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> BollingerReversionParams:
        v = BOLLINGER_REVERSION_PARAMETERS.parse(raw)
        return cls(int(v["bb_period"]), float(v["bb_std"]), ParameterSet.allow_short(raw))

    def to_dict(self) -> dict[str, Any]:
        return {"bb_period": self.bb_period, "bb_std": self.bb_std, "allow_short": self.allow_short}


@dataclass(frozen=True, slots=True)
class BollingerReversionState:
    """Live state: the incremental bands, the standing target and its sequence number, and the
    open time of the last candle consumed."""

    bands: BollingerState
    target: Target | None = None
    seq: int = 0
    last_candle_ts: int | None = None

    @classmethod
    def start(cls, params: BollingerReversionParams) -> BollingerReversionState:
        return cls(BollingerState.start(params.bb_period, params.bb_std))

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": _STATE_VERSION,
            "bands": self.bands.to_dict(),
            "target": target_to_json(self.target),
            "seq": self.seq,
            "last_candle_ts": self.last_candle_ts,
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], params: BollingerReversionParams) -> BollingerReversionState:
        if raw.get("version") != _STATE_VERSION:
            raise ValueError(f"unsupported {NAME} state version {raw.get('version')!r}")
        sub = raw.get("bands")
        if not isinstance(sub, Mapping):
            raise ValueError(f"{NAME} state lacks its 'bands' object")
        bands = BollingerState.from_dict(sub)
        if (bands.period, bands.width) != (params.bb_period, params.bb_std):
            raise ValueError(f"saved bands are for {bands.period} / {bands.width}, parameters say otherwise")
        target, seq, ts = target_from_json(raw, NAME)
        if (ts is None) != (not bands.window) or (target is None) != (bands.mid is None):
            raise ValueError(f"{NAME} state is inconsistent with its bands")
        return cls(bands, target, seq, ts)


def decide(
    candle: Candle, state: BollingerReversionState, params: BollingerReversionParams
) -> tuple[Decision, BollingerReversionState]:
    """The live face: consumes one closed candle. Pure."""
    close = check_candle(candle, state.last_candle_ts)
    if (state.bands.period, state.bands.width) != (params.bb_period, params.bb_std):
        raise ValueError("state was built for other band parameters than the parameters say")
    bands = state.bands.update(close)
    target = state.target
    if bands.mid is not None and bands.upper is not None and bands.lower is not None:
        target = reversion_step(target, close, bands.lower, bands.upper, bands.mid, params.allow_short)
    changed, seq = next_seq(state.target, target, state.seq)
    return Decision(candle.ts, target, changed, seq, bands.mid), BollingerReversionState(bands, target, seq, candle.ts)


def bollinger_reversion_signals(close: NDArray[np.float64], params: BollingerReversionParams) -> Signals:
    """The vectorised face over an array of closes (finite and > 0)."""
    close = np.ascontiguousarray(close, dtype=np.float64)
    bands = bollinger(close, params.bb_period, params.bb_std)
    n = close.shape[0]
    target = np.full(n, NO_TARGET, dtype=np.int8)
    start = params.bb_period - 1
    if n > start:
        target[start:] = reversion_targets(
            close[start:], bands.lower[start:], bands.upper[start:], bands.mid[start:], params.allow_short
        )
    return Signals(bands.mid, target)


class BollingerReversion:
    """The ``"bollinger_reversion"`` strategy (implements :class:`tradebot.strategies.base.Strategy`)."""

    @property
    def name(self) -> str:
        return NAME

    @property
    def title(self) -> str:
        return "Bollinger reversion"

    @property
    def description(self) -> str:
        return "Long below the lower Bollinger band, short (or flat) above the upper one, flat again at the mid."

    def parameters_schema(self) -> dict[str, Any]:
        return BOLLINGER_REVERSION_PARAMETERS.json_schema()

    def parse_params(self, raw: Mapping[str, Any]) -> BollingerReversionParams:
        return BollingerReversionParams.from_mapping(raw)

    def initial_state(self, params: BollingerReversionParams) -> BollingerReversionState:
        return BollingerReversionState.start(params)

    def decide(
        self, candle: Candle, state: BollingerReversionState, params: BollingerReversionParams
    ) -> tuple[Decision, BollingerReversionState]:
        return decide(candle, state, params)

    def signals(self, candles: Candles, params: BollingerReversionParams) -> Signals:
        return bollinger_reversion_signals(candles.close, params)

    def indicators(self, candles: Candles, params: BollingerReversionParams) -> Indicators:
        bands = bollinger(candles.close, params.bb_period, params.bb_std)
        width = f"{params.bb_period}, {params.bb_std:g}"
        return Indicators(
            (
                IndicatorLine("upper", f"upper band ({width})", bands.upper),
                IndicatorLine("mid", f"SMA {params.bb_period}", bands.mid),
                IndicatorLine("lower", f"lower band ({width})", bands.lower),
            )
        )

    def warmup_candles(self, params: BollingerReversionParams) -> int:
        """The window: the bands over the last ``bb_period`` closes are exactly the full history's."""
        return params.bb_period

    def state_to_dict(self, state: BollingerReversionState) -> dict[str, Any]:
        return state.to_dict()

    def state_from_dict(self, raw: Mapping[str, Any], params: BollingerReversionParams) -> BollingerReversionState:
        return BollingerReversionState.from_dict(raw, params)


BOLLINGER_REVERSION: Final = BollingerReversion()
register(BOLLINGER_REVERSION)
