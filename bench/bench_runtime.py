"""Runtime benchmarks (issue 6). Prints a markdown table; not part of the test run.

A. Decision latency: the simulator (its own process) closes a candle; how long until the bot's
   order request reaches the simulator. Next to it, in the same run, the hub's delivery time of the
   same candles to a plain subscriber (the floor the decision sits on).
   The same latency with protective orders placed (stop loss and take profit held by the exchange).
B. Scale: 10,000 running bots on 100 symbols in one replica (real PostgreSQL and Redis; the
   exchange account used while starting is in memory, since no orders are placed): the time for
   one round of closed candles to reach a decision in every actor, resident memory per idle bot,
   and event-loop lag (p99) during the round.
C. Paper beside live: the same scale run with 1,000 paper bots (each on its virtual account in
   PostgreSQL, runtime/paper_account.py) and with 1,000 live bots, the per-bot figures side by side.

    .venv/bin/python bench/bench_runtime.py [--bots 10000] [--symbols 100] [--candles 1000] [--paper-bots 1000] [--skip-protective]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import secrets
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import redis.asyncio as aioredis
from cryptography.fernet import Fernet

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.benchdb import drop_database, fresh_database
from tradebot import db
from tradebot.config import Secrets, Settings
from tradebot.http.app import create_app
from tradebot.http.appkeys import MARKET_DATA, RUNTIME
from tradebot.runtime.account import LastClose
from tradebot.runtime.bot_actor import ActorContext
from tradebot.runtime.bot_runtime import BotRuntime, RuntimeTiming
from tradebot.runtime.bot_store import FLAT, BotConfig, Position
from tradebot.runtime.candles import Candle
from tradebot.runtime.clock import SystemClock
from tradebot.runtime.events import BotEvents
from tradebot.runtime.leases import LeaseManager
from tradebot.runtime.paper_account import ChosenAccounts
from tradebot.runtime.risk import MarketLimits
from tradebot.runtime.state_writer import StateWriter
from tradebot.runtime_context import runtime_context
from tradebot.security.secrets_box import SecretBox

MINUTE = 60_000
START = 1_767_225_600_000


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


# ---------------------------------------------------------------------------------------------- A


def _sweep_forever(stop: Any, done: Any) -> None:
    from bench.bench_backtest import synthetic
    from tradebot.runtime.optimization_worker import child_start
    from tradebot.strategies.sweep import sweep

    child_start()  # as the worker pool's processes start (lower priority, plugins)

    candles = synthetic(1_000_000)
    trials = [{"ema_period": p} for p in range(10, 90, 10)]  # one chunk of 8
    while not stop.is_set():
        sweep(candles, "ema_cross", trials, timeframe="1m", initial_balance=10_000.0)
        with done.get_lock():
            done.value += len(trials)


class SweepLoad:
    """An optimisation worker's load beside the bots: grid sweeps of ema_cross on 1M bars, over and
    over until stopped, in a spawned child process as a replica's worker pool runs them."""

    def __init__(self) -> None:
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        self._stop = ctx.Event()
        self._done = ctx.Value("q", 0)
        self._proc = ctx.Process(target=_sweep_forever, args=(self._stop, self._done), name="sweep-load")

    @property
    def trials(self) -> int:
        return int(self._done.value)

    def __enter__(self) -> SweepLoad:
        self._proc.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._proc.join(timeout=30)
        if self._proc.is_alive():
            self._proc.terminate()


async def bench_latency(candles: int, spacing: float, during_sweep: bool = False,
                        protective: bool = False) -> dict[str, Any]:
    from tests.simulator_process import simulator_process  # the same helper the tests use

    database_url = await fresh_database("tradebot_bench")
    redis_url = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
    prefix = f"bench-{secrets.token_hex(3)}"
    tmp = Path(tempfile.mkdtemp())
    try:
        with simulator_process(tmp) as sim:
            api_key, secret = sim.account(1_000_000)
            settings = Settings.model_validate({"DATABASE_URL": database_url, "REDIS_URL": redis_url, "env": "test",
                                                "redis_prefix": prefix, "exchange_url": sim.url,
                                                "data_dir": tmp, "runtime_enabled": True})
            app_secrets = Secrets("x" * 48, (Fernet.generate_key().decode(),), ephemeral=True)
            app = create_app(settings, app_secrets, database_url=database_url, redis_url=redis_url,
                             replica_id="bench", extra_contexts=[runtime_context(timing=RuntimeTiming(
                                 reconcile_interval_s=0.2))])
            from aiohttp.test_utils import TestServer

            server = TestServer(app)
            await server.start_server()
            try:
                if not during_sweep:
                    return await _latency_run(app, database_url, sim, api_key, secret, app_secrets, candles, spacing,
                                              protective)
                with SweepLoad() as load:
                    started = time.monotonic()
                    out = await _latency_run(app, database_url, sim, api_key, secret, app_secrets, candles, spacing)
                    out["sweep_trials_per_s"] = load.trials / (time.monotonic() - started)
                    return out
            finally:
                await server.close()
    finally:
        await drop_database(database_url)


