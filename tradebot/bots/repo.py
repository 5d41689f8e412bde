"""SQL for bots, their state, orders and trades: every statement is scoped by the owner's user id.

A bot that is soft-deleted (deleted_at set) or belongs to someone else is simply not found, so no
caller can tell the two apart (DESIGN.md invariant 5). Its orders and trades stay in the database
and in the user's `GET /trades`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import Enum
from typing import Any

import asyncpg

from tradebot.bots.models import SETTING_FIELDS, BotSettings
from tradebot.bots.stats import TradeFilter
from tradebot.bots.views import ORDER_COLUMNS, STATE_COLUMNS, TRADE_COLUMNS, state_view
from tradebot.notifications import outbox

_CONFIG_COLUMNS = ", ".join(
    f"c.{name}" for name in ("id", *SETTING_FIELDS, "is_active", "created_at", "updated_at")
)
# A bot and its state in one row; LEFT JOIN so a bot whose state row is missing still shows (as stopped).
_BOT_SELECT = (
    f"SELECT {_CONFIG_COLUMNS}, {STATE_COLUMNS} FROM bot_configs c LEFT JOIN bot_state s ON s.bot_id = c.id"
)
_OWNED = "c.id = $1 AND c.user_id = $2 AND c.deleted_at IS NULL"
_STATE_RETURNING = f"RETURNING {STATE_COLUMNS}"
# A start retries when an edit changes the bot's key between locking the key and activating; only
# an edit racing each attempt exhausts this, and the start then reports the bot keyless.
_START_ATTEMPTS = 3


class StartOutcome(Enum):
    STARTED = "started"
    NOT_FOUND = "not_found"
    ALREADY_ACTIVE = "already_active"
    NO_API_KEY = "no_api_key"
    MARKET_IN_USE = "market_in_use"  # another running bot trades this symbol with this key


@dataclass(frozen=True, slots=True)
class StateChange:
    """The state row after a start/stop/delete, and whether the bot had been active before it."""

    state: asyncpg.Record
    was_active: bool


class BotsRepo:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def api_key_owned(self, user_id: int, api_key_id: int) -> bool:
        found = await self._pool.fetchval(
            "SELECT EXISTS (SELECT 1 FROM api_keys WHERE id = $1 AND user_id = $2)", api_key_id, user_id
        )
        return bool(found)

    async def insert(self, user_id: int, settings: BotSettings, *, max_bots: int) -> asyncpg.Record | None:
        """The new bot, or None when the user already has `max_bots` (not deleted) bots.

        The user's row is locked first, so concurrent creates for one user count one after another
        and cannot together pass the cap.
        """
        values = [_column_value(name, getattr(settings, name)) for name in SETTING_FIELDS]
        placeholders = ", ".join(f"${i}" for i in range(2, len(values) + 2))
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT 1 FROM users WHERE id = $1 FOR UPDATE", user_id)
            owned = await conn.fetchval(
                "SELECT count(*) FROM bot_configs WHERE user_id = $1 AND deleted_at IS NULL", user_id
            )
            if owned >= max_bots:
                return None
            bot_id = await conn.fetchval(
                f"INSERT INTO bot_configs (user_id, {', '.join(SETTING_FIELDS)}) VALUES ($1, {placeholders}) "
                "RETURNING id",
                user_id,
                *values,
            )
            await conn.execute("INSERT INTO bot_state (bot_id) VALUES ($1)", bot_id)
            await _show_paper_account(conn, bot_id)
            row = await conn.fetchrow(f"{_BOT_SELECT} WHERE {_OWNED}", bot_id, user_id)
        assert row is not None
        return row

    async def get(self, user_id: int, bot_id: int) -> asyncpg.Record | None:
        return await self._pool.fetchrow(f"{_BOT_SELECT} WHERE {_OWNED}", bot_id, user_id)

    async def page(self, user_id: int, *, after_id: int | None, limit: int) -> list[asyncpg.Record]:
        """Oldest first (creation order), `limit` rows after `after_id`."""
        return list(
            await self._pool.fetch(
                f"{_BOT_SELECT} WHERE c.user_id = $1 AND c.deleted_at IS NULL AND c.id > $2 "
                "ORDER BY c.id LIMIT $3",
                user_id,
                after_id or 0,
                limit,
            )
        )

    async def update_if_unchanged(
        self, user_id: int, bot_id: int, changes: Mapping[str, Any], seen_updated_at: dt.datetime
    ) -> bool:
        """Apply `changes` unless the row changed since it was read (the caller then re-reads, re-checks).

        A new `paper_balance` (the service allows it only on a stopped, flat bot) resets the virtual
        account: it starts again from that balance on the next run."""
        names = [name for name in changes if name in SETTING_FIELDS]
        sets = ", ".join(f"{name} = ${i}" for i, name in enumerate(names, start=4))
        async with self._pool.acquire() as conn, conn.transaction():
            status = await conn.execute(
                f"UPDATE bot_configs c SET {sets + ', ' if sets else ''}updated_at = now() "
                f"WHERE {_OWNED} AND c.updated_at = $3",
                bot_id,
                user_id,
                seen_updated_at,
                *(_column_value(name, changes[name]) for name in names),
            )
            if status != "UPDATE 1":
                return False
            if "paper_balance" in changes:
                await conn.execute("DELETE FROM paper_accounts WHERE bot_id = $1 AND position_side IS NULL", bot_id)
            if changes.keys() & {"mode", "paper_balance"}:
                await _show_paper_account(conn, bot_id)
            return True

    async def start(self, user_id: int, bot_id: int) -> tuple[StartOutcome, asyncpg.Record | None]:
        try:
            for _ in range(_START_ATTEMPTS - 1):
                outcome = await self._start(user_id, bot_id)
                if outcome is not None:
                    return outcome
            return await self._start(user_id, bot_id) or (StartOutcome.NO_API_KEY, None)
        except asyncpg.UniqueViolationError:
            # bot_configs_one_active_per_market: the database is the arbiter, even for concurrent starts.
            return StartOutcome.MARKET_IN_USE, None

    async def _start(self, user_id: int, bot_id: int) -> tuple[StartOutcome, asyncpg.Record | None] | None:
        """The outcome, or None when the bot's key was changed between locking it and activating."""
        async with self._pool.acquire() as conn, conn.transaction():
            # The key row is share-locked before the bot is activated on it, so a key delete either
            # commits first (the bot is then keyless and does not start) or waits and sees the active
            # bot (OwnedApiKeys.delete). The key is locked before the bot row, the order the delete's
            # ON DELETE SET NULL takes them in, so the two never deadlock.
            key_id = await conn.fetchval(
                "SELECT k.id FROM bot_configs c JOIN api_keys k ON k.id = c.api_key_id "
                f"WHERE {_OWNED} FOR KEY SHARE OF k",
                bot_id,
                user_id,
            )
            if key_id is None:
                # A keyless paper bot: no exchange account to lock (a paper bot with a key takes the
                # path below; the one-bot-per-key-and-market index leaves paper bots out).
                started = await conn.fetchval(
                    f"UPDATE bot_configs c SET is_active = true, updated_at = now() "
                    f"WHERE {_OWNED} AND NOT c.is_active AND c.mode = 'paper' AND c.api_key_id IS NULL "
                    "RETURNING c.id",
                    bot_id,
                    user_id,
                )
                if started is not None:
                    return StartOutcome.STARTED, await _starting(conn, bot_id)
            # The conditional UPDATE is the arbiter: of two concurrent starts exactly one wins. It
            # starts the bot only on the key just locked.
            started = await conn.fetchval(
                f"UPDATE bot_configs c SET is_active = true, updated_at = now() "
                f"WHERE {_OWNED} AND NOT c.is_active AND c.api_key_id = $3 RETURNING c.id",
                bot_id,
                user_id,
                key_id,
            )
            if started is None:
                row = await conn.fetchrow(
                    f"SELECT c.is_active, c.api_key_id, c.mode FROM bot_configs c WHERE {_OWNED}", bot_id, user_id
                )
                if row is None:
                    return StartOutcome.NOT_FOUND, None
                if row["is_active"]:
                    return StartOutcome.ALREADY_ACTIVE, None
                if row["api_key_id"] is not None and row["api_key_id"] != key_id:
                    return None  # an edit changed the key after it was locked: start again on the new one
                if row["mode"] == "paper" and key_id is not None:
                    return None  # a paper bot whose key went meanwhile: start it again, keyless
                return StartOutcome.NO_API_KEY, None
            state = await _starting(conn, bot_id)
        return StartOutcome.STARTED, state

    async def stop(self, user_id: int, bot_id: int, *, close_position: bool) -> StateChange | None:
        async with self._pool.acquire() as conn, conn.transaction():
            return await _stop(conn, user_id, bot_id, close_position=close_position)

    async def delete(self, user_id: int, bot_id: int) -> StateChange | None:
        """Stop (when active) and soft-delete in one transaction; None when not found."""
        async with self._pool.acquire() as conn, conn.transaction():
            change = await _stop(conn, user_id, bot_id, close_position=False)
            if change is None:
                return None
            await conn.execute(
                "UPDATE bot_configs SET deleted_at = now(), updated_at = now() WHERE id = $1", bot_id
            )
            return change

    async def state(self, user_id: int, bot_id: int) -> asyncpg.Record | None:
        return await self._pool.fetchrow(
            f"SELECT c.id, {STATE_COLUMNS} FROM bot_configs c LEFT JOIN bot_state s ON s.bot_id = c.id "
            f"WHERE {_OWNED}",
            bot_id,
            user_id,
        )

    async def states(self, user_id: int) -> list[asyncpg.Record]:
        """Every bot of the user with its state, oldest first."""
        return list(await self._pool.fetch(
            f"SELECT c.id, {STATE_COLUMNS} FROM bot_configs c LEFT JOIN bot_state s ON s.bot_id = c.id "
            "WHERE c.user_id = $1 AND c.deleted_at IS NULL ORDER BY c.id",
            user_id,
        ))

    async def command_target(self, user_id: int, bot_id: int) -> asyncpg.Record | None:
        """What a manual command is checked against: active flag, status and position; None when
        the bot is not the user's."""
        return await self._pool.fetchrow(
            f"SELECT c.is_active, s.status, s.in_position, s.position_side FROM bot_configs c "
            f"LEFT JOIN bot_state s ON s.bot_id = c.id WHERE {_OWNED}",
            bot_id,
            user_id,
        )

    async def insert_command(
        self, user_id: int, bot_id: int, kind: str, *, pct: float | None = None, side: str | None = None,
        order_size_pct: float | None = None,
    ) -> int:
        return int(await self._pool.fetchval(
            "INSERT INTO bot_commands (bot_id, user_id, kind, pct, side, order_size_pct) "
            "VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            bot_id, user_id, kind, pct, side, order_size_pct,
        ))

    async def set_entries_paused(self, user_id: int, bot_id: int, paused: bool) -> asyncpg.Record | None:
        """The one column of bot_state the API writes while the bot runs (the actor reads it before
        each entry and never writes it); None unless the user's bot is running. The state event
        goes to the outbox in the same transaction, like every other state change."""
        async with self._pool.acquire() as conn, conn.transaction():
            state = await conn.fetchrow(
                "UPDATE bot_state s SET entries_paused = $3, last_updated_at = now() FROM bot_configs c "
                f"WHERE s.bot_id = c.id AND {_OWNED} AND c.is_active AND s.status IN ('running', 'paused') "
                f"RETURNING {', '.join('s.' + c.strip() for c in STATE_COLUMNS.split(','))}",
                bot_id,
                user_id,
                paused,
            )
            if state is not None:
                await outbox.record_bot_change(conn, bot_id, "state", state_view(state))
            return state

    async def bot_exists(self, user_id: int, bot_id: int) -> bool:
        found = await self._pool.fetchval(
            f"SELECT EXISTS (SELECT 1 FROM bot_configs c WHERE {_OWNED})", bot_id, user_id
        )
        return bool(found)

    async def trades(
        self,
        user_id: int,
        flt: TradeFilter,
        *,
        before: tuple[dt.datetime, int] | None,
        limit: int,
    ) -> list[asyncpg.Record]:
        """Newest first by (created_at, id): the order both trade indexes are built in. The filter's
        WHERE clause is the one GET /stats sums over."""
        args: list[Any] = []
        where = flt.where(user_id, args)
        if before is not None:
            args.extend(before)
            where += f" AND (created_at, id) < (${len(args) - 1}, ${len(args)})"
        args.append(limit)
        return list(
            await self._pool.fetch(
                f"SELECT {TRADE_COLUMNS} FROM trades WHERE {where} "
                f"ORDER BY created_at DESC, id DESC LIMIT ${len(args)}",
                *args,
            )
        )

    async def orders(
        self, user_id: int, bot_id: int, *, before_id: int | None, limit: int
    ) -> list[asyncpg.Record]:
        """Newest first by id (orders_bot_id index)."""
        return list(
            await self._pool.fetch(
                f"SELECT {ORDER_COLUMNS} FROM orders WHERE bot_id = $1 AND user_id = $2 AND id < $3 "
                "ORDER BY id DESC LIMIT $4",
                bot_id,
                user_id,
                before_id if before_id is not None else 2**63 - 1,
                limit,
            )
        )


