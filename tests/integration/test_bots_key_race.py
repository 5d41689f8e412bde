"""A key deleted while a bot starts on it: the bot either runs with the key or the key stays.

The two transactions are interleaved with row locks and by watching pg_stat_activity, so the test
takes the same path on every run: the start is held open after it has activated the bot, the
delete is let in behind it, then the start is allowed to commit.
"""

from __future__ import annotations

import asyncio

import asyncpg

from tests.timing import eventually
from tradebot.accounts.api_keys import DeleteOutcome, OwnedApiKeys
from tradebot.bots.repo import BotsRepo, StartOutcome


async def _user_key_bot(pool: asyncpg.Pool) -> tuple[int, int, int]:
    user_id = await pool.fetchval(
        "INSERT INTO users (email, password_hash) VALUES ('key-race@example.com', 'x') RETURNING id"
    )
    key_id = await pool.fetchval(
        """INSERT INTO api_keys (user_id, label, exchange, api_key_encrypted, secret_encrypted, api_key_hint)
           VALUES ($1, 'main', 'binanceusdm', '\\x00', '\\x00', 'abcd') RETURNING id""",
        user_id,
    )
    bot_id = await pool.fetchval(
        """INSERT INTO bot_configs (user_id, api_key_id, symbol, timeframe, ema_period)
           VALUES ($1, $2, 'BTC/USDT:USDT', '1m', 20) RETURNING id""",
        user_id,
        key_id,
    )
    await pool.execute("INSERT INTO bot_state (bot_id) VALUES ($1)", bot_id)
    return int(user_id), int(key_id), int(bot_id)


async def _waiting_on_a_lock(pool: asyncpg.Pool, *query_starts: str) -> bool:
    """Whether a statement beginning with one of `query_starts` waits for a lock in this database."""
    waiting = await pool.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND wait_event_type = 'Lock' AND ltrim(query) LIKE ANY ($1::text[])",
        [start + "%" for start in query_starts],
    )
    return bool(waiting)


async def test_a_key_deleted_while_its_bot_starts_never_leaves_an_active_bot_without_a_key(
    pool: asyncpg.Pool,
) -> None:
    user_id, key_id, bot_id = await _user_key_bot(pool)
    async with pool.acquire() as gate:
        gate_tx = gate.transaction()
        await gate_tx.start()
        # Holding the bot's state row stops the start between activating the bot and committing.
        await gate.execute("SELECT 1 FROM bot_state WHERE bot_id = $1 FOR UPDATE", bot_id)
        start = asyncio.create_task(BotsRepo(pool).start(user_id, bot_id))
        await eventually(lambda: _waiting_on_a_lock(pool, "INSERT INTO bot_state"), what="the start to wait")
        delete = asyncio.create_task(OwnedApiKeys(pool, user_id).delete(key_id))
        # Whichever lock it meets (the start's hold on the key, or on the bot row), the delete waits.
        await eventually(
            lambda: _waiting_on_a_lock(pool, "SELECT id FROM api_keys", "DELETE FROM api_keys"),
            what="the delete to wait",
        )
        await gate_tx.commit()
    outcome, _ = await start
    deleted = await delete

    assert outcome is StartOutcome.STARTED
    assert deleted is DeleteOutcome.IN_USE
    row = await pool.fetchrow("SELECT is_active, api_key_id FROM bot_configs WHERE id = $1", bot_id)
    assert row is not None and row["is_active"] and row["api_key_id"] == key_id


async def test_a_bot_started_while_its_key_is_being_deleted_does_not_start_without_it(pool: asyncpg.Pool) -> None:
    user_id, key_id, bot_id = await _user_key_bot(pool)
    async with pool.acquire() as gate:
        gate_tx = gate.transaction()
        await gate_tx.start()
        # The table lock holds the delete after it has locked the key, before it looks for active bots.
        await gate.execute("LOCK TABLE bot_configs IN ACCESS EXCLUSIVE MODE")
        delete = asyncio.create_task(OwnedApiKeys(pool, user_id).delete(key_id))
        await eventually(lambda: _waiting_on_a_lock(pool, "SELECT EXISTS"), what="the delete to wait")
        start = asyncio.create_task(BotsRepo(pool).start(user_id, bot_id))
        await eventually(
            lambda: _waiting_on_a_lock(pool, "SELECT k.id FROM bot_configs", "UPDATE bot_configs"),
            what="the start to wait",
        )
        await gate_tx.commit()
    deleted = await delete
    outcome, _ = await start

    assert deleted is DeleteOutcome.DELETED
    assert outcome is StartOutcome.NO_API_KEY
    row = await pool.fetchrow("SELECT is_active, api_key_id FROM bot_configs WHERE id = $1", bot_id)
    assert row is not None and not row["is_active"] and row["api_key_id"] is None


async def test_a_start_that_meets_a_key_change_starts_on_the_new_key(pool: asyncpg.Pool) -> None:
    user_id, _, bot_id = await _user_key_bot(pool)
    new_key = await pool.fetchval(
        """INSERT INTO api_keys (user_id, label, exchange, api_key_encrypted, secret_encrypted, api_key_hint)
           VALUES ($1, 'second', 'binanceusdm', '\\x00', '\\x00', 'efgh') RETURNING id""",
        user_id,
    )
    async with pool.acquire() as edit:
        edit_tx = edit.transaction()
        await edit_tx.start()
        # The edit holds the bot row: the start locks the old key, then waits to activate.
        await edit.execute("SELECT 1 FROM bot_configs WHERE id = $1 FOR UPDATE", bot_id)
        start = asyncio.create_task(BotsRepo(pool).start(user_id, bot_id))
        await eventually(lambda: _waiting_on_a_lock(pool, "UPDATE bot_configs"), what="the start to wait")
        await edit.execute("UPDATE bot_configs SET api_key_id = $1 WHERE id = $2", new_key, bot_id)
        await edit_tx.commit()
    outcome, _ = await start

    assert outcome is StartOutcome.STARTED
    row = await pool.fetchrow("SELECT is_active, api_key_id FROM bot_configs WHERE id = $1", bot_id)
    assert row is not None and row["is_active"] and row["api_key_id"] == new_key
