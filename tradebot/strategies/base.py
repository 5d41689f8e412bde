"""What every strategy provides, the values it exchanges, and the registry of strategies by name.

A strategy has two faces over one definition:

- live: ``decide(candle, state, params) -> (decision, new_state)``, synchronous and pure (no I/O,
  clock or ``await``), called once per closed candle; the state is a small frozen dataclass that
  serialises to JSON so a bot resumes after a restart without replaying history;
- vectorised: ``signals(candles, params) -> Signals`` over whole arrays, used by the backtest.

Beside them, ``indicators(candles, params) -> Indicators`` gives the series the strategy compares
(vectorised, pure) and how to chart them: on the price pane or in a pane of their own with fixed
levels. It is optional for plugins (:func:`indicators_of` reads it).

Fed the same candles, both faces produce the same indicator values and the same target sequence.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Final, Protocol, TypeVar

import numpy as np
from numpy.typing import NDArray

from tradebot.strategies.candles import Candle, Candles
from tradebot.timeframes import TIMEFRAMES, is_timeframe

__all__ = [
    "NO_INDICATORS",
    "NO_TARGET",
    "PRICE_PANE",
    "Decision",
    "IndicatorLine",
    "IndicatorPane",
    "Indicators",
    "ParameterError",
    "Signals",
    "Strategy",
    "Target",
    "UnknownStrategyError",
    "check_timeframe",
    "get_strategy",
    "indicators_of",
    "register",
    "signal_sequence",
    "strategy_names",
]


class Target(IntEnum):
    """The position a strategy wants to hold. The values are the codes of :attr:`Signals.target`."""

    SHORT = -1
    FLAT = 0
    LONG = 1


NO_TARGET: Final = -128
"""Code in :attr:`Signals.target` for "no decision yet" (the indicator is still undefined)."""


class ParameterError(ValueError):
    """A strategy or backtest parameter is invalid; ``field`` names it (for 422 responses)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class UnknownStrategyError(LookupError):
    """No strategy is registered under that name."""


@dataclass(frozen=True, slots=True)
class Decision:
    """What the strategy concluded on one closed candle.

    ``target`` is the position it wants from now on (``None`` until it has decided anything);
    ``changed`` is true when ``target`` differs from the one before this candle, and then ``seq``
    (starting at 0, +1 on every change) numbers the new signal, which makes client order ids
    deterministic. ``ema`` is the indicator value on this candle (``None`` while undefined).
    """

    candle_ts: int
    target: Target | None
    changed: bool
    seq: int
    ema: float | None


@dataclass(frozen=True, slots=True)
class Signals:
    """The vectorised face's output, one entry per candle: ``ema`` (NaN while undefined) and
    ``target`` (a :class:`Target` code, or :data:`NO_TARGET` before the first decision)."""

    ema: NDArray[np.float64]
    target: NDArray[np.int8]

    def seq(self) -> NDArray[np.int64]:
        """Signal sequence numbers, as :attr:`Decision.seq` would give them candle by candle."""
        return signal_sequence(self.target)


def signal_sequence(target: NDArray[np.int8]) -> NDArray[np.int64]:
    """``seq[t]`` = number of target changes up to and including candle ``t`` (the first decision
    after "no target" counts as a change)."""
    changed = np.empty(target.shape[0], dtype=np.int64)
    if target.shape[0]:
        changed[0] = target[0] != NO_TARGET
        np.not_equal(target[1:], target[:-1], out=changed[1:])
    return np.cumsum(changed)


PRICE_PANE: Final = "price"
"""The pane of the candles themselves: a line there shares the price scale (EMA, SMA, bands)."""


@dataclass(frozen=True, slots=True)
class IndicatorLine:
    """One series a strategy decides on, to be drawn as a line: ``values`` has one entry per candle
    (NaN while undefined); ``pane`` is :data:`PRICE_PANE` or the name of one of
    :attr:`Indicators.panes`; ``name`` identifies it within the strategy, ``label`` is for a legend."""

    name: str
    label: str
    values: NDArray[np.float64]
    pane: str = PRICE_PANE


@dataclass(frozen=True, slots=True)
class IndicatorPane:
    """A pane of its own under the price (an oscillator's scale is not the price's), with horizontal
    lines at fixed ``levels`` (RSI's oversold and overbought, MACD's zero)."""

    name: str
    label: str
    levels: tuple[float, ...] = ()


@dataclass(frozen=True, slots=True)
class Indicators:
    """What a strategy's chart shows beside the candles: its lines and the extra panes they sit in."""

    lines: tuple[IndicatorLine, ...] = ()
    panes: tuple[IndicatorPane, ...] = ()

    def __post_init__(self) -> None:
        pane_names = [p.name for p in self.panes]
        if len(set(pane_names)) != len(pane_names) or PRICE_PANE in pane_names:
            raise ValueError(f"indicator pane names must be unique and not {PRICE_PANE!r}: {pane_names}")
        names = [line.name for line in self.lines]
        if len(set(names)) != len(names):
            raise ValueError(f"indicator line names must be unique: {names}")
        for line in self.lines:
            if line.pane != PRICE_PANE and line.pane not in pane_names:
                raise ValueError(f"indicator line {line.name!r} is in an undeclared pane {line.pane!r}")
            if line.values.ndim != 1:
                raise ValueError(f"indicator line {line.name!r} is not one-dimensional")


NO_INDICATORS: Final = Indicators()


P = TypeVar("P")
S = TypeVar("S")


