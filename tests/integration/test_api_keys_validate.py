"""POST /api-keys/{id}/validate against the exchange simulator through ccxt (no mocks)."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpClient

from tests.integration.auth_helpers import Client, bearer, problem, user_token
from tests.integration.test_api_keys_crud import create_key
from tests.processes import free_port
from tests.simulator_helpers import SimControl
from tradebot.config import Secrets, Settings
from tradebot.exchange.simulator import RunningSimulator
from tradebot.http.app import create_app

pytest_plugins = ("tests.simulator_fixtures",)


def _app(settings: Settings, secrets: Secrets, db: str, redis_url: str, exchange_url: str) -> web.Application:
    return create_app(
        settings.model_copy(update={"exchange_url": exchange_url}),
        secrets,
        database_url=db,
        redis_url=redis_url,
        replica_id="test-replica",
    )


@pytest.fixture
async def sim_client(
    aiohttp_client: AiohttpClient,
    settings: Settings,
    test_secrets: Secrets,
    clean_db: str,
    redis_url: str,
    simulator: RunningSimulator,
) -> Client:
    client: Client = await aiohttp_client(_app(settings, test_secrets, clean_db, redis_url, simulator.base_url))
    return client


async def validate(client: Client, token: str, key_id: int) -> Any:
    return await client.post(f"/api/v1/api-keys/{key_id}/validate", headers=bearer(token))


async def test_a_working_key_is_valid(sim_client: Client, sim: SimControl, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    # As in production (tradebot.logs.setup_logging): ccxt's DEBUG lines print request headers,
    # X-MBX-APIKEY included, so its logger never runs below WARNING.
    caplog.set_level(logging.WARNING, logger="ccxt")
    creds = await sim.create_account({"USDT": 10_000})
    _, token = await user_token(sim_client)
    key = await create_key(sim_client, token, api_key=creds.api_key, secret_key=creds.secret)
    r = await validate(sim_client, token, key["id"])
    assert r.status == 200, await r.text()
    body = await r.json()
    assert body["is_valid"] is True and body["validated_at"] is not None
    assert body["updated_at"] >= key["updated_at"]
    assert (await (await sim_client.get(f"/api/v1/api-keys/{key['id']}", headers=bearer(token))).json()) == body
    logs = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert creds.secret not in logs and creds.api_key not in logs


async def test_a_wrong_secret_or_unknown_key_is_invalid(sim_client: Client, sim: SimControl) -> None:
    creds = await sim.create_account({"USDT": 10})
    _, token = await user_token(sim_client)
    wrong_secret = await create_key(sim_client, token, api_key=creds.api_key, secret_key="0" * 64)
    unknown = await create_key(sim_client, token, api_key="nobody-knows-this-key", secret_key="1" * 64)
    for key in (wrong_secret, unknown):
        r = await validate(sim_client, token, key["id"])
        assert r.status == 200, await r.text()
        assert (await r.json())["is_valid"] is False


async def test_exchange_trouble_is_503_and_changes_nothing(sim_client: Client, sim: SimControl) -> None:
    creds = await sim.create_account({"USDT": 10})
    _, token = await user_token(sim_client)
    key = await create_key(sim_client, token, api_key=creds.api_key, secret_key=creds.secret)
    assert (await (await validate(sim_client, token, key["id"])).json())["is_valid"] is True
    await sim.faults(fail_next_requests=10)
    r = await validate(sim_client, token, key["id"])
    await problem(r, 503)
    # The earlier answer stands: an outage says nothing about the key.
    after = await (await sim_client.get(f"/api/v1/api-keys/{key['id']}", headers=bearer(token))).json()
    assert after["is_valid"] is True


async def test_unreachable_exchange_is_503(
    aiohttp_client: AiohttpClient, settings: Settings, test_secrets: Secrets, clean_db: str, redis_url: str
) -> None:
    client: Client = await aiohttp_client(
        _app(settings, test_secrets, clean_db, redis_url, f"http://127.0.0.1:{free_port()}")
    )
    _, token = await user_token(client)
    key = await create_key(client, token)
    await problem(await validate(client, token, key["id"]), 503)
    assert (await (await client.get(f"/api/v1/api-keys/{key['id']}", headers=bearer(token))).json())["is_valid"] is None


async def test_validation_is_rate_limited_per_user(
    aiohttp_client: AiohttpClient, settings: Settings, test_secrets: Secrets, clean_db: str, redis_url: str
) -> None:
    client: Client = await aiohttp_client(
        _app(settings, test_secrets, clean_db, redis_url, f"http://127.0.0.1:{free_port()}")
    )
    _, token = await user_token(client)
    key = await create_key(client, token)
    for _ in range(10):  # the first ten always go through (the bucket starts full)
        await problem(await validate(client, token, key["id"]), 503)
    # Then at most one more every 6 s: a busy machine may earn a refill or two on the way, no more.
    for _ in range(5):
        r = await validate(client, token, key["id"])
        if r.status == 429:
            break
    await problem(r, 429)
    assert int(r.headers["Retry-After"]) >= 1