async def _stop(
    conn: asyncpg.Connection, user_id: int, bot_id: int, *, close_position: bool
) -> StateChange | None:
    # NO KEY UPDATE: the owner recording a fill holds the state row and then key-share locks this
    # row (the trade's foreign key); a full FOR UPDATE here would deadlock with it.
    row = await conn.fetchrow(
        f"SELECT c.is_active, s.status FROM bot_configs c LEFT JOIN bot_state s ON s.bot_id = c.id "
        f"WHERE {_OWNED} FOR NO KEY UPDATE OF c",
        bot_id,
        user_id,
    )
    if row is None:
        return None
    was_active: bool = row["is_active"]
    await conn.execute("UPDATE bot_configs SET is_active = false, updated_at = now() WHERE id = $1", bot_id)
    # An inactive bot that is stopped (or gave up with an error) has no actor anywhere: nothing would
    # ever move it from 'stopping' to 'stopped', so it is stopped right here. Otherwise the owner of
    # the bot finishes the stop (and closes the position if asked) and writes 'stopped' itself.
    settled = not was_active and row["status"] in (None, "stopped", "error")
    state = await conn.fetchrow(
        "INSERT INTO bot_state (bot_id, status, stop_close_position) VALUES ($1, $2, $3) "
        "ON CONFLICT (bot_id) DO UPDATE SET status = EXCLUDED.status, "
        "stop_close_position = EXCLUDED.stop_close_position, last_updated_at = now() "
        f"{_STATE_RETURNING}",
        bot_id,
        "stopped" if settled else "stopping",
        close_position and not settled,
    )
    assert state is not None
    await outbox.record_bot_change(conn, bot_id, "state", state_view(state), previous_status=row["status"])
    return StateChange(state, was_active)