async def _latency_run(app: Any, database_url: str, sim: Any, api_key: str, secret: str, app_secrets: Secrets,
                       candles: int, spacing: float, protective: bool = False) -> dict[str, Any]:
    pool = await asyncpg.connect(database_url)
    box = SecretBox(app_secrets.fernet_keys)
    user = await pool.fetchval("INSERT INTO users (email, password_hash) VALUES ('b@example.com', 'x') RETURNING id")
    key = await pool.fetchval(
        """INSERT INTO api_keys (user_id, label, exchange, api_key_encrypted, secret_encrypted, api_key_hint)
           VALUES ($1, 'sim', 'binanceusdm', $2, $3, 'xxxx') RETURNING id""",
        user, box.encrypt(api_key), box.encrypt(secret))
    # With protective orders: every position holds a stop loss and a take profit on the exchange,
    # wide enough (50 %) that the candles below never trigger them; each decision then polls them,
    # cancels them after the reversal's close and places the new position's after its entry.
    stops = 50.0 if protective else None
    bot = await pool.fetchval(
        """INSERT INTO bot_configs (user_id, api_key_id, symbol, timeframe, ema_period, leverage, order_size_pct,
                                    allow_short, is_active, max_daily_trades, max_daily_loss_pct, stop_loss_pct,
                                    take_profit_pct)
           VALUES ($1, $2, 'BTC/USDT:USDT', '1m', 2, 1, 5, true, true, 100000, 100, $3, $3) RETURNING id""",
        user, key, stops)
    await pool.execute("INSERT INTO bot_state (bot_id, status) VALUES ($1, 'starting')", bot)
    await pool.close()
    runtime: BotRuntime = app[RUNTIME]
    runtime.poke()
    deadline = time.monotonic() + 30
    while (actor := runtime.supervisor.actor(bot)) is None or actor.status != "running":
        if time.monotonic() > deadline:
            raise RuntimeError("bot did not start")
        await asyncio.sleep(0.05)

    arrivals: dict[int, float] = {}

    class Probe:
        def offer(self, candle: Candle) -> None:
            arrivals.setdefault(candle.open_time, time.time())

    app[MARKET_DATA].subscribe("BTC/USDT:USDT", "1m", Probe())
    pushed: dict[int, float] = {}
    actor = runtime.supervisor.actor(bot)
    assert actor is not None
    async with aiohttp.ClientSession() as http:
        for i in range(candles):
            t = START + i * MINUTE
            close = 110.0 if i % 2 else 90.0  # every candle crosses the EMA(2): one order per candle
            before = actor.decisions
            pushed[t] = time.time()
            async with http.post(f"{sim.url}/_sim/klines", json={
                "symbol": "BTCUSDT", "interval": "1m", "candles": [[t, 100.0, 111.0, 89.0, close, 1.0]]}) as r:
                assert r.status == 202
            while actor.decisions == before:
                await asyncio.sleep(0.001)
            # Each decision here trades (about 7 request weight): spacing the candles keeps the
            # exchange's rate limit (20 weight/s) out of the figure, as minute candles do live.
            await asyncio.sleep(spacing)
        async with http.get(f"{sim.url}/_sim/orders", params={"api_key": api_key}) as r:
            audit = await r.json()
    first_order: dict[int, float] = {}
    seq_to_time: dict[int, int] = {}
    orders_conn = await asyncpg.connect(database_url)
    # Market orders only: a protective order carries its entry's seq and is placed after it.
    rows = await orders_conn.fetch("SELECT client_order_id, signal_seq FROM orders WHERE bot_id = $1 "
                                   "AND type = 'market'", bot)
    await orders_conn.close()
    cid_seq = {r["client_order_id"]: r["signal_seq"] for r in rows}
    # Signal seq n is decided on the n-th candle after the EMA is seeded (candle index n).
    for seq in set(cid_seq.values()):
        seq_to_time[seq] = START + seq * MINUTE
    for entry in audit:
        seq = cid_seq.get(entry["client_order_id"])
        if seq is None:
            continue
        received = datetime.fromisoformat(entry["received_at"].replace("Z", "+00:00")).timestamp()
        t = seq_to_time[seq]
        first_order[t] = min(first_order.get(t, received), received)
    decision = [(first_order[t] - pushed[t]) * 1000 for t in first_order if t in pushed]
    delivery = [(arrivals[t] - pushed[t]) * 1000 for t in arrivals if t in pushed]
    return {"decision_ms": decision, "delivery_ms": delivery}


