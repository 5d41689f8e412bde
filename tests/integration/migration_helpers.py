"""A migrated database of a test's own, and rolling one migration back: for tests of a migration's
way back, which must not touch the shared test database."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit, urlunsplit

from yoyo import get_backend, read_migrations

from tradebot import db
from tradebot.services import ResolvedServices, drop_database, ensure_database


@asynccontextmanager
async def scratch_database(services: ResolvedServices, tag: str) -> AsyncIterator[str]:
    """The URL of a new database with every migration applied, dropped afterwards."""
    name = f"tradebot_test_{tag}_{secrets.token_hex(4)}"
    url = urlunsplit(urlsplit(services.database_url)._replace(path=f"/{name}"))
    await ensure_database(url)
    await db.apply_migrations(url)
    try:
        yield url
    finally:
        await drop_database(url)


def _rollback_sync(url: str, migration_id: str) -> None:
    backend = get_backend(urlunsplit(urlsplit(url)._replace(scheme="postgresql+psycopg")))
    try:
        migrations = read_migrations(str(db.migrations_dir()))
        with backend.lock():
            backend.rollback_migrations(backend.to_rollback(migrations.filter(lambda m: m.id == migration_id)))
    finally:
        backend.connection.close()


async def rollback(url: str, migration_id: str) -> None:
    """Rolls back ``migration_id`` (yoyo is synchronous, so in a thread); its errors propagate."""
    await asyncio.to_thread(_rollback_sync, url, migration_id)
