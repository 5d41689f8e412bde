"""The schema: migrations apply once, and the database itself rejects rows that break its rules."""

from __future__ import annotations

import asyncpg
import pytest

from tradebot import db

CONTRACT_TABLES = {
    "users", "revoked_tokens", "api_keys", "bot_configs", "bot_state", "bot_ownership", "orders",
    "trades", "backtests", "candles", "candle_coverage", "job_runs",
}


async def test_every_table_exists(pool: asyncpg.Pool) -> None:
    rows = await pool.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    assert CONTRACT_TABLES <= {r["tablename"] for r in rows}


async def test_second_run_changes_nothing(database_url: str) -> None:
    assert await db.apply_migrations(database_url) == []


async def test_a_fresh_database_gets_everything(pool: asyncpg.Pool, database_url: str) -> None:
    # The session database was migrated from empty by the same function; its log shows one pass.
    n = await pool.fetchval("SELECT count(*) FROM _yoyo_migration")
    assert n == len(list(db.migrations_dir().glob("*[0-9]_*.sql"))) - len(
        list(db.migrations_dir().glob("*.rollback.sql"))
    )


async def _user(conn: asyncpg.Connection, email: str = "a@example.com") -> int:
    return int(await conn.fetchval("INSERT INTO users (email, password_hash) VALUES ($1, 'h') RETURNING id", email))


async def _api_key(conn: asyncpg.Connection, user_id: int) -> int:
    return int(
        await conn.fetchval(
            """INSERT INTO api_keys (user_id, label, exchange, api_key_encrypted, secret_encrypted, api_key_hint)
               VALUES ($1, 'main', 'binanceusdm', 'x', 'y', 'abcd') RETURNING id""",
            user_id,
        )
    )


async def _bot(conn: asyncpg.Connection, user_id: int, key_id: int | None, **overrides: object) -> int:
    values: dict[str, object] = {
        "user_id": user_id, "api_key_id": key_id, "symbol": "BTC/USDT:USDT", "timeframe": "1m", "ema_period": 20,
    }
    values.update(overrides)
    cols = ", ".join(values)
    params = ", ".join(f"${i}" for i in range(1, len(values) + 1))
    return int(await conn.fetchval(f"INSERT INTO bot_configs ({cols}) VALUES ({params}) RETURNING id", *values.values()))