# ---------------------------------------------------------------------------------------------- B


class MemoryAccount:
    """The exchange account at start-up, in memory: no orders are placed in this benchmark."""

    async def market_limits(self, symbol: str) -> MarketLimits:
        return MarketLimits(0.001, 0.001, 5.0, 50)

    async def set_leverage(self, symbol: str, leverage: int) -> None:
        return None

    async def free_balance(self, asset: str = "USDT") -> float:
        return 10_000.0

    async def position(self, symbol: str) -> Position:
        return FLAT

    async def find_order(self, client_order_id: str, symbol: str) -> None:
        return None

    def expected_fill_price(self, side: str, price: float) -> float:
        return price

    async def observe_candle(self, symbol: str, candle: Any) -> None:
        return None

    async def find_protective(self, client_order_id: str, symbol: str) -> None:
        return None

    async def open_protective(self, symbol: str) -> set[str]:
        return set()

    async def cancel_protective(self, client_order_id: str, symbol: str) -> bool:
        return False


class MemoryAccounts:
    def __init__(self) -> None:
        self.account = MemoryAccount()

    async def get(self, api_key_id: int) -> Any:
        return self.account

    async def for_bot(self, config: BotConfig, fence: int, last_close: LastClose) -> Any:
        return self.account


class BenchMarkets:
    """The public market data a paper account reads (the market cache's limits)."""

    async def market_limits(self, symbol: str) -> MarketLimits:
        return MarketLimits(0.001, 0.001, 5.0, 50)

    async def last_close(self, symbol: str, timeframe: str) -> float | None:
        return 100.0


class FanOut:
    """What the hub does for a round: offer each symbol's closed candle to its subscribers."""

    def __init__(self, warm: int) -> None:
        self.sinks: dict[tuple[str, str], list[Any]] = defaultdict(list)
        self.warm = warm

    def subscribe(self, symbol: str, timeframe: str, sink: Any, *, after: int | None = None) -> Any:
        self.sinks[(symbol, timeframe)].append(sink)
        return (symbol, timeframe, sink)

    def unsubscribe(self, subscription: Any) -> None:
        symbol, timeframe, sink = subscription
        self.sinks[(symbol, timeframe)].remove(sink)

    async def fetch_closed_history(self, symbol: str, timeframe: str, since_ms: int | None, limit: int) -> list[Candle]:
        return [Candle(symbol, timeframe, START + i * MINUTE, 100, 101, 99, 100.0, 1) for i in range(self.warm)]

    def newest_closed(self, subscription: Any) -> int | None:
        return None  # every candle is offered straight to the sinks

    async def round(self, t: int) -> None:
        # As the hub does it: each stream's own task delivers its candle to that stream's
        # subscribers, so the loop sees one batch of wake-ups per symbol, not all at once.
        for (symbol, timeframe), sinks in self.sinks.items():
            candle = Candle(symbol, timeframe, t, 100, 101, 99, 100.0, 1)  # close == EMA: no trade
            for sink in sinks:
                sink.offer(candle)
            await asyncio.sleep(0)


