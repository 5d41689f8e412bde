"""A throwaway, migrated PostgreSQL database for a benchmark run, dropped afterwards."""

from __future__ import annotations

import os
import secrets
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from tradebot import db
from tradebot.services import ensure_database


async def fresh_database(name: str = "tradebot_bench") -> str:
    base = os.environ.get("DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/postgres"
    url = urlunsplit(urlsplit(base)._replace(path=f"/{name}_{secrets.token_hex(3)}"))
    await ensure_database(url)
    await db.apply_migrations(url)
    return url


async def drop_database(url: str) -> None:
    parts = urlsplit(url)
    conn = await asyncpg.connect(urlunsplit(parts._replace(path="/postgres")))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{parts.path.lstrip("/")}" WITH (FORCE)')
    finally:
        await conn.close()
