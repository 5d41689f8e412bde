"""The simulator's matching engine, pure: fills, fees, PnL, margin and Binance's rejections."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest

from tradebot.exchange.simulator.accounts import Account, OrderRequest, Rejection
from tradebot.exchange.simulator.engine import MatchingEngine
from tradebot.exchange.simulator.markets import market_spec

D = Decimal
NOW = 1_700_000_000_000


def make_engine(slippage_bps: str = "10", fee_rate: str = "0.0004") -> tuple[MatchingEngine, Account]:
    markets = {s: market_spec(s) for s in ("BTCUSDT", "ETHUSDT")}
    engine = MatchingEngine(markets, fee_rate=D(fee_rate), slippage_bps=D(slippage_bps))
    engine.prices["ETHUSDT"] = D("2000")
    account = engine.add_account("k", "s", {"USDT": D("10000")}, NOW)
    return engine, account


def market(side: str, qty: str, *, reduce_only: bool = False, cid: str | None = None) -> OrderRequest:
    return OrderRequest("ETHUSDT", side, "MARKET", qty, reduce_only=reduce_only, client_order_id=cid)


def limit(side: str, qty: str, price: str, cid: str | None = None) -> OrderRequest:
    return OrderRequest("ETHUSDT", side, "LIMIT", qty, price=price, time_in_force="GTC", client_order_id=cid)


def reject_code(engine: MatchingEngine, account: Account, request: OrderRequest) -> int:
    with pytest.raises(Rejection) as info:
        engine.place_order(account, request, NOW)
    return info.value.code


def test_hand_computed_round_trip_with_flip_and_reduce_only() -> None:
    engine, account = make_engine()
    usdt = account.balances

    order, _ = engine.place_order(account, market("BUY", "1"), NOW)
    # 2000 + 10 bps = 2002; fee 2002 × 0.0004 = 0.8008
    assert (order.status, order.avg_price) == ("FILLED", D("2002"))
    assert usdt["USDT"] == D("9999.1992")

    engine.on_price("ETHUSDT", D("2100"), NOW)
    engine.place_order(account, market("BUY", "1"), NOW)
    # fill 2102.1, fee 0.84084; entry (2002 + 2102.1) / 2 = 2052.05
    position = account.positions["ETHUSDT"]
    assert (position.amount, position.entry_price) == (D("2"), D("2052.05"))
    assert usdt["USDT"] == D("9998.35836")

    engine.on_price("ETHUSDT", D("2200"), NOW)
    assert engine.unrealized_pnl(position) == D("295.90")

    engine.place_order(account, market("SELL", "3"), NOW)
    # fill 2197.8: closes 2 for 2 × (2197.8 − 2052.05) = 291.5, fee 3 × 2197.8 × 0.0004 = 2.63736,
    # and the third opens a short at the fill price
    assert account.trades[-1].realized_pnl == D("291.5")
    assert usdt["USDT"] == D("10287.22100")
    assert (position.amount, position.entry_price) == (D("-1"), D("2197.8"))

    engine.on_price("ETHUSDT", D("2100"), NOW)
    order, _ = engine.place_order(account, market("BUY", "5", reduce_only=True), NOW)
    # clamped to the 1 short; fill 2102.1: realised (2197.8 − 2102.1) = 95.7, fee 0.84084
    assert order.orig_qty == D("1")
    assert account.trades[-1].realized_pnl == D("95.7")
    assert usdt["USDT"] == D("10382.08016")
    assert position.amount == 0 and position.entry_price == 0


def test_reduce_only_rejected_when_it_would_open_or_increase() -> None:
    engine, account = make_engine()
    assert reject_code(engine, account, market("SELL", "1", reduce_only=True)) == -2022
    engine.place_order(account, market("BUY", "1"), NOW)
    assert reject_code(engine, account, market("BUY", "1", reduce_only=True)) == -2022


def test_a_client_order_id_is_never_accepted_twice_but_a_rejected_one_may_be_reused() -> None:
    engine, account = make_engine()
    engine.place_order(account, market("BUY", "1", cid="bot1-7-1"), NOW)
    assert reject_code(engine, account, market("SELL", "1", cid="bot1-7-1")) == -4116

    assert reject_code(engine, account, market("SELL", "1", reduce_only=False, cid="x" * 37)) == -1100
    assert reject_code(engine, account, market("BUY", "0.0001", cid="bot1-7-2")) == -1111
    order, _ = engine.place_order(account, market("BUY", "1", cid="bot1-7-2"), NOW)
    assert order.client_order_id == "bot1-7-2"


@pytest.mark.parametrize(
    ("request_", "code"),
    [
        (market("BUY", "0"), -4003),
        (market("BUY", "-1"), -4003),
        (market("BUY", "1.0001"), -1111),
        (market("BUY", "abc"), -1100),
        (market("BUY", "0.005"), -4164),  # 10 USDT < the 20 USDT minimum notional
        (OrderRequest("ETHUSDT", "BUY", "MARKET", None), -1102),
        (OrderRequest("DOGEUSDT", "BUY", "MARKET", "1"), -1121),
        (OrderRequest("ETHUSDT", "BUY", "STOP", "1"), -1116),
        (limit("BUY", "1", "1999.999"), -1111),
        (market("BUY", "100"), -2019),  # 200,000 / 20x = 10,000 margin + 80 fee > 10,000 available
    ],
)
def test_rejections_carry_binance_codes(request_: OrderRequest, code: int) -> None:
    engine, account = make_engine()
    assert reject_code(engine, account, request_) == code


def test_below_minimum_quantity_is_rejected() -> None:
    engine, account = make_engine()
    engine.markets["ETHUSDT"] = replace(engine.markets["ETHUSDT"], min_qty=D("0.01"), min_notional=D("1"))
    assert reject_code(engine, account, market("BUY", "0.005")) == -4003


def test_reduce_only_is_exempt_from_minimum_notional() -> None:
    engine, account = make_engine()
    engine.place_order(account, market("BUY", "1"), NOW)
    order, _ = engine.place_order(account, market("SELL", "0.005", reduce_only=True), NOW)
    assert order.status == "FILLED"


def test_margin_check_uses_leverage() -> None:
    engine, account = make_engine(slippage_bps="0")
    # 4.9 ETH × 2000 = 9,800 notional needs 9,800 at 1x, 490 at 20x.
    engine.set_leverage(account, "ETHUSDT", "1", NOW)
    assert reject_code(engine, account, market("BUY", "5.1")) == -2019
    engine.set_leverage(account, "ETHUSDT", "20", NOW)
    order, _ = engine.place_order(account, market("BUY", "5.1"), NOW)
    assert order.status == "FILLED"
    assert engine.summary(account).position_initial_margin == D("510")


def test_leverage_outside_the_bracket_is_rejected() -> None:
    engine, account = make_engine()
    with pytest.raises(Rejection) as info:
        engine.set_leverage(account, "ETHUSDT", "101", NOW)
    assert info.value.code == -4028
    assert engine.set_leverage(account, "BTCUSDT", "125", NOW) == 125


def test_limit_order_rests_reserves_margin_and_fills_when_crossed() -> None:
    engine, account = make_engine()
    order, reports = engine.place_order(account, limit("BUY", "1", "1900", cid="rest-1"), NOW)
    assert order.status == "NEW" and [r.execution_type for r in reports] == ["NEW"]
    assert engine.summary(account).open_order_initial_margin == D("95")  # 1900 / 20

    assert engine.on_price("ETHUSDT", D("1950"), NOW, low=D("1920"), high=D("1960")) == []
    reports = engine.on_price("ETHUSDT", D("1950"), NOW, low=D("1899"), high=D("1960"))
    assert [r.execution_type for r in reports] == ["TRADE"]
    assert order.status == "FILLED" and order.avg_price == D("1900")
    assert account.positions["ETHUSDT"].entry_price == D("1900")
    assert account.balances["USDT"] == D("10000") - D("1900") * D("0.0004")


def test_marketable_limit_fills_at_once_never_worse_than_its_limit() -> None:
    engine, account = make_engine(slippage_bps="100")  # the taker price would be 2020
    order, _ = engine.place_order(account, limit("BUY", "1", "2010"), NOW)
    assert order.status == "FILLED" and order.avg_price == D("2010")


def test_cancel_then_cancel_again_is_unknown_order() -> None:
    engine, account = make_engine()
    order, _ = engine.place_order(account, limit("SELL", "1", "2500", cid="c-1"), NOW)
    cancelled, _ = engine.cancel_order(account, None, "c-1", NOW)
    assert cancelled.status == "CANCELED"
    with pytest.raises(Rejection) as info:
        engine.cancel_order(account, str(order.order_id), None, NOW)
    assert info.value.code == -2011
    with pytest.raises(Rejection) as info:
        engine.find_order(account, None, "never-sent")
    assert info.value.code == -2013


def test_audit_keeps_every_request_in_order() -> None:
    engine, account = make_engine()
    engine.place_order(account, market("BUY", "1", cid="a"), NOW)
    reject_code(engine, account, market("BUY", "1", cid="a"))
    reject_code(engine, account, market("BUY", "1", reduce_only=True, cid="b"))
    assert [(e.client_order_id, e.reject_code) for e in account.audit] == [
        ("a", None),
        ("a", -4116),
        ("b", -2022),
    ]
    assert account.audit[0].order_id is not None and account.audit[1].order_id is None


def test_binance_rule_refuses_a_client_order_id_only_while_its_order_is_open() -> None:
    engine, account = make_engine()
    engine.reuse_closed_client_ids = True
    first, _ = engine.place_order(account, market("BUY", "1", cid="same"), NOW)
    second, _ = engine.place_order(account, market("SELL", "1", cid="same"), NOW)  # the first one is filled
    assert engine.find_order(account, None, "same") is second and first.status == "FILLED"

    engine.place_order(account, limit("BUY", "1", "1500", cid="resting"), NOW)
    assert reject_code(engine, account, limit("BUY", "1", "1500", cid="resting")) == -4116
    engine.cancel_order(account, None, "resting", NOW)
    engine.place_order(account, limit("BUY", "1", "1500", cid="resting"), NOW)


def test_reduce_only_market_order_larger_than_the_position_is_clamped_not_margin_checked() -> None:
    """Binance clamps a reduce-only order to the position; the excess never needs margin."""
    engine, account = make_engine(slippage_bps="0")
    engine.place_order(account, market("BUY", "1"), NOW)  # 2000 USDT notional, 100 USDT margin at 20x
    # 1,000 ETH would need 100,000 USDT of margin if the excess were treated as opening a short.
    order, _ = engine.place_order(account, market("SELL", "1000", reduce_only=True), NOW)
    assert (order.status, order.orig_qty, order.executed_qty) == ("FILLED", D("1"), D("1"))
    assert account.positions["ETHUSDT"].amount == 0
