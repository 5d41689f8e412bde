"""The chunk queue on a real PostgreSQL: SKIP LOCKED claims never hand one chunk to two live
claims, a lapsed lease is claimed again with a new token, and the old claim's finish is refused; a
tpe round that a dying worker never added is added by another, the same one."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from typing import Any

import asyncpg

from tradebot.backtests.candle_cache import CandleCache
from tradebot.backtests.history import HistoryLoader
from tradebot.optimizations.evaluate import TrialResult
from tradebot.optimizations.models import TPE_ROUND, OptimizationSpec, TrialRules, chunked, parse_space
from tradebot.optimizations.repository import OptimizationsRepo
from tradebot.optimizations.search import tpe_round
from tradebot.runtime.optimization_worker import OptimizationWorkers, WorkerConfig
from tradebot.strategies.sweep import Figures

LEASE = dt.timedelta(seconds=30)
FIG = Figures(1.0, 0.5, 2.0, 3, 0.5, 1.2, 0.5, 10_100.0)


def spec(trials: int) -> OptimizationSpec:
    t0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    return OptimizationSpec(
        symbol="BTC/USDT:USDT", timeframe="1m", start_time=t0, end_time=t0 + dt.timedelta(days=1),
        strategy="ema_cross", space={"ema_period": {"min": 2, "max": 2 + trials - 1, "step": 1}}, fixed={},
        objective="sharpe", method="grid", max_trials=trials, test_fraction=0.3, seed=0, initial_balance=1000.0,
        fee_rate=None, slippage_bps=None, trials=tuple({"ema_period": 2 + i} for i in range(trials)), total=trials,
    )  # fmt: skip


async def setup(pool: asyncpg.Pool, trials: int) -> tuple[OptimizationsRepo, int]:
    user = await pool.fetchval("INSERT INTO users (email, password_hash) VALUES ('q@example.com', 'h') RETURNING id")
    repo = OptimizationsRepo(pool)
    s = spec(trials)
    return repo, await repo.insert(int(user), s, chunked(s.trials))


def results(n: int) -> list[TrialResult]:
    return [TrialResult({"ema_period": 2 + i}, FIG, None, 0.5) for i in range(n)]


async def test_concurrent_claims_take_distinct_chunks(pool: asyncpg.Pool) -> None:
    repo, _ = await setup(pool, 40)  # 5 chunks
    claims = await asyncio.gather(*(repo.claim(f"r{i}", LEASE) for i in range(8)))
    taken = [c.id for c in claims if c is not None]
    assert len(taken) == 5 == len(set(taken))


async def test_a_lapsed_lease_is_claimed_again_and_the_old_finish_refused(pool: asyncpg.Pool) -> None:
    repo, opt_id = await setup(pool, 8)  # one chunk
    old = await repo.claim("r1", dt.timedelta(milliseconds=1))
    assert old is not None
    await asyncio.sleep(0.01)  # the lease (1 ms) lapses: r1 stands for a killed replica
    new = await repo.claim("r2", LEASE)
    assert new is not None and new.id == old.id and new.lease_token == old.lease_token + 1 and new.attempts == 2
    assert not await repo.renew(old, LEASE)
    assert (await repo.complete(old, results(8), "r1")).accepted is False
    outcome = await repo.complete(new, results(8), "r2")
    assert outcome.accepted and outcome.finished
    assert (await repo.complete(new, results(8), "r2")).accepted is False  # never twice
    rows = await pool.fetch("SELECT trial_no, replica_id FROM optimization_trials WHERE optimization_id = $1", opt_id)
    assert sorted(r["trial_no"] for r in rows) == list(range(8)) and {r["replica_id"] for r in rows} == {"r2"}
    assert await pool.fetchval("SELECT status FROM optimizations WHERE id = $1", opt_id) == "done"
    assert await repo.claim("r3", LEASE) is None


def tpe_spec(total: int) -> OptimizationSpec:
    base = spec(8)
    dims = {"ema_period": {"min": 2, "max": 200}}
    parsed, errors = parse_space("ema_cross", dims, {}, "tpe")
    assert errors == []
    rules = TrialRules("ema_cross", 1000.0, None, None)
    first = tpe_round(parsed, {}, rules.valid, [], TPE_ROUND, 11)
    return dataclasses.replace(base, space=dims, method="tpe", max_trials=total, seed=11, trials=tuple(first),
                               total=total)  # fmt: skip


async def test_a_tpe_round_nobody_added_is_resumed_the_same(pool: asyncpg.Pool) -> None:
    user = await pool.fetchval("INSERT INTO users (email, password_hash) VALUES ('t@example.com', 'h') RETURNING id")
    repo = OptimizationsRepo(pool)
    s = tpe_spec(TPE_ROUND + 8)
    opt_id = await repo.insert(int(user), s, chunked(s.trials))
    outcomes = []
    while (chunk := await repo.claim("r1", LEASE)) is not None:
        res = [TrialResult(t, FIG, None, float(t["ema_period"])) for t in chunk.trials]
        outcomes.append(await repo.complete(chunk, res, "r1"))
    assert outcomes[-1].needs_round  # ... and r1 dies before adding the round
    await pool.execute("UPDATE optimizations SET updated_at = now() - interval '1 hour' WHERE id = $1", opt_id)
    loader = HistoryLoader(CandleCache(pool), client=_no_exchange)
    workers = OptimizationWorkers(repo, loader, "r2", WorkerConfig(workers=0, lease_s=1.0))
    await workers.resume_stalled()
    await workers.resume_stalled()  # a second resume (another replica's) adds nothing
    rows = await pool.fetch("SELECT first_trial, trials FROM optimization_chunks WHERE optimization_id = $1 "
                            "AND status = 'pending'", opt_id)  # fmt: skip
    assert [r["first_trial"] for r in rows] == [TPE_ROUND]
    finished = [(dict(t), float(t["ema_period"])) for t in s.trials]
    rules = TrialRules("ema_cross", 1000.0, None, None)
    parsed, _ = parse_space("ema_cross", dict(s.space), {}, "tpe")
    assert rows[0]["trials"] == tpe_round(parsed, {}, rules.valid, finished, 8, 11)  # what r1 would have added


def _no_exchange() -> Any:
    raise AssertionError("resuming a round reads no candles")
