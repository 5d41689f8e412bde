"""EMA: the vectorised face against a plain float64 loop; the incremental face against the
vectorised one (bit for bit); serialisation of the incremental state."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tradebot.strategies.ema import MAX_BLOCK, EmaState, default_block_len, ema, ema_tables


def reference_ema(x: np.ndarray, period: int) -> np.ndarray:
    """TA-Lib's EMA written as the textbook loop."""
    alpha = 2.0 / (period + 1)
    out = np.full(len(x), np.nan)
    if len(x) < period:
        return out
    value = 0.0
    for v in x[:period].tolist():
        value += v
    value /= period
    out[period - 1] = value
    for i, v in enumerate(x[period:].tolist(), start=period):
        value = value + alpha * (v - value)
        out[i] = value
    return out


def random_walk(n: int, seed: int, vol: float = 0.01, start: float = 100.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return start * np.exp(np.cumsum(rng.normal(0.0, vol, n)))


def max_rel_error(a: np.ndarray, b: np.ndarray) -> float:
    assert np.array_equal(np.isnan(a), np.isnan(b))
    m = ~np.isnan(a)
    return float(np.max(np.abs(a[m] - b[m]) / np.abs(b[m]), initial=0.0))


@pytest.mark.parametrize("period", [2, 3, 10, 200, 1000])
def test_matches_reference_loop_on_long_series(period: int) -> None:
    x = random_walk(150_000, seed=period)
    assert max_rel_error(ema(x, period), reference_ema(x, period)) < 1e-12


@pytest.mark.parametrize("period", [2, 10, 200, 1000])
def test_matches_reference_with_huge_and_tiny_prices(period: int) -> None:
    for start, vol in ((1e12, 0.05), (1e-8, 0.05), (3.0, 0.3)):
        x = random_walk(20_000, seed=period + 1, vol=vol, start=start)
        assert max_rel_error(ema(x, period), reference_ema(x, period)) < 1e-12


def test_seed_is_the_simple_mean_and_earlier_values_are_nan() -> None:
    x = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    out = ema(x, 3)
    assert np.isnan(out[:2]).all()
    assert out[2] == 2.0
    assert out[3] == pytest.approx(2.0 + 0.5 * (4.0 - 2.0))  # alpha = 2 / (3 + 1)
    assert out[4] == pytest.approx(3.0 + 0.5 * (5.0 - 3.0))


def test_short_input_is_all_nan() -> None:
    assert np.isnan(ema(np.array([1.0, 2.0]), 3)).all()
    assert ema(np.array([], dtype=np.float64), 5).shape == (0,)


def test_constant_series_is_constant() -> None:
    x = np.full(5000, 0.1)
    out = ema(x, 7)
    assert np.allclose(out[6:], 0.1, rtol=1e-15, atol=0)


@pytest.mark.parametrize("bad", [0, 1, -3, 2.5, True])
def test_bad_period(bad: object) -> None:
    with pytest.raises(ValueError):
        ema(np.ones(10), bad)  # type: ignore[arg-type]  # a bad period on purpose


def test_block_lengths_keep_the_scale_bounded() -> None:
    for period in (2, 3, 5, 10, 50, 1000):
        b = default_block_len(period)
        assert 1 <= b <= MAX_BLOCK
        t = ema_tables(period, b)
        assert float(t.w[-1]) <= 1e151
        assert not t.w.flags.writeable


def incremental(x: np.ndarray, period: int) -> np.ndarray:
    state = EmaState.start(period)
    out = []
    for v in x.tolist():
        state = state.update(v)
        out.append(np.nan if state.value is None else state.value)
    return np.array(out)


@pytest.mark.parametrize("period", [2, 3, 10, 200, 1000])
def test_incremental_is_bit_identical_to_vectorised(period: int) -> None:
    x = random_walk(period + 5000, seed=period)
    x[1000:1400] = x[999]  # a flat stretch, where ties decide
    np.testing.assert_array_equal(incremental(x, period), ema(x, period))


prices = st.floats(min_value=1e-8, max_value=1e12, allow_nan=False, allow_infinity=False)


@settings(max_examples=300, deadline=None)
@given(
    x=st.lists(prices, min_size=0, max_size=400) | st.lists(st.sampled_from([1.0, 1.5, 0.1, 7.0]), max_size=400),
    period=st.integers(2, 60),
)
def test_incremental_equals_vectorised_for_any_series(x: list[float], period: int) -> None:
    arr = np.array(x, dtype=np.float64)
    vec = ema(arr, period)
    inc = incremental(arr, period)
    np.testing.assert_array_equal(inc, vec)
    if len(x) >= period:
        assert max_rel_error(vec, reference_ema(arr, period)) < 1e-12


@settings(max_examples=100, deadline=None)
@given(x=st.lists(prices, min_size=1, max_size=60), period=st.integers(2, 10), cut=st.integers(0, 60))
def test_state_survives_a_json_round_trip_mid_series(x: list[float], period: int, cut: int) -> None:
    """A bot restarted from its saved state continues exactly as if it had never stopped."""
    cut = min(cut, len(x))
    state = EmaState.start(period)
    for v in x[:cut]:
        state = state.update(v)
    restored = EmaState.from_dict(json.loads(json.dumps(state.to_dict())))
    assert restored == state
    for v in x[cut:]:
        restored = restored.update(v)
    assert restored.value == incremental(np.array(x), period)[-1] or (restored.value is None and len(x) < period)


def test_state_rejects_bad_values() -> None:
    good = EmaState.start(5).update(1.0).to_dict()
    with pytest.raises(ValueError, match="missing"):
        EmaState.from_dict({k: v for k, v in good.items() if k != "carry"})
    with pytest.raises(ValueError, match="value"):
        EmaState.from_dict({**good, "value": 3.0})  # not seeded yet
    with pytest.raises(ValueError):
        EmaState.from_dict({**good, "seed_sum": float("nan")})
    with pytest.raises(ValueError):
        EmaState.from_dict({**good, "count": "2"})
    with pytest.raises(ValueError):
        EmaState.from_dict({**good, "block_len": 10_000})
    with pytest.raises(ValueError, match="finite"):
        EmaState.start(5).update(float("nan"))


def test_state_is_small_and_json_safe() -> None:
    state = EmaState.start(20)
    for v in random_walk(100, seed=1).tolist():
        state = state.update(v)
    text = json.dumps(state.to_dict(), allow_nan=False)
    assert len(text) < 300
    assert state.ready


def test_out_and_on_chunk() -> None:
    x = random_walk(300_000, seed=9)
    out = np.empty_like(x)
    seen: list[tuple[int, int]] = []
    result = ema(x, 20, out=out, on_chunk=lambda a, b: seen.append((a, b)))
    assert result is out
    np.testing.assert_array_equal(out, ema(x, 20))
    assert seen[0] == (19, 20)
    assert seen[-1][1] == len(x)
    assert all(b1 == a2 for (_, b1), (a2, _) in itertools.pairwise(seen))
    with pytest.raises(ValueError, match="overlap"):
        ema(x, 20, out=x)
    with pytest.raises(ValueError, match="shape"):
        ema(x, 20, out=np.empty(3))


@settings(max_examples=300, deadline=None)
@given(
    value=st.floats(min_value=1e-300, max_value=1e300, allow_nan=False, allow_infinity=False)
    | st.sampled_from([7.0, 0.1, 1.0 / 3.0, 29_999.99, 1e-8]),
    n=st.integers(0, 3000),
    period=st.integers(2, 1000),
)
def test_ema_of_a_constant_series_is_that_constant_exactly(value: float, n: int, period: int) -> None:
    """A flat market must not trade on one-ulp noise (DESIGN.md), in either face."""
    x = np.full(n, value)
    vec = ema(x, period)
    assert np.isnan(vec[: period - 1]).all()
    assert (vec[period - 1 :] == value).all()
    state = EmaState.start(period)
    for v in x[: min(n, period + 1100)].tolist():  # the seed and more than one block
        state = state.update(v)
        assert state.value is None or state.value == value


def test_flat_stretch_after_a_move_approaches_without_crossing() -> None:
    """After a move the EMA closes in on a flat price from one side and never crosses it."""
    x = np.concatenate([np.linspace(100.0, 90.0, 50), np.full(3000, 7.25)])
    out = ema(x, 20)
    assert (out[50:] >= 7.25).all()
    assert out[-1] == 7.25
