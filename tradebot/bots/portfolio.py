"""The portfolio: every open position of a user's bots valued at the market's last price, the
balances of each of their exchange keys, and totals.

Positions come from bot_state (what the bots hold, as their owners last recorded it); prices and
balances come from the exchange through the two sources given (cached there). Nothing unknown is
read as zero: a position without a price has `unrealized_pnl: null`, a key that could not be read
is an entry with `error`, and `totals.complete` is false whenever either happened, so a total is
never silently short.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

import asyncpg


class PriceSource(Protocol):
    async def last_prices(self, symbols: Iterable[str]) -> dict[str, float | None]: ...


class BalanceSource(Protocol):
    """Per API key of the user: `{api_key_id, label, exchange, assets: {ASSET: {free, used, total}} | None,
    read_at, error}`."""

    async def balance_views(self, user_id: int) -> list[dict[str, Any]]: ...


@dataclass(frozen=True, slots=True)
class Position:
    bot_id: int
    bot_name: str
    api_key_id: int | None
    symbol: str
    side: str
    size: float
    entry_price: float | None
    paper: bool

    def view(self, last_price: float | None) -> dict[str, Any]:
        pnl = None
        if last_price is not None and self.entry_price is not None:
            sign = 1.0 if self.side == "long" else -1.0
            pnl = sign * (last_price - self.entry_price) * self.size
        return {
            "bot_id": self.bot_id,
            "bot_name": self.bot_name,
            "api_key_id": self.api_key_id,
            "symbol": self.symbol,
            "side": self.side,
            "size": self.size,
            "entry_price": self.entry_price,
            "last_price": last_price,
            "unrealized_pnl": pnl,
            "paper": self.paper,
        }


def _float(value: Decimal | float | None) -> float | None:
    return None if value is None else float(value)


class PortfolioService:
    def __init__(self, pool: asyncpg.Pool, prices: PriceSource, balances: BalanceSource) -> None:
        self._pool = pool
        self._prices = prices
        self._balances = balances

    async def open_positions(self, user_id: int) -> list[Position]:
        rows = await self._pool.fetch(
            """
            SELECT c.id, c.name, c.api_key_id, c.symbol, c.mode, s.position_side, s.position_size, s.entry_price
              FROM bot_configs c JOIN bot_state s ON s.bot_id = c.id
             WHERE c.user_id = $1 AND c.deleted_at IS NULL AND s.in_position
             ORDER BY c.id
            """,
            user_id,
        )
        return [
            Position(r["id"], r["name"], r["api_key_id"], r["symbol"], r["position_side"],
                     float(r["position_size"]), _float(r["entry_price"]), paper=r["mode"] == "paper")
            for r in rows
        ]

    async def portfolio(self, user_id: int) -> dict[str, Any]:
        positions = await self.open_positions(user_id)
        prices, balances = await asyncio.gather(
            self._prices.last_prices(p.symbol for p in positions), self._balances.balance_views(user_id)
        )
        position_views = [p.view(prices.get(p.symbol)) for p in positions]
        return {"positions": position_views, "balances": balances, "totals": totals(position_views, balances)}


def totals(positions: list[dict[str, Any]], balances: list[dict[str, Any]]) -> dict[str, Any]:
    assets: dict[str, dict[str, float]] = {}
    for entry in balances:
        for asset, amounts in (entry["assets"] or {}).items():
            summed = assets.setdefault(asset, {"free": 0.0, "used": 0.0, "total": 0.0})
            for part in ("free", "used", "total"):
                summed[part] += amounts[part]
    known = [p["unrealized_pnl"] for p in positions if p["unrealized_pnl"] is not None]
    complete = len(known) == len(positions) and all(b["error"] is None for b in balances)
    return {
        "positions_count": len(positions),
        "unrealized_pnl": sum(known, 0.0),
        "balances": dict(sorted(assets.items())),
        "complete": complete,
    }


def balance_view(
    api_key_id: int, label: str, exchange: str, assets: Mapping[str, Any] | None, read_at: Any, error: str | None
) -> dict[str, Any]:
    return {
        "api_key_id": api_key_id,
        "label": label,
        "exchange": exchange,
        "assets": None if assets is None else dict(assets),
        "read_at": read_at,
        "error": error,
    }
