"""The vectorised engine against a plain, per-bar reference implementation, on random series and
every combination of parameters (hypothesis)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from unittest import mock

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tradebot.strategies import EmaCrossParams, backtest, ema_cross_signals
from tradebot.strategies.backtest import RUIN_FRACTION, BacktestSettings, ExitReason, simulate
from tradebot.strategies.base import NO_TARGET, signal_sequence
from tradebot.strategies.candles import Candles
from tradebot.strategies.report import run_backtest


@dataclass
class RefTrade:
    entry_bar: int
    exit_bar: int
    side: int
    entry_price: float
    exit_price: float
    amount: float
    pnl: float
    fees: float
    reason: ExitReason


def reference_backtest(
    candles: Candles, target: np.ndarray, s: BacktestSettings
) -> tuple[list[RefTrade], list[float], int]:
    """Obviously-correct bar-by-bar simulation of the rules in tradebot/strategies/backtest.py."""
    o, h, lo, c = (a.tolist() for a in (candles.open, candles.high, candles.low, candles.close))
    n = len(o)
    seq = signal_sequence(target).tolist()
    tgt = [0 if t == NO_TARGET else int(t) for t in target.tolist()]
    slip = s.slippage_bps / 1e4
    balance = s.initial_balance
    pos = 0  # +1 long, -1 short, 0 flat
    amount = entry = entry_fee = 0.0
    entry_bar = 0
    blocked_seq: int | None = None  # after a stop: seq in force when it fired
    trades: list[RefTrade] = []
    equity: list[float] = []
    bars_in_position = 0
    trade_start = balance
    ruined = False  # a trade left less than RUIN_FRACTION of its starting balance: no more entries

    def close_position(bar: int, price: float, reason: ExitReason) -> None:
        nonlocal balance, pos, ruined
        # A liquidation closes at the bankruptcy price with no exit fee: it loses exactly the margin.
        fee = 0.0 if reason is ExitReason.LIQUIDATION else s.fee_rate * amount * price
        gross = pos * amount * (price - entry)
        balance += gross - fee
        pnl = gross - entry_fee - fee
        if balance < 0:  # a trade never takes more than the balance it started with
            pnl -= balance
            balance = 0.0
        ruined = ruined or balance <= RUIN_FRACTION * trade_start
        trades.append(RefTrade(entry_bar, bar, pos, entry, price, amount, pnl, entry_fee + fee, reason))
        pos = 0

    for t in range(n):
        if t >= 1:  # the decision of close t-1 executes at open t
            want = tgt[t - 1]
            if blocked_seq is not None:
                if seq[t - 1] != blocked_seq:
                    blocked_seq = None
                else:
                    want = 0
            if pos != 0 and want != pos:
                exit_price = o[t] * (1 - slip) if pos > 0 else o[t] * (1 + slip)
                close_position(t, exit_price, ExitReason.SIGNAL)
            if want != 0 and pos == 0 and balance > 0 and not ruined:
                pos = want
                trade_start = balance
                entry = o[t] * (1 + slip) if pos > 0 else o[t] * (1 - slip)
                amount = balance * s.order_size_pct / 100 * s.leverage / entry
                entry_fee = s.fee_rate * amount * entry
                balance -= entry_fee
                entry_bar = t
        if pos != 0:
            bars_in_position += 1
            exit_reason = None
            # Isolated margin: liquidated when the price reaches entry × (1 ∓ 1/L) / (1 ∓ mmr),
            # closed at the bankruptcy price entry × (1 ∓ 1/L), without slippage.
            lev, mmr = s.leverage, s.maintenance_margin_rate
            if pos > 0:
                liq = entry * (1 - 1 / lev) / (1 - mmr)
                stop = entry * (1 - s.stop_loss_pct / 100) if s.stop_loss_pct else None
                take = entry * (1 + s.take_profit_pct / 100) if s.take_profit_pct else None
                if o[t] <= liq:
                    exit_reason = ExitReason.LIQUIDATION
                elif stop is not None and o[t] <= stop:
                    exit_reason, price = ExitReason.STOP_LOSS, o[t]
                elif take is not None and o[t] >= take:
                    exit_reason, price = ExitReason.TAKE_PROFIT, o[t]
                elif stop is not None and lo[t] <= stop and stop >= liq:  # falling: the stop comes first
                    exit_reason, price = ExitReason.STOP_LOSS, stop
                elif lo[t] <= liq:
                    exit_reason = ExitReason.LIQUIDATION
                elif take is not None and h[t] >= take:
                    exit_reason, price = ExitReason.TAKE_PROFIT, take
                if exit_reason is ExitReason.LIQUIDATION:
                    close_position(t, entry * (1 - 1 / lev), exit_reason)
                elif exit_reason is not None:
                    close_position(t, price * (1 - slip), exit_reason)
            else:
                liq = entry * (1 + 1 / lev) / (1 + mmr)
                stop = entry * (1 + s.stop_loss_pct / 100) if s.stop_loss_pct else None
                take = entry * (1 - s.take_profit_pct / 100) if s.take_profit_pct else None
                if o[t] >= liq:
                    exit_reason = ExitReason.LIQUIDATION
                elif stop is not None and o[t] >= stop:
                    exit_reason, price = ExitReason.STOP_LOSS, o[t]
                elif take is not None and o[t] <= take:
                    exit_reason, price = ExitReason.TAKE_PROFIT, o[t]
                elif stop is not None and h[t] >= stop and stop <= liq:  # rising: the stop comes first
                    exit_reason, price = ExitReason.STOP_LOSS, stop
                elif h[t] >= liq:
                    exit_reason = ExitReason.LIQUIDATION
                elif take is not None and lo[t] <= take:
                    exit_reason, price = ExitReason.TAKE_PROFIT, take
                if exit_reason is ExitReason.LIQUIDATION:
                    close_position(t, entry * (1 + 1 / lev), exit_reason)
                elif exit_reason is not None:
                    close_position(t, price * (1 + slip), exit_reason)
            if exit_reason is not None:
                blocked_seq = seq[t - 1]
        if t == n - 1 and pos != 0:
            close_position(t, c[t], ExitReason.END)
        equity.append(balance + (pos * amount * (c[t] - entry) if pos != 0 else 0.0))
    return trades, equity, bars_in_position


@st.composite
def market(draw: st.DrawFn) -> Candles:
    n = draw(st.integers(1, 120))
    seed = draw(st.integers(0, 2**32 - 1))
    vol = draw(st.sampled_from([0.001, 0.01, 0.05, 0.2]))
    tick = draw(st.sampled_from([None, 0.5, 1.0]))  # coarse ticks make ties and gaps
    scale = draw(st.sampled_from([1e-6, 1.0, 1e6]))  # from sub-satoshi prices to huge ones
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, vol, n)))
    open_ = np.concatenate(([100.0], close[:-1])) * np.exp(rng.normal(0.0, vol / 2, n))
    if tick is not None:
        close = np.maximum(np.round(close / tick) * tick, tick)
        open_ = np.maximum(np.round(open_ / tick) * tick, tick)
    close *= scale
    open_ *= scale
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0.0, vol, n)))
    low = np.minimum(open_, close) / (1 + np.abs(rng.normal(0.0, vol, n)))
    ts = np.cumsum(rng.integers(1, 4, n)) * 60_000
    return Candles.from_arrays(ts, open_, high, low, close)


backtest_settings = st.builds(
    BacktestSettings,
    initial_balance=st.sampled_from([100.0, 10_000.0, 1e9]),
    fee_rate=st.sampled_from([0.0, 0.0004, 0.001, 0.01]),
    slippage_bps=st.sampled_from([0.0, 1.0, 25.0, 150.0]),
    order_size_pct=st.sampled_from([1.0, 10.0, 50.0, 100.0]),
    leverage=st.sampled_from([1.0, 3.0, 20.0, 125.0]),
    stop_loss_pct=st.sampled_from([None, 0.1, 1.0, 5.0, 50.0]),
    take_profit_pct=st.sampled_from([None, 0.1, 1.0, 5.0, 300.0]),
    maintenance_margin_rate=st.sampled_from([0.0, 0.004, 0.1]),
)


def assert_matches_reference(candles: Candles, target: np.ndarray, s: BacktestSettings) -> None:
    sim = simulate(candles, target, s)
    trades, equity, bars_in_position = reference_backtest(candles, target, s)
    t = sim.trades
    assert len(t) == len(trades)
    for i, ref in enumerate(trades):
        assert int(t.entry_bar[i]) == ref.entry_bar
        assert int(t.exit_bar[i]) == ref.exit_bar
        assert int(t.side[i]) == ref.side
        assert ExitReason(int(t.exit_reason[i])) is ref.reason
        assert float(t.entry_price[i]) == pytest.approx(ref.entry_price, rel=1e-12, abs=0)
        assert float(t.exit_price[i]) == pytest.approx(ref.exit_price, rel=1e-12, abs=0)
        assert float(t.amount[i]) == pytest.approx(ref.amount, rel=1e-9, abs=0)
        for got, want in ((t.pnl[i], ref.pnl), (t.fees[i], ref.fees)):
            assert float(got) == pytest.approx(want, rel=1e-9, abs=1e-9 * s.initial_balance)
    assert sim.bars_in_position == bars_in_position
    np.testing.assert_allclose(sim.equity, equity, rtol=1e-9, atol=1e-9 * s.initial_balance)
    assert sim.equity[-1] == sim.final_balance
    assert sim.final_balance >= 0.0  # liquidation and the loss cap: never a negative balance
    assert math.isclose(sim.final_balance, equity[-1], rel_tol=1e-9, abs_tol=1e-9 * s.initial_balance)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    candles=market(),
    s=backtest_settings,
    period=st.integers(2, 30),
    allow_short=st.booleans(),
)
def test_engine_matches_per_bar_reference_for_ema_cross(
    candles: Candles, s: BacktestSettings, period: int, allow_short: bool
) -> None:
    target = ema_cross_signals(candles.close, EmaCrossParams(period, allow_short)).target
    assert_matches_reference(candles, target, s)


@settings(max_examples=300, deadline=None)
@given(
    candles=market(),
    s=backtest_settings,
    codes=st.lists(st.sampled_from([1, 0, -1]), min_size=1, max_size=120),
    undecided=st.integers(0, 10),
)
def test_engine_matches_reference_for_arbitrary_targets(
    candles: Candles, s: BacktestSettings, codes: list[int], undecided: int
) -> None:
    """Targets that change on any bar (including every bar) and a run of "no target" first."""
    n = len(candles)
    target = np.resize(np.array(codes, dtype=np.int8), n)
    target[: min(undecided, n)] = NO_TARGET
    assert_matches_reference(candles, target, s)


def test_run_backtest_summary_is_consistent_with_trades() -> None:
    rng = np.random.default_rng(7)
    n = 5000
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    open_ = np.concatenate(([100.0], close[:-1]))
    high = np.maximum(open_, close) * 1.003
    low = np.minimum(open_, close) * 0.997
    candles = Candles.from_arrays(np.arange(n) * 3_600_000, open_, high, low, close)
    s = BacktestSettings(fee_rate=0.001, slippage_bps=5, leverage=2, stop_loss_pct=2, take_profit_pct=4)
    r = run_backtest(candles, s, params={"ema_period": 20, "allow_short": True}, timeframe="1h")
    assert r.trades_count == len(r.trades) > 10
    assert r.final_balance == pytest.approx(s.initial_balance + float(np.sum(r.trades.pnl)), rel=1e-12)
    assert r.total_pnl == pytest.approx(r.final_balance - s.initial_balance)
    assert r.fees_paid == pytest.approx(float(np.sum(r.trades.fees)))
    assert 0.0 <= r.win_rate <= 1.0
    assert r.equity[-1] == r.final_balance
    reasons = set(r.trades.exit_reason.tolist())
    assert {ExitReason.SIGNAL, ExitReason.STOP_LOSS, ExitReason.TAKE_PROFIT} <= reasons


@settings(max_examples=150, deadline=None)
@given(candles=market(), s=backtest_settings, period=st.integers(2, 12), chunk=st.sampled_from([1, 2, 3, 7, 16]))
def test_engine_matches_reference_across_chunk_boundaries(
    candles: Candles, s: BacktestSettings, period: int, chunk: int
) -> None:
    """The engine streams bars in chunks of backtest.CHUNK; tiny chunks put every kind of event on a
    chunk boundary."""
    target = ema_cross_signals(candles.close, EmaCrossParams(period, True)).target
    with mock.patch.object(backtest, "CHUNK", chunk):
        assert_matches_reference(candles, target, s)


def test_engine_matches_reference_on_a_long_series() -> None:
    """200,000 bars: several real chunks, every exit reason, long and short."""
    rng = np.random.default_rng(11)
    n = 200_000
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.004, n)))
    open_ = np.concatenate(([100.0], close[:-1])) * np.exp(rng.normal(0.0, 0.001, n))
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0.0, 0.003, n)))
    low = np.minimum(open_, close) / (1 + np.abs(rng.normal(0.0, 0.003, n)))
    candles = Candles.from_arrays(np.arange(n) * 60_000, open_, high, low, close)
    target = ema_cross_signals(close, EmaCrossParams(30, True)).target
    s = BacktestSettings(fee_rate=0.0004, slippage_bps=1, leverage=2, stop_loss_pct=1.0, take_profit_pct=1.5)
    assert_matches_reference(candles, target, s)
