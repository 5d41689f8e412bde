"""Helpers for the bots, trades and SSE API tests: users with an API key, bots, seeded fills, and a
small Server-Sent Events reader. Everything goes through the real app, PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import asyncpg

from tests.integration.auth_helpers import Client, bearer, user_token
from tradebot.bots.models import Market


@dataclass(frozen=True, slots=True)
class StaticMarket:
    symbol: str
    id: str
    max_leverage: int | None


class StaticMarkets:
    """A fixed market list standing in for the exchange's (the bots API only reads symbol and leverage)."""

    def __init__(self, *markets: StaticMarket) -> None:
        self._by_text = {m.symbol: m for m in markets} | {m.id: m for m in markets}

    async def resolve(self, text: str) -> Market | None:
        return self._by_text.get(text.strip().upper())


MARKETS = StaticMarkets(
    StaticMarket("BTC/USDT:USDT", "BTCUSDT", 125),
    StaticMarket("ETH/USDT:USDT", "ETHUSDT", 50),
)


@dataclass(frozen=True, slots=True)
class User:
    email: str
    token: str
    key_id: int
    id: int = 0

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.token)


async def new_user(client: Client, tag: str = "user") -> User:
    """A registered user with a stored (unvalidated) exchange API key."""
    email, token = await user_token(client, tag)
    r = await client.post(
        "/api/v1/api-keys",
        json={"label": "main", "exchange": "binanceusdm", "api_key": secrets.token_hex(16),
              "secret_key": secrets.token_hex(32)},
        headers=bearer(token),
    )
    assert r.status == 201, await r.text()
    key_id = (await r.json())["id"]
    me = await client.get("/api/v1/auth/me", headers=bearer(token))
    return User(email, token, key_id, (await me.json())["id"])


def settings_for(user: User, **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "api_key_id": user.key_id,
        "symbol": "BTCUSDT",
        "strategy": "ema_cross",
        "timeframe": "1m",
        "ema_period": 20,
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not ...}


async def create_bot(client: Client, user: User, **overrides: Any) -> dict[str, Any]:
    r = await client.post("/api/v1/bots", json=settings_for(user, **overrides), headers=user.headers)
    assert r.status == 201, await r.text()
    bot: dict[str, Any] = await r.json()
    return bot


async def seed_fills(
    pool: asyncpg.Pool, user: User, bot_id: int, count: int, *, start: str = "2026-01-01T00:00:00Z"
) -> list[int]:
    """`count` filled orders with one trade each, one minute apart; returns the trade ids oldest first."""
    ids = []
    async with pool.acquire() as conn:
        for i in range(count):
            cid = f"t{bot_id}x{i}x{secrets.token_hex(3)}"
            order_id = await conn.fetchval(
                "INSERT INTO orders (bot_id, user_id, client_order_id, exchange_order_id, symbol, side, amount, "
                "intent, signal_seq, fence_token, status, filled_amount, average_price, "
                "created_at, updated_at) "
                "VALUES ($1, $2, $3, $4, 'BTC/USDT:USDT', $5, 0.01, 'open_long', $6::int, 1, 'filled', 0.01, 100, "
                "$7::text::timestamptz + make_interval(mins => $6::int), $7::text::timestamptz + make_interval(mins => $6::int)) "
                "RETURNING id",
                bot_id, user.id, cid, f"ex{i}", "buy" if i % 2 == 0 else "sell", i, start,
            )
            ids.append(
                await conn.fetchval(
                    "INSERT INTO trades (bot_id, user_id, order_id, symbol, side, price, amount, fee, "
                    "realized_pnl, client_order_id, created_at) "
                    "VALUES ($1, $2, $3, 'BTC/USDT:USDT', $4, 100 + $5::int, 0.01, 0.0004, $5::int, $6, "
                    "$7::text::timestamptz + make_interval(mins => $5::int)) RETURNING id",
                    bot_id, user.id, order_id, "buy" if i % 2 == 0 else "sell", i, cid, start,
                )
            )
    return ids


@dataclass
class SseEvent:
    event: str | None = None
    id: str | None = None
    data: str = ""
    comments: list[str] = field(default_factory=list)


class SseReader:
    """Reads an event stream line by line; comments (heartbeats) are kept apart from events."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response
        self.comments: list[str] = []

    async def next(self, timeout: float = 5.0) -> SseEvent:
        async with asyncio.timeout(timeout):
            event = SseEvent()
            data: list[str] = []
            while True:
                raw = await self.response.content.readline()
                if not raw:
                    raise EOFError("stream ended")
                line = raw.decode().rstrip("\r\n")
                if not line:
                    if data or event.event or event.id:
                        event.data = "\n".join(data)
                        return event
                    continue
                if line.startswith(":"):
                    self.comments.append(line[1:].strip())
                    continue
                name, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if name == "event":
                    event.event = value
                elif name == "id":
                    event.id = value
                elif name == "data":
                    data.append(value)

    async def wait_comment(self, timeout: float = 5.0) -> str:
        async with asyncio.timeout(timeout):
            while not self.comments:
                raw = await self.response.content.readline()
                if not raw:
                    raise EOFError("stream ended")
                line = raw.decode().rstrip("\r\n")
                if line.startswith(":"):
                    self.comments.append(line[1:].strip())
        return self.comments[-1]

    async def at_end(self, timeout: float = 5.0) -> bool:
        """True once the server has ended the stream (any events still buffered are skipped)."""
        async with asyncio.timeout(timeout):
            while await self.response.content.readline():
                pass
        return True
