"""A runtime loop that crashes is loud and safe: logged at once, counted in /metrics, and the
replica stands down (bots handed over, leases released, no bot taken again, /readyz 503)."""

from __future__ import annotations

import logging
import time
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient

from tests.runtime_fixtures import FAST, Trader, manual_simulator, start_bot
from tests.timing import eventually
from tradebot.config import Secrets, Settings
from tradebot.exchange.simulator import RunningSimulator, SimulatorConfig
from tradebot.http.app import create_app
from tradebot.http.appkeys import RUNTIME
from tradebot.runtime.bot_runtime import BotRuntime
from tradebot.runtime_context import runtime_context


@pytest.fixture
def simulator_config() -> SimulatorConfig:
    return manual_simulator()


async def test_a_bug_in_lease_supervision_stands_the_replica_down(
    runtime_client: TestClient,  # type: ignore[type-arg]
    runtime: BotRuntime, pool: asyncpg.Pool, trader: Trader, redis_client: aioredis.Redis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    bot = await start_bot(pool, runtime, trader)
    r = await runtime_client.get("/readyz")
    assert r.status == 200 and (await r.json())["runtime"] == "ok"

    async def buggy_kill(bot_id: int) -> None:
        raise RuntimeError("a bug in kill")

    runtime.supervisor.kill = buggy_kill  # type: ignore[method-assign]
    # Another owner's value in the lease key: the next renewal finds the lease lost and kills the bot.
    await redis_client.set(runtime.leases.lease_key(bot), "someone-else")

    async def stood_down() -> bool:
        return runtime.health.faulted and not runtime.supervisor.running() and not runtime.leases.held()

    with caplog.at_level(logging.CRITICAL, logger="tradebot.runtime.supervised"):
        await eventually(stood_down, what="the runtime to stand down")
        assert any("runtime-leases crashed" in rec.getMessage() and rec.exc_info for rec in caplog.records)
    assert runtime.health.fault is not None and "a bug in kill" in runtime.health.fault

    r = await runtime_client.get("/readyz")
    body = await r.json()
    assert r.status == 503 and body["status"] == "unavailable" and body["runtime"].startswith("faulted: ")
    text = await (await runtime_client.get("/metrics")).text()
    assert 'tradebot_runtime_loop_crashes_total{task="runtime-leases"} 1.0' in text
    assert "tradebot_runtime_faulted 1.0" in text

    # Still active in the database, but this replica takes it no more: another replica will.
    await redis_client.delete(runtime.leases.lease_key(bot))
    runtime.poke()
    await runtime.reconcile_once()
    assert not runtime.supervisor.running()
    row = await pool.fetchrow("SELECT is_active FROM bot_configs WHERE id = $1", bot)
    assert row is not None and row["is_active"]


async def test_a_loop_that_returns_is_a_crash_too(
    runtime_client: TestClient,  # type: ignore[type-arg]
    runtime: BotRuntime,
) -> None:
    async def ends() -> None:
        return None

    runtime.tasks.spawn("runtime-test-loop", ends())

    async def faulted() -> bool:
        return runtime.health.faulted

    await eventually(faulted, what="the runtime to fault")
    assert runtime.tasks.crashes == {"runtime-test-loop": 1}
    assert runtime.health.fault is not None and "LoopEnded" in runtime.health.fault


async def test_a_stood_down_replicas_bots_resume_on_another_replica_at_once(
    aiohttp_client: Any, settings: Settings, test_secrets: Secrets, clean_db: str, redis_url: str,
    simulator: RunningSimulator, runtime: BotRuntime, pool: asyncpg.Pool, trader: Trader,
) -> None:
    bot = await start_bot(pool, runtime, trader)
    other_settings = settings.model_copy(update={"exchange_url": simulator.base_url, "runtime_enabled": True})
    other_app = create_app(other_settings, test_secrets, database_url=clean_db, redis_url=redis_url,
                           replica_id="replica-b", extra_contexts=[runtime_context(timing=FAST)])
    other = (await aiohttp_client(other_app)).app[RUNTIME]
    assert bot in runtime.supervisor.running() and not other.supervisor.running()

    async def broken() -> None:
        raise RuntimeError("a bug in a runtime loop")

    started = time.monotonic()
    runtime.tasks.spawn("runtime-test-loop", broken())

    async def moved() -> bool:
        row = await pool.fetchrow("SELECT status, replica_id FROM bot_state WHERE bot_id = $1", bot)
        return bot in other.supervisor.running() and row is not None and tuple(row) == ("running", "replica-b")

    await eventually(moved, what="the bot to run on the other replica")
    took = time.monotonic() - started
    print(f"bot resumed on the other replica {took:.2f}s after the crash")
    assert runtime.health.faulted and not runtime.supervisor.running() and not runtime.leases.held()
