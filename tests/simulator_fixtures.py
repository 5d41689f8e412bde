"""Fixtures for tests that talk to the exchange simulator through ccxt (a pytest plugin module).

`simulator` runs one in-process simulator per test (manual mode, free port); `sim` is a small client
for its `/_sim/` control API; `account` creates a funded API key; `exchange_factory`,
`public_exchange` and `private_exchange` hand out real ccxt `binanceusdm` clients pointed at it and
close them at teardown; `exchange_client` is an API test client whose app reads markets from it.
Register with `pytest_plugins = ("tests.simulator_fixtures",)`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from ccxt.async_support.base.exchange import Exchange
from pytest_aiohttp import AiohttpClient

from tests.simulator_helpers import Credentials, SimControl
from tradebot.config import Secrets, Settings
from tradebot.exchange.ccxt_factory import ExchangeClientFactory
from tradebot.exchange.simulator import RunningSimulator, SimulatorConfig, running_simulator
from tradebot.http.app import create_app


@pytest.fixture
def simulator_config() -> SimulatorConfig:
    """Override in a test module to change the simulator's settings."""
    return SimulatorConfig(port=0, mode="manual", history_candles=200, seed=7)


@pytest.fixture
async def simulator(simulator_config: SimulatorConfig) -> AsyncIterator[RunningSimulator]:
    async with running_simulator(simulator_config) as running:
        yield running


@pytest.fixture
async def sim(simulator: RunningSimulator) -> AsyncIterator[SimControl]:
    async with aiohttp.ClientSession() as session:
        yield SimControl(simulator, session)


@pytest.fixture
async def account(sim: SimControl) -> Credentials:
    return await sim.create_account({"USDT": 10_000})


@pytest.fixture
async def exchange_factory(simulator: RunningSimulator) -> AsyncIterator[ExchangeClientFactory]:
    factory = ExchangeClientFactory(simulator.base_url)
    try:
        yield factory
    finally:
        await factory.close()


@pytest.fixture
async def public_exchange(exchange_factory: ExchangeClientFactory) -> Exchange:
    return exchange_factory.public_client("binanceusdm")


@pytest.fixture
async def private_exchange(exchange_factory: ExchangeClientFactory, account: Credentials) -> Exchange:
    return exchange_factory.private_client("binanceusdm", account.api_key, account.secret)


@pytest.fixture
async def exchange_app(
    settings: Settings, test_secrets: Secrets, clean_db: str, redis_url: str, simulator: RunningSimulator
) -> web.Application:
    with_exchange = settings.model_copy(update={"exchange_url": simulator.base_url})
    return create_app(with_exchange, test_secrets, database_url=clean_db, redis_url=redis_url, replica_id="t")


@pytest.fixture
async def exchange_client(
    aiohttp_client: AiohttpClient, exchange_app: web.Application
) -> TestClient[web.Request, web.Application]:
    return await aiohttp_client(exchange_app)
