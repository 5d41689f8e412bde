"""Binance USD-M endpoints and streams that standard clients call, as Binance documents them.

Driven through ccxt's raw endpoint methods (`fapiPrivate…`), so the requests are signed exactly as a
real client signs them; the answers are checked against Binance's documented shapes and codes.
"""

from __future__ import annotations

import time
from itertools import pairwise
from typing import Any

import aiohttp
import ccxt.async_support as ccxt
import pytest
from ccxt.async_support.base.exchange import Exchange

from tests.simulator_helpers import MINUTE_MS, SimControl, minute_floor
from tradebot.exchange.simulator import RunningSimulator, SimulatorConfig

pytest_plugins = ("tests.simulator_fixtures",)

ETH = "ETH/USDT:USDT"


@pytest.fixture
def simulator_config() -> SimulatorConfig:
    return SimulatorConfig(port=0, mode="manual", history_candles=0)


async def set_price(sim: SimControl, symbol: str, close: float) -> None:
    start = minute_floor(int(time.time() * 1000))
    await sim.push_klines(symbol, "1m", [[start, close, close, close, close, 1]])


def order(side: str, qty: str, **extra: str) -> dict[str, Any]:
    return {"symbol": "ETHUSDT", "side": side, "quantity": qty, "type": "MARKET", **extra}


def limit(side: str, qty: str, price: str, tif: str = "GTC", **extra: str) -> dict[str, Any]:
    return {
        "symbol": "ETHUSDT",
        "side": side,
        "type": "LIMIT",
        "quantity": qty,
        "price": price,
        "timeInForce": tif,
        **extra,
    }


async def test_new_order_resp_type_ack_is_the_default_and_result_reports_the_fill(
    private_exchange: Exchange, sim: SimControl
) -> None:
    await set_price(sim, "ETHUSDT", 2000)
    ack = await private_exchange.fapiPrivatePostOrder(order("BUY", "0.1"))  # Binance's default is ACK
    assert (ack["status"], ack["executedQty"]) == ("NEW", "0")
    result = await private_exchange.fapiPrivatePostOrder(order("BUY", "0.1", newOrderRespType="RESULT"))
    assert (result["status"], result["executedQty"], result["avgPrice"]) == ("FILLED", "0.1", "2000")
    fetched = await private_exchange.fapiPrivateGetOrder({"symbol": "ETHUSDT", "orderId": ack["orderId"]})
    assert fetched["status"] == "FILLED"  # the ACK answered before the fill, the order did fill
    with pytest.raises(ccxt.BadRequest) as bad:
        await private_exchange.fapiPrivatePostOrder(order("BUY", "0.1", newOrderRespType="FULLEST"))
    assert "-1136" in str(bad.value)


async def test_time_in_force_ioc_fok_and_gtx(private_exchange: Exchange, sim: SimControl) -> None:
    await set_price(sim, "ETHUSDT", 2000)
    resp = {"newOrderRespType": "RESULT"}
    filled = await private_exchange.fapiPrivatePostOrder(limit("BUY", "0.1", "2001", "IOC", **resp))
    assert (filled["status"], filled["timeInForce"], filled["avgPrice"]) == ("FILLED", "IOC", "2000")
    expired = await private_exchange.fapiPrivatePostOrder(limit("BUY", "0.1", "1990", "IOC", **resp))
    assert (expired["status"], expired["executedQty"]) == ("EXPIRED", "0")
    fok = await private_exchange.fapiPrivatePostOrder(limit("SELL", "0.1", "1999", "FOK", **resp))
    assert fok["status"] == "FILLED"
    with pytest.raises(ccxt.OrderNotFillable) as fok_refused:
        await private_exchange.fapiPrivatePostOrder(limit("BUY", "0.1", "1990", "FOK"))
    assert "-5021" in str(fok_refused.value)
    with pytest.raises(ccxt.OrderNotFillable) as gtx_refused:
        await private_exchange.fapiPrivatePostOrder(limit("BUY", "0.1", "2010", "GTX"))
    assert "-5022" in str(gtx_refused.value)
    maker = await private_exchange.fapiPrivatePostOrder(limit("BUY", "0.1", "1990", "GTX", **resp))
    assert (maker["status"], maker["timeInForce"]) == ("NEW", "GTX")
    assert [o["orderId"] for o in await private_exchange.fapiPrivateGetOpenOrders({"symbol": "ETHUSDT"})] == [
        maker["orderId"]
    ]


