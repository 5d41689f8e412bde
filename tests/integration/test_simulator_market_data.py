"""ccxt's real binanceusdm (REST and ccxt.pro websockets) reading market data from the simulator."""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import time
from itertools import pairwise
from typing import Any

import aiohttp
import ccxt.async_support as ccxt
import pytest
from ccxt.async_support.base.exchange import Exchange

from tests.simulator_helpers import MINUTE_MS, Credentials, SimControl, flat_candles, minute_floor
from tests.timing import eventually
from tradebot.exchange.ccxt_factory import build_client
from tradebot.exchange.simulator import RunningSimulator, SimulatorConfig

BTC = "BTC/USDT:USDT"
# The fixtures (simulator, sim, account, exchange clients) until the project conftest registers them.
pytest_plugins = ("tests.simulator_fixtures",)

ETH = "ETH/USDT:USDT"


def now_ms() -> int:
    return int(time.time() * 1000)


async def test_load_markets_reads_filters_precision_and_limits(public_exchange: Exchange) -> None:
    markets = await public_exchange.load_markets()
    assert set(markets) == {BTC, ETH}
    btc = markets[BTC]
    assert (btc["id"], btc["type"], btc["linear"], btc["settle"], btc["active"]) == (
        "BTCUSDT",
        "swap",
        True,
        "USDT",
        True,
    )
    assert btc["precision"]["amount"] == 0.001 and btc["precision"]["price"] == 0.1
    assert btc["limits"]["amount"]["min"] == 0.001 and btc["limits"]["cost"]["min"] == 100
    assert abs(await public_exchange.fetch_time() - now_ms()) < 5_000


async def test_fetch_ohlcv_pages_through_pushed_history(public_exchange: Exchange, sim: SimControl) -> None:
    start = minute_floor(now_ms()) - 30 * MINUTE_MS
    closes = [100.0 + i for i in range(25)]
    await sim.push_klines("ETHUSDT", "1m", flat_candles(start, closes))

    pages: list[list[float]] = []
    since = start
    while True:
        page = await public_exchange.fetch_ohlcv(ETH, "1m", since=since, limit=10)
        if not page:
            break
        pages.extend(page)
        since = int(page[-1][0]) + MINUTE_MS
    assert [c[0] for c in pages] == [start + i * MINUTE_MS for i in range(25)]
    assert [c[4] for c in pages] == closes
    # Manual mode: the history is exactly the pushed candles, no forming candle after them.
    latest = await public_exchange.fetch_ohlcv(ETH, "1m", limit=3)
    assert [c[4] for c in latest] == closes[-3:]
    assert await public_exchange.fetch_ohlcv(BTC, "1m", limit=3) == []


async def test_pushed_candles_far_from_the_wall_clock_are_kept(public_exchange: Exchange, sim: SimControl) -> None:
    past = 1_500_000_000_000 - 1_500_000_000_000 % MINUTE_MS
    future = minute_floor(now_ms()) + 10 * 24 * 3600 * 1000
    await sim.push_klines("BTCUSDT", "5m", flat_candles(past, [50_000.0, 50_100.0], 5 * MINUTE_MS))
    await sim.push_klines("BTCUSDT", "5m", flat_candles(future, [51_000.0], 5 * MINUTE_MS))
    rows = await public_exchange.fetch_ohlcv(BTC, "5m", limit=10)
    assert [r[0] for r in rows] == [past, past + 5 * MINUTE_MS, future]
    ticker = await public_exchange.fetch_ticker(BTC)
    assert ticker["last"] == 51_000.0


async def test_watch_ohlcv_receives_each_pushed_candle(public_exchange: Exchange, sim: SimControl) -> None:
    start = minute_floor(now_ms())
    watcher = asyncio.create_task(public_exchange.watch_ohlcv(ETH, "1m"))
    await eventually(lambda: _subscribed(sim, "ethusdt@kline_1m"))
    await sim.push_klines("ETHUSDT", "1m", flat_candles(start, [2000.0]))
    first = await asyncio.wait_for(watcher, 5)
    assert first[-1][0] == start and first[-1][4] == 2000.0

    await sim.push_klines("ETHUSDT", "1m", flat_candles(start + MINUTE_MS, [2010.0]))
    second = await asyncio.wait_for(public_exchange.watch_ohlcv(ETH, "1m"), 5)
    assert second[-1][0] == start + MINUTE_MS and second[-1][4] == 2010.0
    stored = public_exchange.ohlcvs[ETH]["1m"]
    assert [c[0] for c in stored] == [start, start + MINUTE_MS]


async def _subscribed(sim: SimControl, stream: str) -> bool:
    return sim.running.state.hub.has_subscribers(stream)


