"""GET /bots/{id}/drift against a bot that really traded on the simulator (through ccxt, PostgreSQL,
Redis): the replay of its own candles expects exactly its signals, and the only price difference is
the simulator's known slippage. Someone else's bot is a 404; a bad window a 422 naming the field."""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from typing import Any

import asyncpg
import numpy as np
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from tests.integration.auth_helpers import bearer, problem, user_token
from tests.integration.runtime_helpers import MINUTE, START_MS, candle_rows, create_api_key, create_bot, push_and_wait
from tests.runtime_fixtures import manual_simulator
from tests.simulator_helpers import Credentials, SimControl
from tests.timing import eventually
from tradebot.backtests.drift import DriftConfig, DriftService
from tradebot.config import Secrets
from tradebot.exchange.simulator import SimulatorConfig
from tradebot.http.appkeys import BACKTEST_RUNNER, DRIFT
from tradebot.runtime.bot_runtime import BotRuntime
from tradebot.strategies.ema_cross import EmaCrossParams, ema_cross_signals
from tradebot.strategies.render import iso_time

SLIPPAGE_BPS = 5

# Crosses the EMA(5) up and down (reversals with allow_short), then keeps falling so that the last
# candle changes nothing: a target decided on the very last candle has no next open to fill at.
# Whole thousands: 5 bps of them lies on the 0.10 tick grid, so the fills carry no rounding.
CLOSES = [1000.0 * c for c in (100, 100, 100, 100, 100, 104, 108, 103, 96, 92, 95, 101, 107, 109, 100, 94, 93, 91, 90)]


@pytest.fixture
def simulator_config() -> SimulatorConfig:
    return dataclasses.replace(manual_simulator(), slippage_bps=Decimal(SLIPPAGE_BPS))


Client = TestClient[web.Request, web.Application]


async def _user(client: Client, tag: str) -> tuple[str, int]:
    _, token = await user_token(client, tag)
    me = await (await client.get("/api/v1/auth/me", headers=bearer(token))).json()
    return token, int(me["id"])


async def _drift(client: Client, token: str, bot: int, query: str) -> Any:
    return await client.get(f"/api/v1/bots/{bot}/drift?{query}", headers=bearer(token))


