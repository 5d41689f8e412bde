"""ccxt's real binanceusdm trading against the simulator: orders, positions, balances, errors, faults."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from typing import Any

import aiohttp
import ccxt.async_support as ccxt
import pytest
from ccxt.async_support.base.exchange import Exchange

from tests.simulator_helpers import (
    MINUTE_MS,
    Credentials,
    SimControl,
    minute_floor,
)
from tests.timing import eventually
from tradebot.exchange import errors
from tradebot.exchange.ccxt_factory import ExchangeClientFactory, build_client
from tradebot.exchange.simulator import RunningSimulator, SimulatorConfig

# The fixtures (simulator, sim, account, exchange clients) until the project conftest registers them.
pytest_plugins = ("tests.simulator_fixtures",)

ETH = "ETH/USDT:USDT"
BTC = "BTC/USDT:USDT"


def now_ms() -> int:
    return int(time.time() * 1000)


async def set_price(sim: SimControl, symbol: str, close: float) -> None:
    start = minute_floor(now_ms())
    await sim.push_klines(symbol, "1m", [[start, close, close, close, close, 1]])


@pytest.fixture
def simulator_config() -> SimulatorConfig:
    return SimulatorConfig(port=0, mode="manual", history_candles=50, slippage_bps=Decimal("10"))


async def test_market_orders_positions_balance_and_exact_pnl(
    private_exchange: Exchange, sim: SimControl, account: Credentials
) -> None:
    """The same hand-computed example as the engine's unit test, end to end through ccxt."""
    await set_price(sim, "ETHUSDT", 2000)
    assert (await private_exchange.set_leverage(10, ETH))["leverage"] == 10

    buy = await private_exchange.create_order(ETH, "market", "buy", 1, params={"newClientOrderId": "t-1"})
    assert (buy["status"], buy["clientOrderId"], buy["average"], buy["filled"]) == (
        "closed",
        "t-1",
        2002.0,
        1.0,
    )

    await set_price(sim, "ETHUSDT", 2100)
    await private_exchange.create_order(ETH, "market", "buy", 1, params={"clientOrderId": "t-2"})
    await set_price(sim, "ETHUSDT", 2200)
    [position] = await private_exchange.fetch_positions([ETH])
    assert (position["side"], position["contracts"], position["entryPrice"]) == ("long", 2.0, 2052.05)
    assert position["unrealizedPnl"] == pytest.approx(295.9)
    assert position["leverage"] == 10

    flip = await private_exchange.create_order(ETH, "market", "sell", 3, params={"newClientOrderId": "t-3"})
    assert flip["average"] == 2197.8
    assert (await sim.positions(account.api_key)) == {
        "ETHUSDT": {"side": "short", "amount": 1.0, "entry_price": 2197.8, "leverage": 10}
    }

    await set_price(sim, "ETHUSDT", 2100)
    close = await private_exchange.create_order(
        ETH, "market", "buy", 5, params={"reduceOnly": True, "newClientOrderId": "t-4"}
    )
    assert close["amount"] == 1.0 and close["reduceOnly"] is True
    assert await sim.positions(account.api_key) == {}
    assert await private_exchange.fetch_positions([ETH]) == []

    trades = await private_exchange.fetch_my_trades(ETH)
    realized = [Decimal(t["info"]["realizedPnl"]) for t in trades]
    fees = [Decimal(t["info"]["commission"]) for t in trades]
    assert realized == [Decimal(0), Decimal(0), Decimal("291.5"), Decimal("95.7")]
    assert sum(fees) == Decimal("0.8008") + Decimal("0.84084") + Decimal("2.63736") + Decimal("0.84084")
    balance = await private_exchange.fetch_balance()
    # 10,000 + 291.5 + 95.7 − 5.11984 in fees
    assert Decimal(balance["info"]["totalWalletBalance"]) == Decimal("10382.08016")
    assert balance["USDT"]["total"] == pytest.approx(10382.08016)
    assert balance["USDT"]["free"] == pytest.approx(10382.08016)


