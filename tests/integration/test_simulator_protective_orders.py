"""Protective orders through ccxt's real binanceusdm against the simulator: the algo-order API,
triggers on pushed candles, fills at the stop ± slippage, the user-data stream, liquidation."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from typing import Any

import numpy as np
import pytest
from ccxt.async_support.base.exchange import Exchange

from tests.simulator_helpers import MINUTE_MS, Credentials, SimControl, minute_floor
from tests.timing import eventually
from tradebot.exchange import errors, protective_orders
from tradebot.exchange.protective_orders import ProtectiveKind, ProtectiveSpec, protective_client_id
from tradebot.exchange.simulator import SimulatorConfig
from tradebot.strategies.backtest import BacktestSettings, ExitReason, simulate
from tradebot.strategies.candles import Candles as BacktestCandles

pytest_plugins = ("tests.simulator_fixtures",)

ETH = "ETH/USDT:USDT"
START = minute_floor(int(time.time() * 1000))


@pytest.fixture
def simulator_config() -> SimulatorConfig:
    # 10 bps of slippage: every fill shows which way it was moved.
    return SimulatorConfig(port=0, mode="manual", history_candles=20, slippage_bps=Decimal("10"))


class Candles:
    """Pushes 1m ETHUSDT candles one after the other."""

    def __init__(self, sim: SimControl) -> None:
        self.sim = sim
        self.t = START

    async def push(self, o: float, h: float, low: float, c: float) -> None:
        await self.sim.push_klines("ETHUSDT", "1m", [[self.t, o, h, low, c, 1]])
        self.t += MINUTE_MS


@pytest.fixture
async def candles(sim: SimControl) -> Candles:
    pushed = Candles(sim)
    await pushed.push(2000, 2000, 2000, 2000)
    return pushed


async def enter_long(exchange: Exchange, leverage: int = 5, amount: float = 1.0) -> float:
    await exchange.load_markets()
    await exchange.set_leverage(leverage, ETH)
    entry = await exchange.create_order(ETH, "market", "buy", amount, params={"newClientOrderId": "tb1-1-1o"})
    return float(entry["average"])


def spec(kind: ProtectiveKind, *, stop: float | None = None, rate: float | None = None, revision: int = 0) -> ProtectiveSpec:
    cid = protective_client_id(1, 1, kind, revision)
    return ProtectiveSpec(kind, ETH, "long", 1.0, cid, stop_price=stop, callback_rate=rate)


def by_client_id(orders: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {o["client_order_id"]: o for o in orders}


async def test_stop_fills_at_the_stop_minus_slippage_and_the_take_profit_stays_cancellable(
    private_exchange: Exchange, sim: SimControl, account: Credentials, candles: Candles
) -> None:
    entry = await enter_long(private_exchange)
    assert entry == 2002.0  # 2000 + 10 bps
    stop_level, take_level = protective_orders.protective_prices("long", entry, 5.0, 10.0)
    assert (stop_level, take_level) == pytest.approx((1901.9, 2202.2))
    stop = await protective_orders.place(private_exchange, spec(ProtectiveKind.STOP_LOSS, stop=stop_level))
    take = await protective_orders.place(private_exchange, spec(ProtectiveKind.TAKE_PROFIT, stop=take_level))
    assert (stop.kind, stop.status, stop.stop_price, stop.client_order_id) == (
        ProtectiveKind.STOP_LOSS, "open", 1901.9, "tb1-1s0",
    )  # fmt: skip
    assert (take.kind, take.status, take.stop_price) == (ProtectiveKind.TAKE_PROFIT, "open", 2202.2)
    listed = by_client_id(await sim.orders(account.api_key))
    assert {k: listed["tb1-1s0"][k] for k in ("type", "stop_price", "status", "side", "amount")} == {
        "type": "stop_market", "stop_price": 1901.9, "status": "new", "side": "sell", "amount": 1.0,
    }  # fmt: skip
    assert (listed["tb1-1t0"]["type"], listed["tb1-1t0"]["stop_price"]) == ("take_profit_market", 2202.2)
    waiting = await protective_orders.open_orders(private_exchange, ETH)
    assert sorted(o.client_order_id for o in waiting) == ["tb1-1s0", "tb1-1t0"]

    await candles.push(1995, 2010, 1880, 1890)  # through the stop, nowhere near the take profit

    assert await sim.positions(account.api_key) == {}
    trades = await private_exchange.fetch_my_trades(ETH)
    # 1901.9 × (1 − 0.001) = 1899.9981, on ETH's 0.01 tick against the seller: 1899.99.
    assert [(t["side"], t["price"], t["amount"]) for t in trades] == [("buy", 2002.0, 1.0), ("sell", 1899.99, 1.0)]
    fired = await protective_orders.find(private_exchange, ETH, "tb1-1s0")
    assert fired is not None and (fired.status, fired.filled, fired.average) == ("closed", 1.0, 1899.99)
    assert by_client_id(await sim.orders(account.api_key))["tb1-1s0"]["status"] == "filled"

    assert await protective_orders.cancel(private_exchange, ETH, "tb1-1t0") is True
    assert await protective_orders.cancel(private_exchange, ETH, "tb1-1t0") is False
    assert await protective_orders.open_orders(private_exchange, ETH) == []
    assert by_client_id(await sim.orders(account.api_key))["tb1-1t0"]["status"] == "canceled"


async def test_a_candle_that_opens_beyond_the_stop_fills_at_its_open(
    private_exchange: Exchange, sim: SimControl, account: Credentials, candles: Candles
) -> None:
    await enter_long(private_exchange)
    await protective_orders.place(private_exchange, spec(ProtectiveKind.STOP_LOSS, stop=1900.0))
    await candles.push(1850, 1860, 1840, 1855)  # gapped down past the stop: no trade at 1900
    trades = await private_exchange.fetch_my_trades(ETH)
    assert trades[-1]["side"] == "sell" and trades[-1]["price"] == pytest.approx(1848.15)  # 1850 − 10 bps
    assert await sim.positions(account.api_key) == {}


async def test_take_profit_fills_at_its_price_minus_slippage(
    private_exchange: Exchange, sim: SimControl, account: Credentials, candles: Candles
) -> None:
    await enter_long(private_exchange)
    await protective_orders.place(private_exchange, spec(ProtectiveKind.STOP_LOSS, stop=1900.0))
    await protective_orders.place(private_exchange, spec(ProtectiveKind.TAKE_PROFIT, stop=2100.0))
    await candles.push(2005, 2150, 1990, 2120)
    trades = await private_exchange.fetch_my_trades(ETH)
    assert trades[-1]["price"] == pytest.approx(2097.9)  # 2100 × (1 − 0.001)
    assert await sim.positions(account.api_key) == {}
    # The stop is still there (reduce-only, so harmless) until the owner cancels it.
    assert [o.kind for o in await protective_orders.open_orders(private_exchange, ETH)] == [ProtectiveKind.STOP_LOSS]


async def test_trailing_stop_follows_the_high_and_fires_its_callback_rate_below_it(
    private_exchange: Exchange, sim: SimControl, account: Credentials, candles: Candles
) -> None:
    await enter_long(private_exchange)
    trail = await protective_orders.place(private_exchange, spec(ProtectiveKind.TRAILING_STOP, rate=2.0))
    assert (trail.kind, trail.callback_rate, trail.status) == (ProtectiveKind.TRAILING_STOP, 2.0, "open")
    await candles.push(2000, 2100, 1995, 2090)  # trails up to 2100: level 2058
    assert await sim.positions(account.api_key) != {}
    assert by_client_id(await sim.orders(account.api_key))["tb1-1r0"]["stop_price"] == 2058.0
    await candles.push(2090, 2095, 2040, 2050)
    assert await sim.positions(account.api_key) == {}
    trades = await private_exchange.fetch_my_trades(ETH)
    assert trades[-1]["price"] == pytest.approx(2055.94)  # 2058 × (1 − 0.001), tick 0.01 down


async def test_watch_orders_receives_the_triggered_stop_order_trade_update(
    private_exchange: Exchange, sim: SimControl, account: Credentials, candles: Candles
) -> None:
    await enter_long(private_exchange)
    await protective_orders.place(private_exchange, spec(ProtectiveKind.STOP_LOSS, stop=1900.0))
    seen: list[dict[str, Any]] = []

    async def watch() -> None:
        while True:
            seen.extend(await private_exchange.watch_orders(ETH))

    watcher = asyncio.create_task(watch())
    try:
        await eventually(lambda: sim.running.state.hub.has_user_stream(account.api_key))
        await candles.push(1990, 1995, 1880, 1890)

        def filled_stop() -> dict[str, Any] | None:
            return next(
                (o for o in seen if o["info"].get("ot") == "STOP_MARKET" and o["status"] == "closed"), None
            )

        update = await eventually(filled_stop, timeout=10)
        assert update is not None
        assert (update["clientOrderId"], update["side"], update["filled"], update["average"]) == (
            "tb1-1s0", "sell", 1.0, 1898.1,
        )  # fmt: skip
        assert update["triggerPrice"] == 1900.0 and update["info"]["o"] == "MARKET"
        assert update["fee"]["cost"] == pytest.approx(1898.1 * 0.0004)
        # The algo order's own updates (ALGO_UPDATE) arrive too, under its algo id.
        finished = await eventually(
            lambda: next((o for o in seen if o["info"].get("X") == "FINISHED"), None), timeout=10
        )
        assert finished is not None
        assert finished["clientOrderId"] == "tb1-1s0" and finished["info"]["aid"]
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)


async def test_refusals_are_tradebot_errors(
    private_exchange: Exchange, sim: SimControl, account: Credentials, candles: Candles
) -> None:
    await enter_long(private_exchange)
    with pytest.raises(errors.Rejected) as immediate:  # a sell stop above the price fires at once
        await protective_orders.place(private_exchange, spec(ProtectiveKind.STOP_LOSS, stop=2100.0))
    assert immediate.value.code == "-2021"
    await protective_orders.place(private_exchange, spec(ProtectiveKind.STOP_LOSS, stop=1900.0))
    with pytest.raises(errors.Rejected) as duplicate:
        await protective_orders.place(private_exchange, spec(ProtectiveKind.STOP_LOSS, stop=1850.0))
    assert duplicate.value.code == "-4116"
    assert await protective_orders.find(private_exchange, ETH, "tb1-9s0") is None
    assert await protective_orders.cancel(private_exchange, ETH, "tb1-9s0") is False
    # Binance refuses conditional types at the plain order endpoint.
    with pytest.raises(errors.Rejected) as wrong_endpoint:
        with errors.translated():
            await private_exchange.fapiPrivatePostOrder(
                {"symbol": "ETHUSDT", "side": "SELL", "type": "STOP_MARKET", "quantity": "1", "stopPrice": "1900"}
            )
    assert wrong_endpoint.value.code == "-4120"
    statuses = [(o["type"], o["status"], o["reject_code"]) for o in await sim.orders(account.api_key)]
    assert statuses[1:] == [
        ("stop_market", "rejected", -2021), ("stop_market", "new", None), ("stop_market", "rejected", -4116),
        ("stop_market", "rejected", -4120),
    ]  # fmt: skip


async def test_an_unanswered_placement_is_settled_by_its_client_id(
    private_exchange: Exchange, sim: SimControl, account: Credentials, candles: Candles
) -> None:
    await enter_long(private_exchange)
    await sim.faults(fail_next_requests=1)  # the placement gets a 503: it may or may not have landed
    with pytest.raises(errors.Retryable):
        await protective_orders.place(private_exchange, spec(ProtectiveKind.STOP_LOSS, stop=1900.0))
    placed = await protective_orders.place(private_exchange, spec(ProtectiveKind.STOP_LOSS, stop=1900.0))
    assert placed.status == "open"
    assert [o["type"] for o in await sim.orders(account.api_key)].count("stop_market") == 1


async def test_a_position_is_liquidated_when_the_mark_crosses_its_liquidation_price(
    private_exchange: Exchange, sim: SimControl, account: Credentials, candles: Candles
) -> None:
    entry = await enter_long(private_exchange, leverage=20)
    assert entry == 2002.0
    [position] = await private_exchange.fetch_positions([ETH])
    # Isolated margin 2002 / 20 = 100.1; ETH's first bracket: 0.5 %, amount 0.
    liquidation = (2002 - 100.1) / (1 - 0.005)
    assert position["liquidationPrice"] == pytest.approx(liquidation)
    await protective_orders.place(private_exchange, spec(ProtectiveKind.STOP_LOSS, stop=1850.0))  # beyond it

    watcher = asyncio.create_task(private_exchange.watch_my_liquidations(ETH))
    try:
        await eventually(lambda: sim.running.state.hub.has_user_stream(account.api_key))
        await candles.push(1995, 2000, 1800, 1820)
        assert await sim.positions(account.api_key) == {}
        await asyncio.wait_for(watcher, 10)
        # Binance's order events for it: NEW, then the fill; ccxt keeps each in myLiquidations.
        filled = await eventually(
            lambda: [x for x in private_exchange.myLiquidations or [] if x["info"]["X"] == "FILLED"], timeout=10
        )
        assert [(x["price"], x["contracts"], x["side"]) for x in filled] == [(1901.9, 1.0, "sell")]
        assert filled[0]["info"]["c"].startswith("autoclose-")  # bankruptcy price: 2002 × (1 − 1/20)
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
    trades = await private_exchange.fetch_my_trades(ETH)
    assert (trades[-1]["side"], trades[-1]["price"], trades[-1]["fee"]["cost"]) == ("sell", 1901.9, 0.0)
    balance_after = (await private_exchange.fetch_balance())["USDT"]["total"]
    # 10,000 less the entry's fee (2002 × 0.0004) less exactly the position's margin, nothing more.
    assert balance_after == pytest.approx(10_000 - 0.8008 - 100.1)
    # The liquidation cancelled the stop that lay beyond it.
    assert await protective_orders.open_orders(private_exchange, ETH) == []
    assert by_client_id(await sim.orders(account.api_key))["tb1-1s0"]["status"] == "canceled"


async def test_the_random_walk_triggers_protective_orders_too(
    private_exchange: Exchange, sim: SimControl, account: Credentials, candles: Candles
) -> None:
    await enter_long(private_exchange)
    await protective_orders.place(private_exchange, spec(ProtectiveKind.TRAILING_STOP, rate=0.1))
    await sim.set_mode("random_walk", candle_seconds=0.05)

    async def flat() -> bool:
        return await sim.positions(account.api_key) == {}

    await eventually(flat, timeout=30, what="the trailing stop to fire on the walk")
    await sim.set_mode("manual")
    [listed] = [o for o in await sim.orders(account.api_key) if o["type"] == "trailing_stop_market"]
    assert listed["status"] == "filled"
    trades = await private_exchange.fetch_my_trades(ETH)
    # The walk moves continuously: the fill is the trailing level less 10 bps, on the 0.01 tick.
    level = Decimal(str(listed["stop_price"]))
    expected = (level * Decimal("0.999")).quantize(Decimal("0.01"), rounding="ROUND_FLOOR")
    assert trades[-1]["price"] == pytest.approx(float(expected), abs=0.01)


@pytest.mark.parametrize(
    ("leverage", "stop_pct", "bar", "reason"),
    [
        (5, 1.0, (2000.0, 2005.0, 1950.0, 1960.0), "stop_loss"),  # through the stop inside the candle
        (5, 1.0, (1900.0, 1910.0, 1890.0, 1905.0), "stop_loss"),  # opening beyond it: at the open
        (20, 10.0, (2000.0, 2005.0, 1800.0, 1820.0), "liquidation"),  # the stop lies beyond liquidation
    ],
)
async def test_the_backtest_exits_where_the_simulator_does(
    private_exchange: Exchange,
    sim: SimControl,
    account: Credentials,
    candles: Candles,
    leverage: int,
    stop_pct: float,
    bar: tuple[float, float, float, float],
    reason: str,
) -> None:
    """Same candles, same rule: the live stop (or liquidation) and the backtest's exit agree."""
    entry = await enter_long(private_exchange, leverage=leverage)
    stop_level, _ = protective_orders.protective_prices("long", entry, stop_pct, None)
    assert stop_level is not None
    stop_level = float(private_exchange.price_to_precision(ETH, stop_level))
    await protective_orders.place(private_exchange, spec(ProtectiveKind.STOP_LOSS, stop=stop_level))
    await candles.push(*bar)
    assert await sim.positions(account.api_key) == {}
    live_exit = (await private_exchange.fetch_my_trades(ETH))[-1]
    live_balance = (await private_exchange.fetch_balance())["USDT"]["total"]

    # The backtest: the long decided on the close at 2000 fills at the next open (2000) + 10 bps;
    # 1.001 % of 10,000 at 20x (or 5x) buys the simulator's 1 ETH.
    bars = [(2000.0, 2000.0, 2000.0, 2000.0), (2000.0, 2000.0, 2000.0, 2000.0), bar]
    o, h, lo, c = (np.array(x) for x in zip(*bars, strict=True))
    settings = BacktestSettings(
        initial_balance=10_000.0, fee_rate=0.0004, slippage_bps=10.0, order_size_pct=2002.0 / 10_000 / leverage * 100,
        leverage=float(leverage), stop_loss_pct=(1 - stop_level / entry) * 100, maintenance_margin_rate=0.005,
    )  # fmt: skip
    result = simulate(BacktestCandles.from_arrays(np.arange(3) * MINUTE_MS, o, h, lo, c),
                      np.array([1, 1, 1], dtype=np.int8), settings)  # fmt: skip
    t = result.trades
    assert float(t.entry_price[0]) == pytest.approx(entry) and float(t.amount[0]) == pytest.approx(1.0)
    assert ExitReason(int(t.exit_reason[0])).label == reason and int(t.exit_bar[0]) == 2
    tick = 0.01  # the simulator prints fills on ETH's tick, rounded against the taker
    backtest_exit = float(t.exit_price[0])
    assert backtest_exit - tick - 1e-9 <= live_exit["price"] <= backtest_exit + 1e-9
    assert result.final_balance == pytest.approx(live_balance, abs=tick)