async def test_open_order_and_cancel_all_open_orders(private_exchange: Exchange, sim: SimControl) -> None:
    await set_price(sim, "ETHUSDT", 2000)
    resting = [
        await private_exchange.fapiPrivatePostOrder(limit("BUY", "0.1", price, newClientOrderId=f"r-{price}"))
        for price in ("1900", "1950")
    ]
    one = await private_exchange.fapiPrivateGetOpenOrder({"symbol": "ETHUSDT", "origClientOrderId": "r-1900"})
    assert (one["orderId"], one["status"]) == (resting[0]["orderId"], "NEW")
    done = await private_exchange.fapiPrivateDeleteAllOpenOrders({"symbol": "ETHUSDT"})
    assert done == {"code": 200, "msg": "The operation of cancel all open order is done."}
    assert await private_exchange.fapiPrivateGetOpenOrders({"symbol": "ETHUSDT"}) == []
    with pytest.raises(ccxt.OrderNotFound) as gone:  # Binance: a closed order "does not exist" here
        await private_exchange.fapiPrivateGetOpenOrder({"symbol": "ETHUSDT", "orderId": resting[1]["orderId"]})
    assert "-2013" in str(gone.value)
    cancelled = await private_exchange.fapiPrivateGetOrder({"symbol": "ETHUSDT", "orderId": resting[1]["orderId"]})
    assert cancelled["status"] == "CANCELED"


async def test_income_history_lists_commissions_and_realized_pnl(private_exchange: Exchange, sim: SimControl) -> None:
    await set_price(sim, "ETHUSDT", 2000)
    await private_exchange.fapiPrivatePostOrder(order("BUY", "1"))
    await set_price(sim, "ETHUSDT", 2100)
    await private_exchange.fapiPrivatePostOrder(order("SELL", "1", reduceOnly="true"))
    income = await private_exchange.fapiPrivateGetIncome({"symbol": "ETHUSDT"})
    assert [(i["incomeType"], i["income"], i["asset"]) for i in income] == [
        ("COMMISSION", "-0.8", "USDT"),
        ("REALIZED_PNL", "100", "USDT"),
        ("COMMISSION", "-0.84", "USDT"),
    ]
    assert all(i["symbol"] == "ETHUSDT" and i["tradeId"] and isinstance(i["tranId"], int) for i in income)
    only_pnl = await private_exchange.fapiPrivateGetIncome({"incomeType": "REALIZED_PNL"})
    assert [i["income"] for i in only_pnl] == ["100"]


async def test_book_ticker_and_funding_rate_history(public_exchange: Exchange, sim: SimControl) -> None:
    await set_price(sim, "ETHUSDT", 2000)
    book = await public_exchange.fapiPublicGetTickerBookTicker({"symbol": "ETHUSDT"})
    assert (book["symbol"], book["bidPrice"], book["askPrice"]) == ("ETHUSDT", "1999.99", "2000.01")
    assert float(book["bidQty"]) > 0 and float(book["askQty"]) > 0 and book["time"] > 0
    assert {b["symbol"] for b in await public_exchange.fapiPublicGetTickerBookTicker()} == {"BTCUSDT", "ETHUSDT"}

    rates = await public_exchange.fapiPublicGetFundingRate({"symbol": "ETHUSDT", "limit": 3})
    assert len(rates) == 3
    assert all(r["fundingRate"] == "0.00000000" and r["fundingTime"] % (8 * 3_600_000) == 0 for r in rates)
    assert [b["fundingTime"] - a["fundingTime"] for a, b in pairwise(rates)] == [28_800_000] * 2
    assert rates[-1]["fundingTime"] <= int(time.time() * 1000) < rates[-1]["fundingTime"] + 28_800_000


async def test_position_mode_answers(private_exchange: Exchange) -> None:
    with pytest.raises(ccxt.ExchangeError) as unchanged:  # already one-way: Binance says there is nothing to do
        await private_exchange.fapiPrivatePostPositionSideDual({"dualSidePosition": "false"})
    assert "-4059" in str(unchanged.value)
    with pytest.raises(ccxt.ExchangeError) as hedge:  # hedge mode is not simulated: refused, not faked
        await private_exchange.fapiPrivatePostPositionSideDual({"dualSidePosition": "true"})
    assert "-4059" not in str(hedge.value)
    assert (await private_exchange.fapiPrivateGetPositionSideDual())["dualSidePosition"] is False


