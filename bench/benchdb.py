"""A throwaway, migrated PostgreSQL database for a benchmark run, dropped afterwards."""

from __future__ import annotations

import os
import secrets
from urllib.parse import urlsplit, urlunsplit

from tradebot import db
from tradebot.services import drop_database, ensure_database

__all__ = ["drop_database", "fresh_database"]


async def fresh_database(name: str = "tradebot_bench") -> str:
    base = os.environ.get("DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/postgres"
    url = urlunsplit(urlsplit(base)._replace(path=f"/{name}_{secrets.token_hex(3)}"))
    await ensure_database(url)
    await db.apply_migrations(url)
    return url
