"""The actor's view of a strategy (tradebot.runtime.live_strategy): resolved through the registry,
saved as JSON naming its strategy and parameters, resumed only when the saved state fits, and
still reading the form saved before the registry (``{<strategy name>: state}``)."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest

from tradebot.runtime.live_strategy import LiveStrategy, Progress
from tradebot.strategies import NO_TARGET, Candle, Candles, ParameterError, UnknownStrategyError, get_strategy
from tradebot.strategies import strategy_names as registered

MINUTE = 60_000
PARAMS: dict[str, dict[str, Any]] = {
    "ema_cross": {"ema_period": 5},
    "ema_crossover": {"fast_period": 3, "slow_period": 8},
    "macd_cross": {"fast_period": 3, "slow_period": 8, "signal_period": 3},
    "rsi_reversion": {"rsi_period": 5, "oversold": 35, "overbought": 65, "exit_level": 50},
    "bollinger_reversion": {"bb_period": 10, "bb_std": 1.2},
}
CLOSES = [100 + 8 * math.sin(i / 3.0) + 3 * math.sin(i / 1.3) for i in range(120)]


def _candle(i: int) -> Candle:
    c = CLOSES[i]
    return Candle(i * MINUTE, c, c, c, c, 1.0)


def _run(live: LiveStrategy, start: int, stop: int) -> tuple[LiveStrategy, list[int]]:
    targets = []
    for i in range(start, stop):
        decision, live = live.decide(_candle(i))
        assert live.progress == Progress(decision.target, decision.seq, decision.candle_ts)
        targets.append(NO_TARGET if decision.target is None else int(decision.target))
    return live, targets


def test_every_builtin_is_covered() -> None:
    assert sorted(PARAMS) == registered()


@pytest.mark.parametrize("name", sorted(PARAMS))
@pytest.mark.parametrize("allow_short", [False, True])
def test_decisions_are_the_strategys_and_a_saved_state_resumes_exactly(name: str, allow_short: bool) -> None:
    live = LiveStrategy.fresh(name, PARAMS[name], allow_short)
    assert live.parameters == {**PARAMS[name], "allow_short": allow_short}
    live, first = _run(live, 0, 60)
    saved = json.loads(json.dumps(live.saved("1m", 3), allow_nan=False))  # through JSON, as stored
    assert saved["strategy"] == name and saved["timeframe"] == "1m" and saved["stopped_out_seq"] == 3
    restored = LiveStrategy.fresh(name, PARAMS[name], allow_short).restored(saved, "1m")
    assert restored is not None and restored.stopped_out_seq == 3
    assert restored.live.state == live.state and restored.live.progress == live.progress
    resumed, rest = _run(restored.live, 60, len(CLOSES))
    _, straight = _run(live, 60, len(CLOSES))
    assert rest == straight
    # ...and both are the vectorised face's targets over the whole series.
    impl = get_strategy(name)
    arr = np.array(CLOSES)
    candles = Candles.from_arrays(np.arange(arr.shape[0]) * MINUTE, arr, arr, arr, arr)
    signals = impl.signals(candles, impl.parse_params({**PARAMS[name], "allow_short": allow_short}))
    assert first + rest == signals.target.tolist()
    assert resumed.progress.seq == int(signals.seq()[-1]) > 0


@pytest.mark.parametrize("name", sorted(PARAMS))
def test_a_saved_state_for_other_settings_is_not_resumed(name: str) -> None:
    live, _ = _run(LiveStrategy.fresh(name, PARAMS[name], True), 0, 40)
    saved = json.loads(json.dumps(live.saved("1m", None)))
    fresh = LiveStrategy.fresh(name, PARAMS[name], True)
    assert fresh.restored(saved, "1m") is not None
    assert fresh.restored(saved, "5m") is None  # another timeframe
    assert LiveStrategy.fresh(name, PARAMS[name], False).restored(saved, "1m") is None  # allow_short changed
    key, value = next(iter(PARAMS[name].items()))
    other = LiveStrategy.fresh(name, {**PARAMS[name], key: value + 1}, True)
    assert other.restored(saved, "1m") is None  # a parameter changed
    for another in sorted(set(PARAMS) - {name}):
        assert LiveStrategy.fresh(another, PARAMS[another], True).restored(saved, "1m") is None
    assert fresh.restored({**saved, "state": {"version": 99}}, "1m") is None  # unreadable: warm up instead
    assert fresh.restored({**saved, "seq": -1}, "1m") is None


def test_the_form_saved_before_the_registry_is_resumed() -> None:
    """Bots saved ``{"ema_cross": <state>, "timeframe", "stopped_out_seq"}`` before the actor read the
    registry; after the upgrade they resume from it (target, seq and candle included)."""
    impl = get_strategy("ema_cross")
    params = impl.parse_params({"ema_period": 5, "allow_short": True})
    state = impl.initial_state(params)
    for i in range(50):
        _, state = impl.decide(_candle(i), state, params)
    legacy = json.loads(json.dumps({"ema_cross": impl.state_to_dict(state), "timeframe": "1m", "stopped_out_seq": 4}))
    restored = LiveStrategy.fresh("ema_cross", {"ema_period": 5}, True).restored(legacy, "1m")
    assert restored is not None and restored.stopped_out_seq == 4
    assert restored.live.state == state
    assert restored.live.progress == Progress(state.target, state.seq, state.last_candle_ts)
    # A legacy state of another period (or timeframe) is rebuilt from history, as before.
    assert LiveStrategy.fresh("ema_cross", {"ema_period": 6}, True).restored(legacy, "1m") is None
    assert LiveStrategy.fresh("ema_cross", {"ema_period": 5}, True).restored(legacy, "1h") is None


def test_an_unknown_strategy_or_refused_parameters_raise() -> None:
    with pytest.raises(UnknownStrategyError):
        LiveStrategy.fresh("not_installed_here", {}, False)
    with pytest.raises(ParameterError):
        LiveStrategy.fresh("ema_crossover", {"fast_period": 30, "slow_period": 20}, False)
