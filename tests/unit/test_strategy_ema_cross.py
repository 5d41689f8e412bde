"""The EMA cross strategy: the live face (decide) and the vectorised face (signals) agree on every
candle; the live state serialises; the registry validates parameters."""

from __future__ import annotations

import importlib
import json
from typing import Any
from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tradebot.strategies import (
    EMA_CROSS,
    NO_TARGET,
    BacktestSettings,
    Candle,
    Candles,
    Decision,
    EmaCrossParams,
    EmaCrossState,
    ParameterError,
    StaleCandleError,
    Target,
    UnknownStrategyError,
    decide,
    ema_cross_signals,
    get_strategy,
    run_backtest,
    strategy_names,
    warm_up,
)
from tradebot.strategies.ema import ema


def live_run(closes: list[float], ts: list[int], params: EmaCrossParams) -> list[Decision]:
    state = EmaCrossState.start(params)
    decisions = []
    for t, c in zip(ts, closes, strict=True):
        d, state = decide(Candle(t, c, c, c, c, 0.0), state, params)
        decisions.append(d)
    return decisions


def assert_faces_agree(closes: list[float], ts: list[int], params: EmaCrossParams) -> None:
    decisions = live_run(closes, ts, params)
    sig = ema_cross_signals(np.array(closes, dtype=np.float64), params)
    live_ema = np.array([np.nan if d.ema is None else d.ema for d in decisions])
    np.testing.assert_array_equal(live_ema, sig.ema)  # bit-identical
    live_target = [NO_TARGET if d.target is None else int(d.target) for d in decisions]
    assert live_target == sig.target.tolist()
    assert [d.seq for d in decisions] == sig.seq().tolist()
    previous: Target | None = None
    for d in decisions:
        assert d.changed == (d.target is not previous)
        previous = d.target


def reference_targets(closes: list[float], params: EmaCrossParams) -> list[int]:
    """The rule as written in DESIGN.md, over the EMA array."""
    e = ema(np.array(closes, dtype=np.float64), params.ema_period)
    target = NO_TARGET
    out = []
    for c, v in zip(closes, e.tolist(), strict=True):
        if not np.isnan(v):
            if c > v:
                target = Target.LONG
            elif c < v:
                target = Target.SHORT if params.allow_short else Target.FLAT
        out.append(int(target))
    return out


price = st.floats(min_value=1e-8, max_value=1e12, allow_nan=False, allow_infinity=False)


@st.composite
def series(draw: st.DrawFn) -> tuple[list[float], list[int]]:
    kind = draw(st.sampled_from(["any", "ticks", "constant", "walk"]))
    n = draw(st.integers(0, 200))
    if kind == "any":
        closes = draw(st.lists(price, min_size=n, max_size=n))
    elif kind == "ticks":  # few distinct values: many exact ties with the EMA
        closes = draw(st.lists(st.sampled_from([0.1, 0.2, 0.3, 1.0, 3.0]), min_size=n, max_size=n))
    elif kind == "constant":
        closes = [draw(price)] * n
    else:
        seed = draw(st.integers(0, 2**32 - 1))
        rng = np.random.default_rng(seed)
        closes = (draw(price) * np.exp(np.cumsum(rng.normal(0, 0.01, n)))).tolist()
    gaps = draw(st.lists(st.integers(1, 10**9), min_size=n, max_size=n))  # any gaps between candles
    ts = np.cumsum(gaps).tolist() if n else []
    return closes, ts


@settings(max_examples=400, deadline=None)
@given(data=series(), period=st.integers(2, 40), allow_short=st.booleans())
def test_live_and_vectorised_faces_agree(data: tuple[list[float], list[int]], period: int, allow_short: bool) -> None:
    closes, ts = data
    params = EmaCrossParams(period, allow_short)
    assert_faces_agree(closes, ts, params)
    assert ema_cross_signals(np.array(closes, dtype=np.float64), params).target.tolist() == reference_targets(
        closes, params
    )


@pytest.mark.parametrize("period", [2, 50, 1000])
def test_faces_agree_on_a_long_series_with_flat_stretches(period: int) -> None:
    rng = np.random.default_rng(period)
    closes = np.round(100 * np.exp(np.cumsum(rng.normal(0, 0.002, 6000))), 1)
    closes[3000:3500] = closes[2999]
    assert_faces_agree(closes.tolist(), list(range(0, 6000 * 60_000, 60_000)), EmaCrossParams(period, True))


