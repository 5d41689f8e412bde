"""Reporting cost: GET /api/v1/stats over 100,000 trades of one user (20 bots, ~2 years), per group,
with and without bot_id; GET /bots with its lifetime figures; the CSV export of every trade.

The app runs in this process (no bot runtime) against the machine's PostgreSQL and Redis, in a
throwaway database and Redis prefix removed afterwards; requests go one at a time over HTTP, so a
figure is one request's latency including authentication. Prints a markdown table and the query
plans (EXPLAIN ANALYZE) of the stats statements.

Run: .venv/bin/python bench/bench_stats.py [--trades 100000] [--bots 20] [--repeat 30]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import asyncpg
import redis.asyncio as aioredis
from aiohttp import web
from cryptography.fernet import Fernet

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.benchdb import drop_database, fresh_database
from tradebot.bots.stats import StatsGroup, TradeFilter
from tradebot.config import Secrets, Settings
from tradebot.http.app import create_app

PASSWORD = "correct horse battery staple 42"
REDIS_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _other_user(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        user_id: int = await conn.fetchval(
            "INSERT INTO users (email, password_hash) VALUES ($1, 'x') RETURNING id",
            f"other-{secrets.token_hex(4)}@example.com",
        )
        return user_id
    finally:
        await conn.close()


async def seed(url: str, user_id: int, bots: int, trades: int, tag: str = "bench") -> list[int]:
    """`bots` bots and `trades` filled orders with one trade each, spread over two years."""
    conn = await asyncpg.connect(url)
    try:
        # One statement inserting thousands of trades per bot would update each bot's totals row
        # thousands of times in one transaction (minutes); trades arrive one by one in production.
        # So the seed skips triggers and fills bot_trade_totals the way migration 0007 does.
        await conn.execute("SET session_replication_role = replica")
        bot_ids = [
            await conn.fetchval(
                "INSERT INTO bot_configs (user_id, name, symbol, timeframe, ema_period, parameters) "
                "VALUES ($1, $2, 'BTC/USDT:USDT', '1m', 20, '{\"ema_period\": 20}') RETURNING id",
                user_id, f"bench-{i}",
            )
            for i in range(bots)
        ]
        await conn.executemany("INSERT INTO bot_state (bot_id) VALUES ($1)", [(b,) for b in bot_ids])
        await conn.execute(
            """
            WITH o AS (
                INSERT INTO orders (bot_id, user_id, client_order_id, symbol, side, amount, intent, signal_seq,
                                    fence_token, status, filled_amount, average_price, created_at, updated_at)
                SELECT ($2::bigint[])[1 + g % array_length($2::bigint[], 1)], $1::bigint, $4::text || g,
                       'BTC/USDT:USDT', CASE WHEN g % 2 = 0 THEN 'buy' ELSE 'sell' END, 0.01, 'open', g, 1,
                       'filled', 0.01, 100,
                       '2024-12-01'::timestamptz + make_interval(secs => g * (730 * 86400.0 / $3::int)),
                       '2024-12-01'::timestamptz + make_interval(secs => g * (730 * 86400.0 / $3::int))
                  FROM generate_series(1, $3::int) g
                RETURNING id, bot_id, side, signal_seq, client_order_id, created_at)
            INSERT INTO trades (bot_id, user_id, order_id, symbol, side, price, amount, fee, realized_pnl,
                                client_order_id, created_at)
            SELECT bot_id, $1::bigint, id, 'BTC/USDT:USDT', side, 100 + signal_seq % 97, 0.01,
                   CASE WHEN signal_seq % 50 = 0 THEN NULL ELSE 0.0004 * (signal_seq % 13) END,
                   round(((signal_seq * 7919) % 2001 - 1000) / 100.0, 2), client_order_id, created_at
              FROM o
            """,
            user_id, bot_ids, trades, tag,
        )
        await conn.execute(
            """INSERT INTO bot_trade_totals (bot_id, user_id, trades_count, realized_pnl, fees, wins, losses,
                                             fees_unknown, curve_exact)
               SELECT bot_id, min(user_id), count(*), sum(realized_pnl), coalesce(sum(fee), 0),
                      count(*) FILTER (WHERE realized_pnl > 0), count(*) FILTER (WHERE realized_pnl < 0),
                      count(*) FILTER (WHERE fee IS NULL), false
                 FROM trades WHERE bot_id = ANY($1::bigint[]) GROUP BY bot_id""",
            bot_ids,
        )
        await conn.execute("VACUUM ANALYZE trades")
        await conn.execute("VACUUM ANALYZE orders")
    finally:
        await conn.close()
    return bot_ids


async def insert_one_by_one(url: str, user_id: int, bot_id: int, count: int) -> list[float]:
    """What the runtime does per fill: an order and its trade, each trade in its own transaction."""
    conn = await asyncpg.connect(url)
    out = []
    try:
        for i in range(count):
            start = time.perf_counter()
            async with conn.transaction():
                order_id = await conn.fetchval(
                    "INSERT INTO orders (bot_id, user_id, client_order_id, symbol, side, amount, intent, signal_seq, "
                    "fence_token, status) VALUES ($1, $2, $3, 'BTC/USDT:USDT', 'buy', 0.01, 'open', 0, 1, 'filled') "
                    "RETURNING id",
                    bot_id, user_id, f"one{i}",
                )
                await conn.execute(
                    "INSERT INTO trades (bot_id, user_id, order_id, symbol, side, price, amount, fee, realized_pnl, "
                    "client_order_id, created_at) VALUES ($1, $2, $3, 'BTC/USDT:USDT', 'buy', 100, 0.01, 0.0004, "
                    "$4, $5, '2026-12-01'::timestamptz + make_interval(secs => $6::int))",
                    bot_id, user_id, order_id, i % 7 - 3, f"one{i}", i,
                )
            out.append((time.perf_counter() - start) * 1000)
    finally:
        await conn.close()
    return out


async def timed(session: aiohttp.ClientSession, url: str, headers: dict[str, str], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        start = time.perf_counter()
        async with session.get(url, headers=headers) as r:
            await r.read()
            assert r.status == 200, r.status
        out.append((time.perf_counter() - start) * 1000)
    return out


def row(name: str, ms: list[float]) -> str:
    ordered = sorted(ms)
    p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
    return f"| {name} | {len(ms)} | {statistics.median(ms):.1f} | {p95:.1f} | {min(ms):.1f} |"


async def explain(url: str, user_id: int, bot_id: int) -> list[str]:
    """The plans of the statements GET /stats runs, captured through the same SQL text."""
    from tradebot.bots import stats as stats_module

    conn = await asyncpg.connect(url)
    plans: list[str] = []
    try:
        for group, flt in ((StatsGroup.DAY, TradeFilter()), (StatsGroup.MONTH, TradeFilter(bot_id=bot_id))):
            assert group in stats_module._TRUNC_UNIT
            args: list[object] = [stats_module._TRUNC_UNIT[group]]
            sql = stats_module.period_sql(flt.where(user_id, args))
            lines = await conn.fetch(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", *args)
            plans.append(f"group={group.value} {'bot_id' if flt.bot_id else 'all bots'}:")
            plans += ["    " + r[0] for r in lines]
    finally:
        await conn.close()
    return plans


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trades", type=int, default=100_000)
    parser.add_argument("--bots", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--other-trades", type=int, default=100_000,
                        help="trades of another user beside them (the table is never one user's alone)")
    args = parser.parse_args()

    url = await fresh_database("tradebot_bench_stats")
    prefix = f"bench-stats-{secrets.token_hex(3)}"
    with tempfile.TemporaryDirectory() as data_dir:
        settings = Settings.model_validate({"DATABASE_URL": url, "REDIS_URL": REDIS_URL, "env": "test",
                                            "redis_prefix": prefix, "data_dir": data_dir,
                                            "runtime_enabled": False})
        keys = Secrets(jwt_secret=secrets.token_urlsafe(48), fernet_keys=(Fernet.generate_key().decode(),),
                       ephemeral=True)
        app = create_app(settings, keys, database_url=url, redis_url=REDIS_URL, replica_id="bench")
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        base = f"http://127.0.0.1:{port}/api/v1"
        try:
            async with aiohttp.ClientSession() as session:
                email = f"bench-{secrets.token_hex(4)}@example.com"
                async with session.post(f"{base}/auth/register", json={"email": email, "password": PASSWORD}) as r:
                    user_id = (await r.json())["id"]
                async with session.post(f"{base}/auth/login", json={"email": email, "password": PASSWORD}) as r:
                    headers = {"Authorization": f"Bearer {(await r.json())['access_token']}"}
                started = time.perf_counter()
                bot_ids = await seed(url, user_id, args.bots, args.trades)
                if args.other_trades:
                    other = await _other_user(url)
                    await seed(url, other, args.bots, args.other_trades, tag="other")
                seeded_s = time.perf_counter() - started

                print(f"## bench_stats\n\n{args.trades:,} trades of one user, {args.bots} bots, 2 years, beside "
                      f"{args.other_trades:,} of another user "
                      f"(seeded in {seeded_s:.1f} s); one request at a time, in-process server, "
                      f"{os.cpu_count()} CPUs shared\n")
                print("| request | n | median ms | p95 ms | min ms |\n|---|---:|---:|---:|---:|")
                print(row("GET /auth/me (auth alone)", await timed(session, f"{base}/auth/me", headers, args.repeat)))
                for group in ("day", "week", "month", "all"):
                    ms = await timed(session, f"{base}/stats?group={group}", headers, args.repeat)
                    print(row(f"GET /stats?group={group}", ms))
                    ms = await timed(session, f"{base}/stats?group={group}&bot_id={bot_ids[0]}", headers, args.repeat)
                    print(row(f"GET /stats?group={group}&bot_id=…", ms))
                ms = await timed(session, f"{base}/stats?group=day&since=2026-01-01T00:00:00Z", headers, args.repeat)
                print(row("GET /stats?group=day&since=(last ~11 months)", ms))
                first = await timed(session, f"{base}/bots?limit={args.bots}", headers, 1)
                print(row(f"GET /bots, first ({args.bots} drawdown curves recomputed from the trades)", first))
                ms = await timed(session, f"{base}/bots?limit={args.bots}", headers, args.repeat)
                print(row(f"GET /bots ({args.bots} bots with lifetime stats)", ms))
                ms = await timed(session, f"{base}/trades?limit=500", headers, args.repeat)
                print(row("GET /trades?limit=500 (JSON page)", ms))
                print(row("one trade inserted (own transaction, with the totals trigger)",
                          await insert_one_by_one(url, user_id, bot_ids[0], args.repeat * 10)))
                start = time.perf_counter()
                async with session.get(f"{base}/trades?format=csv", headers=headers) as r:
                    size = len(await r.read())
                export_s = time.perf_counter() - start
                print(f"\nCSV export of all {args.trades:,} trades: {export_s:.2f} s, {size / 1e6:.1f} MB "
                      f"({args.trades / export_s:,.0f} rows/s)\n")
                print("```")
                print("\n".join(await explain(url, user_id, bot_ids[0])))
                print("```")
        finally:
            await runner.cleanup()
            client = aioredis.Redis.from_url(REDIS_URL)
            stale = [k async for k in client.scan_iter(match=f"{prefix}:*", count=1000)]
            if stale:
                await client.delete(*stale)
            await client.aclose()
            await drop_database(url)


if __name__ == "__main__":
    asyncio.run(main())
