"""Batched strategy snapshots: one statement for many bots, never under a superseded fence."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
import pytest

from tests.integration.runtime_helpers import create_bot, create_user
from tradebot.runtime.state_writer import Snapshot, StateWriter


def _snap(fence: int, seq: int) -> Snapshot:
    return Snapshot(fence, {"ema_cross": {"seq": seq}}, seq, 1_000 * seq, datetime.now(UTC))


async def test_snapshots_are_written_in_one_batch_under_their_fence(pool: asyncpg.Pool) -> None:
    user = await create_user(pool)
    bots = [await create_bot(pool, user, None, active=False) for _ in range(3)]
    await pool.execute("UPDATE bot_state SET fence_token = 5")
    writer = StateWriter(pool)
    writer.put(bots[0], _snap(5, 1))
    writer.put(bots[0], _snap(5, 2))  # only the newest per bot is written
    writer.put(bots[1], _snap(5, 7))
    writer.put(bots[2], _snap(4, 9))  # an older owner's snapshot: refused by the fence
    assert await writer.flush() == 2
    rows = {r["bot_id"]: r for r in await pool.fetch("SELECT * FROM bot_state")}
    assert rows[bots[0]]["signal_seq"] == 2 and rows[bots[0]]["strategy_state"] == {"ema_cross": {"seq": 2}}
    assert rows[bots[1]]["last_candle_time"] == 7_000
    assert rows[bots[2]]["signal_seq"] == 0 and rows[bots[2]]["strategy_state"] is None
    assert await writer.flush() == 0


async def test_a_discarded_snapshot_is_not_written(pool: asyncpg.Pool) -> None:
    user = await create_user(pool)
    bot = await create_bot(pool, user, None, active=False)
    await pool.execute("UPDATE bot_state SET fence_token = 1, signal_seq = 3")
    writer = StateWriter(pool)
    writer.put(bot, _snap(1, 2))
    writer.discard(bot)  # a synchronous save wrote newer state meanwhile
    assert await writer.flush() == 0
    assert await pool.fetchval("SELECT signal_seq FROM bot_state WHERE bot_id = $1", bot) == 3


async def test_a_failed_flush_keeps_the_snapshots(pool: asyncpg.Pool) -> None:
    user = await create_user(pool)
    bot = await create_bot(pool, user, None, active=False)
    await pool.execute("UPDATE bot_state SET fence_token = 1")
    writer = StateWriter(pool)
    writer.put(bot, Snapshot(1, {"x": 1}, 1, None, "not a time"))  # type: ignore[arg-type]  # a bad value on purpose
    with pytest.raises((asyncpg.PostgresError, asyncpg.DataError, TypeError, ValueError)):
        await writer.flush()
    writer.put(bot, _snap(1, 4))  # a newer snapshot replaces the kept one
    assert await writer.flush() == 1
