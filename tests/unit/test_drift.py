"""The pure drift comparison (tradebot.strategies.drift): replay fills and the fill-by-fill diff."""

from __future__ import annotations

import numpy as np
import pytest

from tradebot.strategies.backtest import BacktestSettings, simulate
from tradebot.strategies.base import NO_TARGET, Target
from tradebot.strategies.candles import Candles
from tradebot.strategies.drift import Fill, LineStatus, compare, gap_warning, replay_fills

M = 60_000
T0 = 1_767_225_600_000


def _candles(closes: list[float]) -> Candles:
    c = np.array(closes)
    o = np.concatenate(([c[0]], c[:-1]))  # each open is the previous close
    return Candles.from_arrays(np.arange(len(c)) * M + T0, o, np.maximum(o, c) + 1, np.minimum(o, c) - 1, c)


def test_replay_fills_are_keyed_by_the_deciding_candle() -> None:
    candles = _candles([100, 101, 102, 103, 104, 105])
    target = np.array([NO_TARGET, Target.LONG, Target.LONG, Target.SHORT, Target.SHORT, Target.SHORT], dtype=np.int8)
    sim = simulate(candles, target, BacktestSettings(fee_rate=0.001, order_size_pct=50))
    fills = replay_fills(candles, sim, T0, T0 + 6 * M)
    # Long decided on candle 1 (filled at candle 2's open); reversal decided on candle 3: exit first.
    # The short still open at the end is a valuation, not a fill.
    assert [(f.decided_at, f.side) for f in fills] == [(T0 + M, "buy"), (T0 + 3 * M, "sell"), (T0 + 3 * M, "sell")]
    # Filled at the next open, which is the deciding close here.
    assert fills[0].price == 101 and fills[1].price == 103 and fills[1].realized_pnl == pytest.approx(
        (103 - 101) * fills[0].amount)
    assert fills[2].realized_pnl == 0 and fills[0].fee == pytest.approx(0.001 * 101 * fills[0].amount)
    # The window keeps what was decided inside it.
    assert [f.decided_at for f in replay_fills(candles, sim, T0 + 2 * M, T0 + 6 * M)] == [T0 + 3 * M] * 2


def test_identical_fills_drift_by_nothing() -> None:
    fills = [Fill(T0, "buy", 100.0, 2.0, 0.08), Fill(T0 + M, "sell", 110.0, 2.0, 0.088, 20.0)]
    report = compare(fills, fills, fee_rate=0.0004)
    s = report.summary
    assert (s.matched, s.missing_signals, s.extra_signals) == (2, 0, 0)
    assert s.mean_slippage_bps == 0 and s.pnl_gap == pytest.approx(0) and s.fee_difference == pytest.approx(0)
    assert s.live_net_pnl == pytest.approx(20 - 0.168)
    assert gap_warning(s, 1.0) is None


def test_slippage_fees_and_the_pnl_gap_at_the_bots_own_amounts() -> None:
    expected = [Fill(T0, "buy", 100.0, 5.0, 0.2), Fill(T0 + M, "sell", 110.0, 5.0, 0.22, 50.0)]
    # The bot traded 1.0 (its balance is not the replay's), 10 bps worse each way, with a 0.001 fee.
    buy, sell = 100.0 * 1.001, 110.0 * 0.999
    actual = [Fill(T0, "buy", buy, 1.0, 0.001 * buy, 0.0, 7), Fill(T0 + M, "sell", sell, 1.0, 0.001 * sell, sell - buy, 8)]
    report = compare(expected, actual, fee_rate=0.0004)
    s = report.summary
    assert [line.slippage_bps for line in report.lines] == [pytest.approx(10), pytest.approx(10)]
    assert s.mean_slippage_bps == pytest.approx(10) and s.max_slippage_bps == pytest.approx(10)
    assert [line.trade_id for line in report.lines] == [7, 8]
    assert s.expected_fees == pytest.approx(0.0004 * (100 + 110))
    assert s.fee_difference == pytest.approx(0.001 * (buy + sell) - 0.0004 * 210)
    assert s.expected_net_pnl == pytest.approx(10.0 - 0.0004 * 210)  # the replay's 50 at an amount of 1
    assert s.live_net_pnl == pytest.approx(sell - buy - 0.001 * (buy + sell))
    assert s.pnl_gap == pytest.approx(s.live_net_pnl - s.expected_net_pnl)
    assert s.pnl_gap_bps == pytest.approx(s.pnl_gap / (buy + sell) * 1e4)
    warning = gap_warning(s, 5.0)
    assert warning is not None and "0 missing and 0 extra" in warning
    assert gap_warning(s, 1e6) is None


def test_missing_and_extra_signals() -> None:
    expected = [Fill(T0, "buy", 100.0, 1.0, 0.04), Fill(T0 + 2 * M, "sell", 90.0, 1.0, 0.036, -10.0)]
    actual = [Fill(T0, "buy", 100.0, 1.0, None), Fill(T0 + M, "sell", 95.0, 1.0, 0.038, -5.0)]
    report = compare(expected, actual, fee_rate=0.0004)
    s = report.summary
    assert (s.matched, s.missing_signals, s.extra_signals, s.fees_unknown) == (1, 1, 1, 1)
    assert [(line.decided_at, line.status) for line in report.lines] == [
        (T0, LineStatus.MATCHED), (T0 + M, LineStatus.EXTRA), (T0 + 2 * M, LineStatus.MISSING)]
    assert report.lines[0].fee_difference is None  # unknown fee: no difference claimed
    assert s.pnl_gap == pytest.approx((-5 - 0.038) - (-10 - 0.04 - 0.036))
    out = report.to_dict()
    assert out["summary"]["signal_differences"] == 2 and out["trades"][1]["status"] == "extra"


def test_a_reversal_pairs_its_two_legs_in_order() -> None:
    expected = [Fill(T0, "sell", 100.0, 2.0, 0.0, 10.0), Fill(T0, "sell", 100.0, 3.0, 0.0)]
    actual = [Fill(T0, "sell", 99.9, 1.0, 0.0, 4.0), Fill(T0, "sell", 99.9, 1.5, 0.0)]
    report = compare(expected, actual, fee_rate=0.0)
    assert report.summary.matched == 2
    assert report.summary.expected_net_pnl == pytest.approx(10.0 / 2.0 * 1.0)


def test_nothing_traded() -> None:
    s = compare([], [], fee_rate=0.0004).summary
    assert s.pnl_gap_bps == 0 and s.mean_slippage_bps is None and gap_warning(s, 0.0) is None
