"""The simulator's conditional orders and liquidations, pure: triggers along a move's path, fills,
Binance's refusals, maintenance brackets and the isolated-margin liquidation price."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tradebot.exchange.simulator.accounts import (
    Account,
    AlgoReport,
    AlgoRequest,
    ExecutionReport,
    OrderRequest,
    Rejection,
)
from tradebot.exchange.simulator.conditional import AlgoService, Move, Report
from tradebot.exchange.simulator.engine import MatchingEngine
from tradebot.exchange.simulator.liquidation import bankruptcy_price, liquidation_price
from tradebot.exchange.simulator.markets import BTC_BRACKETS, ETH_BRACKETS, market_spec

D = Decimal
NOW = 1_700_000_000_000


def setup(leverage: int = 5) -> tuple[MatchingEngine, AlgoService, Account]:
    engine = MatchingEngine({"ETHUSDT": market_spec("ETHUSDT")}, fee_rate=D("0.0004"), slippage_bps=D("10"))
    engine.prices["ETHUSDT"] = D("2000")
    account = engine.add_account("k", "s", {"USDT": D("10000")}, NOW)
    account.leverage["ETHUSDT"] = leverage
    return engine, AlgoService(engine), account


def buy(engine: MatchingEngine, account: Account, qty: str = "1") -> None:
    engine.place_order(account, OrderRequest("ETHUSDT", "BUY", "MARKET", qty, client_order_id="entry"), NOW)


def algo(kind: str, side: str = "SELL", *, trigger: str | None = None, cid: str = "p", **extra: str) -> AlgoRequest:
    return AlgoRequest(
        "CONDITIONAL", "ETHUSDT", side, kind, quantity=extra.pop("quantity", "1"), trigger_price=trigger,
        reduce_only=extra.pop("reduce_only", "true"), client_algo_id=cid, **extra,
    )  # fmt: skip


def candle(service: AlgoService, o: str, h: str, low: str, c: str) -> list[Report]:
    engine = service.engine
    move = Move(engine.prices["ETHUSDT"], D(c), D(o), D(low), D(h))
    reports: list[Report] = list(engine.on_price("ETHUSDT", D(c), NOW, D(low), D(h)))
    return reports + service.on_move("ETHUSDT", move, NOW)


def fills(reports: list[Report]) -> list[tuple[str, Decimal]]:
    return [(r.order.client_order_id, r.fill.price) for r in reports if isinstance(r, ExecutionReport) and r.fill]


def statuses(reports: list[Report]) -> list[tuple[str, str]]:
    return [(r.algo.client_algo_id, r.algo.status) for r in reports if isinstance(r, AlgoReport)]


def test_brackets_carry_binances_maintenance_amounts() -> None:
    # cum_i = cum_{i-1} + floor_i × (ratio_i − ratio_{i-1}): 50, 950, 11 450 for BTCUSDT.
    assert [b.amount for b in BTC_BRACKETS[:4]] == [D(0), D(50), D(950), D(11_450)]
    btc = market_spec("BTCUSDT")
    assert btc.bracket_for(D(49_999)).number == 1 and btc.bracket_for(D(50_000)).number == 2
    assert btc.maintenance_margin(D(100_000)) == D(100_000) * D("0.005") - 50
    assert ETH_BRACKETS[0].ratio == D("0.005") and market_spec("ETHUSDT").brackets is ETH_BRACKETS


def test_liquidation_price_is_binances_isolated_formula() -> None:
    eth = market_spec("ETHUSDT")
    # Long 1 @ 2000 at 20x: margin 100; (2000 − 100 − 0) / (1 × (1 − 0.005)).
    assert liquidation_price(eth, D(1), D(2000), 20) == D(1900) / D("0.995")
    assert liquidation_price(eth, D(-1), D(2000), 20) == D(2100) / D("1.005")
    assert liquidation_price(eth, D(1), D(2000), 1) == 0  # a 1x long cannot be liquidated
    assert bankruptcy_price(eth, D(1), D(2000), 20) == D(1900)
    # A larger position reaches a higher bracket: its maintenance amount enters the formula.
    qty = D(100)  # 200 000 USDT: bracket 2, 0.65 %, amount 50000 × 0.0015 = 75
    assert eth.bracket_for(qty * 2000).amount == D(75)
    assert liquidation_price(eth, qty, D(2000), 10) == (qty * 2000 - qty * 200 - 75) / (qty * D("0.9935"))


def test_stop_and_take_profit_trigger_and_fill_at_their_levels_less_slippage() -> None:
    engine, service, account = setup()
    buy(engine, account)
    service.place(account, algo("STOP_MARKET", trigger="1900", cid="sl"), NOW)
    service.place(account, algo("TAKE_PROFIT_MARKET", trigger="2200", cid="tp"), NOW)
    assert candle(service, "2000", "2150", "1950", "2100") == []
    reports = candle(service, "2100", "2250", "2090", "2240")
    assert fills(reports) == [("tp", D("2197.80"))]
    assert statuses(reports) == [("tp", "TRIGGERING"), ("tp", "TRIGGERED"), ("tp", "FINISHED")]
    triggered = next(r for r in reports if isinstance(r, ExecutionReport) and r.fill)
    assert (triggered.order.type, triggered.order.orig_type, triggered.order.stop_price) == (
        "MARKET", "TAKE_PROFIT_MARKET", D(2200),
    )  # fmt: skip
    assert account.positions["ETHUSDT"].amount == 0
    # The stop is reduce-only: reached with no position, it is rejected, never opens a short.
    reports = candle(service, "2240", "2240", "1800", "1850")
    assert statuses(reports)[-1] == ("sl", "REJECTED") and fills(reports) == []
    assert account.algo_orders[account.algo_ids_by_client_id["sl"]].reject_reason == "Reduce Only reject"


def test_a_candle_reaching_both_takes_the_stop_first_and_a_gap_fills_at_the_open() -> None:
    engine, service, account = setup()
    buy(engine, account)
    service.place(account, algo("STOP_MARKET", trigger="1900", cid="sl"), NOW)
    service.place(account, algo("TAKE_PROFIT_MARKET", trigger="2200", cid="tp"), NOW)
    reports = candle(service, "2000", "2300", "1800", "2000")
    assert fills(reports) == [("sl", D("1898.10"))]
    assert [s for s in statuses(reports) if s[1] in ("FINISHED", "REJECTED")] == [("sl", "FINISHED"), ("tp", "REJECTED")]

    engine2, service2, account2 = setup()
    buy(engine2, account2)
    service2.place(account2, algo("STOP_MARKET", trigger="1900", cid="sl"), NOW)
    assert fills(candle(service2, "1850", "1870", "1840", "1860")) == [("sl", D("1848.15"))]


def test_trailing_stop_activates_trails_and_triggers() -> None:
    engine, service, account = setup()
    buy(engine, account)
    service.place(
        account, algo("TRAILING_STOP_MARKET", cid="tr", callback_rate="1", activate_price="2100"), NOW
    )
    assert candle(service, "2000", "2050", "1900", "1950") == []  # not activated: no trailing yet
    assert candle(service, "1950", "2200", "1940", "2190") == []  # activated at 2100, best 2200
    trail = account.algo_orders[account.algo_ids_by_client_id["tr"]]
    assert (trail.activated, trail.best_price, trail.trailing_level) == (True, D(2200), D(2178))
    assert fills(candle(service, "2190", "2195", "2150", "2160")) == [("tr", D("2175.82"))]


def test_close_position_closes_whatever_is_open() -> None:
    engine, service, account = setup()
    buy(engine, account, "3")
    service.place(account, algo("STOP_MARKET", trigger="1900", cid="cp", quantity="", reduce_only="", close_position="true"), NOW)
    reports = candle(service, "1990", "1995", "1890", "1895")
    assert [(r.fill.qty) for r in reports if isinstance(r, ExecutionReport) and r.fill] == [D(3)]


def test_refusals_with_binances_codes() -> None:
    engine, service, account = setup()

    def code(request: AlgoRequest) -> int:
        with pytest.raises(Rejection) as info:
            service.place(account, request, NOW)
        return info.value.code

    assert code(algo("STOP_MARKET", trigger="2100")) == -2021  # a sell stop above the price
    assert code(algo("TAKE_PROFIT_MARKET", trigger="1900")) == -2021
    assert code(algo("STOP", trigger="1900")) == -1116
    assert code(algo("STOP_MARKET", trigger="1900.001")) == -1111
    assert code(algo("STOP_MARKET")) == -1102
    assert code(algo("TRAILING_STOP_MARKET", callback_rate="20")) == -1130
    assert code(algo("STOP_MARKET", trigger="1900", close_position="true")) == -1106  # with a quantity
    assert code(AlgoRequest("VP", "ETHUSDT", "SELL", "STOP_MARKET", "1", "1900")) == -1100
    service.place(account, algo("STOP_MARKET", trigger="1900", cid="dup"), NOW)
    assert code(algo("STOP_MARKET", trigger="1800", cid="dup")) == -4116
    with pytest.raises(Rejection) as plain:
        engine.place_order(account, OrderRequest("ETHUSDT", "SELL", "STOP_MARKET", "1"), NOW)
    assert plain.value.code == -4120
    assert [e.reject_code for e in account.audit] == [-2021, -2021, -1116, -1111, -1102, -1130, -1106, -1100, None, -4116, -4120]


def test_cancel_and_find_by_client_id() -> None:
    _, service, account = setup()
    placed, _ = service.place(account, algo("STOP_MARKET", trigger="1900", cid="sl"), NOW)
    assert service.find(account, None, "sl") is placed
    cancelled, reports = service.cancel(account, None, "sl", NOW)
    assert cancelled.status == "CANCELED" and statuses(reports) == [("sl", "CANCELED")]
    with pytest.raises(Rejection) as again:
        service.cancel(account, None, "sl", NOW)
    assert again.value.code == -2011
    with pytest.raises(Rejection) as unknown:
        service.find(account, "42", None)
    assert unknown.value.code == -2013


def test_liquidation_comes_before_a_stop_that_lies_beyond_it_and_loses_the_margin() -> None:
    engine, service, account = setup(leverage=20)
    buy(engine, account)  # 1 @ 2002, margin 100.1, fee 0.8008
    level = engine.liquidation_price(account, account.positions["ETHUSDT"])
    assert level == (D(2002) - D("100.1")) / D("0.995")  # 1911.46…
    service.place(account, algo("STOP_MARKET", trigger="1850", cid="sl"), NOW)
    engine.place_order(account, OrderRequest("ETHUSDT", "BUY", "LIMIT", "1", "1000", "GTC", client_order_id="lim"), NOW)
    reports = candle(service, "2000", "2000", "1800", "1820")
    assert fills(reports)[-1][1] == D("1901.9")  # bankruptcy price 2002 × 0.95
    liquidation = next(r for r in reports if isinstance(r, ExecutionReport) and r.order.type == "LIQUIDATION")
    assert liquidation.order.client_order_id.startswith("autoclose-") and liquidation.fill is None
    assert ("sl", "CANCELED") in statuses(reports)
    assert account.orders[account.order_ids_by_client_id["lim"]].status == "CANCELED"
    assert account.positions["ETHUSDT"].amount == 0
    assert account.balances["USDT"] == D(10_000) - D("0.8008") - D("100.1")


def test_a_stop_nearer_than_the_liquidation_price_protects_the_position() -> None:
    engine, service, account = setup(leverage=20)
    buy(engine, account)
    service.place(account, algo("STOP_MARKET", trigger="1950", cid="sl"), NOW)
    reports = candle(service, "2000", "2000", "1800", "1820")
    assert fills(reports) == [("sl", D("1948.05"))]
    assert not any(isinstance(r, ExecutionReport) and r.order.type == "LIQUIDATION" for r in reports)


def test_random_walk_steps_trigger_too() -> None:
    engine, service, account = setup()
    buy(engine, account)
    service.place(account, algo("STOP_MARKET", trigger="1990", cid="sl"), NOW)
    assert service.on_move("ETHUSDT", Move(D(2000), D(1995)), NOW) == []
    engine.prices["ETHUSDT"] = D(1985)
    reports = service.on_move("ETHUSDT", Move(D(1995), D(1985)), NOW)
    assert fills(reports) == [("sl", D("1988.01"))]  # the walk moves continuously: at the stop


def test_at_most_ten_open_conditional_orders_per_symbol() -> None:
    _, service, account = setup()
    for i in range(10):
        service.place(account, algo("STOP_MARKET", trigger="1900", cid=f"s{i}"), NOW)
    with pytest.raises(Rejection) as full:
        service.place(account, algo("STOP_MARKET", trigger="1900", cid="s10"), NOW)
    assert full.value.code == -4045
    service.cancel(account, None, "s0", NOW)
    service.place(account, algo("STOP_MARKET", trigger="1900", cid="s11"), NOW)
