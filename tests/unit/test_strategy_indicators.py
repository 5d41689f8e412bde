"""``indicators(candles, params)``: the series each strategy decides on, as the dashboard draws them.

Every line of every built-in (and of the example plugin) equals, on every candle and to the last
bit, the value the strategy's own live face compares on that candle, and its main line is the
vectorised face's ``Signals.ema``; a flat market draws every line exactly on its fixed point; a
plugin without the method is charted with no indicators.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from tests.plugin_helpers import EXAMPLE_SRC
from tradebot.strategies import (
    NO_INDICATORS,
    PRICE_PANE,
    Candle,
    Candles,
    IndicatorLine,
    IndicatorPane,
    Indicators,
    Strategy,
    get_strategy,
    indicators_of,
)

MINUTE = 60_000


def _plugin() -> ModuleType:
    sys.path.insert(0, str(EXAMPLE_SRC))
    try:
        return importlib.import_module("tradebot_sma_cross")  # not installed: from its source tree
    finally:
        sys.path.remove(str(EXAMPLE_SRC))


def _value(v: float | None) -> float:
    return float("nan") if v is None else float(v)


# What the live face compares on a candle, per line name: read from its decision and new state.
LiveValues = Callable[[Any, Any], dict[str, float]]
LIVE: dict[str, LiveValues] = {
    "ema_cross": lambda d, s: {"ema": _value(s.ema.value)},
    "ema_crossover": lambda d, s: {"fast": _value(s.fast.value), "slow": _value(s.slow.value)},
    "macd_cross": lambda d, s: {"macd": _value(d.ema), "signal": _value(s.signal.value)},
    "rsi_reversion": lambda d, s: {"rsi": _value(s.rsi.value)},
    "bollinger_reversion": lambda d, s: {
        "upper": _value(s.bands.upper), "mid": _value(s.bands.mid), "lower": _value(s.bands.lower)},
    "sma_cross": lambda d, s: {"sma": _value(d.ema)},
}
LINES = {"ema_cross": ["ema"], "ema_crossover": ["fast", "slow"], "macd_cross": ["macd", "signal"],
         "rsi_reversion": ["rsi"], "bollinger_reversion": ["upper", "mid", "lower"], "sma_cross": ["sma"]}
# The line the vectorised face reports as Signals.ema.
MAIN = {"ema_cross": "ema", "ema_crossover": "slow", "macd_cross": "macd", "rsi_reversion": "rsi",
        "bollinger_reversion": "mid", "sma_cross": "sma"}
PARAMS: dict[str, list[dict[str, Any]]] = {
    "ema_cross": [{}, {"ema_period": 2}, {"ema_period": 7}],
    "ema_crossover": [{}, {"fast_period": 2, "slow_period": 3}, {"fast_period": 5, "slow_period": 9}],
    "macd_cross": [{}, {"fast_period": 2, "slow_period": 3, "signal_period": 2}, {"fast_period": 4, "slow_period": 11,
                                                                                 "signal_period": 5}],
    "rsi_reversion": [{}, {"rsi_period": 2}, {"rsi_period": 6, "oversold": 20, "overbought": 80, "exit_level": 45}],
    "bollinger_reversion": [{}, {"bb_period": 2, "bb_std": 0.1}, {"bb_period": 9, "bb_std": 3.5}],
    "sma_cross": [{}, {"sma_period": 2}, {"sma_period": 13}],
}


def _strategies() -> Iterator[Strategy[Any, Any]]:
    for name in MAIN:
        yield _plugin().SMA_CROSS if name == "sma_cross" else get_strategy(name)


def _series() -> dict[str, list[float]]:
    rng = np.random.default_rng(11)
    walk = (100 * np.exp(np.cumsum(rng.normal(0, 0.02, 400)))).round(2).tolist()
    runs = walk[:80] + [walk[79]] * 40 + [x * 3 for x in walk[120:200]]  # a flat run, then a gap
    ticks = rng.choice([0.1, 0.2, 0.3, 1.0, 3.0], 150).tolist()  # exact ties with every indicator
    return {"walk": walk, "runs": runs, "ticks": ticks}


def _candles(closes: list[float]) -> Candles:
    c = np.array(closes, dtype=np.float64)
    ts = np.arange(c.shape[0], dtype=np.int64) * MINUTE
    return Candles.from_arrays(ts, c, c, c, c, np.ones(c.shape[0]))


def _same(a: NDArray[np.float64], b: NDArray[np.float64]) -> bool:
    """Equal bit for bit, NaN where the other is NaN."""
    return bool(np.array_equal(a, b, equal_nan=True))


CASES = [(s.name, kind, raw) for s in _strategies() for kind in _series() for raw in PARAMS[s.name]]


@pytest.mark.parametrize(("name", "kind", "raw"), CASES, ids=[f"{n}-{k}-{i % 3}" for i, (n, k, _) in enumerate(CASES)])
def test_each_line_is_what_the_strategy_compares_on_every_candle(name: str, kind: str, raw: dict[str, Any]) -> None:
    strategy = next(s for s in _strategies() if s.name == name)
    params = strategy.parse_params({**raw, "allow_short": True})
    closes = _series()[kind]
    candles = _candles(closes)
    ind = indicators_of(strategy, candles, params)
    lines = {line.name: line for line in ind.lines}
    assert list(lines) == LINES[name]
    assert _same(lines[MAIN[name]].values, strategy.signals(candles, params).ema)

    live: dict[str, list[float]] = {k: [] for k in lines}
    state = strategy.initial_state(params)
    for i, close in enumerate(closes):
        decision, state = strategy.decide(Candle(i * MINUTE, close, close, close, close, 1.0), state, params)
        for k, v in LIVE[name](decision, state).items():
            live[k].append(v)
    for k, line in lines.items():
        assert line.values.shape == (len(closes),)
        assert _same(line.values, np.array(live[k])), (name, k)


@pytest.mark.parametrize("name", list(MAIN))
def test_a_flat_market_draws_every_line_on_its_fixed_point(name: str) -> None:
    strategy = next(s for s in _strategies() if s.name == name)
    params = strategy.parse_params({})
    ind = indicators_of(strategy, _candles([0.1] * 300), params)
    panes = {p.name: p for p in ind.panes}
    for line in ind.lines:
        defined = line.values[~np.isnan(line.values)]
        assert defined.size > 0
        fixed = {PRICE_PANE: 0.1, "rsi": 50.0, "macd": 0.0}[line.pane]
        assert set(defined.tolist()) == {fixed}, line.name
        assert line.pane == PRICE_PANE or line.pane in panes


def test_the_oscillators_have_panes_with_their_levels() -> None:
    rsi = get_strategy("rsi_reversion")
    ind = indicators_of(rsi, _candles(_series()["walk"]), rsi.parse_params({"oversold": 25, "overbought": 75}))
    assert ind.panes == (IndicatorPane("rsi", "RSI 14", (25.0, 50.0, 75.0)),)
    assert [line.pane for line in ind.lines] == ["rsi"]
    macd = get_strategy("macd_cross")
    ind = indicators_of(macd, _candles(_series()["walk"]), macd.parse_params({}))
    assert ind.panes == (IndicatorPane("macd", "MACD 12/26/9", (0.0,)),)
    assert [(line.name, line.pane) for line in ind.lines] == [("macd", "macd"), ("signal", "macd")]
    bands = get_strategy("bollinger_reversion")
    ind = indicators_of(bands, _candles(_series()["walk"]), bands.parse_params({}))
    assert ind.panes == () and [line.name for line in ind.lines] == ["upper", "mid", "lower"]
    upper, mid, lower = (line.values[19:] for line in ind.lines)
    assert np.all(lower <= mid) and np.all(mid <= upper)


class _WithoutIndicators:
    """A plugin written before ``indicators`` existed: it delegates the rest to the example plugin."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, attr: str) -> Any:
        if attr == "indicators":
            raise AttributeError(attr)
        return getattr(self._inner, attr)


