"""Webhook outbox under load: trades written at a fixed rate through the runtime's own fenced write
path (order, trade and state in one transaction, the outbox hook inside it), delivered by the
delivery worker to one receiver; prints enqueue-to-delivery latency percentiles.

Enqueue time is the event row's created_at (its transaction's start, so the figure includes the
trade's own transaction); delivery time is the receiver's clock when the request arrives. The
receiver is its own process (an aiohttp app that answers 204), the worker and the trade writers
share this process's event loop as they share a replica's. One user, `--bots` bots, one webhook
taking `--events`; the machine's PostgreSQL in a throwaway database.

Run: .venv/bin/python bench/bench_webhooks.py [--rate 1000] [--seconds 10] [--bots 20] [--events trade]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncpg

from bench.benchdb import drop_database, fresh_database
from tradebot import db
from tradebot.notifications.delivery_worker import DeliveryWorker, WebhookSender, WorkerTiming
from tradebot.notifications.ssrf import AddressPolicy, GuardedResolver
from tradebot.runtime import bot_store
from tradebot.runtime.bot_store import NewOrder
from tradebot.security.mailer import OutboxMailer

RECEIVER = textwrap.dedent("""
    import sys, time, json
    from datetime import datetime
    from aiohttp import web
    latencies, ids = [], set()
    async def hook(request):
        arrived = time.time()
        body = json.loads(await request.read())
        created = datetime.fromisoformat(body["created_at"].replace("Z", "+00:00")).timestamp()
        latencies.append(arrived - created)
        ids.add(body["id"])
        return web.Response(status=204)
    async def stats(request):
        return web.json_response({"latencies": latencies, "distinct": len(ids), "received": len(latencies)})
    app = web.Application()
    app.router.add_post("/hook", hook)
    app.router.add_get("/stats", stats)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
