"""Fixtures for runtime tests: an app with the bot runtime, pointed at the in-process simulator.

Registered by tests/conftest.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient

from tests.integration.runtime_helpers import create_api_key, create_bot, create_user
from tests.simulator_helpers import Credentials
from tradebot.config import Secrets, Settings
from tradebot.exchange.simulator import RunningSimulator, SimulatorConfig
from tradebot.http.app import create_app
from tradebot.http.appkeys import RUNTIME
from tradebot.runtime.bot_runtime import BotRuntime, RuntimeTiming
from tradebot.runtime.clock import Clock, SystemClock
from tradebot.runtime_context import runtime_context

FAST = RuntimeTiming(reconcile_interval_s=0.2, renew_interval_s=0.5, tick_interval_s=0.2, handover_timeout_s=5.0)


def manual_simulator() -> SimulatorConfig:
    """Manual mode with no pre-made history: the candles a test pushes are all there is."""
    return SimulatorConfig(port=0, mode="manual", history_candles=0, seed=3)


@pytest.fixture
def runtime_clock() -> Clock:
    """Override to control the runtime's wall clock (e.g. with a ManualClock)."""
    return SystemClock()


@pytest.fixture
async def runtime_client(
    aiohttp_client: AiohttpClient, settings: Settings, test_secrets: Secrets, clean_db: str, redis_url: str,
    simulator: RunningSimulator, runtime_clock: Clock,
) -> TestClient[web.Request, web.Application]:
    """A test client of an app running the bot runtime against the in-process simulator."""
    settings = settings.model_copy(update={"exchange_url": simulator.base_url, "runtime_enabled": True})
    app = create_app(settings, test_secrets, database_url=clean_db, redis_url=redis_url, replica_id="replica-a",
                     extra_contexts=[runtime_context(timing=FAST, clock=runtime_clock)])
    return await aiohttp_client(app)


@pytest.fixture
def runtime_app(runtime_client: TestClient[web.Request, web.Application]) -> web.Application:
    return runtime_client.app


@pytest.fixture
def runtime(runtime_app: web.Application) -> BotRuntime:
    return runtime_app[RUNTIME]


@dataclass
class Trader:
    user_id: int
    key_id: int
    creds: Credentials


@pytest.fixture
async def trader(pool: asyncpg.Pool, account: Credentials, test_secrets: Secrets) -> Trader:
    user = await create_user(pool)
    key = await create_api_key(pool, user, account, test_secrets)
    return Trader(user, key, account)


async def start_bot(pool: asyncpg.Pool, runtime: BotRuntime, trader: Trader, **settings: Any) -> int:
    from tests.integration.runtime_helpers import bot_status, eventually

    bot = await create_bot(pool, trader.user_id, trader.key_id, **settings)
    runtime.poke()

    async def running() -> bool:
        return await bot_status(pool, bot) == "running"

    await eventually(running, what=f"bot {bot} to run")
    return bot
