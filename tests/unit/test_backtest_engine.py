"""The backtest engine on a hand-computed example, then each setting's effect in isolation."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest

from tradebot.strategies.backtest import BacktestSettings, ExitReason, held_positions, simulate
from tradebot.strategies.base import NO_TARGET, ParameterError, Target
from tradebot.strategies.candles import Candles
from tradebot.strategies.report import run_backtest

L, F, S = Target.LONG, Target.FLAT, Target.SHORT
HOUR = 3_600_000

# Nine hourly candles (open, high, low, close) and the target decided at each close.
BARS = [
    # o     h      l      c       target
    (100.0, 100.0, 100.0, 100.0),  # 0  LONG  -> buy at bar 1's open
    (100.0, 104.0, 99.0, 103.0),  # 1  FLAT  -> sell at bar 2's open
    (105.0, 106.0, 101.0, 102.0),  # 2  SHORT -> sell short at bar 3's open
    (102.0, 108.0, 100.0, 107.0),  # 3  SHORT    high 108 hits the short's stop loss inside bar 3
    (107.0, 107.0, 106.0, 106.0),  # 4  SHORT    unchanged target after a stop: stay flat
    (106.0, 106.0, 105.0, 105.5),  # 5  LONG  -> the target changed: buy at bar 6's open
    (110.0, 115.0, 109.0, 114.0),  # 6  LONG
    (114.0, 125.0, 113.0, 120.0),  # 7  LONG     high 125 hits the long's take profit inside bar 7
    (120.0, 120.0, 119.0, 119.5),  # 8  LONG     unchanged after the take profit: stay flat
]
TARGETS = np.array([L, F, S, S, S, L, L, L, L], dtype=np.int8)

# fee 0.1 % per fill, slippage 10 bps = 0.1 %, 50 % of the balance x 2 leverage = 100 % notional,
# stop loss 5 %, take profit 10 % of the entry price.
SETTINGS = BacktestSettings(
    initial_balance=10_000.0,
    fee_rate=0.001,
    slippage_bps=10.0,
    order_size_pct=50.0,
    leverage=2.0,
    stop_loss_pct=5.0,
    take_profit_pct=10.0,
)


def candles_of(bars: list[tuple[float, float, float, float]]) -> Candles:
    o, h, lo, c = zip(*bars, strict=True)
    return Candles.from_arrays(np.arange(len(bars)) * HOUR, o, h, lo, c)


CANDLES = candles_of(BARS)

# --- Trade 1: long, exit on signal.
E1 = 100.0 * 1.001  # 100.1     buy at bar 1's open + 0.1 % slippage
A1 = 10_000.0 * 0.50 * 2 / E1  # 99.9000999   amount = balance x 50 % x 2 / fill
FEE_IN1 = 0.001 * A1 * E1  # 10.0       0.1 % of the 10,000 notional
X1 = 105.0 * 0.999  # 104.895   sell at bar 2's open - 0.1 %
FEE_OUT1 = 0.001 * A1 * X1  # 10.479021
PNL1 = A1 * (X1 - E1) - FEE_IN1 - FEE_OUT1  # 479.020979 - 20.479021 = 458.541958
BAL1 = 10_000.0 + PNL1  # 10,458.541958

# --- Trade 2: short, stop loss inside bar 3 (the open 102 is below the stop: no gap).
E2 = 102.0 * 0.999  # 101.898   sell short at bar 3's open - 0.1 %
A2 = BAL1 * 0.50 * 2 / E2  # 102.637362  sized on the balance after trade 1
STOP2 = E2 * 1.05  # 106.9929  5 % above the entry; bar 3's high 108 reaches it
X2 = STOP2 * 1.001  # 107.099893  buy back at the stop + 0.1 % slippage
FEE_IN2 = 0.001 * A2 * E2  # 10.458542
FEE_OUT2 = 0.001 * A2 * X2  # 10.992451
PNL2 = -A2 * (X2 - E2) - FEE_IN2 - FEE_OUT2  # -533.908567 - 21.450993 = -555.359559
BAL2 = BAL1 + PNL2  # 9,903.182399

# --- Trade 3: long, take profit inside bar 7.
E3 = 110.0 * 1.001  # 110.11
A3 = BAL2 * 0.50 * 2 / E3  # 89.938992
TAKE3 = E3 * 1.10  # 121.121   bar 6's high 115 stays below; bar 7's high 125 reaches it
X3 = TAKE3 * 0.999  # 120.999879  sell at the take-profit price - 0.1 %
FEE_IN3 = 0.001 * A3 * E3  # 9.903182
FEE_OUT3 = 0.001 * A3 * X3  # 10.882607
PNL3 = A3 * (X3 - E3) - FEE_IN3 - FEE_OUT3  # 979.424739 - 20.785789 = 958.638950
BAL3 = BAL2 + PNL3  # 10,861.821348


def test_three_hand_computed_trades() -> None:
    sim = simulate(CANDLES, TARGETS, SETTINGS)
    t = sim.trades
    assert len(t) == 3
    assert t.entry_bar.tolist() == [1, 3, 6]
    assert t.exit_bar.tolist() == [2, 3, 7]
    assert t.side.tolist() == [1, -1, 1]
    assert [ExitReason(r) for r in t.exit_reason.tolist()] == [
        ExitReason.SIGNAL,
        ExitReason.STOP_LOSS,
        ExitReason.TAKE_PROFIT,
    ]
    assert t.entry_price.tolist() == pytest.approx([E1, E2, E3], rel=1e-12)
    assert t.exit_price.tolist() == pytest.approx([X1, X2, X3], rel=1e-12)
    assert t.amount.tolist() == pytest.approx([A1, A2, A3], rel=1e-12)
    assert t.pnl.tolist() == pytest.approx([PNL1, PNL2, PNL3], rel=1e-12)
    assert t.fees.tolist() == pytest.approx([FEE_IN1 + FEE_OUT1, FEE_IN2 + FEE_OUT2, FEE_IN3 + FEE_OUT3], rel=1e-12)
    assert sim.final_balance == pytest.approx(BAL3, rel=1e-12)  # 10,861.82
    # Bars in a position: 1 (trade 1), 3 (trade 2, stopped inside it), 6 and 7 (trade 3).
    assert sim.bars_in_position == 4

    # Mark-to-market equity at each close.
    expected_equity = [
        10_000.0,  # 0 flat
        10_000.0 - FEE_IN1 + A1 * (103.0 - E1),  # 1 long from 100.1, close 103: 10,279.71
        BAL1,  # 2 sold at the open
        BAL2,  # 3 stopped out inside the bar
        BAL2,  # 4 flat: the target stayed SHORT, no re-entry
        BAL2,  # 5 flat
        BAL2 - FEE_IN3 + A3 * (114.0 - E3),  # 6 long, close 114: 10,243.14
        BAL3,  # 7 take profit inside the bar
        BAL3,  # 8 flat: the target stayed LONG, no re-entry
    ]
    np.testing.assert_allclose(sim.equity, expected_equity, rtol=1e-12)
    assert sim.equity[-1] == sim.final_balance


def test_summary_of_the_hand_computed_example() -> None:
    sim = simulate(CANDLES, TARGETS, SETTINGS)
    from tradebot.strategies.report import summarize

    r = summarize(CANDLES, sim, timeframe="1h", strategy="ema_cross", strategy_params={})
    assert r.trades_count == 3
    assert r.win_rate == pytest.approx(2 / 3)  # trades 1 and 3 made money after fees
    assert r.fees_paid == pytest.approx(FEE_IN1 + FEE_OUT1 + FEE_IN2 + FEE_OUT2 + FEE_IN3 + FEE_OUT3)
    assert r.total_pnl == pytest.approx(BAL3 - 10_000.0)
    assert r.return_pct == pytest.approx((BAL3 / 10_000.0 - 1) * 100)
    assert r.exposure_pct == pytest.approx(100 * 4 / 9)
    # Worst fall from a peak: from 10,458.54 (bar 2) to 9,903.18 (bars 3-5).
    assert r.max_drawdown_pct == pytest.approx((BAL1 - BAL2) / BAL1 * 100)
    returns = np.diff(sim.equity) / sim.equity[:-1]
    sharpe = returns.mean() / returns.std(ddof=1) * np.sqrt(365 * 24)
    assert r.sharpe == pytest.approx(sharpe, rel=1e-9)


def final(**changes: Any) -> float:
    return simulate(CANDLES, TARGETS, dataclasses.replace(SETTINGS, **changes)).final_balance


def test_fees_cost_exactly_what_they_say() -> None:
    no_fee = simulate(CANDLES, TARGETS, dataclasses.replace(SETTINGS, fee_rate=0.0))
    assert no_fee.final_balance > BAL3
    assert float(np.sum(no_fee.trades.fees)) == 0.0
    # Without fees trade 1 earns its gross PnL: 99.9001 x (104.895 - 100.1) = 479.02.
    assert float(no_fee.trades.pnl[0]) == pytest.approx(A1 * (X1 - E1), rel=1e-12)


def test_slippage_makes_every_fill_worse() -> None:
    no_slip = simulate(CANDLES, TARGETS, dataclasses.replace(SETTINGS, slippage_bps=0.0))
    assert no_slip.final_balance > BAL3
    # Fills at the raw prices: opens 100 / 105 / 102 / 110, stop 102 x 1.05, take 110 x 1.1.
    assert no_slip.trades.entry_price.tolist() == pytest.approx([100.0, 102.0, 110.0])
    assert no_slip.trades.exit_price.tolist() == pytest.approx([105.0, 102.0 * 1.05, 110.0 * 1.1])


def test_leverage_scales_position_and_pnl() -> None:
    lev1 = simulate(CANDLES, TARGETS, dataclasses.replace(SETTINGS, leverage=1.0))
    # Half the notional: amount 5,000 / 100.1, and trade 1's PnL is exactly half.
    assert float(lev1.trades.amount[0]) == pytest.approx(A1 / 2, rel=1e-12)
    assert float(lev1.trades.pnl[0]) == pytest.approx(PNL1 / 2, rel=1e-12)
    # Stops are on price, not on the leveraged return: same exits either way.
    assert lev1.trades.exit_bar.tolist() == [2, 3, 7]
    lev4 = simulate(CANDLES, TARGETS, dataclasses.replace(SETTINGS, leverage=4.0))
    assert float(lev4.trades.pnl[0]) == pytest.approx(PNL1 * 2, rel=1e-12)


def test_without_stop_loss_the_short_runs_until_the_signal_changes() -> None:
    sim = simulate(CANDLES, TARGETS, dataclasses.replace(SETTINGS, stop_loss_pct=None))
    t = sim.trades
    # The short opened at bar 3 is closed by the LONG signal at bar 6's open (110 + slippage),
    # which is worse than the stop at 107.10: the stop loss limited the loss.
    assert t.exit_bar.tolist()[:2] == [2, 6]
    assert ExitReason(int(t.exit_reason[1])) is ExitReason.SIGNAL
    assert float(t.exit_price[1]) == pytest.approx(110.0 * 1.001)
    assert float(t.pnl[1]) < PNL2
    assert sim.final_balance < BAL3


def test_without_take_profit_the_long_runs_to_the_end() -> None:
    sim = simulate(CANDLES, TARGETS, dataclasses.replace(SETTINGS, take_profit_pct=None))
    t = sim.trades
    assert t.exit_bar.tolist()[2] == 8
    assert ExitReason(int(t.exit_reason[2])) is ExitReason.END
    # Closed at the last close 119.5 with a fee and without slippage.
    assert float(t.exit_price[2]) == 119.5
    assert float(t.exit_fee[2]) == pytest.approx(0.001 * A3 * 119.5)
    assert sim.equity[-1] == sim.final_balance


def test_stop_and_take_in_one_candle_assume_the_stop() -> None:
    bars = [
        (100.0, 100.0, 100.0, 100.0),
        (100.0, 100.0, 100.0, 100.0),
        (100.0, 120.0, 90.0, 110.0),  # both 95 (stop) and 110 (take) are inside this candle
    ]
    s = BacktestSettings(fee_rate=0.0, order_size_pct=100.0, stop_loss_pct=5.0, take_profit_pct=10.0)
    sim = simulate(candles_of(bars), np.array([L, L, L], dtype=np.int8), s)
    assert ExitReason(int(sim.trades.exit_reason[0])) is ExitReason.STOP_LOSS
    assert float(sim.trades.exit_price[0]) == pytest.approx(95.0)


def test_gap_through_the_stop_fills_at_the_open() -> None:
    bars = [
        (100.0, 100.0, 100.0, 100.0),
        (100.0, 101.0, 99.0, 100.0),  # long entered at 100, stop at 95
        (90.0, 92.0, 85.0, 91.0),  # opens at 90, below the stop: fills at 90, not 95
        (91.0, 130.0, 91.0, 125.0),
    ]
    s = BacktestSettings(fee_rate=0.0, order_size_pct=100.0, stop_loss_pct=5.0, take_profit_pct=20.0)
    sim = simulate(candles_of(bars), np.array([L, L, L, L], dtype=np.int8), s)
    assert float(sim.trades.exit_price[0]) == 90.0
    assert sim.final_balance == pytest.approx(10_000.0 * 0.9)
    # A gap up through a take profit also fills at the open (better than the level).
    bars[2] = (125.0, 126.0, 124.0, 125.0)
    sim = simulate(candles_of(bars), np.array([L, L, L, L], dtype=np.int8), s)
    assert ExitReason(int(sim.trades.exit_reason[0])) is ExitReason.TAKE_PROFIT
    assert float(sim.trades.exit_price[0]) == 125.0


def test_reentry_after_a_stop_waits_for_a_new_signal() -> None:
    bars = [(100.0, 100.0, 100.0, 100.0)] * 2 + [(100.0, 100.0, 90.0, 95.0)] + [(95.0, 96.0, 94.0, 95.0)] * 5
    s = BacktestSettings(fee_rate=0.0, stop_loss_pct=5.0)
    # LONG, stopped in bar 2, LONG stays (no entry), FLAT at bar 4, LONG again at bar 5 -> entry bar 6.
    target = np.array([L, L, L, L, F, L, L, L], dtype=np.int8)
    sim = simulate(candles_of(bars), target, s)
    assert sim.trades.entry_bar.tolist() == [1, 6]
    assert sim.trades.exit_bar.tolist() == [2, 7]
    assert [ExitReason(r) for r in sim.trades.exit_reason.tolist()] == [ExitReason.STOP_LOSS, ExitReason.END]
    # A reversal straight into the other side also re-enters (allow_short).
    target = np.array([L, L, L, S, S, S, S, S], dtype=np.int8)
    sim = simulate(candles_of(bars), target, s)
    assert sim.trades.entry_bar.tolist() == [1, 4]
    assert sim.trades.side.tolist() == [1, -1]


def test_reversal_is_two_fills_and_the_new_side_is_sized_after_the_close() -> None:
    bars = [(100.0, 100.0, 100.0, 100.0), (100.0, 110.0, 100.0, 110.0), (110.0, 110.0, 100.0, 100.0)]
    s = BacktestSettings(fee_rate=0.001, order_size_pct=100.0)
    sim = simulate(candles_of(bars), np.array([L, S, S], dtype=np.int8), s)
    t = sim.trades
    assert t.side.tolist() == [1, -1]
    assert t.exit_bar.tolist()[0] == t.entry_bar.tolist()[1] == 2
    bal_after_long = 10_000.0 - 10.0 + 100.0 * 10.0 - 0.001 * 100.0 * 110.0  # 10,979.00
    assert float(t.balance_after[0]) == pytest.approx(bal_after_long)
    assert float(t.amount[1]) == pytest.approx(bal_after_long / 110.0)
    # The short is closed at the last close (100) with a fee: gains 10 per unit.
    assert sim.final_balance == pytest.approx(
        bal_after_long
        - 0.001 * bal_after_long
        + bal_after_long / 110.0 * (110.0 - 100.0)
        - 0.001 * bal_after_long / 110.0 * 100.0
    )


def test_no_target_and_last_bar_signal_do_nothing() -> None:
    bars = [(100.0, 100.0, 100.0, 100.0)] * 4
    target = np.array([NO_TARGET, NO_TARGET, NO_TARGET, L], dtype=np.int8)
    sim = simulate(candles_of(bars), target, BacktestSettings())
    assert len(sim.trades) == 0
    assert sim.final_balance == 10_000.0
    assert held_positions(target).tolist() == [0, 0, 0, 0]
    assert sim.equity.tolist() == [10_000.0] * 4


def test_single_candle_and_empty_trade_list() -> None:
    sim = simulate(candles_of([(1.0, 1.0, 1.0, 1.0)]), np.array([L], dtype=np.int8), BacktestSettings())
    assert len(sim.trades) == 0
    assert sim.equity.tolist() == [10_000.0]


def test_ruin_stops_trading() -> None:
    # 100 % x 10 leverage long, the price halves: liquidated on the way (at 100 × 0.9 / 0.996), the
    # whole balance was its margin; no later entries.
    bars = [(100.0, 100.0, 100.0, 100.0), (100.0, 100.0, 50.0, 50.0), (50.0, 50.0, 50.0, 50.0)] + [
        (50.0, 60.0, 50.0, 60.0)
    ] * 3
    target = np.array([L, F, L, L, L, L], dtype=np.int8)
    s = BacktestSettings(fee_rate=0.0, order_size_pct=100.0, leverage=10.0)
    sim = simulate(candles_of(bars), target, s)
    assert len(sim.trades) == 1
    assert ExitReason(int(sim.trades.exit_reason[0])) is ExitReason.LIQUIDATION
    assert sim.final_balance == 0.0


def test_run_backtest_with_the_ema_strategy() -> None:
    r = run_backtest(CANDLES, SETTINGS, params={"ema_period": 3, "allow_short": True}, timeframe="1h")
    assert r.strategy == "ema_cross"
    assert r.strategy_params == {"ema_period": 3, "allow_short": True}
    assert r.signals is not None
    assert r.equity[-1] == r.final_balance
    assert r.trades_count == len(r.trades)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("initial_balance", 0.0),
        ("initial_balance", float("nan")),
        ("fee_rate", -0.001),
        ("fee_rate", 0.5),
        ("slippage_bps", -1.0),
        ("order_size_pct", 0.0),
        ("order_size_pct", 100.5),
        ("leverage", 0.5),
        ("leverage", 126.0),
        ("stop_loss_pct", 0.0),
        ("stop_loss_pct", 100.0),
        ("take_profit_pct", -1.0),
    ],
)
def test_settings_validation_names_the_field(field: str, value: float) -> None:
    with pytest.raises(ParameterError) as info:
        BacktestSettings(**{field: value})
    assert info.value.field == field


def test_bad_parameters_to_run_backtest() -> None:
    with pytest.raises(ParameterError) as info:
        run_backtest(CANDLES, SETTINGS, params={"ema_period": 1}, timeframe="1h")
    assert info.value.field == "ema_period"
    with pytest.raises(ParameterError) as info:
        run_backtest(CANDLES, SETTINGS, params={"ema_period": 3}, timeframe="7m")
    assert info.value.field == "timeframe"


def test_split_parameters_of_an_api_request() -> None:
    from tradebot.strategies import split_parameters

    settings, params = split_parameters(
        {"ema_period": 50, "allow_short": True, "order_size_pct": 20, "leverage": 3, "stop_loss_pct": None},
        initial_balance=1000,
        fee_rate=0.001,
    )
    assert params == {"ema_period": 50, "allow_short": True}
    assert settings == BacktestSettings(
        initial_balance=1000.0, fee_rate=0.001, order_size_pct=20.0, leverage=3.0, stop_loss_pct=None
    )
    assert isinstance(settings.leverage, float)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"ema_period": 50, "leverage": 0}, "leverage"),
        ({"ema_period": 50, "leverage": "3"}, "leverage"),
        ({"ema_period": 5000}, "ema_period"),
        ({"ema_period": 50, "rsi_period": 14}, "rsi_period"),
    ]
    for parameters, field in cases:
        with pytest.raises(ParameterError) as info:
            split_parameters(parameters, initial_balance=1000)
        assert info.value.field == field


def test_invalid_target_codes_are_refused() -> None:
    with pytest.raises(ValueError, match="target codes"):
        simulate(CANDLES, np.array([L, 2, 2, 2, L, L, L, L, L], dtype=np.int8), SETTINGS)
    with pytest.raises(ValueError, match="shape"):
        simulate(CANDLES, np.array([L, L], dtype=np.int8), SETTINGS)


def test_liquidation_loses_the_margin_and_the_entry_fee_and_never_more() -> None:
    bars = [
        (100.0, 100.0, 100.0, 100.0),
        (100.0, 101.0, 99.0, 100.0),  # long entered at 100, 10x, all of the balance: margin 10,000
        (99.0, 99.5, 80.0, 85.0),  # liquidation price 100 × 0.9 / 0.996 = 90.36…: reached inside
        (85.0, 130.0, 85.0, 125.0),
    ]
    s = BacktestSettings(fee_rate=0.0004, order_size_pct=50.0, leverage=10.0, maintenance_margin_rate=0.004)
    sim = simulate(candles_of(bars), np.array([L, L, L, L], dtype=np.int8), s)
    t = sim.trades
    assert len(t) == 1 and ExitReason(int(t.exit_reason[0])) is ExitReason.LIQUIDATION
    assert int(t.exit_bar[0]) == 2
    assert float(t.exit_price[0]) == pytest.approx(90.0)  # the bankruptcy price 100 × (1 − 1/10)
    entry_fee = 0.0004 * 50_000.0
    assert float(t.exit_fee[0]) == 0.0
    assert float(t.pnl[0]) == pytest.approx(-5_000.0 - entry_fee)  # the margin: 50 % of 10,000
    assert sim.final_balance == pytest.approx(10_000.0 - 5_000.0 - entry_fee)


def test_a_stop_nearer_than_the_liquidation_price_exits_first() -> None:
    bars = [(100.0, 100.0, 100.0, 100.0), (100.0, 101.0, 99.0, 100.0), (99.0, 99.5, 80.0, 85.0)]
    s = BacktestSettings(fee_rate=0.0, order_size_pct=50.0, leverage=10.0, stop_loss_pct=5.0)
    sim = simulate(candles_of(bars), np.array([L, L, L], dtype=np.int8), s)
    assert ExitReason(int(sim.trades.exit_reason[0])) is ExitReason.STOP_LOSS
    farther = dataclasses.replace(s, stop_loss_pct=15.0)  # beyond the liquidation price
    sim = simulate(candles_of(bars), np.array([L, L, L], dtype=np.int8), farther)
    assert ExitReason(int(sim.trades.exit_reason[0])) is ExitReason.LIQUIDATION


def test_a_short_is_liquidated_on_the_way_up_and_a_1x_long_never() -> None:
    bars = [(100.0, 100.0, 100.0, 100.0), (100.0, 101.0, 99.0, 100.0), (101.0, 150.0, 100.0, 140.0)]
    short = simulate(candles_of(bars), np.array([S, S, S], dtype=np.int8), BacktestSettings(leverage=3.0))
    assert ExitReason(int(short.trades.exit_reason[0])) is ExitReason.LIQUIDATION
    assert float(short.trades.exit_price[0]) == pytest.approx(100.0 * (1 + 1 / 3))
    crash = [(100.0, 100.0, 100.0, 100.0), (100.0, 101.0, 99.0, 100.0), (50.0, 50.0, 1.0, 2.0)]
    long = simulate(candles_of(crash), np.array([L, L, L], dtype=np.int8), BacktestSettings(order_size_pct=100.0))
    assert ExitReason(int(long.trades.exit_reason[0])) is ExitReason.END


def test_no_backtest_ends_with_a_negative_balance() -> None:
    """All of the balance at 125x with a 1 % fee: the entry fee alone exceeds it."""
    bars = [(100.0, 100.0, 100.0, 100.0), (100.0, 101.0, 99.0, 100.0), (99.0, 99.5, 90.0, 95.0)] * 3
    s = BacktestSettings(fee_rate=0.01, order_size_pct=100.0, leverage=125.0)
    sim = simulate(candles_of(bars), np.array([L, F] * 4 + [L], dtype=np.int8), s)
    assert sim.final_balance == 0.0 and len(sim.trades) == 1
    assert float(sim.trades.pnl[0]) == -10_000.0
    assert ExitReason(int(sim.trades.exit_reason[0])) is ExitReason.LIQUIDATION
