"""The built-in strategies beyond ema_cross: flat markets, parameters and their schema, warm-up,
state serialisation, and the vectorised state machine under them."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tradebot.strategies import (
    NO_TARGET,
    BacktestSettings,
    BollingerReversionParams,
    Candle,
    Candles,
    EmaCrossoverParams,
    MacdCrossParams,
    ParameterError,
    RsiReversionParams,
    StaleCandleError,
    Target,
    get_strategy,
    run_backtest,
    strategy_names,
)
from tradebot.strategies.bollinger import bollinger
from tradebot.strategies.ema_crossover import ema_crossover_indicators
from tradebot.strategies.macd_cross import macd_indicators
from tradebot.strategies.rsi import RsiState, wilder_averages
from tradebot.strategies.targets import hold_through_ties, run_machine

MINUTE = 60_000
NEW = ["ema_crossover", "macd_cross", "rsi_reversion", "bollinger_reversion"]
DEFAULT_PARAMS: dict[str, dict[str, Any]] = {
    "ema_cross": {"ema_period": 20},
    "ema_crossover": {},
    "macd_cross": {},
    "rsi_reversion": {},
    "bollinger_reversion": {},
}


def candles_of(closes: np.ndarray) -> Candles:
    return Candles.from_arrays(np.arange(closes.shape[0], dtype=np.int64) * MINUTE, closes, closes, closes, closes)


# A flat market never trades -------------------------------------------------------------------


@pytest.mark.parametrize("name", strategy_names())
@pytest.mark.parametrize("value", [7.0, 0.1, 1e-8, 1e8, 12345.6789, 0.30000000000000004])
@pytest.mark.parametrize("allow_short", [False, True])
def test_a_flat_market_never_trades(name: str, value: float, allow_short: bool) -> None:
    strategy = get_strategy(name)
    raw = {**DEFAULT_PARAMS.get(name, {}), "allow_short": allow_short}
    params = strategy.parse_params(raw)
    closes = np.full(500, value)
    signals = strategy.signals(candles_of(closes), params)
    assert set(signals.target.tolist()) <= {NO_TARGET, int(Target.FLAT)}
    result = run_backtest(candles_of(closes), BacktestSettings(), strategy=name, params=raw, timeframe="1m")
    assert result.trades_count == 0
    state = strategy.initial_state(params)
    for i in range(500):
        decision, state = strategy.decide(Candle(i * MINUTE, value, value, value, value), state, params)
        assert decision.target in (None, Target.FLAT)


@pytest.mark.parametrize("value", [0.1, 1e-8, 1e8, 12345.6789])
def test_indicators_of_equal_closes_equal_the_close_exactly(value: float) -> None:
    closes = np.full(300, value)
    ind = ema_crossover_indicators(closes, EmaCrossoverParams())
    assert (ind.fast[11:] == value).all() and (ind.slow[25:] == value).all()
    macd = macd_indicators(closes, MacdCrossParams())
    assert (macd.macd[25:] == 0.0).all() and (macd.signal[33:] == 0.0).all()
    gain, loss = wilder_averages(closes, 14)
    assert (gain[14:] == 0.0).all() and (loss[14:] == 0.0).all()
    bands = bollinger(closes, 20, 2.0)
    for band in (bands.mid, bands.upper, bands.lower):
        assert (band[19:] == value).all()


def test_a_flat_stretch_after_moves_keeps_the_bands_exactly_on_the_price() -> None:
    rng = np.random.default_rng(4)
    closes = np.round(100 * np.exp(np.cumsum(rng.normal(0, 0.01, 600))), 1)
    closes[300:400] = closes[299]
    bands = bollinger(closes, 20, 2.0)
    assert (bands.mid[319:400] == closes[299]).all() and (bands.upper[319:400] == closes[299]).all()


# Parameters ---------------------------------------------------------------------------------

EDGES = [
    # (strategy, parameter, lowest, highest, other values that make the edge valid)
    ("ema_crossover", "fast_period", 2, 999, {"slow_period": 1000}),
    ("ema_crossover", "slow_period", 3, 1000, {"fast_period": 2}),
    ("macd_cross", "fast_period", 2, 999, {"slow_period": 1000}),
    ("macd_cross", "slow_period", 3, 1000, {"fast_period": 2}),
    ("macd_cross", "signal_period", 2, 1000, {}),
    ("rsi_reversion", "rsi_period", 2, 100, {}),
    ("rsi_reversion", "oversold", 1, 49, {}),
    ("rsi_reversion", "overbought", 51, 99, {}),
    ("rsi_reversion", "exit_level", 1, 99, {}),
    ("bollinger_reversion", "bb_period", 2, 1000, {}),
]


@pytest.mark.parametrize(("name", "field", "lo", "hi", "others"), EDGES)
def test_integer_parameters_accept_their_edges_and_refuse_beyond(
    name: str, field: str, lo: int, hi: int, others: dict[str, int]
) -> None:
    strategy = get_strategy(name)
    for value in (lo, hi, float(lo)):
        assert strategy.parse_params({**others, field: value}).to_dict()[field] == value
    for bad in (lo - 1, hi + 1, lo + 0.5, str(lo), True, None, [lo]):
        with pytest.raises(ParameterError) as info:
            strategy.parse_params({**others, field: bad})
        assert info.value.field == field


def test_bb_std_accepts_its_edges_and_refuses_beyond() -> None:
    strategy = get_strategy("bollinger_reversion")
    for value in (0.1, 10, 10.0, 2.5):
        assert strategy.parse_params({"bb_std": value}).to_dict()["bb_std"] == value
    for bad in (0.0999, 10.001, 0, -1, float("nan"), float("inf"), "2", True):
        with pytest.raises(ParameterError) as info:
            strategy.parse_params({"bb_std": bad})
        assert info.value.field == "bb_std"


@pytest.mark.parametrize("name", ["ema_crossover", "macd_cross"])
def test_fast_must_be_below_slow_and_the_error_names_fast_period(name: str) -> None:
    strategy = get_strategy(name)
    for fast, slow in [(26, 26), (30, 26), (999, 3)]:
        with pytest.raises(ParameterError) as info:
            strategy.parse_params({"fast_period": fast, "slow_period": slow})
        assert info.value.field == "fast_period"
    with pytest.raises(ParameterError) as info:
        strategy.parse_params({"fast_period": 30})  # against the default slow_period 26
    assert info.value.field == "fast_period"
    cls = EmaCrossoverParams if name == "ema_crossover" else MacdCrossParams
    with pytest.raises(ParameterError, match="fast_period"):
        cls(fast_period=26, slow_period=26)


@pytest.mark.parametrize("name", NEW)
def test_unknown_parameters_are_named_and_omitted_ones_take_their_defaults(name: str) -> None:
    strategy = get_strategy(name)
    with pytest.raises(ParameterError) as info:
        strategy.parse_params({"ema_period": 20})
    assert info.value.field == "ema_period"
    with pytest.raises(ParameterError) as info:
        strategy.parse_params({"allow_short": "yes"})
    assert info.value.field == "allow_short"
    schema = strategy.parameters_schema()
    defaults = {key: spec["default"] for key, spec in schema["properties"].items()}
    assert strategy.parse_params({}).to_dict() == {**defaults, "allow_short": False}
    assert strategy.parse_params({"allow_short": True}).to_dict()["allow_short"] is True


def test_defaults_are_the_contracts() -> None:
    expected = {
        "ema_crossover": {"fast_period": 12, "slow_period": 26},
        "macd_cross": {"fast_period": 12, "slow_period": 26, "signal_period": 9},
        "rsi_reversion": {"rsi_period": 14, "oversold": 30, "overbought": 70, "exit_level": 50},
        "bollinger_reversion": {"bb_period": 20, "bb_std": 2.0},
        "ema_cross": {"ema_period": 20},
    }
    for name, defaults in expected.items():
        props = get_strategy(name).parameters_schema()["properties"]
        assert {key: spec["default"] for key, spec in props.items()} == defaults


@pytest.mark.parametrize("name", strategy_names())
def test_the_schema_has_the_contracts_shape(name: str) -> None:
    schema = get_strategy(name).parameters_schema()
    assert schema["type"] == "object"
    assert schema["additionalProperties"] is False
    assert isinstance(schema["required"], list)
    assert schema["properties"]
    for spec in schema["properties"].values():
        assert set(spec) >= {"type", "minimum", "maximum", "default", "description"}
        assert spec["type"] in ("integer", "number")
        assert spec["minimum"] <= spec["default"] <= spec["maximum"]
    assert "allow_short" not in schema["properties"]  # a sizing key, not a strategy parameter
    json.dumps(schema, allow_nan=False)


def test_the_schema_is_valid_json_schema_and_agrees_with_the_parser() -> None:
    jsonschema_rs = pytest.importorskip("jsonschema_rs")  # comes with schemathesis (dev extra)
    for name in NEW:
        strategy = get_strategy(name)
        schema = strategy.parameters_schema()
        assert jsonschema_rs.meta.is_valid(schema)
        validator = jsonschema_rs.Draft202012Validator(schema)
        for key, spec in schema["properties"].items():
            step = 1 if spec["type"] == "integer" else 0.001
            others = {"fast_period": {"slow_period": 1000}, "slow_period": {"fast_period": 2}}.get(key, {})
            for value in (spec["minimum"], spec["maximum"], spec["minimum"] - step, spec["maximum"] + step, 2.5):
                try:
                    strategy.parse_params({**others, key: value})
                    parsed = True
                except ParameterError:
                    parsed = False
                assert validator.is_valid({**others, key: value}) is parsed, (name, key, value)
        assert not validator.is_valid({"nope": 1})


# Live state ---------------------------------------------------------------------------------


def walk(n: int, seed: int, vol: float = 0.01) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.asarray(100.0 * np.exp(np.cumsum(rng.normal(0.0, vol, n))), dtype=np.float64)


@pytest.mark.parametrize("name", NEW)
def test_state_round_trips_through_json_and_resumes_identically(name: str) -> None:
    strategy = get_strategy(name)
    params = strategy.parse_params({"allow_short": True})
    closes = walk(400, seed=2).tolist()
    state = strategy.initial_state(params)
    straight = state
    for i, c in enumerate(closes):
        _, straight = strategy.decide(Candle(i * MINUTE, c, c, c, c), straight, params)
    for i, c in enumerate(closes):
        raw = json.loads(json.dumps(strategy.state_to_dict(state), allow_nan=False))
        state = strategy.state_from_dict(raw, params)
        _, state = strategy.decide(Candle(i * MINUTE, c, c, c, c), state, params)
    assert state == straight


OTHER_PARAMS = {
    "ema_crossover": {"fast_period": 5},
    "macd_cross": {"signal_period": 5},
    "rsi_reversion": {"rsi_period": 7},
    "bollinger_reversion": {"bb_period": 21},
}


@pytest.mark.parametrize("name", NEW)
def test_state_from_dict_refuses_inconsistent_data(name: str) -> None:
    strategy = get_strategy(name)
    params = strategy.parse_params({})
    state = strategy.initial_state(params)
    for i, c in enumerate(walk(60, seed=1).tolist()):
        _, state = strategy.decide(Candle(i * MINUTE, c, c, c, c), state, params)
    raw = strategy.state_to_dict(state)
    assert strategy.state_from_dict(raw, params) == state
    for bad in ({**raw, "version": 99}, {**raw, "target": "sideways"}, {**raw, "seq": -1}, {**raw, "target": None}):
        with pytest.raises(ValueError):
            strategy.state_from_dict(bad, params)
    with pytest.raises(ValueError):
        strategy.state_from_dict(raw, strategy.parse_params(OTHER_PARAMS[name]))


@pytest.mark.parametrize("name", NEW)
def test_stale_candles_bad_closes_and_other_parameters_are_refused(name: str) -> None:
    strategy = get_strategy(name)
    params = strategy.parse_params({})
    _, state = strategy.decide(Candle(1000, 1, 1, 1, 1), strategy.initial_state(params), params)
    with pytest.raises(StaleCandleError):
        strategy.decide(Candle(1000, 1, 1, 1, 1), state, params)
    for close in (float("nan"), 0.0, -1.0):
        with pytest.raises(ValueError):
            strategy.decide(Candle(2000, 1, 1, 1, close), state, params)
    with pytest.raises(ValueError):
        strategy.decide(Candle(2000, 1, 1, 1, 1), state, strategy.parse_params(OTHER_PARAMS[name]))


# Warm-up ------------------------------------------------------------------------------------


def _drifting(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    steps = rng.normal(0.0, 0.004, n) + np.where(np.arange(n) < n - 3000, 0.0004, -0.0008)
    return np.asarray(100.0 * np.exp(np.cumsum(steps)), dtype=np.float64)


WARMUP_CASES = [
    ("ema_crossover", {"fast_period": 12, "slow_period": 26}),
    ("ema_crossover", {"fast_period": 100, "slow_period": 400}),
    ("macd_cross", {}),
    ("macd_cross", {"fast_period": 50, "slow_period": 200, "signal_period": 100}),
    ("rsi_reversion", {}),
    ("rsi_reversion", {"rsi_period": 100}),
    ("bollinger_reversion", {}),
    ("bollinger_reversion", {"bb_period": 1000, "bb_std": 1.0}),
]


@pytest.mark.parametrize(("name", "raw"), WARMUP_CASES)
def test_a_fresh_state_over_the_warmup_matches_the_full_history(name: str, raw: dict[str, Any]) -> None:
    strategy = get_strategy(name)
    params = strategy.parse_params({**raw, "allow_short": True})
    warmup = strategy.warmup_candles(params)
    later = 1500
    closes = _drifting(warmup + later + 4000, seed=warmup)
    full = strategy.signals(candles_of(closes), params)
    start = closes.shape[0] - later - warmup
    state = strategy.initial_state(params)
    targets, values = [], []
    for i in range(start, closes.shape[0]):
        c = float(closes[i])
        decision, state = strategy.decide(Candle(i * MINUTE, c, c, c, c), state, params)
        targets.append(NO_TARGET if decision.target is None else int(decision.target))
        values.append(np.nan if decision.ema is None else decision.ema)
    live = np.array(values[warmup:])
    if name == "bollinger_reversion":  # the window is everything: bit for bit
        np.testing.assert_array_equal(live, full.ema[-later:])
    else:
        scale = float(np.max(np.abs(full.ema[-later:])))
        np.testing.assert_allclose(live, full.ema[-later:], rtol=0, atol=1e-12 * max(scale, 100.0))
    if name in ("ema_crossover", "macd_cross"):  # targets follow the indicators
        assert targets[warmup:] == full.target[-later:].tolist()


def test_warmup_counts() -> None:
    assert get_strategy("bollinger_reversion").warmup_candles(BollingerReversionParams(20)) == 20
    # RSI: period + 1 candles to start, then (13/14)**k < 1e-12
    k = get_strategy("rsi_reversion").warmup_candles(RsiReversionParams()) - 15
    assert (13 / 14) ** k < 1e-12 <= (13 / 14) ** (k - 1)
    ema_crossover = get_strategy("ema_crossover").warmup_candles(EmaCrossoverParams())
    assert ema_crossover == get_strategy("ema_cross").warmup_candles(
        get_strategy("ema_cross").parse_params({"ema_period": 26})
    )
    assert get_strategy("macd_cross").warmup_candles(MacdCrossParams()) > ema_crossover


def test_rsi_state_seeds_on_the_period_th_change() -> None:
    state = RsiState.start(3)
    for x in (10.0, 11.0, 10.0):
        state = state.update(x)
        assert state.value is None
    state = state.update(12.0)  # changes +1, -1, +2: gain 1, loss 1/3
    assert state.value == pytest.approx(100 * 1 / (1 + 1 / 3), rel=1e-15)


# The vectorised state machine and the tie rule -------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(
    k=st.integers(1, 4),
    c=st.integers(1, 6),
    data=st.data(),
)
def test_run_machine_equals_the_plain_loop(k: int, c: int, data: st.DataObject) -> None:
    table = np.array(
        data.draw(st.lists(st.lists(st.integers(0, k - 1), min_size=c, max_size=c), min_size=k, max_size=k)),
        dtype=np.uint8,
    )
    classes = np.array(data.draw(st.lists(st.integers(0, c - 1), max_size=3000)), dtype=np.uint8)
    initial = data.draw(st.integers(0, k - 1))
    expected, state = [], initial
    for cls in classes.tolist():
        state = int(table[state, cls])
        expected.append(state)
    assert run_machine(classes, table, initial).tolist() == expected


@settings(max_examples=200, deadline=None)
@given(signs=st.lists(st.sampled_from([-1, 0, 1]), max_size=500), allow_short=st.booleans())
def test_hold_through_ties_equals_the_plain_loop(signs: list[int], allow_short: bool) -> None:
    s = np.array(signs, dtype=np.int64)
    expected, target = [], 0
    for v in signs:
        if v > 0:
            target = 1
        elif v < 0:
            target = -1 if allow_short else 0
        expected.append(target)
    assert hold_through_ties(s > 0, s < 0, allow_short).tolist() == expected


@pytest.mark.parametrize("period", [2, 20, 1000])
def test_bands_are_the_same_bits_whatever_the_chunking(period: int) -> None:
    """bollinger() reduces windows chunk by chunk: across chunk edges the bands equal the
    one-shot reduction and the live face's, bit for bit."""
    from tradebot.strategies.bollinger import _CHUNK, BollingerState, window_mean_m2

    x = walk(2 * _CHUNK + period + 7, seed=period)
    bands = bollinger(x, period, 2.0)
    mean, m2 = window_mean_m2(x, period)
    np.testing.assert_array_equal(bands.mid[period - 1 :], mean)
    np.testing.assert_array_equal(bands.upper[period - 1 :], mean + np.sqrt(m2 / period) * 2.0)
    for end in (_CHUNK + period - 2, _CHUNK + period - 1, _CHUNK + period, x.shape[0] - 1):
        state = BollingerState.start(period, 2.0)
        for v in x[end - period + 1 : end + 1].tolist():
            state = state.update(v)
        assert (state.mid, state.upper, state.lower) == (bands.mid[end], bands.upper[end], bands.lower[end])