async def bench_scale(bots: int, symbols: int, *, paper: bool = False) -> dict[str, Any]:
    """`paper`: every bot is a paper bot (no key) on its own virtual account in PostgreSQL."""
    database_url = await fresh_database("tradebot_bench")
    redis_url = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
    prefix = f"bench-{secrets.token_hex(3)}"
    pool = await db.create_pool(database_url, min_size=5, max_size=20)
    redis = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        user = await pool.fetchval("INSERT INTO users (email, password_hash) VALUES ('s@example.com', 'x') RETURNING id")
        # One key per bot: a key may run one bot per symbol (they would share a position). Paper
        # bots need none.
        keys = await pool.fetch(
            """INSERT INTO api_keys (user_id, label, exchange, api_key_encrypted, secret_encrypted, api_key_hint)
               SELECT $1, 'k' || g, 'binanceusdm', 'x', 'y', 'xxxx' FROM generate_series(1, $2) g RETURNING id""",
            user, 0 if paper else bots)
        names = [f"S{i:03d}/USDT:USDT" for i in range(symbols)]
        await pool.executemany(
            """INSERT INTO bot_configs (user_id, api_key_id, symbol, timeframe, ema_period, is_active, mode)
               VALUES ($1, $2, $3, '1m', 3, true, $4)""",
            [(user, None if paper else keys[i]["id"], names[i % symbols], "paper" if paper else "live")
             for i in range(bots)])
        await pool.execute("INSERT INTO bot_state (bot_id, status, leverage_applied) "
                           "SELECT id, 'starting', 1 FROM bot_configs")
        # EMA(3): alpha = 0.5 is exact in binary, so a constant close equals its EMA exactly and no
        # bot trades (with other periods rounding leaves the EMA a hair off and every bot buys).
        fan = FanOut(warm=30)
        events = BotEvents(redis, prefix)
        clock = SystemClock()
        # MemoryAccounts stands in for the exchange AccountPool; paper bots get the runtime's own
        # paper accounts (PostgreSQL rows), exactly as a replica builds them.
        accounts = ChosenAccounts(pool, MemoryAccounts(), BenchMarkets()) if paper else MemoryAccounts()
        ctx = ActorContext(pool, events, fan, accounts, clock, "bench", state_writer=StateWriter(pool))
        leases = LeaseManager(redis, prefix, "bench", clock, ttl_ms=30_000, renew_interval_ms=5_000)
        runtime = BotRuntime(ctx=ctx, redis=redis, prefix=prefix, leases=leases, clock=clock,
                             timing=RuntimeTiming(reconcile_interval_s=1.0, renew_interval_s=5.0, tick_interval_s=60))
        gc.collect()
        rss_before = rss_bytes()
        started = time.perf_counter()
        runtime.start()
        while sum(1 for b in runtime.supervisor.running()
                  if (a := runtime.supervisor.actor(b)) is not None and a.status == "running") < bots:
            await asyncio.sleep(0.2)
        start_s = time.perf_counter() - started
        await asyncio.sleep(1)
        gc.collect()
        per_bot = (rss_bytes() - rss_before) / bots

        rounds = []
        lags: list[float] = []
        for r in range(5):
            stop = asyncio.Event()
            lag_task = asyncio.create_task(_lag_monitor(lags, stop))
            target = ctx.counters.decisions + bots
            t0 = time.perf_counter()
            await fan.round(START + (30 + r) * MINUTE)
            while ctx.counters.decisions < target:
                await asyncio.sleep(0.001)
            rounds.append(time.perf_counter() - t0)
            stop.set()
            await lag_task
        reconcile = []
        for _ in range(5):
            t0 = time.perf_counter()
            await runtime.reconcile_once()
            reconcile.append(time.perf_counter() - t0)
        await runtime.close()
        await events.close()
        return {"start_s": start_s, "round_s": rounds, "per_bot_bytes": per_bot, "lag_ms": lags,
                "reconcile_s": reconcile}
    finally:
        keys = [k async for k in redis.scan_iter(match=f"{prefix}:*", count=5000)]
        for i in range(0, len(keys), 1000):
            await redis.delete(*keys[i:i + 1000])
        await redis.aclose()
        await pool.close()
        await drop_database(database_url)


async def _lag_monitor(samples: list[float], stop: asyncio.Event) -> None:
    interval = 0.005
    while not stop.is_set():
        t = time.perf_counter()
        await asyncio.sleep(interval)
        samples.append((time.perf_counter() - t - interval) * 1000)


