"""A bot's rows in PostgreSQL, written only under its fencing token (DESIGN.md invariant 1).

Every write runs in a transaction that first locks the bot's state row and checks that the token
stored there is ours. A new owner raises the token under the same lock when it claims the bot, so
once it has, a stale owner's writes (state, orders, trades) fail with FencedOut: the token, not the
clock, makes a paused or partitioned replica harmless.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

import asyncpg

from tradebot.bots.views import STATE_COLUMNS, state_view, trade_view
from tradebot.notifications import outbox
from tradebot.runtime.positions import FLAT as FLAT  # re-exported: the rows store positions
from tradebot.runtime.positions import Position as Position


class FencedOut(Exception):
    """Our fencing token is no longer the bot's: another replica owns it now."""


@dataclass(frozen=True, slots=True)
class BotConfig:
    id: int
    user_id: int
    api_key_id: int | None
    exchange: str
    symbol: str
    strategy: str
    # Every parameter of the strategy (bot_configs.parameters, migration 0008), resolved by the
    # actor through the strategy registry.
    parameters: Mapping[str, Any]
    timeframe: str
    leverage: int
    order_size_pct: float
    allow_short: bool
    max_daily_trades: int
    max_daily_loss_pct: float
    stop_loss_pct: float | None
    take_profit_pct: float | None
    is_active: bool
    deleted: bool
    # Paper trading (migration 0009): a paper bot trades a virtual account (runtime/paper_account.py).
    mode: str = "live"
    paper_balance: float = 10_000.0
    paper_fee_rate: float = 0.0004
    paper_slippage_bps: float = 1.0
    # A trailing stop's callback rate in percent (migration 0013): held by the exchange with the
    # stop loss and take profit.
    trailing_stop_pct: float | None = None

    @property
    def paper(self) -> bool:
        return self.mode == "paper"


_CONFIG_COLUMNS = (
    "c.id, c.user_id, c.api_key_id, c.exchange, c.symbol, c.strategy, c.parameters, c.timeframe, c.leverage, "
    "c.order_size_pct, c.allow_short, c.max_daily_trades, c.max_daily_loss_pct, c.stop_loss_pct, "
    "c.take_profit_pct, c.is_active, c.deleted_at IS NOT NULL AS deleted, c.mode, c.paper_balance, c.paper_fee_rate, "
    "c.paper_slippage_bps, c.trailing_stop_pct"
)


def _config(row: Mapping[str, Any]) -> BotConfig:
    values = {k: row[k] for k in BotConfig.__slots__}
    values["paper_balance"] = float(values["paper_balance"])
    return BotConfig(**values)


async def load_config(pool: asyncpg.Pool, bot_id: int) -> BotConfig | None:
    row = await pool.fetchrow(f"SELECT {_CONFIG_COLUMNS} FROM bot_configs c WHERE c.id = $1", bot_id)
    return _config(row) if row else None


