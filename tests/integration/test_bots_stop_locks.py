"""A stop requested while the bot's owner records a fill: neither waits for the other forever.

The owner's fenced write holds the bot's state row and then inserts the trade, whose foreign key
takes a key-share lock on the bot's settings row; the stop locks the settings row and then writes
the state row. Were the stop's lock FOR UPDATE, the two would deadlock (PostgreSQL then kills one:
seen as a failed stop in the lifecycle tests). The interleaving is forced with row locks and
pg_stat_activity, so the test takes the same path on every run.
"""

from __future__ import annotations

import asyncio

import asyncpg

from tests.integration.test_bots_key_race import _user_key_bot, _waiting_on_a_lock
from tests.timing import eventually
from tradebot.bots.repo import BotsRepo


async def test_a_stop_while_a_fill_is_recorded_does_not_deadlock(pool: asyncpg.Pool) -> None:
    user_id, _, bot_id = await _user_key_bot(pool)
    await pool.execute("UPDATE bot_configs SET is_active = true WHERE id = $1", bot_id)
    await pool.execute("UPDATE bot_state SET status = 'running' WHERE bot_id = $1", bot_id)
    order_id = await pool.fetchval(
        """INSERT INTO orders (bot_id, user_id, client_order_id, symbol, side, amount, intent, signal_seq, fence_token)
           VALUES ($1, $2, 'tb-lock-1o', 'BTC/USDT:USDT', 'buy', 1, 'open_long', 1, 1) RETURNING id""",
        bot_id, user_id)
    async with pool.acquire() as owner:
        tx = owner.transaction()
        await tx.start()
        await owner.execute("SELECT fence_token FROM bot_state WHERE bot_id = $1 FOR UPDATE", bot_id)
        stop = asyncio.create_task(BotsRepo(pool).stop(user_id, bot_id, close_position=False))
        await eventually(lambda: _waiting_on_a_lock(pool, "INSERT INTO bot_state"), what="the stop to wait")
        await owner.execute(
            """INSERT INTO trades (bot_id, user_id, order_id, symbol, side, amount, price, fee, realized_pnl, client_order_id)
               VALUES ($1, $2, $3, 'BTC/USDT:USDT', 'buy', 1, 100, 0.04, 0, 'tb-lock-1o')""",
            bot_id, user_id, order_id)
        await tx.commit()
    change = await asyncio.wait_for(stop, timeout=30)
    assert change is not None and change.state["status"] == "stopping"
    assert await pool.fetchval("SELECT count(*) FROM trades WHERE bot_id = $1", bot_id) == 1