async def test_kline_events_carry_binance_fields_and_the_closed_flag(
    simulator: RunningSimulator, sim: SimControl
) -> None:
    start = minute_floor(now_ms())
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(simulator.ws_url + "/market/ws/0") as ws,
    ):
        await ws.send_json({"method": "SUBSCRIBE", "params": ["btcusdt@kline_1m"], "id": 1})
        assert await ws.receive_json(timeout=5) == {"result": None, "id": 1}
        await sim.push_klines("BTCUSDT", "1m", [[start, 60000, 60100, 59900, 60050.5, 12.5]])
        event = await ws.receive_json(timeout=5)
        await ws.send_json({"method": "LIST_SUBSCRIPTIONS", "id": 2})
        assert await ws.receive_json(timeout=5) == {"result": ["btcusdt@kline_1m"], "id": 2}
    assert event["e"] == "kline" and event["s"] == "BTCUSDT"
    k = event["k"]
    assert (k["t"], k["T"], k["s"], k["i"], k["x"]) == (start, start + MINUTE_MS - 1, "BTCUSDT", "1m", True)
    assert (k["o"], k["h"], k["l"], k["c"], k["v"]) == ("60000", "60100", "59900", "60050.5", "12.5")
    assert set(k) >= {"f", "L", "n", "q", "V", "Q", "B"}


async def test_combined_stream_form_wraps_events(simulator: RunningSimulator, sim: SimControl) -> None:
    start = minute_floor(now_ms())
    url = simulator.ws_url + "/stream?streams=ethusdt@kline_1m"
    async with aiohttp.ClientSession() as session, session.ws_connect(url) as ws:
        await eventually(lambda: _subscribed(sim, "ethusdt@kline_1m"))
        await sim.push_klines("ETHUSDT", "1m", [[start, 10, 11, 9, 10.5, 1]])
        message = await ws.receive_json(timeout=5)
    assert message["stream"] == "ethusdt@kline_1m" and message["data"]["k"]["c"] == "10.5"


async def test_drop_websockets_fails_the_pending_watch_and_the_next_watch_reconnects(
    public_exchange: Exchange, sim: SimControl
) -> None:
    start = minute_floor(now_ms())
    await sim.push_klines("ETHUSDT", "1m", flat_candles(start, [2000.0]))
    pending = asyncio.create_task(public_exchange.watch_ohlcv(ETH, "1m"))
    await eventually(lambda: _subscribed(sim, "ethusdt@kline_1m"))
    await sim.faults(drop_websockets=True)
    with pytest.raises(ccxt.NetworkError):
        await asyncio.wait_for(pending, 5)

    again = asyncio.create_task(public_exchange.watch_ohlcv(ETH, "1m"))
    await eventually(lambda: _subscribed(sim, "ethusdt@kline_1m"))
    await sim.push_klines("ETHUSDT", "1m", flat_candles(start + MINUTE_MS, [2020.0]))
    candles = await asyncio.wait_for(again, 5)
    assert candles[-1][4] == 2020.0


async def test_unknown_endpoint_is_a_json_404_that_ccxt_does_not_retry(public_exchange: Exchange) -> None:
    with pytest.raises(ccxt.ExchangeError) as info:
        await public_exchange.fapiPublicGetOpenInterest({"symbol": "BTCUSDT"})
    assert not isinstance(info.value, ccxt.NetworkError)
    assert "-5000" in str(info.value) and "not served" in str(info.value)


