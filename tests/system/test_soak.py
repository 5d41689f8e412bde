"""Soak: one replica runs 1,000 bots on a random-walk simulator for a bounded time; its resident memory,
open file descriptors and asyncio task count stay flat (under 10% growth after a warm-up).

Read from the replica's own /metrics (process_resident_memory_bytes, process_open_fds,
tradebot_asyncio_tasks — see tradebot/http/app.py) and cross-checked against /proc/<pid>.

Environment: TRADEBOT_SOAK_SECONDS (default 600, counted once every bot runs), TRADEBOT_SOAK_BOTS
(default 1000), TRADEBOT_SOAK_LOG_LEVEL (the replica's, default WARNING).
"""

from __future__ import annotations

import os
import secrets
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.api_client import Api
from tests.processes import drop_redis_keys, http_get, wait_until
from tests.simulator_process import simulator_process
from tests.system.stack import Replicas, sql

pytestmark = pytest.mark.slow

SECONDS = float(os.environ.get("TRADEBOT_SOAK_SECONDS", "600"))
BOTS = int(os.environ.get("TRADEBOT_SOAK_BOTS", "1000"))
SYMBOLS = ("BTCUSDT", "ETHUSDT")  # one running bot per API key and symbol (migration 0003)
KEYS_PER_USER = 100  # tradebot.accounts.api_keys.MAX_KEYS_PER_USER
SAMPLE_EVERY_S = max(2.0, min(10.0, SECONDS / 30))
# A cold replica warms each bot up over REST through the market-data client's rate limit (about two
# bots a second on the simulator), so 1,000 bots take minutes to start; the soak's clock starts after.
START_TIMEOUT_S = max(180.0, BOTS * 0.9)
MAX_GROWTH = 0.10
STOP_TIMEOUT_S = 180.0  # a graceful stop of 1,000 bots took over 30 s
WATCHED = ("process_resident_memory_bytes", "process_open_fds", "tradebot_asyncio_tasks", "tradebot_bots_running")


@dataclass(frozen=True)
class Sample:
    at: float
    rss_mb: float
    fds: int
    tasks: int
    bots_running: int
    proc_rss_mb: float
    proc_fds: int


def _metrics(url: str) -> dict[str, float]:
    status, body = http_get(url + "/metrics", timeout=10)
    assert status == 200, status
    out: dict[str, float] = {}
    for line in body.decode().splitlines():
        name, _, value = line.partition(" ")
        if name in WATCHED:
            out[name] = float(value)
    return out


def _proc(pid: int) -> tuple[float, int]:
    rss_kb = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss_kb = int(line.split()[1])
    return rss_kb / 1024, len(os.listdir(f"/proc/{pid}/fd"))


@pytest.fixture
def redis_prefix_cleanup(redis_url: str) -> Iterator[str]:
    prefix = f"soak-{secrets.token_hex(4)}"
    yield prefix
    drop_redis_keys(redis_url, prefix)


