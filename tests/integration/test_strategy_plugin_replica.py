"""End to end: a replica started with the example plugin installed (found by importlib.metadata
through its entry point, nothing patched) lists ``sma_cross`` in GET /strategies, backtests it and
runs a bot with it live on the simulator, trading exactly where its backtest over the same candles
does; without the plugin the name is a 422."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
from pathlib import Path

import asyncpg
import pytest

from tests.api_client import Api
from tests.integration.backtests_helpers import MINUTE_MS, T0, walk_candles
from tests.integration.runtime_helpers import START_MS, candle_rows
from tests.plugin_helpers import fake_install, plugin_env
from tests.processes import tradebot_run, wait_until
from tests.simulator_process import simulator_process


def _iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _env(database_url: str, redis_url: str, sim_url: str, tmp_path: Path, site: Path) -> dict[str, str]:
    return {
        **plugin_env(site),
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "TRADEBOT_EXCHANGE_URL": sim_url,
        "TRADEBOT_REDIS_PREFIX": f"plugin-{tmp_path.name}",
        "TRADEBOT_DATA_DIR": str(tmp_path / "var"),
        "TRADEBOT_JWT_SECRET": "p" * 48,
        "TRADEBOT_FERNET_KEYS": "ZmDfcTF7_60GrrY167zsiPd67pEvs0aGOv2oasOM1Pg=",
    }


def _body() -> dict[str, object]:
    return {
        "symbol": "BTCUSDT",
        "timeframe": "1m",
        "start_time": _iso(T0),
        "end_time": _iso(T0 + 300 * MINUTE_MS),
        "strategy": "sma_cross",
        "parameters": {"sma_period": 5, "allow_short": True},
        "initial_balance": 10_000,
    }


def test_an_installed_plugin_is_listed_and_backtested(clean_db: str, redis_url: str, tmp_path: Path) -> None:
    site = fake_install(tmp_path / "site", {"sma_cross": "tradebot_sma_cross:SMA_CROSS"})
    with simulator_process(tmp_path) as sim:
        sim.push(walk_candles(300))
        env = _env(clean_db, redis_url, sim.url, tmp_path, site)
        with tradebot_run(env, tmp_path) as replica:
            api = Api(replica.url).sign_up()
            items = api.call("GET", "/strategies", expect=200)["items"]
            sma = next(i for i in items if i["name"] == "sma_cross")
            assert sma["defaults"] == {"sma_period": 20} and sma["title"] == "SMA cross"
            assert sma["parameters"]["properties"]["sma_period"]["maximum"] == 1000
            backtest_id = api.call("POST", "/backtests", _body(), expect=202)["id"]

            def done() -> bool:
                return bool(api.call("GET", f"/backtests/{backtest_id}", expect=200)["status"] in ("done", "failed"))

            wait_until(done, 60, "the sma_cross backtest to finish")
            got = api.call("GET", f"/backtests/{backtest_id}", expect=200)
            assert got["status"] == "done", got
            assert got["strategy"] == "sma_cross" and got["parameters"]["sma_period"] == 5
            assert got["trades_count"] > 0
            bad = api.call("POST", "/backtests", {**_body(), "parameters": {"sma_period": 1}}, expect=422)
            assert [e["field"] for e in bad["errors"]] == ["parameters.sma_period"]
            assert "Traceback" not in replica.log()

        # Restarted without the plugin: the name is unknown again.
        without = {**env, "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
        with tradebot_run(without, tmp_path) as replica:
            api.base = replica.url
            names = [i["name"] for i in api.call("GET", "/strategies", expect=200)["items"]]
            assert "sma_cross" not in names
            bad = api.call("POST", "/backtests", _body(), expect=422)
            assert [e["field"] for e in bad["errors"]] == ["strategy"]


# SMA(5) with allow_short: flat, long from 104 (103 ties its SMA: still long), short from 96, long
# from 101, short from 100 to the end (the last candle changes nothing, so the backtest, which fills
# at the next open, has every fill the bot makes).
LIVE_CLOSES = [100.0] * 5 + [104.0, 108.0, 103.0, 96.0, 92.0, 95.0, 101.0, 107.0, 109.0, 100.0, 94.0, 93.0, 90.0]


def _orders_after_each_candle(closes: list[float], period: int) -> list[int]:
    """How many orders a bot has placed after each candle, from CONTRACT.md's words for sma_cross
    with allow_short (long above the SMA, short below, unchanged on a tie; a reversal is two orders)."""
    held, placed, out = 0, 0, []
    for t in range(len(closes)):
        if t >= period - 1:
            sma = sum(closes[t - period + 1 : t + 1]) / period
            want = 1 if closes[t] > sma else -1 if closes[t] < sma else held
            if want != held:
                placed += (held != 0) + (want != 0)
                held = want
        out.append(placed)
    return out


async def _last_candle_time(database_url: str, bot: int) -> int | None:
    conn = await asyncpg.connect(database_url)
    try:
        value = await conn.fetchval("SELECT last_candle_time FROM bot_state WHERE bot_id = $1", bot)
        return None if value is None else int(value)
    finally:
        await conn.close()


async def _trades(database_url: str, bot: int) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(database_url)
    try:
        return list(await conn.fetch("SELECT * FROM trades WHERE bot_id = $1 ORDER BY id", bot))
    finally:
        await conn.close()


async def test_an_installed_plugin_runs_live(clean_db: str, redis_url: str, tmp_path: Path) -> None:
    site = fake_install(tmp_path / "site", {"sma_cross": "tradebot_sma_cross:SMA_CROSS"})
    with simulator_process(tmp_path) as sim:
        api_key, secret = sim.account()
        with tradebot_run(_env(clean_db, redis_url, sim.url, tmp_path, site), tmp_path) as replica:
            api = Api(replica.url).sign_up()
            bot = api.create_bot(
                api.add_key(api_key, secret), strategy="sma_cross", ema_period=None, parameters={"sma_period": 5},
                max_daily_loss_pct=100,  # the backtest has no daily limits
            )
            got = api.call("GET", f"/bots/{bot}", expect=200)
            assert got["strategy"] == "sma_cross" and got["parameters"] == {"sma_period": 5}
            api.start(bot)
            wait_until(lambda: api.state(bot)["status"] == "running", 30, "the sma_cross bot to run")
            rows = candle_rows(LIVE_CLOSES)
            placed = _orders_after_each_candle(LIVE_CLOSES, 5)
            for i, row in enumerate(rows):
                sim.push([row])
                ts = int(row[0])
                decided = False
                # Decided once the state is saved for this candle and every order of it has reached
                # the exchange (a reversal's second leg comes after the first one's save), so the
                # next candle does not move the price under a leg still on its way.
                for _ in range(600):
                    if await _last_candle_time(clean_db, bot) == ts and len(sim.orders(api_key)) >= placed[i]:
                        decided = True
                        break
                    await asyncio.sleep(0.05)
                assert decided, f"no decision on candle {i}:\n{replica.log()[-3000:]}"

            trades = await _trades(clean_db, bot)
            assert len(trades) == 7, trades
            state = api.state(bot)
            assert state["status"] == "running" and state["position_side"] == "short"
            audit = [o for o in sim.orders(api_key) if o["status"] != "rejected"]
            assert [o["client_order_id"] for o in audit] == [t["client_order_id"] for t in trades]

            # The backtest of the same candles, same sizing and the simulator's fee, through the API.
            body = {
                "symbol": "BTCUSDT", "timeframe": "1m", "start_time": _iso(START_MS),
                "end_time": _iso(START_MS + len(LIVE_CLOSES) * MINUTE_MS), "strategy": "sma_cross",
                "parameters": {"sma_period": 5, "allow_short": True, "order_size_pct": 50, "leverage": 2},
                "initial_balance": 10_000, "fee_rate": 0.0004, "slippage_bps": 0,
            }
            backtest_id = api.call("POST", "/backtests", body, expect=202)["id"]
            wait_until(lambda: api.call("GET", f"/backtests/{backtest_id}", expect=200)["status"] in ("done", "failed"),
                       60, "the live bot's backtest")
            result = api.call("GET", f"/backtests/{backtest_id}", expect=200)
            assert result["status"] == "done", result
            fills: list[tuple[int, int, str, float, float]] = []
            for t in result["trades"]:
                long = t["side"] == "long"
                fills.append((t["entry_ts"], 1, "buy" if long else "sell", t["entry_price"], t["amount"]))
                if t["exit_reason"] != "end":
                    fills.append((t["exit_ts"], 0, "sell" if long else "buy", t["exit_price"], t["amount"]))
            fills.sort()  # at one open, a reversal closes before it opens
            assert [(t["side"], float(t["price"])) for t in trades] == [(f[2], f[3]) for f in fills]
            # Sizes: the backtest's, rounded down to the lot step (0.001 of about 100 BTC).
            assert [float(t["amount"]) for t in trades] == pytest.approx([f[4] for f in fills], rel=1e-4)
            assert "Traceback" not in replica.log()