async def test_emails_are_unique_whatever_the_case(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        await _user(conn, "same@example.com")
        with pytest.raises(asyncpg.CheckViolationError):
            await _user(conn, "Same@Example.com")  # not normalised: refused outright
        with pytest.raises(asyncpg.UniqueViolationError):
            await _user(conn, "same@example.com")


@pytest.mark.parametrize(
    "overrides",
    [
        {"ema_period": 1},
        {"ema_period": 1001},
        {"leverage": 0},
        {"leverage": 126},
        {"order_size_pct": 0.0},
        {"order_size_pct": 100.5},
        {"timeframe": "2m"},
        # any strategy name: plugins add theirs (migration 0008); the API checks the registry
        {"max_daily_loss_pct": 0.0},
        {"stop_loss_pct": 100.0},
        {"trailing_stop_pct": 0.05},  # Binance's callbackRate is 0.1 to 10 (migration 0013)
        {"trailing_stop_pct": 11.0},
        {"max_daily_trades": 0},
    ],
)
async def test_bot_settings_out_of_range_are_rejected(pool: asyncpg.Pool, overrides: dict[str, object]) -> None:
    async with pool.acquire() as conn:
        uid = await _user(conn)
        with pytest.raises(asyncpg.CheckViolationError):
            await _bot(conn, uid, None, **overrides)


async def test_bot_state_rules(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        uid = await _user(conn)
        bot = await _bot(conn, uid, None)
        with pytest.raises(asyncpg.CheckViolationError):  # a position needs a side
            await conn.execute("INSERT INTO bot_state (bot_id, in_position) VALUES ($1, true)", bot)
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute("INSERT INTO bot_state (bot_id, status) VALUES ($1, 'dancing')", bot)
        await conn.execute("INSERT INTO bot_state (bot_id) VALUES ($1)", bot)
        with pytest.raises(asyncpg.ForeignKeyViolationError):
            await conn.execute("INSERT INTO bot_state (bot_id) VALUES ($1)", bot + 1000)


async def test_client_order_ids_are_unique_and_well_formed(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        uid = await _user(conn)
        bot = await _bot(conn, uid, None)
        insert = """INSERT INTO orders (bot_id, user_id, client_order_id, symbol, side, amount, intent, signal_seq,
                    fence_token) VALUES ($1, $2, $3, 'BTC/USDT:USDT', 'buy', 1, 'open_long', 1, 1)"""
        await conn.execute(insert, bot, uid, "tb-1-1-1")
        with pytest.raises(asyncpg.UniqueViolationError):
            await conn.execute(insert, bot, uid, "tb-1-1-1")
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute(insert, bot, uid, "has space")
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute(insert, bot, uid, "x" * 37)


async def test_delete_rules(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        uid = await _user(conn)
        key = await _api_key(conn, uid)
        bot = await _bot(conn, uid, key)
        # Deleting a key leaves its bot in place, keyless.
        await conn.execute("DELETE FROM api_keys WHERE id = $1", key)
        assert await conn.fetchval("SELECT api_key_id FROM bot_configs WHERE id = $1", bot) is None
        # An active bot cannot be (soft-)deleted.
        await conn.execute("UPDATE bot_configs SET is_active = true WHERE id = $1", bot)
        with pytest.raises(asyncpg.CheckViolationError):
            await conn.execute("UPDATE bot_configs SET deleted_at = now() WHERE id = $1", bot)
        # Deleting a user takes everything of theirs with it.
        await conn.execute("DELETE FROM users WHERE id = $1", uid)
        assert await conn.fetchval("SELECT count(*) FROM bot_configs") == 0


async def test_backtest_rules(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        uid = await _user(conn)
        insert = """INSERT INTO backtests (user_id, status, symbol, timeframe, start_time, end_time, strategy,
                    parameters, initial_balance, result)
                    VALUES ($1, $2, 'BTC/USDT:USDT', '1h', $3::timestamptz, $4::timestamptz, 'ema_cross', '{}', 1000, $5)"""
        import datetime as dt

        t0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
        t1 = t0 + dt.timedelta(days=1)
        await conn.execute(insert, uid, "pending", t0, t1, None)
        with pytest.raises(asyncpg.CheckViolationError):  # start must precede end
            await conn.execute(insert, uid, "pending", t1, t0, None)
        with pytest.raises(asyncpg.CheckViolationError):  # done needs a result
            await conn.execute(insert, uid, "done", t0, t1, None)
        row = await conn.fetchrow("SELECT parameters FROM backtests LIMIT 1")
        assert row["parameters"] == {}  # jsonb decodes through orjson


async def test_bots_and_backtests_take_every_binance_timeframe(pool: asyncpg.Pool) -> None:
    from tradebot.timeframes import TIMEFRAMES

    insert = """INSERT INTO backtests (user_id, symbol, timeframe, start_time, end_time, strategy, parameters,
                initial_balance) VALUES ($1, 'BTC/USDT:USDT', $2, '2024-01-01', '2024-02-01', 'ema_cross', '{}', 1000)"""
    async with pool.acquire() as conn, conn.transaction():
        uid = await _user(conn, "timeframes@example.com")
        for timeframe in TIMEFRAMES:
            await _bot(conn, uid, None, timeframe=timeframe)
            await conn.execute(insert, uid, timeframe)
        for bad in ("2m", "1mo", "1W"):
            with pytest.raises(asyncpg.CheckViolationError):
                async with conn.transaction():
                    await _bot(conn, uid, None, timeframe=bad)
            with pytest.raises(asyncpg.CheckViolationError):
                async with conn.transaction():
                    await conn.execute(insert, uid, bad)
        await conn.execute("DELETE FROM users WHERE id = $1", uid)
