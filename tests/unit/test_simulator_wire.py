"""What the simulator emits: prices on the market's grid, no absurd decimal expansions (pure)."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from tradebot.exchange.simulator import wire
from tradebot.exchange.simulator.accounts import OrderRequest
from tradebot.exchange.simulator.candles import BASE_INTERVAL_MS, Candle, RandomWalk
from tradebot.exchange.simulator.engine import MatchingEngine
from tradebot.exchange.simulator.markets import market_spec

D = Decimal
NOW = 1_700_000_000_000
BTC = market_spec("BTCUSDT")


def numbers(value: Any) -> list[str]:
    """Every string in a JSON-like value that looks like a decimal number."""
    if isinstance(value, dict):
        return [n for v in value.values() for n in numbers(v)]
    if isinstance(value, list):
        return [n for v in value for n in numbers(v)]
    return [value] if isinstance(value, str) and re.fullmatch(r"-?\d+(\.\d+)?", value) else []


def decimals(text: str) -> int:
    return len(text.partition(".")[2])


def btc_engine(slippage_bps: str) -> MatchingEngine:
    engine = MatchingEngine({"BTCUSDT": BTC}, fee_rate=D("0.0004"), slippage_bps=D(slippage_bps))
    engine.add_account("k", "s", {"USDT": D("1000000")}, NOW)
    return engine


def buy(engine: MatchingEngine, side: str, qty: str) -> Any:
    return engine.place_order(engine.accounts["k"], OrderRequest("BTCUSDT", side, "MARKET", qty), NOW)


def test_fill_prices_are_rounded_to_the_tick_buys_up_sells_down() -> None:
    engine = btc_engine("10")
    engine.prices["BTCUSDT"] = D("60000.1")
    bought, _ = buy(engine, "BUY", "0.01")  # 60000.1 × 1.001 = 60060.1001 → up to 60060.2
    sold, _ = buy(engine, "SELL", "0.01")  # 60000.1 × 0.999 = 59940.0999 → down to 59940.0
    assert (bought.avg_price, sold.avg_price) == (D("60060.2"), D("59940.0"))
    assert [t.price for t in engine.accounts["k"].trades] == [D("60060.2"), D("59940.0")]


def test_averages_and_margins_never_print_long_decimal_expansions() -> None:
    engine = btc_engine("0")
    account = engine.accounts["k"]
    engine.set_leverage(account, "BTCUSDT", "7", NOW)  # margin = notional / 7: a repeating decimal
    for price in ("58982.6", "58982.7", "58982.7"):
        engine.prices["BTCUSDT"] = D(price)
        buy(engine, "BUY", "0.002")
    engine.prices["BTCUSDT"] = D("59000.1")
    emitted = [
        wire.account_info(engine, account),
        wire.position_risk(engine, account, include_flat=False),
        [wire.order(o) for o in account.orders.values()],
        [wire.trade(t) for t in account.trades],
        wire.balances(engine, account),
    ]
    assert numbers(emitted) and all(decimals(n) <= 8 for n in numbers(emitted)), numbers(emitted)
    [position] = wire.position_risk(engine, account, include_flat=False)
    assert position["entryPrice"] == "58982.66666667"  # (58982.6 + 2 × 58982.7) / 3, to 8 decimals


def test_random_walk_prices_lie_on_the_tick_grid() -> None:
    walk = RandomWalk({"BTCUSDT": BTC}, seed=5, start_ms=NOW, history=300)
    candles = walk.candles("BTCUSDT", "1m")
    prices = [p for c in candles for p in (c.open, c.high, c.low, c.close)]
    assert all(p % BTC.tick_size == 0 for p in prices), [p for p in prices if p % BTC.tick_size][:5]


def test_pushed_candles_keep_their_values_and_derived_figures_stay_short() -> None:
    """A test author's candle is echoed as given; what the simulator derives from it is rounded."""
    candle = Candle(
        NOW,
        BASE_INTERVAL_MS,
        D("2000"),
        D("2001.9999999999998"),
        D("1998.002"),
        D("2001.1"),
        D("1.2345678901234567"),
        trades=1,
        closed=True,
    )
    row = wire.kline_row(candle)
    assert row[1:6] == ["2000", "2001.9999999999998", "1998.002", "2001.1", "1.2345678901234567"]
    assert all(decimals(n) <= 8 for n in numbers(row[7:]))
    event = wire.kline_event("BTCUSDT", "1m", candle, NOW)["k"]
    assert (event["h"], event["v"]) == ("2001.9999999999998", "1.2345678901234567")
    assert all(decimals(event[k]) <= 8 for k in ("q", "V", "Q"))
    ticker = wire.ticker_24hr("BTCUSDT", [candle], D("2001.1"), NOW)
    assert all(decimals(n) <= 8 for n in numbers(ticker))