async def _starting(conn: asyncpg.Connection, bot_id: int) -> asyncpg.Record:
    state = await conn.fetchrow(
        "INSERT INTO bot_state (bot_id, status) VALUES ($1, 'starting') "
        "ON CONFLICT (bot_id) DO UPDATE SET status = 'starting', last_error_message = NULL, "
        "pause_reason = NULL, stop_close_position = false, last_updated_at = now() "
        f"{_STATE_RETURNING}",
        bot_id,
    )
    assert state is not None
    await outbox.record_bot_change(conn, bot_id, "state", state_view(state))
    # A force-exit / force-entry the last run did not get to is void: it was meant for a position
    # and a moment that are gone, and must not fire when the bot is started again, maybe days later.
    await conn.execute(
        "UPDATE bot_commands SET status = 'refused', message = 'the bot stopped before carrying it out', "
        "done_at = now() WHERE bot_id = $1 AND status = 'pending'",
        bot_id,
    )
    return state


async def _show_paper_account(conn: asyncpg.Connection, bot_id: int) -> None:
    """The state's `paper_balance` and `equity`: the virtual account's balance (its starting balance
    before its first run), or null for a live bot."""
    await conn.execute(
        """UPDATE bot_state s SET paper_free_balance = v.balance, paper_equity = v.balance
           FROM (SELECT CASE WHEN c.mode = 'paper' THEN coalesce(a.balance, c.paper_balance) END AS balance
                   FROM bot_configs c LEFT JOIN paper_accounts a ON a.bot_id = c.id WHERE c.id = $1) AS v
           WHERE s.bot_id = $1""",
        bot_id,
    )


def _column_value(name: str, value: Any) -> Any:
    # numeric column: a Decimal of the float's shortest repr keeps the value the user sent.
    return Decimal(repr(float(value))) if name == "paper_balance" else value


def settings_of(row: Mapping[str, Any]) -> BotSettings:
    values = {name: row[name] for name in SETTING_FIELDS}
    values["paper_balance"] = float(values["paper_balance"])
    return BotSettings(**values)


def key_of_trade(row: Mapping[str, Any]) -> tuple[dt.datetime, int]:
    """The keyset position of a trade row in the newest-first lists (exports page on it)."""
    return row["created_at"], row["id"]


__all__: Sequence[str] = ("BotsRepo", "StartOutcome", "StateChange", "key_of_trade", "settings_of")
