"""Redis gone: the runtime stops trading before its leases could expire elsewhere, says why in the
bot's state, and resumes on its own when Redis answers again. A private Redis, never the machine's."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from tests.integration.runtime_helpers import bot_status, eventually
from tests.processes import free_port, redis_server
from tests.runtime_fixtures import Trader, manual_simulator, start_bot
from tradebot.exchange.simulator import SimulatorConfig
from tradebot.runtime.bot_runtime import BotRuntime


@pytest.fixture
def simulator_config() -> SimulatorConfig:
    return manual_simulator()


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    port = free_port()
    with redis_server(port, tmp_path):
        yield port, tmp_path


@pytest.fixture
def redis_url(private_redis: tuple[int, Path]) -> str:
    return f"redis://127.0.0.1:{private_redis[0]}/0"


async def test_trading_is_suspended_visibly_and_resumes(
    runtime: BotRuntime, pool: asyncpg.Pool, trader: Trader, private_redis: tuple[int, Path]
) -> None:
    port, folder = private_redis
    bot = await start_bot(pool, runtime, trader)
    fence_before = await pool.fetchval("SELECT fence_token FROM bot_state WHERE bot_id = $1", bot)

    import redis as sync_redis

    sync_redis.Redis(port=port).shutdown(nosave=True)

    async def suspended() -> bool:
        row = await pool.fetchrow("SELECT status, last_error_message FROM bot_state WHERE bot_id = $1", bot)
        return bool(row and row["status"] == "starting" and "Redis unreachable" in (row["last_error_message"] or ""))

    await eventually(suspended, timeout=15, what="the bot to be suspended")
    assert bot not in runtime.supervisor.running()

    with redis_server(port, folder):
        await eventually(lambda: _running(pool, bot), timeout=20, what="the bot to resume")
        row = await pool.fetchrow("SELECT fence_token, last_error_message FROM bot_state WHERE bot_id = $1", bot)
        assert row["fence_token"] > fence_before and row["last_error_message"] is None


async def _running(pool: asyncpg.Pool, bot: int) -> bool:
    return await bot_status(pool, bot) == "running"
