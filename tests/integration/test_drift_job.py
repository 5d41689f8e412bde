"""The nightly drift job (tradebot.runtime.drift_job) on a real PostgreSQL: only the leader runs it,
only from its hour on, once per bot and day (recorded in job_runs, so a new leader does not redo
it), for the bots that are active or traded in the window; a failed report is retried."""

from __future__ import annotations

import datetime as dt
from typing import Any

import asyncpg
import pytest
from pytest_aiohttp import AiohttpClient

from tests.integration.runtime_helpers import create_bot, create_user
from tests.runtime_fixtures import FAST, manual_simulator
from tests.timing import ManualClock, eventually
from tradebot.config import Secrets, Settings
from tradebot.exchange.simulator import RunningSimulator, SimulatorConfig
from tradebot.http.app import create_app
from tradebot.runtime.drift_job import DriftJob, DriftSchedule
from tradebot.runtime_context import runtime_context

DAY = dt.datetime(2026, 3, 10, tzinfo=dt.UTC)


@pytest.fixture
def simulator_config() -> SimulatorConfig:
    return manual_simulator()


class Reports:
    """Stands in for the drift service (whose own test replays real trades on the simulator)."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, dt.datetime, int]] = []
        self.failing: set[int] = set()

    async def store_nightly(self, bot_id: int, until: dt.datetime, hours: int) -> None:
        self.calls.append((bot_id, until, hours))
        if bot_id in self.failing:
            raise RuntimeError("candles unreadable")


def _at(hour: int, minute: int = 0) -> int:
    return int((DAY + dt.timedelta(hours=hour, minutes=minute)).timestamp() * 1000)


async def test_the_leader_reports_each_bot_once_a_night(pool: asyncpg.Pool) -> None:
    user = await create_user(pool)
    active = await create_bot(pool, user, None, active=True)
    traded = await create_bot(pool, user, None, active=False, symbol="ETH/USDT:USDT")
    idle = await create_bot(pool, user, None, active=False, symbol="SOL/USDT:USDT")
    deleted = await create_bot(pool, user, None, active=False, symbol="XRP/USDT:USDT")
    await pool.execute("UPDATE bot_configs SET deleted_at = now() WHERE id = $1", deleted)
    for bot in (traded, deleted):
        cid = f"tb{bot}-1-1o"
        order = await pool.fetchval(
            "INSERT INTO orders (bot_id, user_id, client_order_id, symbol, side, amount, intent, signal_seq, "
            "fence_token, status) VALUES ($1, $2, $3, 'ETH/USDT:USDT', 'buy', 1, 'open_long', 1, 1, 'filled') "
            "RETURNING id", bot, user, cid)
        await pool.execute(
            "INSERT INTO trades (bot_id, user_id, order_id, symbol, side, price, amount, fee, client_order_id, "
            "created_at) VALUES ($1, $2, $3, 'ETH/USDT:USDT', 'buy', 100, 1, 0.04, $4, $5)",
            bot, user, order, cid, DAY - dt.timedelta(hours=3))

    leading = False
    clock = ManualClock(wall_ms=_at(0, 30))
    reports = Reports()
    reports.failing.add(traded)
    job = DriftJob(pool, reports, is_leader=lambda: leading, clock=clock, replica_id="replica-a",
                   schedule=DriftSchedule(run_at_hour=1, window_hours=24))

    assert await job.run_once() == 0 and reports.calls == []  # not the leader
    leading = True
    assert await job.run_once() == 0 and reports.calls == []  # before the hour
    clock.wall_ms = _at(1, 5)
    assert await job.run_once() == 1
    assert reports.calls == [(active, DAY, 24), (traded, DAY, 24)]
    assert job.failed == 1 and idle not in [c[0] for c in reports.calls] and deleted not in [c[0] for c in reports.calls]

    # A new leader (another replica, the same job_runs) redoes only what failed, and then nothing.
    reports.failing.clear()
    reports.calls.clear()
    other = DriftJob(pool, reports, is_leader=lambda: True, clock=clock, replica_id="replica-b",
                     schedule=DriftSchedule(run_at_hour=1, window_hours=24))
    assert await other.run_once() == 1 and reports.calls == [(traded, DAY, 24)]
    assert await other.run_once() == 0 and await job.run_once() == 0
    runs = await pool.fetch("SELECT run_key, replica_id FROM job_runs WHERE job = 'drift_report'")
    # A set: run keys are text, so bots 9 and 10 would sort "10" before "9".
    assert {(r["run_key"], r["replica_id"]) for r in runs} == {
        (f"2026-03-10:{active}", "replica-a"), (f"2026-03-10:{traded}", "replica-b")}

    # The next night reports again.
    clock.wall_ms = _at(25)
    reports.calls.clear()
    assert await job.run_once() == 1 and reports.calls == [(active, DAY + dt.timedelta(days=1), 24)]


async def test_a_replica_leading_the_cluster_stores_the_nightly_reports(
    aiohttp_client: AiohttpClient, settings: Settings, test_secrets: Secrets, clean_db: str, redis_url: str,
    simulator: RunningSimulator, pool: asyncpg.Pool,
) -> None:
    """Wired in the runtime: the leader's job reports a bot that traded yesterday, and its state warns."""
    user = await create_user(pool)
    bot = await create_bot(pool, user, None, active=False)
    cid = f"tb{bot}-1-1o"
    order = await pool.fetchval(
        "INSERT INTO orders (bot_id, user_id, client_order_id, symbol, side, amount, intent, signal_seq, fence_token, "
        "status, candle_time) VALUES ($1, $2, $3, 'BTC/USDT:USDT', 'buy', 1, 'open_long', 1, 1, 'filled', $4) "
        "RETURNING id", bot, user, cid, _at(-3))
    await pool.execute(
        "INSERT INTO trades (bot_id, user_id, order_id, symbol, side, price, amount, fee, client_order_id, created_at) "
        "VALUES ($1, $2, $3, 'BTC/USDT:USDT', 'buy', 100, 1, 0.04, $4, $5)",
        bot, user, order, cid, DAY - dt.timedelta(hours=3))
    clock = ManualClock(real_time=True, wall_ms=_at(1, 5))
    settings = settings.model_copy(update={"exchange_url": simulator.base_url, "runtime_enabled": True,
                                           "drift_nightly": True, "drift_warn_gap_bps": 1.0})
    app = create_app(settings, test_secrets, database_url=clean_db, redis_url=redis_url, replica_id="replica-n",
                     extra_contexts=[runtime_context(timing=FAST, clock=clock)])
    await aiohttp_client(app)

    async def reported() -> Any:
        return await pool.fetchrow("SELECT * FROM bot_drift_reports WHERE bot_id = $1", bot)

    row = await eventually(reported, what="the nightly drift report")
    assert row["until"] == DAY and row["since"] == DAY - dt.timedelta(hours=24)
    # The simulator has no candles of that day: the replay expected nothing, the bot's buy is extra.
    assert row["report"]["summary"]["extra_signals"] == 1 and row["report"]["trades"][0]["trade_id"] is not None
    warning = await pool.fetchval("SELECT drift_warning FROM bot_state WHERE bot_id = $1", bot)
    assert warning is not None and "1 extra signals" in warning
    assert await pool.fetchval("SELECT replica_id FROM job_runs WHERE job = 'drift_report'") == "replica-n"
