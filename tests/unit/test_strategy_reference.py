"""The new built-in strategies against independent implementations.

Indicators against TA-Lib (``TA_EMA``, ``TA_RSI``, ``TA_BBANDS`` with matype 0) to 1e-9 relative;
targets against the contract's rules written out here as plain per-candle loops over TA-Lib's
values (not through tradebot's state machine).

Where the contract differs from TA-Lib:

- MACD: CONTRACT.md's EMA_fast is seeded with the mean of the first ``fast`` closes; ``TA_MACD``
  seeds it with the mean of the ``fast`` closes ending where EMA_slow starts, and outputs nothing
  before the signal line is defined. The MACD is therefore compared with ``TA_EMA(fast) -
  TA_EMA(slow)``, its signal with ``TA_EMA`` of that MACD, and with a per-candle loop written from
  the contract's words; ``TA_MACD`` agrees once both seeds have decayed.
- RSI: when the average gain and loss are both 0 the contract says 50, TA-Lib 0; the series here
  never gets there (see the flat-market tests, and the test below).
- Bollinger: TA-Lib keeps rolling sums (variance as E[x^2] - E[x]^2), which drift (by ~3e-11 at
  prices near 20 over 1000-candle windows here) while tradebot reduces each window on its own
  (within ~1e-14 of the exact value, checked with fractions below): the bands are compared to 1e-9
  of the price scale, the mid to 1e-9 relative.
"""

from __future__ import annotations

import numpy as np
import pytest

talib = pytest.importorskip("talib")

from tradebot.strategies import (  # noqa: E402
    NO_TARGET,
    BollingerReversionParams,
    EmaCrossoverParams,
    MacdCrossParams,
    RsiReversionParams,
)
from tradebot.strategies.bollinger import bollinger  # noqa: E402
from tradebot.strategies.bollinger_reversion import bollinger_reversion_signals  # noqa: E402
from tradebot.strategies.ema_crossover import ema_crossover_indicators, ema_crossover_signals  # noqa: E402
from tradebot.strategies.macd_cross import macd_cross_signals, macd_indicators  # noqa: E402
from tradebot.strategies.rsi import rsi, wilder_averages  # noqa: E402
from tradebot.strategies.rsi_reversion import rsi_reversion_signals  # noqa: E402

RTOL = 1e-9
FLAT, LONG, SHORT = 0, 1, -1


def walk(n: int, seed: int, vol: float = 0.01) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.asarray(100.0 * np.exp(np.cumsum(rng.normal(0.0, vol, n))), dtype=np.float64)


def assert_close(ours: np.ndarray, ref: np.ndarray, *, atol: float = 0.0) -> None:
    assert np.array_equal(np.isnan(ours), np.isnan(ref))
    np.testing.assert_allclose(ours, ref, rtol=RTOL, atol=atol)


def sign_rule(a: list[float], b: list[float], start: int, allow_short: bool) -> list[int]:
    """Long if a > b, flat/short if a < b, else unchanged; the first target flat; from `start`."""
    out, target = [], FLAT
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        if i < start:
            out.append(NO_TARGET)
            continue
        if x > y:
            target = LONG
        elif x < y:
            target = SHORT if allow_short else FLAT
        out.append(target)
    return out


def reversion_rule(
    values: list[float], low: list[float], high: list[float], exit: list[float], start: int, allow_short: bool
) -> list[int]:
    """CONTRACT.md's reversion rule, word for word (rsi_reversion and bollinger_reversion)."""
    short = SHORT if allow_short else FLAT
    out, target = [], FLAT
    for i, v in enumerate(values):
        if i < start:
            out.append(NO_TARGET)
            continue
        lo, hi, ex = low[i], high[i], exit[i]
        if target == FLAT:
            target = LONG if v < lo else short if v > hi else FLAT
        elif target == LONG:
            target = short if v > hi else FLAT if v >= ex else LONG
        else:
            target = LONG if v < lo else FLAT if v <= ex else SHORT
        out.append(target)
    return out