@pytest.mark.timeout(SECONDS + START_TIMEOUT_S + 300)
def test_soak_memory_fds_and_tasks_stay_flat(clean_db: str, redis_url: str, redis_prefix_cleanup: str,
                                             tmp_path: Path) -> None:
    with simulator_process(tmp_path, "--mode", "random_walk", "--candle-seconds", "2", "--seed", "5") as sim:
        env = {
            "DATABASE_URL": clean_db,
            "REDIS_URL": redis_url,
            "TRADEBOT_REDIS_PREFIX": redis_prefix_cleanup,
            "TRADEBOT_EXCHANGE_URL": sim.url,
            "TRADEBOT_DATA_DIR": str(tmp_path / "var"),
            "TRADEBOT_JWT_SECRET": "s" * 48,
            "TRADEBOT_FERNET_KEYS": "ZmDfcTF7_60GrrY167zsiPd67pEvs0aGOv2oasOM1Pg=",
            "TRADEBOT_LOG_LEVEL": os.environ.get("TRADEBOT_SOAK_LOG_LEVEL", "WARNING"),
            "TRADEBOT_AUTH_REGISTER_PER_IP_PER_MIN": "1000",  # a user per 100 keys, all from 127.0.0.1
            "TRADEBOT_MAX_BOTS_PER_USER": str(max(100, BOTS)),
            # The database pool opened whole from the start: its growth towards the maximum under a
            # loaded machine is no leak, and would otherwise read as fds growing.
            "TRADEBOT_DB_POOL_MIN": "20",
            "TRADEBOT_DB_POOL_MAX": "20",
        }
        replicas = Replicas(env, tmp_path)
        try:
            node = replicas.start("soak")
            n_keys = (BOTS + len(SYMBOLS) - 1) // len(SYMBOLS)
            users = [Api(node.url).sign_up() for _ in range((n_keys + KEYS_PER_USER - 1) // KEYS_PER_USER)]

            def key(k: int) -> int:
                return Api(node.url, token=users[k // KEYS_PER_USER].token).add_key(*sim.account(usdt=1e6))

            def make(i: int) -> int:
                k = i // len(SYMBOLS)
                mine = Api(node.url, token=users[k // KEYS_PER_USER].token)
                bot = mine.create_bot(keys[k], symbol=SYMBOLS[i % len(SYMBOLS)],
                                      ema_period=20, leverage=1, order_size_pct=5, allow_short=True,
                                      max_daily_trades=100_000, max_daily_loss_pct=100)
                mine.start(bot)
                return bot

            started = time.monotonic()
            with ThreadPoolExecutor(8) as pool:
                keys = list(pool.map(key, range(n_keys)))
                bots = list(pool.map(make, range(BOTS)))
            took = wait_until(lambda: _running(clean_db, bots) == BOTS, START_TIMEOUT_S, f"{BOTS} bots to run",
                              interval=0.5)
            print(f"\n{BOTS} bots created and started in {time.monotonic() - started - took:.1f}s, "
                  f"all running {took:.1f}s later", flush=True)

            samples = _observe(node.url, node.proc.pid, SECONDS)
            _report(samples)
            warm = [s for s in samples if s.at >= _warm_up(SECONDS)]
            assert len(warm) >= 6, f"too few samples after the warm-up: {len(warm)}"
            # The peak of the first third against the peak of the last: open fds swing widely (500
            # private exchange clients' keep-alive connections close when idle and reopen), so single
            # samples or short medians would compare a trough with a crest; a leak raises the peaks.
            third = max(len(warm) // 3, 2)
            base, end = warm[:third], warm[-third:]
            for field in ("rss_mb", "fds", "tasks", "proc_rss_mb", "proc_fds"):
                first = max(getattr(s, field) for s in base)
                last = max(getattr(s, field) for s in end)
                print(f"{field}: {first:.1f} → {last:.1f} ({(last - first) / first:+.1%})", flush=True)
                assert last <= first * (1 + MAX_GROWTH), f"{field} grew from {first} to {last}"
            assert all(s.bots_running == BOTS for s in warm), [s.bots_running for s in warm]
            assert _running(clean_db, bots) == BOTS
            decisions = sql(clean_db, "SELECT count(*) FROM bot_state WHERE bot_id = ANY(%s) "
                                      "AND last_candle_time IS NOT NULL", bots)[0][0]
            orders = sql(clean_db, "SELECT count(*) FROM orders")[0][0]
            print(f"{decisions} bots decided on candles; {orders} orders placed", flush=True)
            assert decisions == BOTS
            stopping = time.monotonic()
            code = replicas.kill("soak", signal.SIGTERM, timeout=STOP_TIMEOUT_S)
            print(f"SIGTERM → exit {code} in {time.monotonic() - stopping:.1f}s", flush=True)
            assert code == 0
        finally:
            replicas.close()


def _running(url: str, bots: list[int]) -> int:
    return int(sql(url, "SELECT count(*) FROM bot_state WHERE bot_id = ANY(%s) AND status = 'running'", bots)[0][0])


def _warm_up(seconds: float) -> float:
    return min(max(seconds * 0.25, 30.0), 120.0)


def _observe(url: str, pid: int, seconds: float) -> list[Sample]:
    samples: list[Sample] = []
    start = time.monotonic()
    deadline = start + seconds
    while True:
        m = _metrics(url)
        proc_rss, proc_fds = _proc(pid)
        samples.append(Sample(time.monotonic() - start, m["process_resident_memory_bytes"] / 2**20,
                              int(m["process_open_fds"]), int(m["tradebot_asyncio_tasks"]),
                              int(m["tradebot_bots_running"]), proc_rss, proc_fds))
        if time.monotonic() >= deadline:
            return samples
        time.sleep(min(SAMPLE_EVERY_S, max(0.0, deadline - time.monotonic())))  # the sampling period


def _report(samples: list[Sample]) -> None:
    print("| t (s) | RSS (MiB) | open fds | asyncio tasks | bots running |", flush=True)
    print("|---:|---:|---:|---:|---:|")
    for s in samples:
        print(f"| {s.at:.0f} | {s.rss_mb:.1f} | {s.fds} | {s.tasks} | {s.bots_running} |")
