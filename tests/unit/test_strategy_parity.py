"""Every registered strategy (built-ins and any plugin) gives the same targets live and vectorised.

Random candle series (flat runs, price gaps, gaps in time, values from 1e-8 to 1e8) and random valid parameters
drawn from each strategy's own parameter schema are fed candle by candle through ``decide`` (the
state round-tripping through JSON at random candles) and at once through ``signals``: the targets,
sequence numbers and indicator values agree on every candle. The example plugin
(examples/sma-cross-plugin) is checked too when it is not installed: loaded from its source,
not registered (so the registry this process sees stays the built-ins).
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tradebot.strategies import NO_TARGET, Candle, Candles, ParameterError, Strategy, get_strategy, strategy_names
from tradebot.strategies.plugins import load_plugins

load_plugins()  # installed plugins (e.g. examples/sma-cross-plugin) are covered like the built-ins

EXAMPLE_PLUGIN = Path(__file__).resolve().parents[2] / "examples/sma-cross-plugin/src/tradebot_sma_cross/__init__.py"


def _example_plugin() -> Strategy[Any, Any]:
    spec = importlib.util.spec_from_file_location("tradebot_sma_cross_example", EXAMPLE_PLUGIN)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    strategy: Strategy[Any, Any] = module.SMA_CROSS
    return strategy


STRATEGIES: dict[str, Strategy[Any, Any]] = {name: get_strategy(name) for name in strategy_names()}
_example = _example_plugin()
STRATEGIES.setdefault(_example.name, _example)

MINUTE = 60_000
EXAMPLES = int(os.environ.get("TRADEBOT_PARITY_EXAMPLES", "300"))  # per strategy

price = st.floats(min_value=1e-8, max_value=1e8, allow_nan=False, allow_infinity=False)


@st.composite
def closes(draw: st.DrawFn) -> list[float]:
    n = draw(st.integers(1, 240))  # Candles refuses an empty series
    kind = draw(st.sampled_from(["walk", "ticks", "any", "runs"]))
    if kind == "any":  # anything from 1e-8 to 1e8, neighbours unrelated
        return draw(st.lists(price, min_size=n, max_size=n))
    if kind == "ticks":  # few distinct values: exact ties with every indicator
        return draw(st.lists(st.sampled_from([0.1, 0.2, 0.3, 1.0, 3.0]), min_size=n, max_size=n))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    start = draw(price)
    walk = start * np.exp(np.cumsum(rng.normal(0.0, draw(st.sampled_from([1e-4, 0.01, 0.2])), n)))
    if kind == "runs":  # flat runs and price gaps (jumps by up to 1e4 either way)
        for _ in range(draw(st.integers(0, 4))):
            a = draw(st.integers(0, max(0, n - 1)))
            b = draw(st.integers(a, n))
            if draw(st.booleans()):
                walk[a:b] = walk[a]
            else:
                walk[a:] *= draw(st.sampled_from([1e-4, 0.5, 2.0, 1e4]))
        walk = np.round(walk, draw(st.sampled_from([2, 8, 12])))
    return [float(min(1e8, max(1e-8, v))) for v in walk.tolist()]


def _draw_value(draw: st.DrawFn, spec: dict[str, Any]) -> Any:
    lo, hi = spec["minimum"], spec["maximum"]
    if spec["type"] == "integer":
        # mostly periods a short series can reach, sometimes anything in range
        near = st.integers(lo, min(hi, lo + 40))
        return draw(st.one_of(near, near, near, st.integers(lo, hi)))
    return draw(st.one_of(st.sampled_from([lo, hi, spec["default"]]), st.floats(lo, hi)))


@st.composite
def parameters_of(draw: st.DrawFn, name: str) -> Any:
    strategy = STRATEGIES[name]
    schema = strategy.parameters_schema()
    raw = {key: _draw_value(draw, spec) for key, spec in schema["properties"].items()}
    raw["allow_short"] = draw(st.booleans())
    try:
        return strategy.parse_params(raw)
    except ParameterError:  # a rule across parameters (fast < slow)
        assume(False)


def live_run(
    name: str, values: list[float], params: Any, round_trips: set[int], ts: list[int]
) -> tuple[list[int], list[float], list[int]]:
    strategy = STRATEGIES[name]
    state = strategy.initial_state(params)
    targets: list[int] = []
    indicator: list[float] = []
    seqs: list[int] = []
    previous = None
    for i, c in enumerate(values):
        if i in round_trips:
            raw = json.loads(json.dumps(strategy.state_to_dict(state), allow_nan=False))
            resumed = strategy.state_from_dict(raw, params)
            assert resumed == state
            state = resumed
        decision, state = strategy.decide(Candle(ts[i], c, c, c, c, 1.0), state, params)
        assert decision.changed == (decision.target is not previous)
        previous = decision.target
        targets.append(NO_TARGET if decision.target is None else int(decision.target))
        indicator.append(np.nan if decision.ema is None else decision.ema)
        seqs.append(decision.seq)
    return targets, indicator, seqs


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_live_and_vectorised_faces_agree(name: str) -> None:
    cases = [0]

    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
    @given(data=st.data(), values=closes())
    def check(data: st.DataObject, values: list[float]) -> None:
        params = data.draw(parameters_of(name))
        n = len(values)
        round_trips = set(data.draw(st.lists(st.integers(0, max(0, n - 1)), max_size=4))) if n else set()
        # Gaps in time too (a halted market, candles the exchange never had): open times only order
        # the candles, so neither face may depend on their spacing.
        steps = data.draw(st.lists(st.sampled_from([1, 1, 1, 2, 60, 10_000]), min_size=n, max_size=n))
        ts = (np.cumsum(steps) * MINUTE).tolist()
        targets, indicator, seqs = live_run(name, values, params, round_trips, ts)
        arr = np.array(values, dtype=np.float64)
        signals = STRATEGIES[name].signals(Candles.from_arrays(ts, arr, arr, arr, arr), params)
        assert targets == signals.target.tolist()
        assert seqs == signals.seq().tolist()
        np.testing.assert_array_equal(np.array(indicator, dtype=np.float64), signals.ema)  # bit for bit
        cases[0] += 1

    check()
    print(f"{name}: {cases[0]} cases")
    assert cases[0] >= EXAMPLES // 2