@pytest.mark.parametrize(("fast", "slow"), [(2, 3), (12, 26), (50, 200), (999, 1000)])
@pytest.mark.parametrize("allow_short", [False, True])
def test_ema_crossover_against_ta_ema(fast: int, slow: int, allow_short: bool) -> None:
    x = walk(20_000, seed=fast)
    params = EmaCrossoverParams(fast, slow, allow_short)
    ind = ema_crossover_indicators(x, params)
    ref_fast, ref_slow = talib.EMA(x, fast), talib.EMA(x, slow)
    assert_close(ind.fast, ref_fast)
    assert_close(ind.slow, ref_slow)
    expected = sign_rule(ref_fast.tolist(), ref_slow.tolist(), slow - 1, allow_short)
    assert ema_crossover_signals(x, params).target.tolist() == expected


def macd_from_contract(x: list[float], fast: int, slow: int, signal: int) -> tuple[list[float], list[float]]:
    """MACD and signal as CONTRACT.md words them, one candle at a time."""
    nan = float("nan")

    def ema_loop(values: list[float], period: int) -> list[float]:
        out: list[float] = []
        value = nan
        for i, v in enumerate(values):
            if i == period - 1:
                value = sum(values[:period]) / period
            elif i >= period:
                value = value + 2.0 / (period + 1) * (v - value)
            out.append(value)
        return out

    e_fast, e_slow = ema_loop(x, fast), ema_loop(x, slow)
    macd = [nan if i < slow - 1 else f - s for i, (f, s) in enumerate(zip(e_fast, e_slow, strict=True))]
    sig = [nan] * (slow - 1) + ema_loop(macd[slow - 1 :], signal)
    return macd, sig


@pytest.mark.parametrize(("fast", "slow", "signal"), [(12, 26, 9), (2, 3, 2), (5, 35, 5), (20, 100, 50)])
@pytest.mark.parametrize("allow_short", [False, True])
def test_macd_cross_against_ta_ema_and_the_contract(fast: int, slow: int, signal: int, allow_short: bool) -> None:
    x = walk(20_000, seed=slow)
    params = MacdCrossParams(fast, slow, signal, allow_short)
    ind = macd_indicators(x, params)
    scale = 1e-9 * float(np.max(x))  # a MACD crosses 0: compare to the price scale
    ref_macd = talib.EMA(x, fast) - talib.EMA(x, slow)
    ref_signal = np.full_like(x, np.nan)
    ref_signal[slow - 1 :] = talib.EMA(ref_macd[slow - 1 :], signal)
    assert_close(ind.macd, ref_macd, atol=scale)
    assert_close(ind.signal, ref_signal, atol=scale)
    loop_macd, loop_signal = macd_from_contract(x.tolist(), fast, slow, signal)
    assert_close(ind.macd, np.array(loop_macd), atol=scale)
    assert_close(ind.signal, np.array(loop_signal), atol=scale)
    expected = sign_rule(loop_macd, loop_signal, slow + signal - 2, allow_short)
    assert macd_cross_signals(x, params).target.tolist() == expected


def test_ta_macd_differs_in_its_fast_seed_and_converges() -> None:
    x = walk(5_000, seed=7)
    params = MacdCrossParams(12, 26, 9)
    ind = macd_indicators(x, params)
    ta_macd, ta_signal, _ = talib.MACD(x, 12, 26, 9)
    first = 26 + 9 - 2
    assert np.isnan(ta_macd[:first]).all() and not np.isnan(ind.macd[25:first]).any()
    assert abs(ta_macd[first] - ind.macd[first]) > 1e-6  # the seeds differ
    late = slice(1_000, None)  # (11/13)**1000: both seeds long forgotten
    np.testing.assert_allclose(ind.macd[late], ta_macd[late], rtol=0, atol=1e-9 * float(np.max(x)))
    np.testing.assert_allclose(ind.signal[late], ta_signal[late], rtol=0, atol=1e-9 * float(np.max(x)))


