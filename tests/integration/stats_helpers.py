"""Helpers for the reporting tests: trades seeded in SQL at chosen times, and the sums that GET /stats
must give, computed here in Python from what GET /trades lists."""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

import asyncpg

from tests.integration.auth_helpers import Client
from tests.integration.bots_helpers import User


async def insert_trade(
    pool: asyncpg.Pool,
    user: User,
    bot_id: int,
    at: str,
    pnl: str,
    fee: str | None,
    *,
    paper: bool = False,
    side: str = "sell",
) -> int:
    """One filled order and its trade at `at` (ISO 8601); money given as decimal strings."""
    cid = f"s{bot_id}x{secrets.token_hex(6)}"
    async with pool.acquire() as conn, conn.transaction():
        order_id = await conn.fetchval(
            "INSERT INTO orders (bot_id, user_id, client_order_id, exchange_order_id, symbol, side, amount, intent, "
            "signal_seq, fence_token, status, filled_amount, average_price, paper, created_at, updated_at) "
            "VALUES ($1, $2, $3, $4, 'BTC/USDT:USDT', $5, 0.01, 'close', 1, 1, 'filled', 0.01, 100, $6, "
            "$7::text::timestamptz, $7::text::timestamptz) RETURNING id",
            bot_id, user.id, cid, f"x{cid}", side, paper, at,
        )
        trade_id: int = await conn.fetchval(
            "INSERT INTO trades (bot_id, user_id, order_id, symbol, side, price, amount, fee, realized_pnl, paper, "
            "client_order_id, created_at) VALUES ($1, $2, $3, 'BTC/USDT:USDT', $4, 100, 0.01, $5::text::numeric, "
            "$6::text::numeric, $7, $8, $9::text::timestamptz) RETURNING id",
            bot_id, user.id, order_id, side, fee, pnl, paper, cid, at,
        )
    return trade_id


async def all_items(client: Client, user: User, url: str, limit: int = 7) -> list[dict[str, Any]]:
    """Every item of a paginated list, page by page."""
    items: list[dict[str, Any]] = []
    sep = "&" if "?" in url else "?"
    cursor = ""
    while True:
        r = await client.get(f"{url}{sep}limit={limit}{cursor}", headers=user.headers)
        assert r.status == 200, await r.text()
        page = await r.json()
        items += page["items"]
        if page["next_cursor"] is None:
            return items
        cursor = f"&cursor={page['next_cursor']}"


def _exact(value: float | None) -> Decimal:
    # The API's floats are the shortest repr of the stored numeric: Decimal(repr) is that numeric.
    return Decimal(0) if value is None else Decimal(repr(value))


def figures(trades: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    rows = list(trades)
    pnl = sum((_exact(t["realized_pnl"]) for t in rows), Decimal(0))
    fees = sum((_exact(t["fee"]) for t in rows), Decimal(0))
    wins = sum(1 for t in rows if t["realized_pnl"] > 0)
    losses = sum(1 for t in rows if t["realized_pnl"] < 0)
    return {
        "trades_count": len(rows),
        "realized_pnl": float(pnl),
        "fees": float(fees),
        "net_pnl": float(pnl - fees),
        "wins": wins,
        "losses": losses,
        "win_rate": wins / (wins + losses) if wins + losses else None,
        "fees_unknown": sum(1 for t in rows if t["fee"] is None),
    }


def parse_time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))


def period_start(created_at: str, group: str) -> dt.datetime:
    day = parse_time(created_at).astimezone(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if group == "day":
        return day
    if group == "week":
        return day - dt.timedelta(days=day.weekday())  # ISO weeks start on Monday
    if group == "month":
        return day.replace(day=1)
    raise ValueError(group)


def iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def expected_stats(trades: list[dict[str, Any]], group: str) -> dict[str, Any]:
    """What GET /stats must answer, from the trades GET /trades listed with the same filters."""
    if group == "all":
        items = []
        if trades:
            first = min(trades, key=lambda t: (parse_time(t["created_at"]), t["id"]))
            items = [{"period_start": first["created_at"], **figures(trades)}]
        return {"items": items, "totals": figures(trades)}
    periods: dict[dt.datetime, list[dict[str, Any]]] = {}
    for t in trades:
        periods.setdefault(period_start(t["created_at"], group), []).append(t)
    items = [{"period_start": iso(start), **figures(rows)} for start, rows in sorted(periods.items())]
    return {"items": items, "totals": figures(trades)}


def max_drawdown(trades: Iterable[Mapping[str, Any]]) -> float:
    """Of the cumulative net PnL in trade order (created_at, id), starting at 0."""
    equity = peak = worst = Decimal(0)
    for t in sorted(trades, key=lambda t: (parse_time(t["created_at"]), t["id"])):
        equity += _exact(t["realized_pnl"]) - _exact(t["fee"])
        peak = max(peak, equity)
        worst = max(worst, peak - equity)
    return float(worst)
