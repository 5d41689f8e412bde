"""The authenticated request path next to the old system's stack: GET /auth/me, GET /bots (a user
with 50 bots), GET /trades?limit=100 and SSE fan-out, on one database with one token.

Both servers run at once, each pinned to core 0 (`taskset -c 0`): a real replica (`python -m
tradebot run`) and the old stack (bench/old_stack.py: FastAPI + uvicorn with uvloop/httptools, a
SQLAlchemy 2.0 AsyncSession per request on asyncpg, pyjwt, a Redis revocation check, one user
SELECT). wrk, pinned to core 1, loads one of them at a time, in alternating rounds (tradebot first
in odd rounds, the old stack first in even ones); the table gives the median of the rounds' req/s,
p50 and p99, and the ratio of the medians. Both log an access line per request at INFO, to
/dev/null. PostgreSQL and Redis are the machine's (a throwaway database and Redis prefix, removed
afterwards) and float over both cores.

SSE fan-out: N clients hold one `GET /api/v1/status-stream` each (tradebot's user stream; the old
stack's one Redis subscription per client), read by this process on core 1; events are published
as the runtime publishes them (BotEvents.publish), and the table gives how long the last client
took to receive each one (median and p99 over the events).

Needs: wrk (Debian: `apt-get install -y wrk`; the bench stops with a clear message without it),
taskset (util-linux), and the bench extra (`pip install -e '.[bench]'`).

Run: .venv/bin/python bench/bench_api.py [--seconds 10] [--rounds 3] [--connections 50]
     [--sse-clients 200] [--sse-events 30] [--only me bots trades sse]
Prints a markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import asyncpg
import redis.asyncio as aioredis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.benchdb import drop_database, fresh_database  # noqa: E402
from bench.processes import wait_ready  # noqa: E402
from tradebot.runtime.events import BotEvents  # noqa: E402

SERVER_CPU = "0"
CLIENT_CPU = "1"
BOTS = 50
TRADES = 1000


@dataclass(frozen=True, slots=True)
class Run:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if not m:
        raise ValueError(f"unexpected wrk latency {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def wrk(url: str, token: str, *, seconds: float, connections: int) -> Run:
    out = subprocess.run(
        ["taskset", "-c", CLIENT_CPU, "wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency",
         "-H", f"Authorization: Bearer {token}", url],
        capture_output=True, text=True, check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"\s50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"\s99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = int(bad.group(1)) if bad else 0
    errors += sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    return Run(rps, p50, p99, errors)


async def seed(db_url: str, user_id: int) -> None:
    """50 bots with their state, and TRADES trades (each with its order) spread over them."""
    conn = await asyncpg.connect(db_url)
    try:
        key_id = await conn.fetchval(
            "INSERT INTO api_keys (user_id, label, exchange, api_key_encrypted, secret_encrypted, api_key_hint)"
            " VALUES ($1, 'bench', 'binanceusdm', '\\x00', '\\x00', 'abcd') RETURNING id", user_id)
        bot_ids = []
        for i in range(BOTS):
            bot_id = await conn.fetchval(
                "INSERT INTO bot_configs (user_id, api_key_id, name, symbol, timeframe, ema_period, leverage)"
                " VALUES ($1, $2, $3, 'BTC/USDT:USDT', '1m', 20, 2) RETURNING id", user_id, key_id, f"bot {i}")
            await conn.execute("INSERT INTO bot_state (bot_id) VALUES ($1)", bot_id)
            bot_ids.append(bot_id)
        start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
        for i in range(TRADES):
            bot_id, cid = bot_ids[i % BOTS], f"bench-{i}"
            order_id = await conn.fetchval(
                "INSERT INTO orders (bot_id, user_id, client_order_id, symbol, side, amount, intent, signal_seq,"
                " fence_token, status) VALUES ($1, $2, $3, 'BTC/USDT:USDT', 'buy', 0.01, 'open', $4, 1, 'filled')"
                " RETURNING id", bot_id, user_id, cid, i)
            await conn.execute(
                "INSERT INTO trades (bot_id, user_id, order_id, symbol, side, price, amount, fee, realized_pnl,"
                " client_order_id, created_at) VALUES ($1, $2, $3, 'BTC/USDT:USDT', 'buy', 50000.5, 0.01, 0.2,"
                " 1.5, $4, $5)", bot_id, user_id, order_id, cid, start + dt.timedelta(minutes=i))
    finally:
        await conn.close()


# ---------------------------------------------------------------------------------------- SSE


async def sse_fanout(base: str, token: str, events: BotEvents, bot_id: int, *, clients: int,
                     count: int) -> tuple[float, float, int]:
    """Open `clients` streams, publish `count` events, return (p50, p99) in ms of the time until
    the last client had each event, and how many deliveries were missing."""
    received: dict[str, list[float]] = {}
    sent: dict[str, float] = {}
    opened = 0
    all_open = asyncio.Event()
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as s:

        async def client() -> None:
            nonlocal opened
            async with s.get(base + "/api/v1/status-stream", headers={"Authorization": f"Bearer {token}"}) as r:
                assert r.status == 200, await r.text()
                opened += 1
                if opened == clients:
                    all_open.set()
                async for raw in r.content:
                    line = raw.decode().rstrip("\r\n")
                    if line.startswith("data:") and '"seq"' in line:
                        seq = line.split('"seq"', 1)[1].split('"')[1]
                        received.setdefault(seq, []).append(time.perf_counter())

        tasks = [asyncio.create_task(client()) for _ in range(clients)]
        try:
            async with asyncio.timeout(60):
                waiter = asyncio.ensure_future(all_open.wait())
                await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
                if not all_open.is_set():
                    failed = next(t for t in tasks if t.done())
                    raise SystemExit(f"an SSE client of {base} failed: {failed.exception()!r}")
            await asyncio.sleep(1.0)  # every subscription confirmed (the old stack subscribes per client)
            for i in range(count):
                seq = f"{i}-{secrets.token_hex(3)}"
                sent[seq] = time.perf_counter()
                await events.publish(bot_id, "state", {"bot_id": bot_id, "status": "running", "seq": seq})
                await asyncio.sleep(0.1)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and sum(len(v) for v in received.values()) < clients * count:
                await asyncio.sleep(0.05)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    lags = sorted((max(received[k]) - t0) * 1000 for k, t0 in sent.items() if len(received.get(k, [])) == clients)
    missing = clients * count - sum(len(v) for v in received.values())
    if not lags:
        return float("nan"), float("nan"), missing
    return statistics.median(lags), lags[min(len(lags) - 1, int(0.99 * len(lags)))], missing


# ---------------------------------------------------------------------------------------- main


def _start(cmd: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(["taskset", "-c", SERVER_CPU, *cmd], env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


async def main(args: argparse.Namespace) -> int:
    missing = [tool for tool in ("wrk", "taskset") if shutil.which(tool) is None]
    if missing:
        print(f"bench_api: skipped: {' and '.join(missing)} not found (Debian: apt-get install -y wrk util-linux)",
              file=sys.stderr)
        return 0
    try:
        import fastapi  # noqa: F401
        import sqlalchemy  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as e:
        print(f"bench_api: skipped: the bench extra is not installed ({e.name}); pip install -e '.[bench]'",
              file=sys.stderr)
        return 0

    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    db_url = await fresh_database("tradebot_bench_api")
    prefix = f"bench-api-{secrets.token_hex(4)}"
    jwt_secret = secrets.token_urlsafe(48)
    new_port, old_port = free_port(), free_port()
    new_url, old_url = f"http://127.0.0.1:{new_port}", f"http://127.0.0.1:{old_port}"
    base_env = {**os.environ, "PYTHONPATH": str(ROOT)}
    new_env = {
        **base_env,
        "DATABASE_URL": db_url,
        "REDIS_URL": redis_url,
        "TRADEBOT_ENV": "test",
        "TRADEBOT_REDIS_PREFIX": prefix,
        "TRADEBOT_JWT_SECRET": jwt_secret,
        "TRADEBOT_LOG_LEVEL": "INFO",
        "TRADEBOT_DATA_DIR": str(ROOT / "var" / "bench"),
        "TRADEBOT_MAX_STREAMS_PER_USER": str(max(20, args.sse_clients + 10)),
    }
    old_env = {
        **base_env,
        "OLD_DATABASE_URL": db_url.replace("postgresql://", "postgresql+asyncpg://", 1),
        "OLD_REDIS_URL": redis_url,
        "OLD_REDIS_PREFIX": prefix,
        "OLD_JWT_SECRET": jwt_secret,
    }
    procs = [
        _start([sys.executable, "-m", "tradebot", "run", "--port", str(new_port), "--no-migrate"], new_env),
        _start([sys.executable, "-m", "uvicorn", "bench.old_stack:app", "--port", str(old_port), "--loop", "uvloop",
                "--http", "httptools", "--log-level", "info"], old_env),
    ]
    table: list[str] = []
    try:
        await wait_ready(new_url, procs[0])
        await wait_ready(old_url, procs[1])
        async with aiohttp.ClientSession() as s:
            email, password = f"bench-{secrets.token_hex(4)}@example.com", secrets.token_urlsafe(16)
            async with s.post(new_url + "/api/v1/auth/register", json={"email": email, "password": password}) as r:
                assert r.status == 201, await r.text()
                user_id = int((await r.json())["id"])
            async with s.post(new_url + "/api/v1/auth/login", json={"email": email, "password": password}) as r:
                token = str((await r.json())["access_token"])
        await seed(db_url, user_id)

        paths = {"me": "/api/v1/auth/me", "bots": "/api/v1/bots", "trades": "/api/v1/trades?limit=100"}
        chosen = [k for k in paths if k in args.only]
        for key in chosen:  # warm-up: connections, prepared statements, caches
            for base in (new_url, old_url):
                wrk(base + paths[key], token, seconds=2, connections=args.connections)
        runs: dict[tuple[str, str], list[Run]] = {}
        for rnd in range(args.rounds):
            for key in chosen:
                order = [("tradebot", new_url), ("old", old_url)]
                for name, base in order if rnd % 2 == 0 else order[::-1]:
                    run = wrk(base + paths[key], token, seconds=args.seconds, connections=args.connections)
                    runs.setdefault((key, name), []).append(run)
                    print(f"[bench_api] round {rnd + 1} {paths[key]} {name}: {run.rps:,.0f} req/s", file=sys.stderr)

        table += [] if not chosen else [
            f"\n{args.rounds} alternating rounds of {args.seconds:g} s, wrk -t1 -c{args.connections} on core "
            f"{CLIENT_CPU}, both servers on core {SERVER_CPU}; a user with {BOTS} bots and {TRADES} trades; "
            f"load average before: {os.getloadavg()[0]:.2f}\n",
            "| endpoint | tradebot req/s (rounds) | p50 / p99 ms | old stack req/s (rounds) | p50 / p99 ms | ratio "
            "| errors |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for key in chosen:
            new, old = runs[(key, "tradebot")], runs[(key, "old")]
            n_rps, o_rps = statistics.median(r.rps for r in new), statistics.median(r.rps for r in old)
            table.append(
                f"| GET {paths[key]} | {n_rps:,.0f} ({', '.join(f'{r.rps:,.0f}' for r in new)}) "
                f"| {statistics.median(r.p50_ms for r in new):.2f} / {statistics.median(r.p99_ms for r in new):.2f} "
                f"| {o_rps:,.0f} ({', '.join(f'{r.rps:,.0f}' for r in old)}) "
                f"| {statistics.median(r.p50_ms for r in old):.2f} / {statistics.median(r.p99_ms for r in old):.2f} "
                f"| {n_rps / o_rps:.1f}× | {sum(r.errors for r in new)} / {sum(r.errors for r in old)} |"
            )

        if "sse" in args.only:
            rc = aioredis.Redis.from_url(redis_url, decode_responses=True)
            events = BotEvents(rc, prefix)
            try:
                bot_id = await _first_bot(db_url, user_id)
                rows = []
                for name, base in (("tradebot", new_url), ("old", old_url)):
                    p50, p99, lost = await sse_fanout(base, token, events, bot_id, clients=args.sse_clients,
                                                      count=args.sse_events)
                    rows.append((name, p50, p99, lost))
                table += [
                    f"\nSSE fan-out: {args.sse_clients} clients on one stream each, {args.sse_events} events, "
                    "time from publish to the last client\n",
                    "| server | p50 ms | p99 ms | deliveries missing |",
                    "|---|---:|---:|---:|",
                    *(f"| {n} | {a:.1f} | {b:.1f} | {m} |" for n, a, b, m in rows),
                ]
            finally:
                await events.close()
                await rc.aclose()
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
        await drop_database(db_url)
        rc = aioredis.Redis.from_url(redis_url)
        keys = [k async for k in rc.scan_iter(match=f"{prefix}:*")]
        if keys:
            await rc.delete(*keys)
        await rc.aclose()
    print("\n".join(table))
    return 0


async def _first_bot(db_url: str, user_id: int) -> int:
    conn = await asyncpg.connect(db_url)
    try:
        return int(await conn.fetchval("SELECT min(id) FROM bot_configs WHERE user_id = $1", user_id))
    finally:
        await conn.close()


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--sse-clients", type=int, default=200)
    parser.add_argument("--sse-events", type=int, default=30)
    parser.add_argument("--only", nargs="*", default=["me", "bots", "trades", "sse"],
                        choices=["me", "bots", "trades", "sse"])
    return parser.parse_args()


if __name__ == "__main__":
    sys.exit(asyncio.run(main(_args())))