@pytest.mark.parametrize("period", [2, 14, 50, 100])
@pytest.mark.parametrize(
    ("oversold", "overbought", "exit_level"), [(30, 70, 50), (45, 55, 50), (20, 80, 10), (40, 60, 90), (1, 99, 99)]
)
@pytest.mark.parametrize("allow_short", [False, True])
def test_rsi_reversion_against_ta_rsi(
    period: int, oversold: int, overbought: int, exit_level: int, allow_short: bool
) -> None:
    x = walk(20_000, seed=period, vol=0.02)
    ref = talib.RSI(x, period)
    gain, loss = wilder_averages(x, period)
    assert np.nanmin(gain + loss) > 0.0  # away from the both-zero case, where TA-Lib says 0
    assert_close(rsi(x, period), ref)
    params = RsiReversionParams(period, oversold, overbought, exit_level, allow_short)
    n = x.shape[0]
    expected = reversion_rule(ref.tolist(), [oversold] * n, [overbought] * n, [exit_level] * n, period, allow_short)
    got = rsi_reversion_signals(x, params).target.tolist()
    assert got == expected
    if period <= 14 and oversold >= 20:  # a long RSI of a random walk seldom leaves the middle
        assert {LONG, FLAT} <= set(got)


@pytest.mark.parametrize("period", [2, 20, 137, 1000])
@pytest.mark.parametrize("width", [0.1, 2.0, 3.5, 10.0])
@pytest.mark.parametrize("allow_short", [False, True])
def test_bollinger_reversion_against_ta_bbands(period: int, width: float, allow_short: bool) -> None:
    x = walk(20_000, seed=period)
    ref_upper, ref_mid, ref_lower = talib.BBANDS(x, period, width, width, 0)
    bands = bollinger(x, period, width)
    assert_close(bands.mid, ref_mid)
    # a lower band can cross 0, and TA-Lib's rolling sums drift by ~1e-11 here: price scale
    scale = 1e-9 * float(np.max(x))
    assert_close(bands.upper, ref_upper, atol=scale)
    assert_close(bands.lower, ref_lower, atol=scale)
    sigma = (ref_upper - ref_mid) / width
    np.testing.assert_allclose(((bands.upper - bands.mid) / width)[period:], sigma[period:], rtol=1e-6)
    params = BollingerReversionParams(period, width, allow_short)
    expected = reversion_rule(
        x.tolist(), ref_lower.tolist(), ref_upper.tolist(), ref_mid.tolist(), period - 1, allow_short
    )
    got = bollinger_reversion_signals(x, params).target.tolist()
    assert got == expected
    # a close is at most sqrt(period - 1) sigmas from its window's mean, and 3.5 sigmas are rare
    if width <= 2.0 and period > 2:
        assert LONG in got


def test_population_sigma_matches_numpy_per_window() -> None:
    x = walk(500, seed=3)
    bands = bollinger(x, 20, 1.0)
    windows = np.lib.stride_tricks.sliding_window_view(x, 20)
    np.testing.assert_allclose(bands.mid[19:], windows.mean(axis=1), rtol=1e-14)
    np.testing.assert_allclose(bands.upper[19:] - bands.mid[19:], windows.std(axis=1), rtol=1e-9)


def test_bands_against_exact_rational_arithmetic() -> None:
    from fractions import Fraction
    from math import sqrt

    x = walk(400, seed=11, vol=0.03)
    for period in (2, 3, 20, 137):
        bands = bollinger(x, period, 2.0)
        for i in range(period - 1, x.shape[0], 7):
            window = [Fraction(v) for v in x[i - period + 1 : i + 1].tolist()]
            mean = sum(window) / period
            sigma = sqrt(float(sum((v - mean) ** 2 for v in window) / period))
            assert bands.mid[i] == pytest.approx(float(mean), rel=1e-14)
            assert bands.upper[i] - bands.mid[i] == pytest.approx(2.0 * sigma, rel=1e-9)


def test_rsi_of_a_flat_start_is_50_where_ta_lib_says_0() -> None:
    x = np.concatenate([np.full(30, 5.0), walk(50, seed=1) / 20])
    ours, ref = rsi(x, 14), talib.RSI(x, 14)
    assert (ours[14:30] == 50.0).all() and (ref[14:30] == 0.0).all()
    assert_close(ours[31:], ref[31:])