def test_decisions_step_by_step() -> None:
    params = EmaCrossParams(ema_period=3)
    # alpha = 2 / (3 + 1) = 0.5. Closes 1, 2, 3 -> EMA (1 + 2 + 3) / 3 = 2, close 3 > 2: LONG (seq 1)
    # close 1   -> EMA 2 + 0.5 x (1 - 2) = 1.5, close 1 < 1.5: FLAT (seq 2)
    # close 1.5 -> EMA 1.5 + 0.5 x (1.5 - 1.5) = 1.5, a tie: FLAT unchanged (seq 2)
    # close 5   -> EMA 1.5 + 0.5 x (5 - 1.5) = 3.25, close 5 > 3.25: LONG (seq 3)
    decisions = live_run([1.0, 2.0, 3.0, 1.0, 1.5, 5.0], [1, 2, 3, 4, 5, 6], params)
    assert [d.target for d in decisions] == [None, None, Target.LONG, Target.FLAT, Target.FLAT, Target.LONG]
    assert [d.seq for d in decisions] == [0, 0, 1, 2, 2, 3]
    assert [d.changed for d in decisions] == [False, False, True, True, False, True]
    assert [d.ema for d in decisions] == [None, None, 2.0, 1.5, 1.5, 3.25]


def test_tie_keeps_the_target_and_a_tie_first_leaves_it_undecided() -> None:
    params = EmaCrossParams(ema_period=2, allow_short=True)
    # EMA(2) of 1, 1 = 1 == close: no decision yet; then 2 > EMA: LONG; a later tie keeps LONG.
    decisions = live_run([1.0, 1.0, 2.0, 1.0, 1.0], [1, 2, 3, 4, 5], params)
    emas = [d.ema for d in decisions]
    assert emas[1] == 1.0
    assert decisions[1].target is None
    assert decisions[2].target is Target.LONG
    assert decisions[3].target is Target.SHORT  # close 1 < EMA 1.666
    assert decisions[3].seq == 2


def test_state_round_trips_through_json_and_resumes_identically() -> None:
    params = EmaCrossParams(ema_period=5, allow_short=True)
    rng = np.random.default_rng(3)
    closes = (100 * np.exp(np.cumsum(rng.normal(0, 0.01, 300)))).tolist()
    candles = [Candle(i * 60_000, c, c, c, c, 1.0) for i, c in enumerate(closes)]
    straight = warm_up(candles, params)
    state = warm_up(candles[:150], params)
    raw = json.loads(json.dumps(EMA_CROSS.state_to_dict(state), allow_nan=False))
    resumed = EMA_CROSS.state_from_dict(raw, params)
    assert resumed == state
    for c in candles[150:]:
        _, resumed = decide(c, resumed, params)
    assert resumed == straight


def test_state_from_dict_rejects_inconsistent_data() -> None:
    params = EmaCrossParams(ema_period=5)
    raw = EMA_CROSS.state_to_dict(EMA_CROSS.initial_state(params))
    with pytest.raises(ValueError):
        EMA_CROSS.state_from_dict({**raw, "version": 99}, params)
    with pytest.raises(ValueError):
        EMA_CROSS.state_from_dict({**raw, "target": "sideways"}, params)
    with pytest.raises(ValueError):
        EMA_CROSS.state_from_dict({**raw, "seq": -1}, params)
    with pytest.raises(ValueError, match="ema_period"):
        EMA_CROSS.state_from_dict(raw, EmaCrossParams(ema_period=6))


def test_stale_or_duplicate_candles_are_refused() -> None:
    params = EmaCrossParams(ema_period=2)
    _, state = decide(Candle(1000, 1, 1, 1, 1), EmaCrossState.start(params), params)
    with pytest.raises(StaleCandleError):
        decide(Candle(1000, 1, 1, 1, 1), state, params)
    with pytest.raises(StaleCandleError):
        decide(Candle(999, 1, 1, 1, 1), state, params)
    with pytest.raises(ValueError):
        decide(Candle(2000, 1, 1, 1, float("nan")), state, params)
    with pytest.raises(ValueError, match="ema_period"):
        decide(Candle(2000, 1, 1, 1, 1), state, EmaCrossParams(ema_period=3))