# ---------------------------------------------------------------------------------------------- main


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bots", type=int, default=10_000)
    parser.add_argument("--symbols", type=int, default=100)
    parser.add_argument("--candles", type=int, default=1000)
    parser.add_argument("--spacing", type=float, default=0.4, help="seconds between candles in the latency run")
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--skip-scale", action="store_true")
    parser.add_argument("--paper-bots", type=int, default=1000, help="paper and live bots in the side-by-side run")
    parser.add_argument("--skip-paper", action="store_true")
    parser.add_argument("--skip-protective", action="store_true",
                        help="skip the decision latency with protective orders placed")
    parser.add_argument("--paper-runs", type=int, default=3, help="alternating runs of each in the side-by-side run")
    parser.add_argument("--during-sweep", action="store_true",
                        help="also measure decision latency while an optimisation sweep runs in a worker thread")
    args = parser.parse_args()
    import logging

    logging.basicConfig(level=logging.WARNING)
    rows = []
    if not args.skip_latency:
        lat = await bench_latency(args.candles, args.spacing)
        d, h = lat["decision_ms"], lat["delivery_ms"]
        rows.append(f"| decision latency: final kline sent → order request received ({len(d)} candles, "
                    f"each one trading, {args.spacing:g} s apart) | "
                    f"median {statistics.median(d):.1f} ms, p99 {pct(d, 0.99):.1f} ms |")
        rows.append(f"| hub delivery alone: final kline sent → subscriber has it ({len(h)} candles) | "
                    f"median {statistics.median(h):.1f} ms, p99 {pct(h, 0.99):.1f} ms |")
        if not args.skip_protective:
            pr = await bench_latency(args.candles, args.spacing, protective=True)
            d = pr["decision_ms"]
            rows.append(f"| the same decision latency with protective orders placed (stop loss and take profit on "
                        f"the exchange: polled in one listing, cancelled after each close, placed after each entry) | "
                        f"median {statistics.median(d):.1f} ms, p99 {pct(d, 0.99):.1f} ms |")
        if args.during_sweep:
            sw = await bench_latency(args.candles, args.spacing, during_sweep=True)
            d = sw["decision_ms"]
            rows.append(f"| the same decision latency while an optimisation worker sweeps ema_cross on 1M bars in "
                        f"its child process ({sw['sweep_trials_per_s']:.0f} trials/s) | median {statistics.median(d):.1f} ms, "
                        f"p99 {pct(d, 0.99):.1f} ms |")
    if not args.skip_scale:
        sc = await bench_scale(args.bots, args.symbols)
        rows.append(f"| {args.bots:,} bots on {args.symbols} symbols: one round of closed candles to a decision in "
                    f"every actor (5 rounds) | median {statistics.median(sc['round_s']) * 1000:.0f} ms, "
                    f"max {max(sc['round_s']) * 1000:.0f} ms (target < 1000 ms) |")
        rows.append(f"| resident memory per idle bot | {sc['per_bot_bytes'] / 1024:.1f} KiB (target < 20 KiB) |")
        rows.append(f"| event-loop lag during the rounds | p99 {pct(sc['lag_ms'], 0.99):.1f} ms, "
                    f"max {max(sc['lag_ms']):.1f} ms (target p99 < 50 ms) |")
        rows.append(f"| one reconcile pass over {args.bots:,} running bots (runs every second) | "
                    f"median {statistics.median(sc['reconcile_s']) * 1000:.0f} ms |")
        rows.append(f"| starting {args.bots:,} bots (lease, claim, load, warm-up, subscribe) | {sc['start_s']:.1f} s |")
    if not args.skip_paper:
        n = args.paper_bots
        symbols = max(1, min(args.symbols, n // 10))
        # Alternating runs (live, paper, paper, live, ...): a shared machine's load drifts, and the
        # second of two runs would otherwise carry it alone. Medians over the runs.
        runs: dict[bool, list[dict[str, Any]]] = {False: [], True: []}
        for i in range(args.paper_runs):
            for paper in ((False, True) if i % 2 == 0 else (True, False)):
                runs[paper].append(await bench_scale(n, symbols, paper=paper))

        def med(paper: bool, key: str) -> float:
            values = [v for run in runs[paper] for v in (run[key] if isinstance(run[key], list) else [run[key]])]
            return float(statistics.median(values))

        label = f"{n:,} paper bots vs {n:,} live bots on {symbols} symbols ({args.paper_runs} alternating runs each)"
        rows.append(f"| {label}: one round of closed candles, per bot | paper {med(True, 'round_s') * 1e6 / n:.1f} µs, "
                    f"live {med(False, 'round_s') * 1e6 / n:.1f} µs |")
        rows.append(f"| {label}: starting, per bot | paper {med(True, 'start_s') * 1e3 / n:.1f} ms, "
                    f"live {med(False, 'start_s') * 1e3 / n:.1f} ms |")
        rows.append(f"| {label}: resident memory per idle bot | paper {med(True, 'per_bot_bytes') / 1024:.1f} KiB, "
                    f"live {med(False, 'per_bot_bytes') / 1024:.1f} KiB |")
        lags = {p: [x for run in runs[p] for x in run["lag_ms"]] for p in (True, False)}
        rows.append(f"| {label}: event-loop lag during the rounds | paper p99 {pct(lags[True], 0.99):.1f} ms, "
                    f"live p99 {pct(lags[False], 0.99):.1f} ms |")
    print(f"\n## Runtime ({os.cpu_count()} cores, Python {sys.version.split()[0]})\n")
    print("| measure | result |\n|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    asyncio.run(main())
