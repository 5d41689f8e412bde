"""Shared fixtures: real PostgreSQL and Redis, never mocks.

One fresh database per test session (migrated once, dropped at the end) and one Redis key prefix per
test, so test runs can share the machine's servers with each other and with a developer's replica.
Tables are emptied before each test that asks for the app or the pool.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from aiohttp.test_utils import TestClient
from cryptography.fernet import Fernet
from pytest_aiohttp import AiohttpClient

from tradebot import db
from tradebot.config import Secrets, Settings
from tradebot.http.app import create_app
from tradebot.services import ResolvedServices, drop_database, ensure_database, resolve_services

pytest_plugins = ("tests.simulator_fixtures", "tests.runtime_fixtures")

TABLES = (
    "users, revoked_tokens, api_keys, bot_configs, bot_state, bot_ownership, orders, trades, backtests, "
    "candles, candle_coverage, job_runs, webhooks, notification_preferences, notification_events, "
    "webhook_deliveries, mail_deliveries"
)


@pytest.fixture(scope="session")
def services() -> Iterator[ResolvedServices]:
    """PostgreSQL and Redis found the way a replica finds them: env URL, local default, or embedded."""
    base = Settings.model_validate(
        {
            "DATABASE_URL": os.environ.get("DATABASE_URL") or None,
            "REDIS_URL": os.environ.get("REDIS_URL") or None,
            "env": "test",
            "data_dir": os.environ.get("TRADEBOT_TEST_DATA_DIR") or Path("var/test").resolve(),
        }
    )
    resolved = asyncio.run(resolve_services(base))
    yield resolved
    resolved.close()


@pytest.fixture(scope="session")
def database_url(services: ResolvedServices) -> Iterator[str]:
    """A database of its own for this test session, with every migration applied."""
    name = f"tradebot_test_{secrets.token_hex(4)}"
    url = urlunsplit(urlsplit(services.database_url)._replace(path=f"/{name}"))
    asyncio.run(ensure_database(url))
    db.apply_migrations_sync(url)
    yield url

    asyncio.run(drop_database(url))


@pytest.fixture(scope="session")
def redis_url(services: ResolvedServices) -> str:
    return services.redis_url


@pytest.fixture
def redis_prefix() -> str:
    return f"test-{secrets.token_hex(4)}"


@pytest.fixture
def test_secrets() -> Secrets:
    return Secrets(jwt_secret=secrets.token_urlsafe(48), fernet_keys=(Fernet.generate_key().decode(),), ephemeral=True)


@pytest.fixture
def settings(database_url: str, redis_url: str, redis_prefix: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings.model_validate(
        {
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "env": "test",
            "redis_prefix": redis_prefix,
            "data_dir": tmp_path_factory.mktemp("var"),
            "outbox_dir": tmp_path_factory.mktemp("outbox"),
        }
    )


async def _truncate(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(f"TRUNCATE {TABLES} CASCADE")
    finally:
        await conn.close()


def truncate_tables(url: str) -> None:
    """Every table emptied, for tests outside an event loop (those starting replica processes)."""
    asyncio.run(_truncate(url))


@pytest.fixture
async def clean_db(database_url: str) -> str:
    await _truncate(database_url)
    return database_url


@pytest.fixture
async def pool(clean_db: str) -> AsyncIterator[asyncpg.Pool]:
    p = await db.create_pool(clean_db, min_size=1, max_size=5)
    yield p
    await p.close()


@pytest.fixture
async def redis_client(redis_url: str, redis_prefix: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    keys = [k async for k in client.scan_iter(match=f"{redis_prefix}:*", count=1000)]
    if keys:
        await client.delete(*keys)
    await client.aclose()


@pytest.fixture
async def app(settings: Settings, test_secrets: Secrets, clean_db: str, redis_url: str) -> web.Application:
    return create_app(settings, test_secrets, database_url=clean_db, redis_url=redis_url, replica_id="test-replica")


@pytest.fixture
async def client(aiohttp_client: AiohttpClient, app: web.Application) -> TestClient[web.Request, web.Application]:
    return await aiohttp_client(app)