def test_decide_is_pure() -> None:
    params = EmaCrossParams(ema_period=2)
    state = EmaCrossState.start(params)
    a = decide(Candle(1, 1, 1, 1, 1), state, params)
    b = decide(Candle(1, 1, 1, 1, 1), state, params)
    assert a == b
    assert state == EmaCrossState.start(params)


def test_registry_and_parameter_validation() -> None:
    assert "ema_cross" in strategy_names()
    strategy = get_strategy("ema_cross")
    assert strategy is EMA_CROSS
    assert strategy.parse_params({"ema_period": 20}) == EmaCrossParams(20, False)
    assert strategy.parse_params({"ema_period": 1000.0, "allow_short": True}) == EmaCrossParams(1000, True)
    # Omitted, ema_period takes its default (CONTRACT.md, Strategies); null is still refused.
    assert strategy.parse_params({}) == EmaCrossParams(20, False)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"ema_period": None}, "ema_period"),
        ({"ema_period": 1}, "ema_period"),
        ({"ema_period": 1001}, "ema_period"),
        ({"ema_period": 2.5}, "ema_period"),
        ({"ema_period": True}, "ema_period"),
        ({"ema_period": "20"}, "ema_period"),
        ({"ema_period": 20, "allow_short": "yes"}, "allow_short"),
    ]
    for raw, field in cases:
        with pytest.raises(ParameterError) as info:
            strategy.parse_params(raw)
        assert info.value.field == field
    with pytest.raises(UnknownStrategyError):
        get_strategy("rsi")


def test_vectorised_face_through_the_protocol() -> None:
    closes = [1.0, 2.0, 3.0, 2.0]
    candles = Candles.from_arrays([1, 2, 3, 4], closes, closes, closes, closes)
    sig = EMA_CROSS.signals(candles, EmaCrossParams(2))
    assert sig.target.tolist() == [NO_TARGET, Target.LONG, Target.LONG, Target.FLAT]
    assert sig.seq().tolist() == [0, 1, 1, 2]


@settings(max_examples=200, deadline=None)
@given(
    data=series(),
    period=st.integers(2, 12),
    allow_short=st.booleans(),
    block=st.sampled_from([1, 2, 3, 7]),
    chunk=st.sampled_from([1, 8, 40]),
)
def test_faces_agree_across_blocks_and_chunks(
    data: tuple[list[float], list[int]], period: int, allow_short: bool, block: int, chunk: int
) -> None:
    """The EMA works in blocks and the vectorised face decides chunk by chunk; tiny blocks and
    chunks put seeds, ties and changes on their edges. Both faces use the same block length."""
    closes, ts = data
    # (the package re-exports the function ema under the module's name, hence import_module)
    ema_module = importlib.import_module("tradebot.strategies.ema")
    with mock.patch.object(ema_module, "MAX_BLOCK", block), mock.patch.object(ema_module, "_CHUNK_ELEMENTS", chunk):
        assert ema_module.default_block_len(period) <= block
        assert_faces_agree(closes, ts, EmaCrossParams(period, allow_short))


@pytest.mark.parametrize("allow_short", [False, True])
def test_a_flat_market_never_trades(allow_short: bool) -> None:
    n = 500
    closes = np.full(n, 7.0)
    candles = Candles.from_arrays(
        ts=np.arange(n, dtype=np.int64) * 60_000, open=closes, high=closes, low=closes, close=closes
    )
    params = EmaCrossParams(20, allow_short)
    signals = ema_cross_signals(candles.close, params)
    assert (signals.target == NO_TARGET).all()
    result = run_backtest(candles, BacktestSettings(), params={"ema_period": 20, "allow_short": allow_short},
                          timeframe="1m")
    assert result.trades_count == 0
    state = EmaCrossState.start(params)
    for i, c in enumerate(closes.tolist()):
        decision, state = decide(Candle(i * 60_000, c, c, c, c, 0.0), state, params)
        assert not decision.changed and decision.target is None