async def test_used_weight_header(simulator: RunningSimulator) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(simulator.base_url + "/fapi/v1/time") as first:
            used = int(first.headers["X-MBX-USED-WEIGHT-1M"])
        url = simulator.base_url + "/fapi/v1/klines?symbol=BTCUSDT&interval=1m&limit=1000"
        async with session.get(url) as klines:
            assert klines.status == 200
            # klines with limit 1000 weighs 5 (Binance's table); the count is per minute, so it may restart
            assert int(klines.headers["X-MBX-USED-WEIGHT-1M"]) in (used + 5, 5)


async def test_listen_key_subscribed_on_a_market_connection_gets_user_events(
    private_exchange: Exchange, sim: SimControl, simulator: RunningSimulator
) -> None:
    await set_price(sim, "ETHUSDT", 2000)
    listen_key = (await private_exchange.fapiPrivatePostListenKey())["listenKey"]
    async with aiohttp.ClientSession() as session, session.ws_connect(simulator.ws_url + "/ws") as ws:
        await ws.send_json({"method": "SUBSCRIBE", "params": [listen_key], "id": 3})
        assert await ws.receive_json(timeout=5) == {"result": None, "id": 3}
        await private_exchange.fapiPrivatePostOrder(order("BUY", "0.1", newClientOrderId="lk-1"))
        event = await ws.receive_json(timeout=5)
    assert (event["e"], event["o"]["c"]) == ("ORDER_TRADE_UPDATE", "lk-1")


async def test_mark_price_agg_trade_book_ticker_and_continuous_kline_streams(
    sim: SimControl, simulator: RunningSimulator
) -> None:
    streams = ["ethusdt@markPrice", "ethusdt@aggTrade", "ethusdt@bookTicker", "ethusdt_perpetual@continuousKline_1m"]
    url = simulator.ws_url + "/stream?streams=" + "/".join(streams)
    start = minute_floor(int(time.time() * 1000))
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        await sim.push_klines("ETHUSDT", "1m", [[start, 2000, 2010, 1990, 2005, 3]])
        seen: dict[str, Any] = {}
        while set(seen) != set(streams):
            message = await ws.receive_json(timeout=5)
            seen[message["stream"]] = message["data"]
    mark = seen["ethusdt@markPrice"]
    assert (mark["e"], mark["s"], mark["p"], mark["r"]) == ("markPriceUpdate", "ETHUSDT", "2005", "0.00000000")
    trade = seen["ethusdt@aggTrade"]
    assert (trade["e"], trade["s"], trade["p"]) == ("aggTrade", "ETHUSDT", "2005")
    top = seen["ethusdt@bookTicker"]
    assert (top["e"], top["s"], top["b"], top["a"]) == ("bookTicker", "ETHUSDT", "2004.99", "2005.01")
    kline = seen["ethusdt_perpetual@continuousKline_1m"]
    assert (kline["e"], kline["ps"], kline["ct"]) == ("continuous_kline", "ETHUSDT", "PERPETUAL")
    assert (kline["k"]["t"], kline["k"]["c"], kline["k"]["x"]) == (start, "2005", True)
    assert kline["k"]["T"] == start + MINUTE_MS - 1


async def test_a_stream_the_simulator_cannot_serve_is_refused_not_silent(simulator: RunningSimulator) -> None:
    async with aiohttp.ClientSession() as session, session.ws_connect(simulator.ws_url + "/ws") as ws:
        await ws.send_json({"method": "SUBSCRIBE", "params": ["ethusdt@kline_1m", "!forceOrder@arr"], "id": 9})
        reply = await ws.receive_json(timeout=5)
        assert reply["id"] == 9 and "error" in reply and "!forceOrder@arr" in reply["error"]["msg"]
        await ws.send_json({"method": "LIST_SUBSCRIPTIONS", "id": 10})
        assert await ws.receive_json(timeout=5) == {"result": [], "id": 10}  # nothing half-subscribed