def test_a_strategy_without_indicators_is_charted_with_none() -> None:
    plain = _WithoutIndicators(_plugin().SMA_CROSS)
    candles = _candles(_series()["walk"])
    params = plain.parse_params({})
    assert not hasattr(plain, "indicators")
    assert indicators_of(plain, candles, params) is NO_INDICATORS
    assert plain.signals(candles, params).target.shape == (len(candles),)  # and it still works otherwise


class _Broken(_WithoutIndicators):
    def indicators(self, candles: Candles, params: Any) -> Any:
        return self._result

    def with_result(self, result: Any) -> _Broken:
        self._result = result
        return self


def test_indicators_that_cannot_be_drawn_are_refused() -> None:
    candles = _candles([1.0, 2.0, 3.0])
    short = Indicators((IndicatorLine("x", "x", np.array([1.0, 2.0])),))
    with pytest.raises(ValueError, match="2 values for 3 candles"):
        indicators_of(_Broken(_plugin().SMA_CROSS).with_result(short), candles, None)
    with pytest.raises(ValueError, match="not Indicators"):
        indicators_of(_Broken(_plugin().SMA_CROSS).with_result({"x": [1.0]}), candles, None)
    with pytest.raises(ValueError, match="undeclared pane"):
        Indicators((IndicatorLine("x", "x", np.zeros(3), pane="rsi"),))
    with pytest.raises(ValueError, match="unique"):
        Indicators((IndicatorLine("x", "x", np.zeros(3)), IndicatorLine("x", "y", np.zeros(3))))
    with pytest.raises(ValueError, match="unique"):
        Indicators(panes=(IndicatorPane("price", "p"),))
