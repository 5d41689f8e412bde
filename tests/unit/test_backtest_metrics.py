"""Equity statistics: the streaming, blocked computation against plain numpy on whole arrays."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tradebot.strategies.metrics import EquityStats, max_drawdown_pct, sharpe_ratio
from tradebot.strategies.report import downsample


def reference_drawdown_pct(eq: np.ndarray) -> float:
    peak = np.maximum.accumulate(eq)
    return float(np.max((peak - eq) / peak)) * 100.0


def reference_sharpe(eq: np.ndarray, periods: float) -> float:
    r = eq[1:] / eq[:-1] - 1.0
    return float(r.mean() / r.std(ddof=1) * math.sqrt(periods))


@pytest.mark.parametrize("n", [2, 3, 1023, 1024, 1025, 5000, 300_000])
@pytest.mark.parametrize("drift", [-1e-3, 0.0, 1e-4, 2e-3])
def test_drawdown_and_sharpe_match_numpy(n: int, drift: float) -> None:
    rng = np.random.default_rng(n)
    eq = 1000.0 * np.exp(np.cumsum(rng.normal(drift, 0.01, n)))
    assert max_drawdown_pct(eq) == pytest.approx(reference_drawdown_pct(eq), rel=1e-12, abs=1e-12)
    if n >= 3:
        assert sharpe_ratio(eq, 8760.0) == pytest.approx(reference_sharpe(eq, 8760.0), rel=1e-9)


@settings(max_examples=200, deadline=None)
@given(
    values=st.lists(st.floats(1.0, 1e6), min_size=1, max_size=3000),
    cuts=st.lists(st.integers(1, 3000), max_size=10),
)
def test_any_chunking_gives_the_same_statistics(values: list[float], cuts: list[int]) -> None:
    eq = np.array(values)
    stats = EquityStats()
    edges = sorted({0, len(values), *(c for c in cuts if c < len(values))})
    for a, b in itertools.pairwise(edges):
        stats.update(eq[a:b])
    summary = stats.summary()
    assert summary.max_drawdown_pct == pytest.approx(reference_drawdown_pct(eq), rel=1e-12, abs=1e-12)
    if len(values) >= 3:
        r = eq[1:] / eq[:-1] - 1.0
        if r.std(ddof=1) > 1e-12:
            assert summary.sharpe(365.0) == pytest.approx(reference_sharpe(eq, 365.0), rel=1e-7, abs=1e-9)


def test_degenerate_curves() -> None:
    assert max_drawdown_pct(np.array([5.0])) == 0.0
    assert max_drawdown_pct(np.array([1.0, 2.0, 3.0])) == 0.0
    assert sharpe_ratio(np.full(100, 7.0), 365.0) == 0.0  # no variation
    assert sharpe_ratio(np.array([1.0, 2.0]), 365.0) == 0.0  # a single return
    assert sharpe_ratio(np.array([1.0, -1.0, 2.0, 3.0]), 365.0) == 0.0  # not positive throughout
    assert max_drawdown_pct(np.array([100.0, 50.0, 200.0, 150.0])) == pytest.approx(50.0)


def test_downsample_keeps_first_and_last() -> None:
    ts = np.arange(10_001, dtype=np.int64) * 60_000
    eq = np.linspace(1.0, 2.0, 10_001)
    t2, e2 = downsample(ts, eq, 1000)
    assert len(t2) <= 1000
    assert t2[0] == ts[0] and t2[-1] == ts[-1]
    assert e2[0] == eq[0] and e2[-1] == eq[-1]
    assert np.all(np.diff(t2) > 0)
    t3, _e3 = downsample(ts[:10], eq[:10], 1000)
    assert t3.tolist() == ts[:10].tolist()
    with pytest.raises(ValueError):
        downsample(ts, eq, 1)