class TestRandomWalk:
    @pytest.fixture
    def simulator_config(self) -> SimulatorConfig:
        return SimulatorConfig(port=0, mode="random_walk", candle_seconds=0.2, history_candles=600, seed=11)

    async def test_history_is_pre_generated_and_the_last_row_is_the_forming_candle(
        self, public_exchange: Exchange, simulator: RunningSimulator
    ) -> None:
        rows = await public_exchange.fetch_ohlcv(BTC, "1m", limit=1000)
        # 600 pre-generated closed candles and the forming one, plus any the clock has closed since the
        # start: it runs 300x here from the wall clock, so the first candle may close within a moment.
        assert len(rows) >= 601
        assert all(b[0] - a[0] == MINUTE_MS for a, b in pairwise(rows))
        forming = simulator.state.walk.forming("BTCUSDT")
        assert rows[-1][0] == forming.open_time
        hourly = await public_exchange.fetch_ohlcv(BTC, "1h", limit=50)
        assert 10 <= len(hourly) <= 12

    async def test_the_order_audit_keeps_wall_clock_times_while_the_exchange_clock_runs_fast(
        self, private_exchange: Exchange, simulator: RunningSimulator, sim: SimControl, account: Credentials
    ) -> None:
        """Order times follow the simulated clock; `/_sim/orders` received_at is when the request came
        in by the wall clock, so audits can set it beside their own (fences, ownership windows)."""
        first = simulator.state.walk.forming("BTCUSDT").open_time

        async def clock_ran_ahead() -> bool:
            return simulator.state.walk.forming("BTCUSDT").open_time >= first + 10 * MINUTE_MS

        await eventually(clock_ran_ahead)
        before = now_ms()
        order = await private_exchange.create_order(BTC, "market", "buy", 0.01, None, {"newClientOrderId": "wall-1"})
        after = now_ms()
        assert int(order["timestamp"]) - after >= 9 * MINUTE_MS  # the exchange's own time runs ahead
        [entry] = await sim.orders(account.api_key)
        received = int(dt.datetime.fromisoformat(entry["received_at"]).timestamp() * 1000)
        assert before - 1 <= received <= after + 1

    async def test_server_time_event_times_and_candle_times_follow_one_clock(
        self, public_exchange: Exchange, simulator: RunningSimulator, sim: SimControl
    ) -> None:
        """At 0.2 s per 1m candle the simulated clock runs 300x: server time keeps up with the candles."""
        started = now_ms()
        first = simulator.state.walk.forming("BTCUSDT").open_time

        async def ten_candles_later() -> bool:
            return simulator.state.walk.forming("BTCUSDT").open_time >= first + 10 * MINUTE_MS

        await eventually(ten_candles_later)
        before = (await public_exchange.fapiPublicGetTime())["serverTime"]
        rows = await public_exchange.fetch_ohlcv(BTC, "1m", limit=3)
        after = (await public_exchange.fapiPublicGetTime())["serverTime"]
        # The forming candle (the last row) is the one that contains the server's now.
        assert minute_floor(int(before)) <= rows[-1][0] <= minute_floor(int(after))
        assert int(before) - started >= 10 * MINUTE_MS - MINUTE_MS  # far ahead of the wall clock

        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(simulator.ws_url + "/market/ws/0") as ws,
        ):
            await ws.send_json({"method": "SUBSCRIBE", "params": ["btcusdt@kline_1m"], "id": 1})
            assert await ws.receive_json(timeout=5) == {"result": None, "id": 1}
            for _ in range(8):
                event = await ws.receive_json(timeout=5)
                if event["k"]["x"]:
                    assert event["E"] > event["k"]["T"]
                else:
                    assert event["k"]["t"] <= event["E"] <= event["k"]["T"]
        # Signed requests are still stamped with the wall clock, and accepted.
        account = await sim.create_account({"USDT": 100})
        private = build_client(
            "binanceusdm", base_url=simulator.base_url, api_key=account.api_key, secret=account.secret
        )
        try:
            assert (await private.fetch_balance())["USDT"]["total"] == 100
        finally:
            await private.close()

    async def test_watch_ohlcv_sees_updates_and_a_new_candle(self, public_exchange: Exchange) -> None:
        first = await asyncio.wait_for(public_exchange.watch_ohlcv(ETH, "1m"), 5)
        opened = first[-1][0]
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            await asyncio.wait_for(public_exchange.watch_ohlcv(ETH, "1m"), 5)
            if public_exchange.ohlcvs[ETH]["1m"][-1][0] > opened:
                break
        stored = public_exchange.ohlcvs[ETH]["1m"]
        assert stored[-1][0] >= opened + MINUTE_MS
        ticker = await public_exchange.fetch_ticker(ETH)
        assert ticker["last"] == stored[-1][4]


async def test_a_plain_async_support_client_reads_klines_too(simulator: RunningSimulator, sim: SimControl) -> None:
    start = minute_floor(now_ms())
    await sim.push_klines("BTCUSDT", "1m", flat_candles(start, [60_000.0, 60_100.0]))
    client = build_client("binanceusdm", base_url=simulator.base_url, streaming=False)
    try:
        assert not hasattr(client, "watch_ohlcv") or type(client).__module__.startswith("ccxt.async_support")
        rows = await client.fetch_ohlcv(BTC, "1m", limit=5)
    finally:
        await client.close()
    assert [r[4] for r in rows] == [60_000.0, 60_100.0]


