"""The simulator driven by an independent Binance client: python-binance, not ccxt.

ccxt is what tradebot itself uses; a second, unrelated client over REST and websockets keeps the
simulator compatible with Binance as such, not merely with our own client. python-binance signs,
encodes and parses on its own (AsyncClient over aiohttp, BinanceSocketManager over `websockets`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
from binance import AsyncClient, BinanceSocketManager
from binance.exceptions import BinanceAPIException

from tests.simulator_helpers import MINUTE_MS, Credentials, SimControl, minute_floor
from tests.timing import eventually
from tradebot.exchange.simulator import RunningSimulator, SimulatorConfig

pytest_plugins = ("tests.simulator_fixtures",)


@pytest.fixture
def simulator_config() -> SimulatorConfig:
    return SimulatorConfig(port=0, mode="manual", history_candles=0, slippage_bps=Decimal("10"))


@pytest.fixture
async def client(simulator: RunningSimulator, account: Credentials) -> AsyncIterator[AsyncClient]:
    # The constructor makes no request (AsyncClient.create would ping the spot API first).
    binance = AsyncClient(account.api_key, account.secret)
    binance.FUTURES_URL = simulator.base_url + "/fapi"
    try:
        yield binance
    finally:
        await binance.close_connection()


@pytest.fixture
def sockets(client: AsyncClient, simulator: RunningSimulator) -> BinanceSocketManager:
    manager = BinanceSocketManager(client)
    manager.FSTREAM_URL = simulator.ws_url + "/"
    return manager


async def push(sim: SimControl, symbol: str, closes: list[float]) -> int:
    start = minute_floor(int(time.time() * 1000))
    await sim.push_klines(symbol, "1m", [[start + i * MINUTE_MS, c, c + 5, c - 5, c, 2] for i, c in enumerate(closes)])
    return start


async def test_market_data_over_rest(client: AsyncClient, sim: SimControl) -> None:
    start = await push(sim, "ETHUSDT", [2000, 2010.5])
    assert await client.futures_ping() == {}
    assert abs((await client.futures_time())["serverTime"] - time.time() * 1000) < 60_000
    info = await client.futures_exchange_info()
    eth = next(s for s in info["symbols"] if s["symbol"] == "ETHUSDT")
    assert {f["filterType"]: f for f in eth["filters"]}["PRICE_FILTER"]["tickSize"] == "0.01"
    klines = await client.futures_klines(symbol="ETHUSDT", interval="1m", limit=10)
    assert [(k[0], k[4]) for k in klines] == [(start, "2000"), (start + MINUTE_MS, "2010.5")]
    assert (await client.futures_ticker(symbol="ETHUSDT"))["lastPrice"] == "2010.5"
    book = await client.futures_orderbook_ticker(symbol="ETHUSDT")
    assert (book["bidPrice"], book["askPrice"]) == ("2010.49", "2010.51")
    depth = await client.futures_order_book(symbol="ETHUSDT", limit=5)
    assert len(depth["bids"]) == 5 and depth["bids"][0][0] < depth["asks"][0][0]
    assert (await client.futures_mark_price(symbol="ETHUSDT"))["markPrice"] == "2010.5"
    funding = await client.futures_funding_rate(symbol="ETHUSDT", limit=2)
    assert [r["fundingRate"] for r in funding] == ["0.00000000", "0.00000000"]


async def test_trading_account_and_income_over_rest(client: AsyncClient, sim: SimControl) -> None:
    await push(sim, "ETHUSDT", [2000])
    assert (await client.futures_change_leverage(symbol="ETHUSDT", leverage=10))["leverage"] == 10
    assert (await client.futures_get_position_mode())["dualSidePosition"] is False
    with pytest.raises(BinanceAPIException) as unchanged:
        await client.futures_change_position_mode(dualSidePosition="false")
    assert unchanged.value.code == -4059

    bought = await client.futures_create_order(
        symbol="ETHUSDT", side="BUY", type="MARKET", quantity="1", newOrderRespType="RESULT"
    )
    assert (bought["status"], bought["avgPrice"]) == ("FILLED", "2002")  # 2000 + 10 bps, on the tick
    resting = await client.futures_create_order(
        symbol="ETHUSDT", side="SELL", type="LIMIT", quantity="1", price="2100", timeInForce="GTC"
    )
    assert resting["status"] == "NEW"  # ACK, python-binance's and Binance's default
    assert [o["orderId"] for o in await client.futures_get_open_orders(symbol="ETHUSDT")] == [resting["orderId"]]
    assert (await client.futures_cancel_all_open_orders(symbol="ETHUSDT"))["code"] == 200
    assert (await client.futures_get_order(symbol="ETHUSDT", orderId=resting["orderId"]))["status"] == "CANCELED"

    [position] = await client.futures_position_information(symbol="ETHUSDT")
    assert (position["positionAmt"], position["entryPrice"], position["leverage"]) == ("1", "2002", "10")
    closed = await client.futures_create_order(
        symbol="ETHUSDT", side="SELL", type="MARKET", quantity="5", reduceOnly="true", newOrderRespType="RESULT"
    )
    assert (closed["status"], closed["executedQty"], closed["avgPrice"]) == ("FILLED", "1", "1998")

    trades = await client.futures_account_trades(symbol="ETHUSDT")
    assert [(t["side"], t["price"], t["realizedPnl"]) for t in trades] == [("BUY", "2002", "0"), ("SELL", "1998", "-4")]
    income = await client.futures_income_history(symbol="ETHUSDT")
    assert sum(Decimal(i["income"]) for i in income) == Decimal("-4") - Decimal("0.8008") - Decimal("0.7992")
    usdt = next(b for b in await client.futures_account_balance() if b["asset"] == "USDT")
    assert Decimal(usdt["balance"]) == Decimal("10000") - Decimal("4") - Decimal("1.6")
    assert (await client.futures_account())["totalWalletBalance"] == usdt["balance"]

    with pytest.raises(BinanceAPIException) as refused:
        await client.futures_create_order(symbol="ETHUSDT", side="BUY", type="MARKET", quantity="0.0001")
    assert refused.value.code == -1111


async def test_kline_streams_multiplexed_and_continuous(
    sockets: BinanceSocketManager, sim: SimControl, simulator: RunningSimulator
) -> None:
    multiplex = sockets.futures_multiplex_socket(["ethusdt@kline_1m", "ethusdt@markPrice"])
    continuous = sockets.kline_futures_socket("ETHUSDT", interval="1m")
    quick_exit(multiplex, continuous)
    async with multiplex as combined, continuous as single:
        await _until_subscribed(simulator, "ethusdt@kline_1m", "ethusdt_perpetual@continuousKline_1m")
        start = await push(sim, "ETHUSDT", [2000])
        seen: dict[str, Any] = {}
        while len(seen) < 2:
            message = await asyncio.wait_for(combined.recv(), 5)
            seen[message["stream"]] = message["data"]
        event = await asyncio.wait_for(single.recv(), 5)
    kline = seen["ethusdt@kline_1m"]["k"]
    assert (kline["t"], kline["c"], kline["x"]) == (start, "2000", True)
    assert seen["ethusdt@markPrice"]["p"] == "2000"
    assert (event["e"], event["ps"], event["k"]["t"], event["k"]["x"]) == ("continuous_kline", "ETHUSDT", start, True)


async def test_user_data_stream(client: AsyncClient, sockets: BinanceSocketManager, sim: SimControl) -> None:
    await push(sim, "ETHUSDT", [2000])
    user_socket = sockets.futures_user_socket()
    quick_exit(user_socket)
    async with user_socket as user:
        await _until_user_stream(sim)
        await client.futures_create_order(
            symbol="ETHUSDT", side="BUY", type="MARKET", quantity="0.5", newClientOrderId="pb-1"
        )
        events = [await asyncio.wait_for(user.recv(), 5) for _ in range(3)]
    assert [e["e"] for e in events] == ["ORDER_TRADE_UPDATE", "ORDER_TRADE_UPDATE", "ACCOUNT_UPDATE"]
    assert (events[1]["o"]["c"], events[1]["o"]["X"], events[1]["o"]["L"]) == ("pb-1", "FILLED", "2002")


def quick_exit(*sockets: Any) -> None:
    """python-binance's reader notices it should stop only when its idle `recv` times out (10 s by
    default); a short idle timeout lets the sockets close at once. It only logs, it never reconnects."""
    for socket in sockets:
        socket.TIMEOUT = 0.2


async def _until_subscribed(simulator: RunningSimulator, *streams: str) -> None:
    async def subscribed() -> bool:
        return all(simulator.state.hub.has_subscribers(s) for s in streams)

    await eventually(subscribed)


async def _until_user_stream(sim: SimControl) -> None:
    async def connected() -> bool:
        return any(sim.running.state.hub.has_user_stream(k) for k in sim.running.state.engine.accounts)

    await eventually(connected)