async def test_a_bot_that_traded_on_the_simulator_drifts_by_its_slippage_only(
    runtime: BotRuntime, runtime_client: Client, pool: asyncpg.Pool, sim: SimControl, account: Credentials,
    test_secrets: Secrets,
) -> None:
    client = runtime_client
    token, user_id = await _user(client, "drift")
    key = await create_api_key(pool, user_id, account, test_secrets)
    bot = await create_bot(pool, user_id, key, ema_period=5, allow_short=True)
    runtime.poke()

    async def running() -> bool:
        return bool(await pool.fetchval("SELECT status FROM bot_state WHERE bot_id = $1", bot) == "running")

    await eventually(running, what="the bot to run")
    target = ema_cross_signals(np.array(CLOSES), EmaCrossParams(5, True)).target
    assert target[-1] == target[-2]
    for i, row in enumerate(candle_rows(CLOSES)):
        await push_and_wait(runtime, sim, bot, row, what=f"a decision on candle {i}")

    async def fees_known() -> bool:
        return not await pool.fetchval("SELECT count(*) FROM trades WHERE bot_id = $1 AND fee IS NULL", bot)

    await eventually(fees_known, timeout=30, what="the exchange's fees to be read")
    trades = await pool.fetch("SELECT * FROM trades WHERE bot_id = $1 ORDER BY id", bot)
    assert len(trades) >= 6  # entries, reversals: something to compare

    window = f"since={iso_time(START_MS)}&until={iso_time(START_MS + len(CLOSES) * MINUTE)}"
    r = await _drift(client, token, bot, window)
    assert r.status == 200, await r.text()
    report = await r.json()
    s = report["summary"]
    assert (s["missing_signals"], s["extra_signals"], s["signal_differences"]) == (0, 0, 0), report["trades"]
    assert s["matched"] == s["expected_fills"] == s["actual_fills"] == len(trades)
    assert sorted(t["trade_id"] for t in report["trades"]) == [t["id"] for t in trades]
    # Each fill's price differs from the replay's (the next open, here the deciding close) by exactly
    # the simulator's slippage, against the bot.
    for line in report["trades"]:
        assert line["slippage_bps"] == pytest.approx(SLIPPAGE_BPS, abs=1e-6), line
    assert s["mean_slippage_bps"] == pytest.approx(SLIPPAGE_BPS) and s["fees_unknown"] == 0
    # The simulator charges the replay's fee rate: fees differ only by the fee on the slippage (more
    # on a buy, less on a sell).
    fee_on_slippage = sum(0.0004 * t["amount"] * (t["actual_price"] - t["expected_price"]) for t in report["trades"])
    assert s["fee_difference"] == pytest.approx(fee_on_slippage, abs=1e-6)
    assert s["pnl_gap"] == pytest.approx(s["live_net_pnl"] - s["expected_net_pnl"])
    # The gap is what the slippage cost on the closed legs plus its fees: never more than all of it.
    cost = sum(t["amount"] * abs(t["actual_price"] - t["expected_price"]) for t in report["trades"])
    assert -(cost + abs(s["fee_difference"])) - 1e-6 <= s["pnl_gap"] < 0
    assert report["warning"] is None or abs(s["pnl_gap_bps"]) > report["threshold_bps"]

    # Someone else's bot does not exist for this user; neither does a nonsense id.
    other, _ = await _user(client, "other")
    await problem(await _drift(client, other, bot, window), 404)
    await problem(await _drift(client, token, 999_999_999, window), 404)
    for query, field in [
        ("since=yesterday", "since"),
        ("since=1767225600", "since"),
        (f"since={iso_time(START_MS)}&until={iso_time(START_MS)}", "until"),
        (f"until={iso_time(START_MS)}&since={iso_time(START_MS + MINUTE)}", "until"),
        ("since=1990-01-01T00:00:00Z", "since"),
        ("since=2026-01-01T00:00:00Z&until=2099-01-01T00:00:00Z", "since"),  # too many candles
        ("window=1d", "window"),
    ]:
        body = await problem(await _drift(client, token, bot, query), 422)
        assert [e["field"] for e in body["errors"]] == [field], (query, body)

    # The nightly report is stored, and a gap past the threshold is a warning in the bot's state.
    r = await client.get(f"/api/v1/bots/{bot}/drift/last", headers=bearer(token))
    await problem(r, 404)
    strict = DriftService(pool, client.app[BACKTEST_RUNNER].loader, DriftConfig(warn_gap_bps=0.01))
    until = START_MS + len(CLOSES) * MINUTE
    stored = await strict.store_nightly(bot, _dt(until), hours=1)
    assert stored is not None and stored.summary.signal_differences == 0
    state = await (await client.get(f"/api/v1/bots/{bot}/state", headers=bearer(token))).json()
    assert state["drift_warning"] is not None and "bps of the traded notional" in state["drift_warning"]
    r = await client.get(f"/api/v1/bots/{bot}/drift/last", headers=bearer(token))
    assert r.status == 200
    last = await r.json()
    assert last["summary"]["matched"] == len(trades) and last["warning"] == state["drift_warning"]
    await problem(await client.get(f"/api/v1/bots/{bot}/drift/last", headers=bearer(other)), 404)
    # The app's own threshold (50 bps) is not crossed by 5 bps of slippage: the warning clears.
    await client.app[DRIFT].store_nightly(bot, _dt(until), hours=1)
    state = await (await client.get(f"/api/v1/bots/{bot}/state", headers=bearer(token))).json()
    assert state["drift_warning"] is None


def _dt(ms: int) -> Any:
    import datetime as dt

    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)
