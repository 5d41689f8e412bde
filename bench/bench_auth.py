"""Auth cost: requests/s and latency of an authenticated GET /api/v1/auth/me next to /healthz, and
login throughput with the argon2id parameters in use.

A real replica (`python -m tradebot run`) serves on 127.0.0.1 against the machine's PostgreSQL and
Redis (a throwaway database and Redis prefix, removed afterwards); this process is the client, so
the load generator and the server share the machine's cores, which the figures include.

Run: .venv/bin/python bench/bench_auth.py [--seconds 10] [--connections 50] [--login-concurrency 8]
Prints a markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import redis.asyncio as aioredis

from tradebot.security.passwords import DEFAULT_PARAMETERS
from tradebot.services import drop_database, ensure_database

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.processes import wait_ready  # noqa: E402


@dataclass(frozen=True, slots=True)
class Result:
    name: str
    concurrency: int
    requests: int
    errors: int
    seconds: float
    latencies_ms: list[float]

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    def pct(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def load(
    session: aiohttp.ClientSession,
    name: str,
    method: str,
    url: str,
    *,
    seconds: float,
    concurrency: int,
    headers: dict[str, str] | None = None,
    json_body: object = None,
    expect: int = 200,
) -> Result:
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal errors
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            async with session.request(method, url, headers=headers, json=json_body) as r:
                await r.read()
                if r.status != expect:
                    errors += 1
            latencies.append((time.perf_counter() - t0) * 1000)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return Result(name, concurrency, len(latencies), errors, time.perf_counter() - started, latencies)


async def main(args: argparse.Namespace) -> None:
    base_db = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    redis_url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    db_name = f"tradebot_bench_{secrets.token_hex(4)}"
    db_url = urlunsplit(urlsplit(base_db)._replace(path=f"/{db_name}"))
    prefix = f"bench-{secrets.token_hex(4)}"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "REDIS_URL": redis_url,
        "TRADEBOT_ENV": "test",
        "TRADEBOT_REDIS_PREFIX": prefix,
        "TRADEBOT_LOG_LEVEL": "WARNING",
        "TRADEBOT_DATA_DIR": str(ROOT / "var" / "bench"),
        # The bench logs in from one address far faster than any person: lift the limits.
        "TRADEBOT_AUTH_LOGIN_PER_IP_PER_MIN": "1000000",
        "TRADEBOT_AUTH_LOGIN_PER_ACCOUNT_PER_MIN": "1000000",
        "TRADEBOT_AUTH_LOGIN_PER_ACCOUNT_ADDRESS_PER_HOUR": "1000000",
        "TRADEBOT_AUTH_LOGIN_ACCOUNT_CEILING_PER_HOUR": "10000000",
    }
    await ensure_database(db_url)
    proc = subprocess.Popen(  # noqa: ASYNC220 - started once, before any load
        [sys.executable, "-m", "tradebot", "run", "--port", str(port)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL if args.quiet else None,
    )
    results: list[Result] = []
    try:
        await wait_ready(url, proc)
        connector = aiohttp.TCPConnector(limit=args.connections)
        async with aiohttp.ClientSession(connector=connector) as s:
            email, password = f"bench-{secrets.token_hex(4)}@example.com", secrets.token_urlsafe(16)
            async with s.post(url + "/api/v1/auth/register", json={"email": email, "password": password}) as r:
                assert r.status == 201, await r.text()
            async with s.post(url + "/api/v1/auth/login", json={"email": email, "password": password}) as r:
                token = (await r.json())["access_token"]
            auth = {"Authorization": f"Bearer {token}"}
            # Warm-up: connections, prepared statements, Redis scripts.
            await load(
                s, "warm-up", "GET", url + "/api/v1/auth/me", seconds=1, concurrency=args.connections, headers=auth
            )
            results.append(
                await load(
                    s, "GET /healthz", "GET", url + "/healthz", seconds=args.seconds, concurrency=args.connections
                )
            )
            results.append(
                await load(
                    s,
                    "GET /api/v1/auth/me",
                    "GET",
                    url + "/api/v1/auth/me",
                    seconds=args.seconds,
                    concurrency=args.connections,
                    headers=auth,
                )
            )
            results.append(
                await load(
                    s,
                    "POST /api/v1/auth/login",
                    "POST",
                    url + "/api/v1/auth/login",
                    seconds=args.seconds,
                    concurrency=args.login_concurrency,
                    json_body={"email": email, "password": password},
                )
            )
            # A wrong password and an unknown email must cost the same (the dummy hash).
            for name, body in (
                ("login, wrong password (401)", {"email": email, "password": password + "x"}),
                ("login, unknown email (401)", {"email": "nobody-" + email, "password": password}),
            ):
                results.append(
                    await load(
                        s,
                        name,
                        "POST",
                        url + "/api/v1/auth/login",
                        seconds=args.seconds / 2,
                        concurrency=args.login_concurrency,
                        json_body=body,
                        expect=401,
                    )
                )
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            proc.wait(timeout=20)
        await drop_database(db_url)
        rc = aioredis.Redis.from_url(redis_url)
        keys = [k async for k in rc.scan_iter(match=f"{prefix}:*")]
        if keys:
            await rc.delete(*keys)
        await rc.aclose()

    p = DEFAULT_PARAMETERS
    print(
        f"\nargon2id t={p.time_cost} m={p.memory_cost // 1024} MiB p={p.parallelism}; "
        f"{os.cpu_count()} CPUs shared by server and client; {args.seconds:g} s per row\n"
    )
    print("| endpoint | concurrency | requests | req/s | p50 ms | p99 ms | errors |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for res in results:
        print(
            f"| {res.name} | {res.concurrency} | {res.requests} | {res.rps:,.0f} | "
            f"{res.pct(0.50):.2f} | {res.pct(0.99):.2f} | {res.errors} |"
        )
    me = next(r for r in results if r.name.endswith("/me"))
    health = next(r for r in results if r.name.endswith("/healthz"))
    print(
        f"\nauth overhead per request ≈ {statistics.median(me.latencies_ms) - statistics.median(health.latencies_ms):.2f} ms (p50)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--login-concurrency", type=int, default=8)
    parser.add_argument("--quiet", action="store_true", help="hide the replica's stderr")
    asyncio.run(main(parser.parse_args()))