class TestRandomWalkStream:
    @pytest.fixture
    def simulator_config(self) -> SimulatorConfig:
        return SimulatorConfig(port=0, mode="random_walk", candle_seconds=0.2, history_candles=30, seed=5)

    async def test_updates_are_open_until_the_final_closed_kline_then_the_next_candle_starts(
        self, simulator: RunningSimulator
    ) -> None:
        events: list[dict[str, Any]] = []
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(simulator.ws_url + "/market/ws/0") as ws,
        ):
            await ws.send_json({"method": "SUBSCRIBE", "params": ["btcusdt@kline_1m", "btcusdt@kline_5m"], "id": 7})
            assert await ws.receive_json(timeout=5) == {"result": None, "id": 7}
            # Read until two candles have closed: the second was watched from its opening to its close.
            while sum(1 for e in events if e["x"]) < 2:
                event = await ws.receive_json(timeout=5)
                if event["k"]["i"] == "1m":
                    events.append(event["k"])
        first_close = next(i for i, e in enumerate(events) if e["x"])
        final = events[-1]
        whole = events[first_close + 1 : -1]
        assert whole and all(e["t"] == final["t"] and e["x"] is False for e in whole)
        assert final["t"] == events[first_close]["t"] + MINUTE_MS
        assert whole[0]["o"] == events[first_close]["c"] == final["o"]
        closes = [float(e["c"]) for e in whole]
        assert float(final["l"]) <= min(closes) and max(closes) <= float(final["h"])


async def test_watch_ticker_and_two_symbols_on_one_connection(public_exchange: Exchange, sim: SimControl) -> None:
    start = minute_floor(now_ms())
    ticker_task = asyncio.create_task(public_exchange.watch_ticker(ETH))
    btc_task = asyncio.create_task(public_exchange.watch_ohlcv(BTC, "1m"))
    eth_task = asyncio.create_task(public_exchange.watch_ohlcv(ETH, "1m"))
    for stream in ("ethusdt@miniTicker", "btcusdt@kline_1m", "ethusdt@kline_1m"):  # watch_ticker uses miniTicker
        await eventually(functools.partial(_subscribed, sim, stream))
    await sim.push_klines("ETHUSDT", "1m", flat_candles(start, [2000.0, 2100.0]))
    await sim.push_klines("BTCUSDT", "1m", flat_candles(start, [60_000.0]))
    ticker, btc, eth = await asyncio.wait_for(asyncio.gather(ticker_task, btc_task, eth_task), 5)
    assert ticker["symbol"] == ETH and ticker["last"] == 2100.0
    assert btc[-1][4] == 60_000.0 and eth[-1][4] in (2000.0, 2100.0)

    await public_exchange.un_watch_ohlcv(BTC, "1m")
    await eventually(lambda: _unsubscribed(sim, "btcusdt@kline_1m"))


async def _unsubscribed(sim: SimControl, stream: str) -> bool:
    return not sim.running.state.hub.has_subscribers(stream)


def _month_opens(first_year: int, first_month: int, n: int) -> list[int]:
    import datetime as dt

    out = []
    for i in range(n):
        y, m = divmod(first_month - 1 + i, 12)
        out.append(int(dt.datetime(first_year + y, m + 1, 1, tzinfo=dt.UTC).timestamp() * 1000))
    return out


async def test_monthly_klines_over_rest_ccxt_and_the_stream(
    simulator: RunningSimulator, sim: SimControl, public_exchange: Exchange
) -> None:
    """1M candles open on the 1st and close at the next month's open - 1 (29 days in Feb 2024)."""
    opens = _month_opens(2023, 11, 6)  # Nov 2023 .. Apr 2024
    rows = [[t, 100.0 + i, 101.0 + i, 99.0 + i, 100.5 + i, 1.0] for i, t in enumerate(opens)]
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(simulator.ws_url + "/market/ws/0") as ws,
    ):
        await ws.send_json({"method": "SUBSCRIBE", "params": ["btcusdt@kline_1M"], "id": 1})
        assert await ws.receive_json(timeout=5) == {"result": None, "id": 1}
        await sim.push_klines("BTCUSDT", "1M", rows)
        events = [await ws.receive_json(timeout=5) for _ in rows]
        async with session.get(
            simulator.base_url + "/fapi/v1/klines", params={"symbol": "BTCUSDT", "interval": "1M", "limit": "10"}
        ) as resp:
            assert resp.status == 200
            raw = await resp.json()
    closes = [t - 1 for t in [*opens[1:], _month_opens(2024, 5, 1)[0]]]
    assert [(r[0], r[6]) for r in raw] == list(zip(opens, closes, strict=True))
    assert [(e["k"]["t"], e["k"]["T"], e["k"]["i"]) for e in events] == [
        (t, c, "1M") for t, c in zip(opens, closes, strict=True)
    ]
    assert raw[3][6] - raw[3][0] + 1 == 29 * 86_400_000  # February 2024
    ohlcv = await public_exchange.fetch_ohlcv(BTC, "1M", since=opens[1], limit=3)
    assert [r[0] for r in ohlcv] == opens[1:4]
