"""The backtest job runner: bounded queue, interrupted jobs, heartbeats and the stale-job sweep."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import pytest
from pytest_aiohttp import AiohttpClient

from tests.integration.auth_helpers import Client, bearer, problem, user_token
from tests.integration.backtests_helpers import MINUTE_MS, T0, backtest_body, iso, settled, submit, walk_candles
from tests.simulator_helpers import SimControl
from tests.timing import eventually
from tradebot.backtests.candle_cache import CandleCache
from tradebot.backtests.history import HistoryLoader
from tradebot.backtests.models import BacktestSpec
from tradebot.backtests.repository import BacktestsRepo
from tradebot.backtests.runner import ABANDONED, INTERRUPTED, BacktestRunner, RunnerConfig
from tradebot.config import Secrets, Settings
from tradebot.exchange.simulator import RunningSimulator, SimulatorConfig
from tradebot.http.app import create_app

pytest_plugins = ("tests.simulator_fixtures",)

AppFactory = Callable[..., Awaitable[Client]]


@pytest.fixture
def simulator_config() -> SimulatorConfig:
    return SimulatorConfig(port=0, mode="manual", history_candles=10)


@pytest.fixture
def make_client(
    aiohttp_client: AiohttpClient,
    settings: Settings,
    test_secrets: Secrets,
    clean_db: str,
    redis_url: str,
    simulator: RunningSimulator,
) -> AppFactory:
    """A replica (app + test client) with backtest settings overridden."""

    async def make(replica: str = "a", **overrides: Any) -> Client:
        custom = settings.model_copy(update={"exchange_url": simulator.base_url, "runtime_enabled": False, **overrides})
        app = create_app(custom, test_secrets, database_url=clean_db, redis_url=redis_url, replica_id=replica)
        return await aiohttp_client(app)

    return make


async def status_of(pool: asyncpg.Pool, backtest_id: int) -> tuple[str, str | None]:
    row = await pool.fetchrow("SELECT status, error_message FROM backtests WHERE id = $1", backtest_id)
    assert row is not None
    return row["status"], row["error_message"]


async def wait_status(client: Client, headers: dict[str, str], backtest_id: int, status: str) -> None:
    async def reached() -> bool:
        got = await (await client.get(f"/api/v1/backtests/{backtest_id}", headers=headers)).json()
        return bool(got["status"] == status)

    await eventually(reached, timeout=10)


async def test_a_full_queue_answers_503(make_client: AppFactory, sim: SimControl) -> None:
    client = await make_client(backtest_concurrency=1, backtest_queue_limit=1)
    await sim.push_klines("BTCUSDT", "1m", walk_candles(100))
    await sim.faults(latency_ms=300)
    _, token = await user_token(client)
    headers = bearer(token)
    end = iso(T0 + 100 * MINUTE_MS)
    first = await submit(client, headers, end_time=end)
    second = await submit(client, headers, end_time=end)
    r = await client.post("/api/v1/backtests", json=backtest_body(end_time=end), headers=headers)
    got = await problem(r, 503)
    assert r.headers["Retry-After"] and "too many backtests" in got["detail"]
    # The queue drains in order and takes new work again.
    assert (await settled(client, headers, first))["status"] == "done"
    assert (await settled(client, headers, second))["status"] == "done"
    await sim.faults(latency_ms=0)
    assert (await settled(client, headers, await submit(client, headers, end_time=end)))["status"] == "done"


async def test_shutdown_fails_running_and_queued_jobs_readably(
    make_client: AppFactory, sim: SimControl, pool: asyncpg.Pool
) -> None:
    client = await make_client(backtest_concurrency=1)
    await sim.push_klines("BTCUSDT", "1m", walk_candles(100))
    await sim.faults(latency_ms=5000)  # the download hangs: the job is running when we stop
    _, token = await user_token(client)
    headers = bearer(token)
    end = iso(T0 + 100 * MINUTE_MS)
    running = await submit(client, headers, end_time=end)
    queued = await submit(client, headers, end_time=end)
    await wait_status(client, headers, running, "running")
    assert (await status_of(pool, queued))[0] == "pending"
    await client.close()  # the app's cleanup: the runner closes
    for backtest_id in (running, queued):
        assert await status_of(pool, backtest_id) == ("failed", INTERRUPTED)


async def test_a_new_replica_fails_jobs_abandoned_by_a_dead_one(make_client: AppFactory, pool: asyncpg.Pool) -> None:
    user_id = await pool.fetchval(
        "INSERT INTO users (email, password_hash) VALUES ('dead@example.com', 'x') RETURNING id"
    )
    insert = (
        "INSERT INTO backtests (user_id, status, symbol, timeframe, start_time, end_time, strategy, parameters, "
        "initial_balance, started_at, updated_at) VALUES ($1, $2, 'BTC/USDT:USDT', '1m', now() - interval '2 days', "
        "now() - interval '1 day', 'ema_cross', '{\"ema_period\": 10}', 1000, now(), now() - $3::interval) RETURNING id"
    )
    stale_running = await pool.fetchval(insert, user_id, "running", dt.timedelta(hours=1))
    stale_pending = await pool.fetchval(insert, user_id, "pending", dt.timedelta(hours=1))
    fresh_running = await pool.fetchval(insert, user_id, "running", dt.timedelta(seconds=0))
    await make_client(backtest_stale_after_s=60)  # starting sweeps once
    assert await status_of(pool, stale_running) == ("failed", ABANDONED)
    assert await status_of(pool, stale_pending) == ("failed", ABANDONED)
    assert await status_of(pool, fresh_running) == ("running", None)  # its replica may well be alive
    finished = await pool.fetchval("SELECT finished_at IS NOT NULL FROM backtests WHERE id = $1", stale_running)
    assert finished


async def test_heartbeats_keep_a_long_job_alive_across_replicas(make_client: AppFactory, sim: SimControl) -> None:
    # Stale after 15 missed heartbeats (6 were too few on a loaded machine: the job was swept).
    fast = {"backtest_heartbeat_s": 0.1, "backtest_stale_after_s": 1.5}
    worker = await make_client("a", **fast)
    await make_client("b", **fast)  # another replica sweeping the same table every 0.1 s
    await sim.push_klines("BTCUSDT", "1m", walk_candles(2500))
    await sim.faults(latency_ms=1000)  # three pages: about 3 s of running, well past stale_after
    _, token = await user_token(worker)
    headers = bearer(token)
    done = await settled(worker, headers, await submit(worker, headers, end_time=iso(T0 + 2500 * MINUTE_MS)))
    assert done["status"] == "done", done
    assert done["candles_count"] == 2500


async def test_one_user_cannot_take_every_place(make_client: AppFactory, sim: SimControl) -> None:
    client = await make_client(backtest_concurrency=1, backtest_queue_limit=20, backtest_max_live_per_user=4)
    await sim.push_klines("BTCUSDT", "1m", walk_candles(100))
    await sim.faults(latency_ms=300)
    _, alice_token = await user_token(client, "alice")
    _, bob_token = await user_token(client, "bob")
    alice, bob = bearer(alice_token), bearer(bob_token)
    end = iso(T0 + 100 * MINUTE_MS)
    mine = [await submit(client, alice, end_time=end) for _ in range(4)]
    r = await client.post("/api/v1/backtests", json=backtest_body(end_time=end), headers=alice)
    got = await problem(r, 429)
    assert "at most 4 backtests" in got["detail"] and r.headers["Retry-After"]
    theirs = await submit(client, bob, end_time=end)  # others still get in
    await sim.faults(latency_ms=0)
    for backtest_id in mine:
        assert (await settled(client, alice, backtest_id))["status"] == "done"
    assert (await settled(client, bob, theirs))["status"] == "done"
    assert (await settled(client, alice, await submit(client, alice, end_time=end)))["status"] == "done"


async def test_running_replicas_keep_sweeping(make_client: AppFactory, pool: asyncpg.Pool) -> None:
    await make_client(backtest_heartbeat_s=0.05, backtest_stale_after_s=0.3)
    user_id = await pool.fetchval(
        "INSERT INTO users (email, password_hash) VALUES ('late@example.com', 'x') RETURNING id"
    )
    # A job whose replica dies after this one started: its heartbeats stop, the sweep notices.
    backtest_id = await pool.fetchval(
        "INSERT INTO backtests (user_id, status, symbol, timeframe, start_time, end_time, strategy, parameters, "
        "initial_balance, started_at) VALUES ($1, 'running', 'BTC/USDT:USDT', '1m', now() - interval '2 days', "
        "now() - interval '1 day', 'ema_cross', '{\"ema_period\": 10}', 1000, now()) RETURNING id",
        user_id,
    )

    async def failed() -> bool:
        return await status_of(pool, backtest_id) == ("failed", ABANDONED)

    await eventually(failed, timeout=5)


async def test_a_job_submitted_after_close_is_failed_not_left_pending(pool: asyncpg.Pool) -> None:
    repo = BacktestsRepo(pool)

    def no_exchange() -> Any:
        raise AssertionError("no exchange call expected")

    runner = BacktestRunner(repo, HistoryLoader(CandleCache(pool), no_exchange), RunnerConfig())
    await runner.start()
    await runner.close()
    user_id = await pool.fetchval("INSERT INTO users (email, password_hash) VALUES ('c@example.com', 'x') RETURNING id")
    spec = BacktestSpec(
        symbol="BTC/USDT:USDT",
        timeframe="1m",
        start_time=dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
        end_time=dt.datetime(2024, 1, 2, tzinfo=dt.UTC),
        strategy="ema_cross",
        parameters={"ema_period": 10},
        initial_balance=1000.0,
        fee_rate=0.0005,
        slippage_bps=0.0,
    )
    row = await repo.insert(user_id, spec)
    assert runner.reserve()
    with pytest.raises(RuntimeError):
        await runner.submit(row["id"])
    assert await status_of(pool, row["id"]) == ("failed", INTERRUPTED)
