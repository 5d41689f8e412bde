"""Helpers for the webhook tests: an app whose delivery worker polls fast, trades written through
the runtime's own fenced write path (so the outbox hook runs exactly as in a trading bot)."""

from __future__ import annotations

import secrets
from typing import Any

import asyncpg

from tests.integration.auth_helpers import Client, bearer
from tests.timing import eventually
from tradebot.runtime import bot_store
from tradebot.runtime.bot_store import NewOrder


async def claim_bot(pool: asyncpg.Pool, bot_id: int, fence: int = 1) -> int:
    assert await bot_store.claim(pool, bot_id, fence, "test-replica")
    return fence


async def write_fill(pool: asyncpg.Pool, user_id: int, bot_id: int, fence: int, seq: int, *,
                     side: str = "buy", price: float = 100.0) -> int:
    """An order, its trade and the new state in one fenced transaction, as the order executor writes them."""
    cid = f"w{bot_id}x{seq}x{secrets.token_hex(3)}"
    async with bot_store.fenced(pool, bot_id, fence) as conn:
        order_id = await bot_store.insert_order(conn, NewOrder(bot_id, user_id, cid, "BTC/USDT:USDT", side, 0.01,
                                                               False, "open_long", seq, fence))
        assert order_id is not None
        trade = await bot_store.insert_trade(conn, bot_id=bot_id, user_id=user_id, order_id=order_id,
                                             symbol="BTC/USDT:USDT", side=side, price=price, amount=0.01,
                                             fee=0.0004, realized_pnl=0.0, client_order_id=cid)
        assert trade is not None
        await bot_store.update_state(conn, bot_id, bot_store.daily_fields(0.0, seq, None))
        return int(trade["id"])


async def set_status(pool: asyncpg.Pool, bot_id: int, fence: int, status: str, message: str | None = None) -> None:
    async with bot_store.fenced(pool, bot_id, fence) as conn:
        await bot_store.update_state(conn, bot_id, {"status": status, "last_error_message": message})


async def add_webhook(client: Client, token: str, url: str, **body: Any) -> dict[str, Any]:
    r = await client.post("/api/v1/webhooks", json={"url": url, **body}, headers=bearer(token))
    assert r.status == 201, await r.text()
    hook: dict[str, Any] = await r.json()
    return hook


async def deliveries(client: Client, token: str, hook_id: int) -> list[dict[str, Any]]:
    r = await client.get(f"/api/v1/webhooks/{hook_id}/deliveries?limit=500", headers=bearer(token))
    assert r.status == 200, await r.text()
    items: list[dict[str, Any]] = (await r.json())["items"]
    return items


async def wait_delivered(client: Client, token: str, hook_id: int, count: int, timeout: float = 20.0) -> list[dict[str, Any]]:
    async def done() -> list[dict[str, Any]]:
        items = await deliveries(client, token, hook_id)
        finished = [d for d in items if d["status"] == "delivered"]
        return items if len(finished) >= count else []

    result: list[dict[str, Any]] = await eventually(done, timeout=timeout, interval=0.05,
                                                    what=f"{count} delivered deliveries")
    return result