async def test_fetch_order_by_client_order_id_and_the_audit_trail(
    private_exchange: Exchange, sim: SimControl, account: Credentials
) -> None:
    await set_price(sim, "BTCUSDT", 60_000)
    await private_exchange.create_order(BTC, "market", "buy", 0.01, params={"newClientOrderId": "bot-1-1-1"})
    fetched = await private_exchange.fetch_order(None, BTC, params={"origClientOrderId": "bot-1-1-1"})
    assert (fetched["clientOrderId"], fetched["status"], fetched["filled"]) == ("bot-1-1-1", "closed", 0.01)
    with pytest.raises(ccxt.OrderNotFound):
        await private_exchange.fetch_order(None, BTC, params={"origClientOrderId": "never-sent"})

    with pytest.raises(ccxt.InvalidOrder) as duplicate:
        await private_exchange.create_order(BTC, "market", "sell", 0.01, params={"newClientOrderId": "bot-1-1-1"})
    assert "-4116" in str(duplicate.value)
    assert isinstance(errors.translate(duplicate.value), errors.Rejected)

    audit = await sim.orders(account.api_key)
    assert [
        (o["client_order_id"], o["side"], o["type"], o["amount"], o["status"], o["reject_code"]) for o in audit
    ] == [
        ("bot-1-1-1", "buy", "market", 0.01, "filled", None),
        ("bot-1-1-1", "sell", "market", 0.01, "rejected", -4116),
    ]
    assert audit[0]["received_at"].endswith("Z")


async def test_resting_limit_order_can_be_listed_and_cancelled(private_exchange: Exchange, sim: SimControl) -> None:
    await set_price(sim, "ETHUSDT", 2000)
    order = await private_exchange.create_order(ETH, "limit", "buy", 1, 1900, params={"newClientOrderId": "lim-1"})
    assert order["status"] == "open" and order["price"] == 1900
    assert [o["clientOrderId"] for o in await private_exchange.fetch_open_orders(ETH)] == ["lim-1"]
    balance = await private_exchange.fetch_balance()
    assert balance["USDT"]["used"] == pytest.approx(95.0)  # 1900 / 20x reserved for the open order

    cancelled = await private_exchange.cancel_order(order["id"], ETH)
    assert cancelled["status"] == "canceled"
    assert await private_exchange.fetch_open_orders(ETH) == []
    with pytest.raises(ccxt.OrderNotFound):
        await private_exchange.cancel_order(order["id"], ETH)


async def test_a_resting_limit_order_fills_when_a_pushed_candle_crosses_it(
    private_exchange: Exchange, sim: SimControl
) -> None:
    await set_price(sim, "ETHUSDT", 2000)
    await private_exchange.create_order(ETH, "limit", "sell", 1, 2050, params={"newClientOrderId": "lim-2"})
    start = minute_floor(now_ms()) + MINUTE_MS
    await sim.push_klines("ETHUSDT", "1m", [[start, 2000, 2051, 1990, 2010, 5]])
    order = await private_exchange.fetch_order(None, ETH, params={"origClientOrderId": "lim-2"})
    assert (order["status"], order["average"]) == ("closed", 2050.0)