""")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def setup(pool: asyncpg.Pool, bots: int, url: str, events: list[str]) -> tuple[int, list[int]]:
    user = await pool.fetchval("INSERT INTO users (email, password_hash) VALUES ('bench@example.com', 'x') RETURNING id")
    await pool.execute("INSERT INTO webhooks (user_id, url, events, secret) VALUES ($1, $2, $3, 'whsec_bench')",
                       user, url, events)
    ids = []
    for _ in range(bots):
        bot = await pool.fetchval(
            "INSERT INTO bot_configs (user_id, symbol, timeframe, ema_period) VALUES ($1, 'BTC/USDT:USDT', '1m', 5) "
            "RETURNING id", user)
        await pool.execute("INSERT INTO bot_state (bot_id, status) VALUES ($1, 'running')", bot)
        assert await bot_store.claim(pool, bot, 1, "bench")
        ids.append(bot)
    return user, ids


async def trade(pool: asyncpg.Pool, user: int, bot: int, seq: int) -> None:
    cid = f"b{bot}x{seq}"
    async with bot_store.fenced(pool, bot, 1) as conn:
        order_id = await bot_store.insert_order(conn, NewOrder(bot, user, cid, "BTC/USDT:USDT", "buy", 0.01, False,
                                                               "open_long", seq, 1))
        assert order_id is not None
        await bot_store.insert_trade(conn, bot_id=bot, user_id=user, order_id=order_id, symbol="BTC/USDT:USDT",
                                     side="buy", price=100.0, amount=0.01, fee=0.0004, realized_pnl=0.0,
                                     client_order_id=cid)
        await bot_store.update_state(conn, bot, bot_store.daily_fields(0.0, seq, None))


async def writer(pool: asyncpg.Pool, user: int, bot: int, rate: float, seconds: float, t0: float,
                 late: list[float]) -> int:
    n = int(rate * seconds)
    for k in range(n):
        due = t0 + k / rate
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            late.append(-delay)
        await trade(pool, user, bot, k + 1)
    return n


def stats(port: int) -> dict[str, object]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats", timeout=30) as r:
        return dict(json.loads(r.read()))


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=1000.0, help="trades per second, all bots together")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--bots", type=int, default=20)
    parser.add_argument("--events", default="trade", help="comma-separated events the webhook takes")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--drain", action="store_true",
                        help="queue rate x seconds trades first, then time the worker alone draining them")
    parser.add_argument("--baseline", action="store_true",
                        help="the same writers with no webhook: the write path's own ceiling on this machine")
    args = parser.parse_args()
    events = args.events.split(",")
    port = free_port()
    receiver = await asyncio.create_subprocess_exec(sys.executable, "-c", RECEIVER, str(port))
    url = await fresh_database("tradebot_bench_webhooks")
    pool = await db.create_pool(url, min_size=4, max_size=40)
    try:
        for _ in range(200):
            try:
                await asyncio.to_thread(stats, port)
                break
            except OSError:
                await asyncio.sleep(0.05)
        user, bots = await setup(pool, args.bots, f"http://127.0.0.1:{port}/hook", events)
        if args.baseline:
            await pool.execute("DELETE FROM webhooks")
            t0 = time.monotonic() + 0.2
            baseline_late: list[float] = []
            began = time.perf_counter()
            done = sum(await asyncio.gather(*(writer(pool, user, b, args.rate / args.bots, args.seconds, t0,
                                                     baseline_late) for b in bots)))
            took = time.perf_counter() - began - 0.2
            print(f"## bench_webhooks --baseline: {done} trades in {took:.1f} s ({done / took:,.0f} trades/s offered "
                  f"{args.rate:,.0f}), {args.bots} bots, no webhook")
            return
        worker = DeliveryWorker(pool, WebhookSender(GuardedResolver(AddressPolicy(allow_private=True))),
                                OutboxMailer(Path(os.devnull).parent / "tmp"), "http://127.0.0.1",
                                WorkerTiming(poll_s=0.05, concurrency=args.concurrency))
        if args.drain:
            queued = sum(await asyncio.gather(*(writer(pool, user, b, 1e9, args.rate * args.seconds / args.bots / 1e9,
                                                       time.monotonic(), []) for b in bots)))
            began = time.perf_counter()
            while await worker.deliver_due():
                pass
            took = time.perf_counter() - began
            await worker.sender.close()
            print(f"## bench_webhooks --drain: {worker.counters.delivered} of {queued} queued deliveries of one webhook "
                  f"sent in order by the worker alone in {took:.2f} s: {worker.counters.delivered / took:,.0f} per s")
            return
        task = asyncio.create_task(worker.run_webhooks(), name="bench-webhooks")
        t0 = time.monotonic() + 0.2
        late: list[float] = []
        started = time.perf_counter()
        written = sum(await asyncio.gather(*(writer(pool, user, b, args.rate / args.bots, args.seconds, t0, late)
                                              for b in bots)))
        write_s = time.perf_counter() - started - 0.2
        expected = written * len([e for e in events if e in ("trade", "state")])
        deadline = time.monotonic() + 120
        while (await asyncio.to_thread(stats, port))["distinct"] < expected and time.monotonic() < deadline:  # type: ignore[operator]
            await asyncio.sleep(0.1)
        drained_s = time.perf_counter() - started - 0.2
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await worker.sender.close()
        got = await asyncio.to_thread(stats, port)
        lat = [float(x) for x in got["latencies"]]  # type: ignore[attr-defined]
        lost = expected - int(got["distinct"])  # type: ignore[call-overload]
        print(f"## bench_webhooks: {written} trades in {write_s:.1f} s ({written / write_s:,.0f} trades/s offered "
              f"{args.rate:,.0f}), {args.bots} bots, webhook events {args.events}, worker concurrency "
              f"{args.concurrency}\n")
        print("| deliveries | received (with resends) | lost | p50 ms | p95 ms | p99 ms | max ms | drained after s |")
        print("|---|---|---|---|---|---|---|---|")
        print(f"| {expected} | {got['received']} | {lost} | {percentile(lat, 50) * 1000:.0f} | "
              f"{percentile(lat, 95) * 1000:.0f} | {percentile(lat, 99) * 1000:.0f} | {max(lat) * 1000:.0f} | "
              f"{drained_s:.1f} |")
        if late:
            print(f"\nwriters fell behind their schedule {len(late)} times (max {max(late) * 1000:.0f} ms)")
    finally:
        await pool.close()
        await drop_database(url)
        receiver.terminate()
        await receiver.wait()


if __name__ == "__main__":
    asyncio.run(main())
