"""SSE fan-out: many concurrent status-stream clients on one app process, and the delay from a
published bot event (as the runtime on any replica publishes it) to every client having it.

Run: .venv/bin/python bench/bench_sse.py [--clients 2000] [--events 30] [--client-procs 2]

One replica (the real app: auth, BotEvents, aiohttp-sse) runs in its own process on a throwaway
database and Redis prefix; the clients are spread over a few other processes so their parsing does
not slow the server's event loop. Each event carries its publish time; the delay "to every client"
is, per event, the time until the last of its clients received it. Prints a markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import secrets
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg
import redis.asyncio as aioredis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tradebot import db  # noqa: E402
from tradebot.config import Secrets, Settings  # noqa: E402
from tradebot.runtime.events import BotEvents  # noqa: E402
from tradebot.services import drop_database, ensure_database, resolve_services  # noqa: E402

# -- the server process ---------------------------------------------------------------------------


async def serve(port: int, database_url: str, redis_url: str, prefix: str) -> None:
    from aiohttp import web
    from cryptography.fernet import Fernet

    from tradebot.http.app import create_app

    settings = Settings.model_validate(
        {
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "env": "test",
            "redis_prefix": prefix,
            "auth_register_per_ip_per_min": 1000,
            "auth_login_per_ip_per_min": 1000,
            "db_pool_max": 20,
            "max_streams_per_user": 10_000,  # one user holds every client's stream here
        }
    )
    app_secrets = Secrets(secrets.token_urlsafe(48), (Fernet.generate_key().decode(),), ephemeral=True)
    app = create_app(
        settings, app_secrets, database_url=database_url, redis_url=redis_url, replica_id="bench"
    )
    runner = web.AppRunner(app, access_log=None, handle_signals=True, shutdown_timeout=2)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, backlog=4096).start()
    print("SERVING", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


# -- a client process -----------------------------------------------------------------------------


async def clients(port: int, token: str, bot_ids: list[int], events: int) -> None:
    """Open one stream per bot id given, print READY once every snapshot arrived, then record delays."""
    received: list[list[float]] = [[math.nan] * events for _ in bot_ids]
    ready = 0
    all_ready = asyncio.Event()
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=None, sock_read=None)

    async def one(i: int, bot_id: int, session: aiohttp.ClientSession) -> None:
        nonlocal ready
        url = f"http://127.0.0.1:{port}/api/v1/bots/{bot_id}/status-stream"
        while True:  # like EventSource: retry a refused connect
            resp = await session.get(url, headers={"Authorization": f"Bearer {token}"})
            if resp.status == 200:
                break
            resp.release()
            print(f"connect refused with {resp.status}; retrying", file=sys.stderr, flush=True)
            await asyncio.sleep(0.5)
        async with resp:
            got = 0
            data = ""
            snapshot = True
            async for raw in resp.content:
                line = raw.decode().rstrip("\r\n")
                if line.startswith("data:"):
                    data = line[5:].strip()
                elif not line and data:
                    now = time.time()
                    if snapshot:
                        snapshot = False
                        ready += 1
                        if ready == len(bot_ids):
                            all_ready.set()
                    else:
                        payload = json.loads(data)
                        received[i][payload["seq"]] = now - payload["t"]
                        got += 1
                        if got == events:
                            return
                    data = ""

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        tasks = [asyncio.create_task(one(i, b, session)) for i, b in enumerate(bot_ids)]
        await all_ready.wait()
        print("READY", flush=True)
        await asyncio.gather(*tasks)
    print("RESULT " + json.dumps(received), flush=True)


# -- the orchestrator -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def read_until(proc: asyncio.subprocess.Process, marker: str, timeout: float) -> str:
    assert proc.stdout is not None
    async with asyncio.timeout(timeout):
        while True:
            line = (await proc.stdout.readline()).decode()
            if not line:
                raise RuntimeError(f"process ended before {marker}")
            if line.startswith(marker):
                return line[len(marker) :].strip()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


async def scenario(
    port: int,
    token: str,
    events: BotEvents,
    bot_ids: list[int],
    per_bot: int,
    n_events: int,
    procs: int,
    interval: float,
) -> dict[str, Any]:
    assignments = [b for b in bot_ids for _ in range(per_bot)]
    chunks = [assignments[i::procs] for i in range(procs)]
    workers = []
    for chunk in chunks:
        workers.append(
            await asyncio.create_subprocess_exec(
                sys.executable,
                __file__,
                "--client",
                str(port),
                token,
                ",".join(map(str, chunk)),
                str(n_events),
                stdout=subprocess.PIPE,
                limit=2**26,
                cwd=ROOT,
            )
        )
    try:
        connect_started = time.monotonic()
        for w in workers:
            await read_until(w, "READY", timeout=120)
        connect_s = time.monotonic() - connect_started
        print(
            f"{len(assignments)} clients on {len(bot_ids)} bots connected in {connect_s:.1f}s",
            file=sys.stderr,
        )
        await asyncio.sleep(0.5)
        for seq in range(n_events):
            t = time.time()
            await asyncio.gather(
                *(events.publish(b, "state", {"seq": seq, "t": t, "status": "running"}) for b in bot_ids)
            )
            await asyncio.sleep(interval)
        delays: list[list[float]] = []
        for w in workers:
            delays += json.loads(await read_until(w, "RESULT", timeout=60))
            await w.wait()
    finally:
        for w in workers:
            if w.returncode is None:
                w.kill()
                await w.wait()
    per_event_all = [max(d[seq] for d in delays) for seq in range(n_events)]
    every = [x for d in delays for x in d]
    missing = sum(1 for x in every if math.isnan(x))
    return {
        "clients": len(assignments),
        "bots": len(bot_ids),
        "connect_s": connect_s,
        "missing": missing,
        "deliveries": len(every),
        "p50": statistics.median(every),
        "p99": pct(every, 0.99),
        "all_p50": statistics.median(per_event_all),
        "all_p99": pct(per_event_all, 0.99),
        "all_max": max(per_event_all),
    }


async def main(args: argparse.Namespace) -> None:
    base = Settings.model_validate({"env": "test", "data_dir": ROOT / "var" / "bench"})
    services = await resolve_services(base)
    name = f"tradebot_bench_{secrets.token_hex(4)}"
    database_url = urlunsplit(urlsplit(services.database_url)._replace(path=f"/{name}"))
    prefix = f"bench-{secrets.token_hex(4)}"
    await ensure_database(database_url)
    await asyncio.to_thread(db.apply_migrations_sync, database_url)
    port = free_port()
    server = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--serve",
        str(port),
        database_url,
        services.redis_url,
        prefix,
        stdout=subprocess.PIPE,
        limit=2**26,
        cwd=ROOT,
    )
    redis = aioredis.Redis.from_url(services.redis_url, decode_responses=True)
    events = BotEvents(redis, prefix)
    try:
        await read_until(server, "SERVING", timeout=60)
        async with aiohttp.ClientSession(base_url=f"http://127.0.0.1:{port}") as http:
            creds = {"email": f"bench-{secrets.token_hex(3)}@example.com", "password": "bench password 1"}
            assert (await http.post("/api/v1/auth/register", json=creds)).status == 201
            token = (await (await http.post("/api/v1/auth/login", json=creds)).json())["access_token"]
            me = await (
                await http.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
            ).json()
        pool = await asyncpg.connect(database_url)
        bot_ids = [
            r["id"]
            for r in await pool.fetch(
                "INSERT INTO bot_configs (user_id, symbol, timeframe, ema_period) "
                "SELECT $1, 'BTC/USDT:USDT', '1m', 20 FROM generate_series(1, 100) RETURNING id",
                me["id"],
            )
        ]
        await pool.close()

        rows = []
        for bots, per_bot in ((1, args.clients), (100, args.clients // 100)):
            rows.append(
                await scenario(
                    port,
                    token,
                    events,
                    bot_ids[:bots],
                    per_bot,
                    args.events,
                    args.client_procs,
                    args.interval,
                )
            )
        print(
            f"\nSSE fan-out on one replica ({os.cpu_count()} CPUs shared by server and "
            f"{args.client_procs} client processes), {args.events} events {args.interval * 1000:.0f} ms apart\n"
        )
        print(
            "| clients | bots | connect all (s) | delivery p50 (ms) | delivery p99 (ms) "
            "| to every client p50 (ms) | to every client p99 (ms) | worst (ms) | missed |"
        )
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in rows:
            print(
                f"| {r['clients']} | {r['bots']} | {r['connect_s']:.2f} | {r['p50'] * 1000:.1f} | "
                f"{r['p99'] * 1000:.1f} | {r['all_p50'] * 1000:.1f} | {r['all_p99'] * 1000:.1f} | "
                f"{r['all_max'] * 1000:.1f} | {r['missing']}/{r['deliveries']} |"
            )
    finally:
        await events.close()
        keys = [k async for k in redis.scan_iter(match=f"{prefix}:*", count=1000)]
        if keys:
            await redis.delete(*keys)
        await redis.aclose()
        with contextlib.suppress(ProcessLookupError):
            server.terminate()
        await server.wait()
        await drop_database(database_url)
        services.close()


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve(int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]))
    elif len(sys.argv) > 1 and sys.argv[1] == "--client":
        asyncio.run(
            clients(int(sys.argv[2]), sys.argv[3], [int(b) for b in sys.argv[4].split(",")], int(sys.argv[5]))
        )
    else:
        parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
        parser.add_argument("--clients", type=int, default=2000)
        parser.add_argument("--events", type=int, default=30)
        parser.add_argument("--interval", type=float, default=0.2, help="seconds between published events")
        parser.add_argument("--client-procs", type=int, default=2)
        asyncio.run(main(parser.parse_args()))