async def load_state_row(conn: asyncpg.Pool | asyncpg.Connection, bot_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM bot_state WHERE bot_id = $1", bot_id)


async def desired_bots(pool: asyncpg.Pool) -> tuple[set[int], set[int]]:
    """(active bots, inactive bots still to wind down) in one round trip."""
    rows = await pool.fetch(
        """SELECT c.id, c.is_active FROM bot_configs c
           LEFT JOIN bot_state s ON s.bot_id = c.id
           WHERE (c.is_active AND c.deleted_at IS NULL)
              OR (NOT c.is_active AND s.status IN ('stopping', 'starting', 'running', 'paused'))"""
    )
    active = {r["id"] for r in rows if r["is_active"]}
    return active, {r["id"] for r in rows} - active


async def current_fence(pool: asyncpg.Pool, bot_id: int) -> int:
    value = await pool.fetchval("SELECT fence_token FROM bot_state WHERE bot_id = $1", bot_id)
    return int(value or 0)


async def claim(pool: asyncpg.Pool, bot_id: int, fence: int, replica_id: str) -> bool:
    """Take the bot under `fence`; False if the stored token is already at least as new."""
    async with pool.acquire() as conn, conn.transaction():
        stored = await conn.fetchval("SELECT fence_token FROM bot_state WHERE bot_id = $1 FOR UPDATE", bot_id)
        if stored is None:
            await conn.execute("INSERT INTO bot_state (bot_id) VALUES ($1) ON CONFLICT DO NOTHING", bot_id)
            stored = await conn.fetchval("SELECT fence_token FROM bot_state WHERE bot_id = $1 FOR UPDATE", bot_id)
        if int(stored) >= fence:
            return False
        await conn.execute(
            "UPDATE bot_state SET fence_token = $2, replica_id = $3, started_at = now(), last_updated_at = now() "
            "WHERE bot_id = $1",
            bot_id,
            fence,
            replica_id,
        )
        await conn.execute(
            "UPDATE bot_ownership SET released_at = now() WHERE bot_id = $1 AND released_at IS NULL", bot_id
        )
        await conn.execute(
            "INSERT INTO bot_ownership (bot_id, fence_token, replica_id) VALUES ($1, $2, $3)", bot_id, fence, replica_id
        )
        return True


@asynccontextmanager
async def fenced(pool: asyncpg.Pool, bot_id: int, fence: int) -> AsyncIterator[asyncpg.Connection]:
    """A transaction in which the bot's state row is locked and known to carry our token."""
    async with pool.acquire() as conn, conn.transaction():
        stored = await conn.fetchval("SELECT fence_token FROM bot_state WHERE bot_id = $1 FOR UPDATE", bot_id)
        if stored is None or int(stored) != fence:
            raise FencedOut(f"bot {bot_id}: fence {fence} superseded by {stored}")
        yield conn


async def release_ownership(pool: asyncpg.Pool, bot_id: int, fence: int) -> None:
    await pool.execute(
        "UPDATE bot_ownership SET released_at = now() WHERE bot_id = $1 AND fence_token = $2 AND released_at IS NULL",
        bot_id,
        fence,
    )


async def release_replica_ownerships(pool: asyncpg.Pool, replica_id: str) -> None:
    """End every ownership `replica_id` still has open, in one statement (a replica shutting down
    after its bots stopped: also those whose take or exit the shutdown cut short)."""
    await pool.execute(
        "UPDATE bot_ownership SET released_at = now() WHERE replica_id = $1 AND released_at IS NULL", replica_id
    )


_STATE_FIELDS = frozenset(
    {
        "status", "in_position", "position_side", "position_size", "entry_price", "daily_pnl", "daily_trades_count",
        "daily_date", "pause_reason", "last_error_message", "last_run_at", "replica_id", "strategy_state",
        "signal_seq", "last_candle_time", "stop_close_position", "leverage_applied", "paper_free_balance", "paper_equity",
    }
)


async def update_state(conn: asyncpg.Connection, bot_id: int, fields: Mapping[str, Any]) -> dict[str, Any]:
    """Set state columns (inside `fenced`); returns the state view after the change."""
    unknown = set(fields) - _STATE_FIELDS
    if unknown:
        raise ValueError(f"not bot_state columns: {sorted(unknown)}")
    names = list(fields)
    sets = ", ".join(f"{n} = ${i + 2}" for i, n in enumerate(names))
    # `before` reads the row as this statement found it: the status it moves from.
    row = await conn.fetchrow(
        f"UPDATE bot_state SET {sets}, last_updated_at = now() "
        f"FROM (SELECT status AS previous_status FROM bot_state WHERE bot_id = $1) AS before "
        f"WHERE bot_id = $1 RETURNING {STATE_COLUMNS}, before.previous_status",
        bot_id,
        *[fields[n] for n in names],
    )
    assert row is not None
    view = state_view(row)
    await outbox.record_bot_change(conn, bot_id, "state", view, previous_status=row["previous_status"])
    return view


def position_fields(position: Position) -> dict[str, Any]:
    return {
        "in_position": not position.flat,
        "position_side": None if position.flat else position.side,
        "position_size": Decimal(str(position.size)) if not position.flat else Decimal(0),
        "entry_price": Decimal(str(position.entry_price)) if not position.flat and position.entry_price else None,
    }


def position_from_row(row: Mapping[str, Any]) -> Position:
    if not row["in_position"]:
        return FLAT
    return Position(row["position_side"], float(row["position_size"]), _f(row["entry_price"]))


def _f(value: Any) -> float | None:
    return None if value is None else float(value)


@dataclass(frozen=True, slots=True)
class NewOrder:
    bot_id: int
    user_id: int
    client_order_id: str
    symbol: str
    side: str  # "buy" | "sell"
    amount: float
    reduce_only: bool
    intent: str
    signal_seq: int
    fence: int
    candle_time: int | None = None  # open time (ms) of the deciding candle, for the drift report
    reason: str = "signal"  # copied to the trade (CONTRACT.md: signal, stop_loss, take_profit, manual, ...)
    command_id: int | None = None  # the manual command this order carries out


async def insert_order(conn: asyncpg.Connection, order: NewOrder) -> int | None:
    """Record the intent before sending; None if this client order id was recorded already. The
    `paper` flag comes from the bot's mode (fixed while it runs), so the executor need not know it."""
    return await conn.fetchval(  # type: ignore[no-any-return]
        """INSERT INTO orders (bot_id, user_id, client_order_id, symbol, side, amount, reduce_only, intent,
                               signal_seq, fence_token, candle_time, reason, command_id, paper)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13,
                   (SELECT c.mode = 'paper' FROM bot_configs c WHERE c.id = $1))
           ON CONFLICT (client_order_id) DO NOTHING RETURNING id""",
        order.bot_id,
        order.user_id,
        order.client_order_id,
        order.symbol,
        order.side,
        Decimal(str(order.amount)),
        order.reduce_only,
        order.intent,
        order.signal_seq,
        order.fence,
        order.candle_time,
        order.reason,
        order.command_id,
    )


@dataclass(frozen=True, slots=True)
class NewProtectiveOrder:
    bot_id: int
    user_id: int
    client_order_id: str
    symbol: str
    side: str  # the order's side: "sell" protects a long
    amount: float
    order_type: str  # "stop_market" | "take_profit_market" | "trailing_stop_market"
    intent: str
    entry_seq: int  # the signal of the entry it protects (orders.signal_seq)
    fence: int
    stop_price: float | None
    callback_rate: float | None


async def insert_protective_order(conn: asyncpg.Connection, order: NewProtectiveOrder) -> int | None:
    """Record a protective order before sending it (reduce-only), like `insert_order`."""
    return await conn.fetchval(  # type: ignore[no-any-return]
        """INSERT INTO orders (bot_id, user_id, client_order_id, symbol, side, amount, reduce_only, intent,
                               signal_seq, fence_token, type, stop_price, callback_rate, paper)
           VALUES ($1, $2, $3, $4, $5, $6, true, $7, $8, $9, $10, $11, $12,
                   (SELECT c.mode = 'paper' FROM bot_configs c WHERE c.id = $1))
           ON CONFLICT (client_order_id) DO NOTHING RETURNING id""",
        order.bot_id, order.user_id, order.client_order_id, order.symbol, order.side, Decimal(str(order.amount)),
        order.intent, order.entry_seq, order.fence, order.order_type,
        None if order.stop_price is None else Decimal(repr(order.stop_price)), order.callback_rate,
    )


async def protective_orders(pool: asyncpg.Pool, bot_id: int) -> list[asyncpg.Record]:
    """The bot's protective orders that the exchange may still hold (or that a crash left unsent)."""
    return list(await pool.fetch(
        "SELECT * FROM orders WHERE bot_id = $1 AND type <> 'market' AND status IN ('pending', 'unknown', 'open') "
        "ORDER BY id", bot_id,
    ))


async def protective_revisions(pool: asyncpg.Pool, bot_id: int, entry_seq: int, order_type: str) -> int:
    """How many protective orders of this type were recorded for this entry: the next one's revision."""
    return int(await pool.fetchval(
        "SELECT count(*) FROM orders WHERE bot_id = $1 AND signal_seq = $2 AND type = $3", bot_id, entry_seq, order_type,
    ))


async def order_by_client_id(conn: asyncpg.Pool | asyncpg.Connection, cid: str) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM orders WHERE client_order_id = $1", cid)


async def unresolved_orders(pool: asyncpg.Pool, bot_id: int) -> list[asyncpg.Record]:
    return list(
        await pool.fetch(
            # Protective orders wait on the exchange as 'open' by design; the executor settles
            # them apart (`protective_orders`).
            "SELECT * FROM orders WHERE bot_id = $1 AND type = 'market' AND status IN ('pending', 'unknown', 'open') "
            "ORDER BY id", bot_id
        )
    )


async def mark_order(
    conn: asyncpg.Connection,
    order_id: int,
    *,
    status: str,
    exchange_order_id: str | None = None,
    filled_amount: float | None = None,
    average_price: float | None = None,
    fee: float | None = None,
    error_message: str | None = None,
) -> None:
    await conn.execute(
        """UPDATE orders SET status = $2,
                             exchange_order_id = COALESCE($3, exchange_order_id),
                             filled_amount = COALESCE($4, filled_amount),
                             average_price = COALESCE($5, average_price),
                             fee = COALESCE($6, fee),
                             error_message = COALESCE($7, error_message),
                             updated_at = now()
           WHERE id = $1""",
        order_id,
        status,
        exchange_order_id,
        None if filled_amount is None else Decimal(str(filled_amount)),
        None if average_price is None else Decimal(str(average_price)),
        None if fee is None else Decimal(str(fee)),
        error_message,
    )


async def insert_trade(
    conn: asyncpg.Connection,
    *,
    bot_id: int,
    user_id: int,
    order_id: int,
    symbol: str,
    side: str,
    price: float,
    amount: float,
    fee: float | None,
    realized_pnl: float,
    client_order_id: str,
    reason: str | None = None,
) -> asyncpg.Record | None:
    """One trade per filled order; None if it was recorded already (a replay of the same fill).
    A fee of None is stored as unknown (NULL), to be filled in by `set_trade_fee`. The trade's
    `paper` flag is its order's; its `reason` too, unless the fill says otherwise (a protective
    order that fired: `stop_loss`, `take_profit`, ...)."""
    row = await conn.fetchrow(
        """INSERT INTO trades (bot_id, user_id, order_id, symbol, side, price, amount, fee, realized_pnl,
                               client_order_id, paper, reason)
           SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, o.paper, coalesce($11, o.reason) FROM orders o WHERE o.id = $3
           ON CONFLICT (order_id) DO NOTHING
           RETURNING id, bot_id, symbol, side, price, amount, fee, realized_pnl, paper, client_order_id,
                     reason, created_at""",
        bot_id,
        user_id,
        order_id,
        symbol,
        side,
        _money(price),
        _money(amount),
        None if fee is None else _money(fee),
        _money(realized_pnl),
        client_order_id,
        reason,
    )
    if row is not None:
        await outbox.record_bot_change(conn, bot_id, "trade", trade_view(row))
    return row


@dataclass(frozen=True, slots=True)
class UnknownFee:
    """A trade whose fee the exchange has not told us yet, and what to ask it by."""

    trade_id: int
    exchange_order_id: str | None
    symbol: str
    amount: float


async def unknown_fees(pool: asyncpg.Pool, bot_id: int) -> list[UnknownFee]:
    rows = await pool.fetch(
        """SELECT t.id, o.exchange_order_id, t.symbol, t.amount FROM trades t JOIN orders o ON o.id = t.order_id
           WHERE t.bot_id = $1 AND t.fee IS NULL ORDER BY t.id""",
        bot_id,
    )
    return [UnknownFee(r["id"], r["exchange_order_id"], r["symbol"], float(r["amount"])) for r in rows]


async def set_trade_fee(conn: asyncpg.Connection, bot_id: int, trade_id: int, fee: float) -> asyncpg.Record | None:
    """Fill in a fee that was unknown (inside `fenced`), on the trade and its order; None if it was known."""
    row = await conn.fetchrow(
        "UPDATE trades SET fee = $3 WHERE id = $2 AND bot_id = $1 AND fee IS NULL RETURNING order_id, created_at",
        bot_id,
        trade_id,
        _money(fee),
    )
    if row is not None:
        await conn.execute("UPDATE orders SET fee = $2, updated_at = now() WHERE id = $1", row["order_id"], _money(fee))
    return row


def _money(value: float) -> Decimal:
    # Float arithmetic leaves noise such as -15.025359999999973; ten decimals is below any exchange's
    # precision and keeps the stored numbers what a person would write.
    return Decimal(str(round(value, 10)))


def daily_fields(pnl: float, trades: int, day: date | None) -> dict[str, Any]:
    return {"daily_pnl": _money(pnl), "daily_trades_count": trades, "daily_date": day}


# ---------------------------------------------------------------------- manual commands


@dataclass(frozen=True, slots=True)
class PendingCommand:
    """A force-exit / force-entry the API recorded for this bot and nobody has carried out yet."""

    id: int
    kind: str  # "force_exit" | "force_entry"
    pct: float | None
    side: str | None
    order_size_pct: float | None


async def pending_commands(pool: asyncpg.Pool, bot_id: int) -> list[PendingCommand]:
    rows = await pool.fetch(
        "SELECT id, kind, pct, side, order_size_pct FROM bot_commands WHERE bot_id = $1 AND status = 'pending' "
        "ORDER BY id",
        bot_id,
    )
    return [PendingCommand(r["id"], r["kind"], r["pct"], r["side"], r["order_size_pct"]) for r in rows]


async def command_reached_account(pool: asyncpg.Pool, command_id: int) -> bool:
    """Did an order of this command reach the account (by an earlier owner, say)? Orders still
    unsettled were settled by the run's reconciliation before any command is read."""
    return bool(await pool.fetchval(
        "SELECT EXISTS (SELECT 1 FROM orders WHERE command_id = $1 AND status NOT IN ('expired', 'rejected'))",
        command_id,
    ))


async def finish_command(conn: asyncpg.Connection, command_id: int, *, status: str, message: str | None) -> None:
    """Mark a command done or refused (inside `fenced`: only the bot's owner finishes it)."""
    await conn.execute(
        "UPDATE bot_commands SET status = $2, message = $3, done_at = now() WHERE id = $1 AND status = 'pending'",
        command_id, status, message,
    )


async def entries_paused(pool: asyncpg.Pool, bot_id: int) -> bool:
    """Read before every entry: the API sets it, so a lost prompt can never let an entry through."""
    return bool(await pool.fetchval("SELECT entries_paused FROM bot_state WHERE bot_id = $1", bot_id))