class Strategy(Protocol[P, S]):
    """A trading strategy: parameters ``P`` (frozen dataclass), live state ``S`` (frozen dataclass)."""

    @property
    def name(self) -> str: ...

    @property
    def title(self) -> str:
        """A short human name (``GET /strategies``, the dashboard)."""
        ...

    @property
    def description(self) -> str:
        """One or two sentences on what it does."""
        ...

    def parameters_schema(self) -> dict[str, Any]:
        """The JSON Schema object of the parameters (CONTRACT.md, Strategies): ``type: "object"``,
        ``properties`` with ``type``, ``minimum``, ``maximum``, ``default``, ``description``;
        ``required``; ``additionalProperties: false``."""
        ...

    def parse_params(self, raw: Mapping[str, Any]) -> P:
        """Validated parameters from a mapping (e.g. a bot's settings; ``allow_short`` may be among
        them and says whether "short" reads "flat"); raises ParameterError naming the parameter. The
        result's ``to_dict()`` gives every parameter's value (without ``allow_short``)."""
        ...

    def initial_state(self, params: P) -> S:
        """The live state before any candle."""
        ...

    def decide(self, candle: Candle, state: S, params: P) -> tuple[Decision, S]:
        """The live face: one closed candle in, a decision and the next state out. Pure."""
        ...

    def signals(self, candles: Candles, params: P) -> Signals:
        """The vectorised face over a whole series."""
        ...

    def indicators(self, candles: Candles, params: P) -> Indicators:
        """The series the strategy decides on, over a whole series (vectorised, pure), and how to
        draw them: the same values its faces compare (what charts show). Optional for a plugin: one
        without it is charted with no indicators (see :func:`indicators_of`)."""
        ...

    def warmup_candles(self, params: P) -> int:
        """How many closed candles a fresh live state needs before the newest one so that it equals
        the state over the whole history (bit for bit where the arithmetic allows, else within
        1e-12): what a bot starting without a saved state reads. Pure."""
        ...

    def state_to_dict(self, state: S) -> dict[str, Any]:
        """A JSON-safe representation of ``state``."""
        ...

    def state_from_dict(self, raw: Mapping[str, Any], params: P) -> S:
        """Inverse of :meth:`state_to_dict`; raises ``ValueError`` if ``raw`` does not fit ``params``."""
        ...


_REGISTRY: dict[str, Strategy[Any, Any]] = {}


def register(strategy: Strategy[Any, Any]) -> None:
    """Makes ``strategy`` available under ``strategy.name`` (a name is registered once)."""
    if strategy.name in _REGISTRY and _REGISTRY[strategy.name] is not strategy:
        raise ValueError(f"a strategy named {strategy.name!r} is already registered")
    _REGISTRY[strategy.name] = strategy


def get_strategy(name: str) -> Strategy[Any, Any]:
    """The strategy registered under ``name``; raises :class:`UnknownStrategyError`."""
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY)) or "none"
        raise UnknownStrategyError(f"unknown strategy {name!r} (known: {known})") from None


def strategy_names() -> list[str]:
    return sorted(_REGISTRY)


def indicators_of(strategy: Strategy[Any, Any], candles: Candles, params: Any) -> Indicators:
    """``strategy.indicators(candles, params)``, or :data:`NO_INDICATORS` for a strategy (a plugin
    written before the method existed) that has none. Raises ``ValueError`` if a line's length is
    not the number of candles (it could not be drawn against them)."""
    method = getattr(strategy, "indicators", None)
    if not callable(method):
        return NO_INDICATORS
    result = method(candles, params)
    if not isinstance(result, Indicators):
        raise ValueError(f"strategy {strategy.name!r}: indicators() returned {type(result).__name__}, not Indicators")
    for line in result.lines:
        if line.values.shape[0] != len(candles):
            raise ValueError(
                f"strategy {strategy.name!r}: indicator {line.name!r} has {line.values.shape[0]} values "
                f"for {len(candles)} candles"
            )
    return result


def check_timeframe(timeframe: str) -> str:
    """``timeframe`` if it is a Binance kline interval (:mod:`tradebot.timeframes`); raises ParameterError."""
    if not is_timeframe(timeframe):
        raise ParameterError("timeframe", f"unknown timeframe {timeframe!r} (one of {', '.join(TIMEFRAMES)})")
    return timeframe


# Shared validation helpers for parameter parsing.


def int_param(raw: Mapping[str, Any], name: str, lo: int, hi: int, default: int | None = None) -> int:
    v = raw.get(name, default)
    if v is None:
        raise ParameterError(name, "is required")
    if isinstance(v, bool) or not isinstance(v, int | float) or v != int(v):
        raise ParameterError(name, f"must be an integer, got {v!r}")
    if not lo <= v <= hi:
        raise ParameterError(name, f"must be between {lo} and {hi}, got {v!r}")
    return int(v)


def float_param(
    raw: Mapping[str, Any],
    name: str,
    *,
    default: float | None = None,
    gt: float | None = None,
    ge: float | None = None,
    le: float | None = None,
    lt: float | None = None,
) -> float:
    v = raw.get(name, default)
    if v is None:
        raise ParameterError(name, "is required")
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise ParameterError(name, f"must be a finite number, got {v!r}")
    x = float(v)
    if gt is not None and not x > gt:
        raise ParameterError(name, f"must be > {gt:g}, got {x:g}")
    if ge is not None and not x >= ge:
        raise ParameterError(name, f"must be >= {ge:g}, got {x:g}")
    if le is not None and not x <= le:
        raise ParameterError(name, f"must be <= {le:g}, got {x:g}")
    if lt is not None and not x < lt:
        raise ParameterError(name, f"must be < {lt:g}, got {x:g}")
    return x


def bool_param(raw: Mapping[str, Any], name: str, default: bool) -> bool:
    v = raw.get(name, default)
    if not isinstance(v, bool):
        raise ParameterError(name, f"must be true or false, got {v!r}")
    return v
