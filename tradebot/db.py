"""PostgreSQL: the asyncpg pool, transactions, and yoyo migrations.

No ORM: queries are SQL next to the code that needs them. json/jsonb go through orjson both ways,
and numeric comes back as Decimal (money is never silently a float inside the database layer).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import orjson

from tradebot.config import ConfigError

log = logging.getLogger(__name__)

Pool = asyncpg.Pool
Connection = asyncpg.Connection


def _dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


async def _init_connection(conn: asyncpg.Connection) -> None:
    for typename in ("json", "jsonb"):
        await conn.set_type_codec(typename, encoder=_dumps, decoder=orjson.loads, schema="pg_catalog")


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Nothing to undo when a connection goes back to the pool: asyncpg has already rolled back any
    open transaction, and tradebot keeps no session state (no LISTEN, SET, session advisory lock or
    cursor outside a transaction). asyncpg's default reset is a round trip to the server on every
    release, as long as the query a request came for."""


async def create_pool(url: str, *, min_size: int = 2, max_size: int = 20) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        url,
        min_size=min_size,
        max_size=max_size,
        init=_init_connection,
        reset=_keep_session,
        command_timeout=30,
        # Prepared statements are cached per connection; a bounded cache keeps memory flat.
        statement_cache_size=256,
    )
    assert pool is not None
    return pool


@asynccontextmanager
async def transaction(pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    async with pool.acquire() as conn, conn.transaction():
        yield conn


def migrations_dir() -> Path:
    """The migrations folder: TRADEBOT_MIGRATIONS_DIR, else beside the package, else the cwd's."""
    configured = os.environ.get("TRADEBOT_MIGRATIONS_DIR")
    candidates = [Path(configured)] if configured else []
    candidates += [Path(__file__).resolve().parent.parent / "migrations", Path.cwd() / "migrations"]
    for path in candidates:
        if path.is_dir() and any(path.glob("*.sql")):
            return path
    raise ConfigError("migrations folder not found (set TRADEBOT_MIGRATIONS_DIR)")


def _yoyo_url(url: str) -> str:
    # yoyo picks the sync driver from the scheme; psycopg 3 is the one installed.
    parts = urlsplit(url)
    return urlunsplit(parts._replace(scheme="postgresql+psycopg"))


def apply_migrations_sync(url: str) -> list[str]:
    """Apply every pending migration under yoyo's lock; returns the ids applied (empty if none)."""
    from yoyo import get_backend, read_migrations

    backend = get_backend(_yoyo_url(url))
    try:
        migrations = read_migrations(str(migrations_dir()))
        with backend.lock():
            pending = backend.to_apply(migrations)
            backend.apply_migrations(pending)
            return [m.id for m in pending]
    finally:
        backend.connection.close()


async def apply_migrations(url: str) -> list[str]:
    """yoyo is synchronous; run it off the event loop."""
    applied = await asyncio.to_thread(apply_migrations_sync, url)
    if applied:
        log.info("migrations applied", extra={"migrations": applied})
    else:
        log.info("database schema up to date")
    return applied
