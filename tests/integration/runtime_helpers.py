"""Set up a user, an exchange key and bots for runtime tests, and wait for what the runtime does."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg

from tests.simulator_helpers import Credentials
from tradebot.config import Secrets
from tradebot.security.secrets_box import SecretBox

T = TypeVar("T")

START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
MINUTE = 60_000


async def eventually(
    probe: Callable[[], Awaitable[T]], *, timeout: float = 10.0, interval: float = 0.02, what: str = "condition"
) -> T:
    """Poll `probe` until it returns something truthy; never a fixed sleep."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while time.monotonic() < deadline:
        last = await probe()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


async def create_user(pool: asyncpg.Pool, email: str = "trader@example.com") -> int:
    return int(
        await pool.fetchval(
            "INSERT INTO users (email, password_hash) VALUES ($1, 'not-a-hash') RETURNING id", email
        )
    )


async def create_api_key(pool: asyncpg.Pool, user_id: int, creds: Credentials, secrets: Secrets) -> int:
    box = SecretBox(secrets.fernet_keys)
    return int(
        await pool.fetchval(
            """INSERT INTO api_keys (user_id, label, exchange, api_key_encrypted, secret_encrypted, api_key_hint,
                                     is_valid)
               VALUES ($1, 'sim', 'binanceusdm', $2, $3, $4, true) RETURNING id""",
            user_id,
            box.encrypt(creds.api_key),
            box.encrypt(creds.secret),
            creds.api_key[-4:],
        )
    )


async def create_bot(pool: asyncpg.Pool, user_id: int, key_id: int | None, *, active: bool = True, **settings: Any) -> int:
    values: dict[str, Any] = {
        "user_id": user_id,
        "api_key_id": key_id,
        "symbol": "BTC/USDT:USDT",
        "timeframe": "1m",
        "ema_period": 5,
        "leverage": 2,
        "order_size_pct": 50.0,
        "allow_short": True,
        "is_active": active,
    }
    values.update(settings)
    cols = ", ".join(values)
    params = ", ".join(f"${i}" for i in range(1, len(values) + 1))
    async with pool.acquire() as conn, conn.transaction():
        bot_id = int(await conn.fetchval(f"INSERT INTO bot_configs ({cols}) VALUES ({params}) RETURNING id",
                                         *values.values()))
        await conn.execute("INSERT INTO bot_state (bot_id, status) VALUES ($1, $2)", bot_id,
                           "starting" if active else "stopped")
    return bot_id


async def bot_status(pool: asyncpg.Pool, bot_id: int) -> str:
    return str(await pool.fetchval("SELECT status FROM bot_state WHERE bot_id = $1", bot_id))


def candle_rows(closes: list[float], start_ms: int = START_MS, spread: float = 0.5) -> list[list[float]]:
    """Candles whose open is the previous close, for pushing to the simulator."""
    rows = []
    prev = closes[0]
    for i, close in enumerate(closes):
        o = prev
        rows.append([start_ms + i * MINUTE, o, max(o, close) + spread, min(o, close) - spread, close, 10.0])
        prev = close
    return rows


async def push_and_wait(runtime: Any, sim: Any, bot_id: int, row: list[float], *, what: str = "a decision",
                        symbol: str = "BTCUSDT", interval: str = "1m", timeout: float = 10.0) -> None:
    """Push one closed candle and wait until the bot's actor has decided (and traded) on it."""
    actor = runtime.supervisor.actor(bot_id)
    assert actor is not None, f"bot {bot_id} is not running here"
    before = actor.decisions
    await sim.push_klines(symbol, interval, [row])

    async def decided() -> bool:
        current = runtime.supervisor.actor(bot_id)
        return current is not None and current.decisions > before and len(current.mailbox) == 0

    await eventually(decided, timeout=timeout, what=what)
