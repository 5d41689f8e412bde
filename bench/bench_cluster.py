"""Cluster benchmarks (issue "Cluster"). Prints a markdown table; not part of the test run.

A. Failover: three real replicas (`tradebot run` processes, default timings: lease TTL 5 s, renew
   and heartbeat every 1 s) share one simulator process; kill -9 one of them (every third kill the
   leader) and time until every one of its bots runs on a survivor; start a replacement; repeat.
B. Lease renewal: LeaseManager.renew_all with 1,000 held leases against the real Redis (one script
   call), median and p95 over many rounds.
C. Movement (pure): bots that change replica when one joins or leaves, against the ideal 1/n, for
   the bounded-load rendezvous the leader uses and for plain rendezvous.

    .venv/bin/python bench/bench_cluster.py [--kills 20] [--bots 30] [--renew-rounds 200]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import secrets
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

import redis.asyncio as aioredis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.benchdb import drop_database, fresh_database
from tests.cluster.harness import Cluster, simulator_process
from tests.processes import wait_until
from tradebot.runtime.clock import SystemClock
from tradebot.runtime.cluster.assignment import assign, moved, rebalance
from tradebot.runtime.leases import LeaseManager

REDIS_URL = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# ---------------------------------------------------------------------------------------------- A


def bench_failover(database_url: str, kills: int, bots: int) -> dict[str, float]:
    times: list[float] = []
    leader_times: list[float] = []
    with tempfile.TemporaryDirectory() as tmp, simulator_process(Path(tmp)) as exchange_url:
        cluster = Cluster(database_url, REDIS_URL, exchange_url, Path(tmp))
        try:
            names = iter(f"b{i}" for i in range(1000))
            cluster.start(next(names), next(names), next(names))
            cluster.sign_up()  # the harness's operator: /cluster answers operators only
            # One exchange account per bot: two running bots may not share a key on the same symbol.
            ids = {b for _ in range(bots) for b in cluster.create_bots(1, cluster.api_key(*cluster.exchange_account()))}
            for b in sorted(ids):
                cluster.start_bot(b)
            for k in range(kills):
                live = cluster.live_names()
                wait_until(functools.partial(_settled, cluster, ids, live), 60, "a settled cluster")
                leader = cluster.leader()
                victim = leader if k % 3 == 2 and leader else next(r for r in live if r != leader)
                theirs = {b for b, r in cluster.placement().items() if r == victim}
                started = time.monotonic()
                cluster.kill(victim, signal.SIGKILL)
                wait_until(functools.partial(_elsewhere, cluster, theirs, victim), 30, f"{victim}'s bots to move")
                took = time.monotonic() - started
                (leader_times if victim == leader else times).append(took)
                print(f"  kill -9 {victim}{' (leader)' if victim == leader else ''}: {len(theirs)} bots "
                      f"running elsewhere after {took:.2f}s", file=sys.stderr)
                cluster.start(next(names))
        finally:
            cluster.close()
            asyncio.run(_drop_keys(cluster.prefix))
    every = times + leader_times
    return {
        "median": statistics.median(every), "max": max(every), "kills": len(every),
        "leader_median": statistics.median(leader_times) if leader_times else float("nan"),
    }


def _settled(cluster: Cluster, ids: set[int], live: list[str]) -> bool:
    placement = cluster.placement()
    return set(placement) == ids and set(placement.values()) == set(live) and placement == cluster.published()


def _elsewhere(cluster: Cluster, bots: set[int], gone: str) -> bool:
    placement = cluster.placement()
    return all(placement.get(b) not in (None, gone) for b in bots)


async def _drop_keys(prefix: str) -> None:
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        keys = [k async for k in client.scan_iter(match=f"{prefix}:*", count=1000)]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


# ---------------------------------------------------------------------------------------------- B


async def bench_renew(leases: int, rounds: int) -> dict[str, float]:
    prefix = f"bench-leases-{secrets.token_hex(3)}"
    client = aioredis.Redis.from_url(REDIS_URL, decode_responses=True)
    manager = LeaseManager(client, prefix, "bench", SystemClock(), ttl_ms=30_000, renew_interval_ms=1_000)
    try:
        for bot in range(1, leases + 1):
            assert await manager.acquire(bot, 0) is not None
        samples = []
        for _ in range(rounds):
            started = time.perf_counter()
            lost = await manager.renew_all()
            samples.append(time.perf_counter() - started)
            assert not lost
        return {"median_ms": statistics.median(samples) * 1000, "p95_ms": pct(samples, 0.95) * 1000}
    finally:
        await manager.release_all()
        await _drop_keys(prefix)
        await client.aclose()


# ---------------------------------------------------------------------------------------------- C


def bench_movement(bots: int) -> list[tuple[str, int, float, float, float]]:
    """(event, replicas before, moved fraction bounded, moved fraction plain, ideal)."""
    rows = []
    ids = range(1, bots + 1)
    for n in (2, 3, 4, 5, 8):
        replicas = [f"replica-{i}" for i in range(n)]
        before = assign(ids, replicas)
        joined = rebalance(before, ids, [*replicas, "joiner"])
        left = rebalance(before, ids, replicas[1:])
        plain_before = assign(ids, replicas, slack=None)
        plain_joined = assign(ids, [*replicas, "joiner"], slack=None)
        plain_left = assign(ids, replicas[1:], slack=None)
        rows.append(("join", n, len(moved(before, joined)) / bots, len(moved(plain_before, plain_joined)) / bots,
                     1 / (n + 1)))
        rows.append(("leave", n, len(moved(before, left)) / bots, len(moved(plain_before, plain_left)) / bots, 1 / n))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--bots", type=int, default=30)
    parser.add_argument("--renew-leases", type=int, default=1000)
    parser.add_argument("--renew-rounds", type=int, default=200)
    parser.add_argument("--movement-bots", type=int, default=10_000)
    args = parser.parse_args()

    renew = asyncio.run(bench_renew(args.renew_leases, args.renew_rounds))
    movement = bench_movement(args.movement_bots)
    failover: dict[str, float] | None = None
    if args.kills > 0:
        url = asyncio.run(fresh_database())
        try:
            failover = bench_failover(url, args.kills, args.bots)
        finally:
            asyncio.run(drop_database(url))

    print("\n| measure | value |\n|---|---|")
    if failover is not None:
        print(f"| failover, kill -9 → every bot running elsewhere ({failover['kills']:.0f} kills, {args.bots} bots "
              f"on 3 replicas), median | {failover['median']:.2f} s |")
        print(f"| failover, max | {failover['max']:.2f} s |")
        print(f"| failover when the leader was killed, median | {failover['leader_median']:.2f} s |")
    print(f"| lease renewal, {args.renew_leases} leases in one call, median | {renew['median_ms']:.2f} ms |")
    print(f"| lease renewal, p95 | {renew['p95_ms']:.2f} ms |")
    print(f"\n| event ({args.movement_bots} bots) | replicas before | moved, bounded rendezvous | moved, plain "
          "rendezvous | ideal |\n|---|---|---|---|---|")
    for event, n, bounded, plain, ideal in movement:
        print(f"| {event} | {n} | {bounded:.3f} | {plain:.3f} | {ideal:.3f} |")


if __name__ == "__main__":
    main()