async def test_rejections_map_to_ccxt_and_tradebot_errors(
    private_exchange: Exchange, sim: SimControl, account: Credentials
) -> None:
    await set_price(sim, "BTCUSDT", 60_000)
    with pytest.raises(ccxt.InsufficientFunds) as margin:
        await private_exchange.create_order(BTC, "market", "buy", 5, params={"newClientOrderId": "big"})
    assert isinstance(errors.translate(margin.value), errors.InsufficientBalance)

    with pytest.raises(ccxt.InvalidOrder) as notional:
        await private_exchange.create_order(BTC, "market", "buy", 0.001)  # 60 USDT < 100 minimum
    assert "-4164" in str(notional.value)

    with pytest.raises(ccxt.InvalidOrder) as reduce_only:
        await private_exchange.create_order(BTC, "market", "sell", 0.01, params={"reduceOnly": True})
    assert "-2022" in str(reduce_only.value)

    # ccxt rounds amounts to the market's precision itself; the raw endpoint shows the server's checks.
    base: dict[str, Any] = {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET"}
    with pytest.raises(ccxt.BadRequest) as precision:
        await private_exchange.fapiPrivatePostOrder({**base, "quantity": "0.0101"})
    assert "-1111" in str(precision.value)
    with pytest.raises(ccxt.BadRequest) as zero:
        await private_exchange.fapiPrivatePostOrder({**base, "quantity": "0"})
    assert "-4003" in str(zero.value)
    with pytest.raises(ccxt.BadRequest) as missing:
        await private_exchange.fapiPrivatePostOrder({"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET"})
    assert "-1102" in str(missing.value)
    assert isinstance(errors.translate(missing.value), errors.Rejected)
    with pytest.raises(ccxt.BadRequest):
        await private_exchange.set_leverage(126, BTC)

    codes = [o["reject_code"] for o in await sim.orders(account.api_key)]
    assert codes == [-2019, -4164, -2022, -1111, -4003, -1102]


async def test_bad_credentials_and_stale_timestamps(
    exchange_factory: ExchangeClientFactory, simulator: RunningSimulator, account: Credentials
) -> None:
    wrong_secret = exchange_factory.private_client("binanceusdm", account.api_key, "not-the-secret")
    with pytest.raises(ccxt.AuthenticationError) as bad_signature:
        await wrong_secret.fetch_balance()
    assert "-1022" in str(bad_signature.value)
    assert isinstance(errors.translate(bad_signature.value), errors.InvalidCredentials)

    unknown = build_client("binanceusdm", base_url=simulator.base_url, api_key="nobody", secret="x")
    try:
        with pytest.raises(ccxt.AuthenticationError) as unknown_key:
            await unknown.fetch_balance()
        assert "-2015" in str(unknown_key.value)
    finally:
        await unknown.close()

    good = exchange_factory.private_client("binanceusdm", account.api_key, account.secret)
    good.options["timeDifference"] = 30_000  # our clock 30 s behind the server's: outside recvWindow
    good.options["recvWindow"] = 5_000
    with pytest.raises(ccxt.InvalidNonce) as stale:
        await good.fetch_balance()
    assert "-1021" in str(stale.value)
    assert isinstance(errors.translate(stale.value), errors.Retryable)
    good.options["timeDifference"] = 0
    assert (await good.fetch_balance())["USDT"]["total"] == 10_000


async def test_fail_next_requests_then_success_and_latency(
    private_exchange: Exchange, sim: SimControl, account: Credentials
) -> None:
    await private_exchange.load_markets()
    await sim.faults(fail_next_requests=2)
    for _ in range(2):
        with pytest.raises(ccxt.ExchangeNotAvailable) as failure:
            await private_exchange.fetch_balance()
        assert isinstance(errors.translate(failure.value), errors.Retryable)
    assert (await private_exchange.fetch_balance())["USDT"]["total"] == 10_000

    # /_sim/ calls are not counted: the failure still hits the next exchange request.
    await sim.faults(fail_next_requests=1)
    await sim.positions(account.api_key)
    with pytest.raises(ccxt.NetworkError):
        await private_exchange.fetch_positions([BTC])

    await sim.faults(rate_limit_next_requests=1)
    with pytest.raises(ccxt.DDoSProtection) as limited:
        await private_exchange.fetch_balance()
    assert isinstance(errors.translate(limited.value), errors.Retryable)
    assert (await private_exchange.fetch_balance())["USDT"]["total"] == 10_000

    await sim.faults(latency_ms=300)
    started = time.monotonic()
    await private_exchange.fetch_time()
    assert time.monotonic() - started >= 0.3
    await sim.faults(latency_ms=0)


async def test_fail_next_requests_rejects_an_order_before_the_engine_sees_it(
    private_exchange: Exchange, sim: SimControl, account: Credentials
) -> None:
    await set_price(sim, "ETHUSDT", 2000)
    await private_exchange.load_markets()
    await sim.faults(fail_next_requests=1)
    with pytest.raises(ccxt.NetworkError):
        await private_exchange.create_order(ETH, "market", "buy", 0.1, params={"newClientOrderId": "f-1"})
    # The unclear outcome is resolved by querying the id, never by resending blindly.
    with pytest.raises(ccxt.OrderNotFound):
        await private_exchange.fetch_order(None, ETH, params={"origClientOrderId": "f-1"})
    await private_exchange.create_order(ETH, "market", "buy", 0.1, params={"newClientOrderId": "f-1"})
    assert [o["status"] for o in await sim.orders(account.api_key)] == ["filled"]


async def test_watch_orders_streams_order_updates(
    private_exchange: Exchange, sim: SimControl, account: Credentials
) -> None:
    await set_price(sim, "ETHUSDT", 2000)
    await private_exchange.load_markets()
    watcher = asyncio.create_task(private_exchange.watch_orders(ETH))

    async def connected() -> bool:
        return sim.running.state.hub.has_user_stream(account.api_key)

    await eventually(connected)
    await private_exchange.create_order(ETH, "market", "buy", 0.1, params={"newClientOrderId": "w-1"})
    orders = await asyncio.wait_for(watcher, 5)
    assert orders[-1]["clientOrderId"] == "w-1"
    assert orders[-1]["status"] in ("open", "closed")


async def test_leverage_bracket_margin_type_and_position_mode(private_exchange: Exchange) -> None:
    await private_exchange.load_markets()
    tiers = await private_exchange.fetch_leverage_tiers([BTC])
    assert tiers[BTC][0]["maxLeverage"] == 125
    mode = await private_exchange.fetch_position_mode(BTC)
    assert mode["hedged"] is False
    await private_exchange.set_leverage(7, BTC)
    await private_exchange.set_margin_mode("isolated", BTC)
    with pytest.raises(ccxt.MarginModeAlreadySet):
        await private_exchange.set_margin_mode("isolated", BTC)
    leverage = await private_exchange.fetch_leverage(BTC)
    assert (leverage["longLeverage"], leverage["marginMode"]) == (7, "isolated")
    fee = await private_exchange.fetch_trading_fee(BTC)
    assert (fee["maker"], fee["taker"]) == (0.0004, 0.0004)
    book = await private_exchange.fetch_order_book(BTC, 5)
    assert len(book["bids"]) == 5 and book["bids"][0][0] < book["asks"][0][0]
    assert (await private_exchange.fetch_status())["status"] == "ok"


async def test_client_order_ids_with_characters_that_need_encoding(private_exchange: Exchange, sim: SimControl) -> None:
    """Binance allows `.:/` in client order ids; the signature covers the percent-encoded query as sent."""
    await set_price(sim, "ETHUSDT", 2000)
    cid = "bot:7/fence.3_sig-1"
    placed = await private_exchange.create_order(ETH, "market", "buy", 0.1, params={"newClientOrderId": cid})
    assert placed["clientOrderId"] == cid
    fetched = await private_exchange.fetch_order(None, ETH, params={"origClientOrderId": cid})
    assert fetched["clientOrderId"] == cid and fetched["status"] == "closed"


async def test_user_data_stream_events_on_a_fill(
    private_exchange: Exchange, sim: SimControl, simulator: RunningSimulator
) -> None:
    await set_price(sim, "ETHUSDT", 2000)
    listen_key = (await private_exchange.fapiPrivatePostListenKey())["listenKey"]
    assert (await private_exchange.fapiPrivatePostListenKey())["listenKey"] == listen_key  # one per account
    url = f"{simulator.ws_url}/private/ws?listenKey={listen_key}"
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        await private_exchange.create_order(ETH, "market", "sell", 0.5, params={"newClientOrderId": "u-1"})
        new, trade, account_update = [await ws.receive_json(timeout=5) for _ in range(3)]
    assert (new["e"], new["o"]["x"], new["o"]["X"], new["o"]["c"]) == (
        "ORDER_TRADE_UPDATE",
        "NEW",
        "NEW",
        "u-1",
    )
    o = trade["o"]
    assert (o["x"], o["X"], o["S"], o["l"], o["L"], o["n"], o["N"]) == (
        "TRADE",
        "FILLED",
        "SELL",
        "0.5",
        "1998",  # 2000 − 10 bps
        "0.3996",
        "USDT",
    )
    assert account_update["e"] == "ACCOUNT_UPDATE"
    [position] = account_update["a"]["P"]
    assert (position["s"], position["pa"], position["ep"]) == ("ETHUSDT", "-0.5", "1998")
    assert account_update["a"]["B"][0]["wb"] == "9999.6004"
