"""SQL for optimisations: user-facing reads and writes scoped by the owner's user id; the work queue
of chunks claimed with ``FOR UPDATE SKIP LOCKED`` under a lease and a fencing token (migration 0011).

Exactly once: a chunk's finish is accepted only from the claim holding its current ``lease_token``
(a claim after a lapsed lease bumps it), in one transaction with the trials' rows, whose primary
key (optimization, trial number) refuses a second copy anyway. Completions of one optimisation are
serialised by a lock on its row, so progress counters and the "last chunk done" decision agree.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from tradebot.optimizations.evaluate import TrialResult
from tradebot.optimizations.models import OptimizationSpec
from tradebot.statuses import OptimizationStatus

COLUMNS = (
    "id, user_id, status, exchange, symbol, timeframe, start_time, end_time, strategy, space, fixed, objective, "
    "method, max_trials, seed, test_fraction, initial_balance, fee_rate, slippage_bps, trials_total, trials_done, "
    "candles_count, split_time, error_message, created_at, updated_at, started_at, finished_at"
)
_LIVE = "status IN ('pending', 'running')"


@dataclass(frozen=True, slots=True)
class Chunk:
    id: int
    optimization_id: int
    first_trial: int
    trials: list[dict[str, Any]]
    lease_token: int
    attempts: int


@dataclass(frozen=True, slots=True)
class Completion:
    accepted: bool  # False: the lease was lost (another replica re-ran it) or the run was cancelled
    finished: bool = False  # the optimisation is done
    needs_round: bool = False  # tpe: every chunk is done, more trials are due


def _chunk(row: asyncpg.Record) -> Chunk:
    trials = row["trials"]
    return Chunk(int(row["id"]), int(row["optimization_id"]), int(row["first_trial"]), list(trials),
                 int(row["lease_token"]), int(row["attempts"]))  # fmt: skip


def _figures(f: Any) -> dict[str, Any] | None:
    return None if f is None else dict(f.to_dict())


class OptimizationsRepo:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    # -- user-facing ------------------------------------------------------------------------------

    async def insert(self, user_id: int, spec: OptimizationSpec, chunks: Sequence[tuple[int, list[Any]]]) -> int:
        async with self._pool.acquire() as conn, conn.transaction():
            opt_id = await conn.fetchval(
                "INSERT INTO optimizations (user_id, exchange, symbol, timeframe, start_time, end_time, strategy, "
                "space, fixed, objective, method, max_trials, seed, test_fraction, initial_balance, fee_rate, "
                "slippage_bps, trials_total) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, "
                "$15, $16, $17, $18) RETURNING id",
                user_id, spec.exchange, spec.symbol, spec.timeframe, spec.start_time, spec.end_time, spec.strategy,
                dict(spec.space), dict(spec.fixed), spec.objective, spec.method, spec.max_trials, spec.seed,
                spec.test_fraction, spec.initial_balance, spec.fee_rate, spec.slippage_bps, spec.total,
            )  # fmt: skip
            await conn.executemany(
                "INSERT INTO optimization_chunks (optimization_id, first_trial, trials) VALUES ($1, $2, $3)",
                [(opt_id, first, trials) for first, trials in chunks],
            )
        return int(opt_id)

    async def get(self, user_id: int, opt_id: int) -> asyncpg.Record | None:
        return await self._pool.fetchrow(f"SELECT {COLUMNS} FROM optimizations WHERE id = $1 AND user_id = $2",
                                         opt_id, user_id)  # fmt: skip

    async def page(self, user_id: int, *, before_id: int | None, limit: int) -> list[asyncpg.Record]:
        return list(await self._pool.fetch(
            f"SELECT {COLUMNS} FROM optimizations WHERE user_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
            user_id, before_id if before_id is not None else 2**63 - 1, limit,
        ))  # fmt: skip

    async def ranked_trials(self, opt_id: int, limit: int | None = None) -> list[asyncpg.Record]:
        """Best first by the train objective; ties by trial number (the earlier trial wins)."""
        return list(await self._pool.fetch(
            "SELECT trial_no, parameters, train, test, score FROM optimization_trials WHERE optimization_id = $1 "
            "ORDER BY score DESC, trial_no LIMIT $2", opt_id, limit,
        ))  # fmt: skip

    async def best_trials(self, opt_ids: Sequence[int]) -> dict[int, asyncpg.Record]:
        rows = await self._pool.fetch(
            "SELECT DISTINCT ON (optimization_id) optimization_id, trial_no, parameters, train, test, score "
            "FROM optimization_trials WHERE optimization_id = ANY($1::bigint[]) "
            "ORDER BY optimization_id, score DESC, trial_no", list(opt_ids),
        )  # fmt: skip
        return {int(r["optimization_id"]): r for r in rows}

    async def count_live(self, user_id: int) -> int:
        return int(await self._pool.fetchval(f"SELECT count(*) FROM optimizations WHERE user_id = $1 AND {_LIVE}",
                                             user_id))  # fmt: skip

    async def cancel(self, user_id: int, opt_id: int) -> bool:
        """Cancels a live optimisation (its chunks not done go; a worker still computing one finds
        its finish refused). False when there is no such optimisation of this user."""
        async with self._pool.acquire() as conn, conn.transaction():
            found = await conn.fetchval("SELECT status FROM optimizations WHERE id = $1 AND user_id = $2 FOR UPDATE",
                                        opt_id, user_id)  # fmt: skip
            if found is None:
                return False
            if found in ("pending", "running"):
                await conn.execute(
                    "UPDATE optimizations SET status = 'cancelled', finished_at = now(), updated_at = now() "
                    "WHERE id = $1", opt_id,
                )  # fmt: skip
                await conn.execute("DELETE FROM optimization_chunks WHERE optimization_id = $1 AND status <> 'done'",
                                   opt_id)  # fmt: skip
            return True

    # -- the work queue ---------------------------------------------------------------------------

    async def claim(self, replica_id: str, lease: dt.timedelta) -> Chunk | None:
        """One chunk nobody holds (pending, or its lease lapsed) of a live optimisation, leased to
        ``replica_id`` with a new fencing token; None when there is none."""
        # The chunk alone is locked here: every other transaction takes the optimisation's row
        # before its chunks, so taking them the other way round would deadlock with a cancel.
        row = await self._pool.fetchrow(
            "UPDATE optimization_chunks ch SET status = 'running', lease_owner = $1, "
            "lease_token = ch.lease_token + 1, leased_until = now() + $2::interval, attempts = ch.attempts + 1 "
            "WHERE ch.id = (SELECT c.id FROM optimization_chunks c JOIN optimizations o ON o.id = c.optimization_id "
            "  WHERE c.status <> 'done' AND (c.status = 'pending' OR c.leased_until < now()) "
            f"  AND o.{_LIVE} ORDER BY c.id FOR UPDATE OF c SKIP LOCKED LIMIT 1) "
            "RETURNING ch.id, ch.optimization_id, ch.first_trial, ch.trials, ch.lease_token, ch.attempts",
            replica_id, lease,
        )  # fmt: skip
        if row is None:
            return None
        await self._pool.execute(
            "UPDATE optimizations SET status = 'running', started_at = coalesce(started_at, now()), "
            "updated_at = now() WHERE id = $1 AND status = 'pending'", row["optimization_id"],
        )  # fmt: skip
        return _chunk(row)

    async def renew(self, chunk: Chunk, lease: dt.timedelta) -> bool:
        """Extends the chunk's lease; False when it is no longer this claim's."""
        status = await self._pool.execute(
            "UPDATE optimization_chunks SET leased_until = now() + $3::interval "
            "WHERE id = $1 AND lease_token = $2 AND status = 'running'", chunk.id, chunk.lease_token, lease,
        )  # fmt: skip
        return bool(status == "UPDATE 1")

    async def optimization(self, opt_id: int) -> asyncpg.Record | None:
        return await self._pool.fetchrow(f"SELECT {COLUMNS} FROM optimizations WHERE id = $1", opt_id)

    async def record_data(self, opt_id: int, candles_count: int, split_time: dt.datetime | None) -> None:
        await self._pool.execute(
            "UPDATE optimizations SET candles_count = $2, split_time = $3 WHERE id = $1 AND candles_count IS NULL",
            opt_id, candles_count, split_time,
        )  # fmt: skip

    async def complete(self, chunk: Chunk, results: Sequence[TrialResult], replica_id: str) -> Completion:
        async with self._pool.acquire() as conn, conn.transaction():
            status = await conn.fetchval(
                "SELECT status FROM optimizations WHERE id = $1 FOR UPDATE", chunk.optimization_id
            )
            if status not in ("pending", "running"):
                return Completion(False)
            done = await conn.execute(
                "UPDATE optimization_chunks SET status = 'done', finished_at = now() "
                "WHERE id = $1 AND lease_token = $2 AND status = 'running'", chunk.id, chunk.lease_token,
            )  # fmt: skip
            if done != "UPDATE 1":
                return Completion(False)
            await conn.executemany(
                "INSERT INTO optimization_trials (optimization_id, trial_no, parameters, train, test, score, chunk_id, "
                "replica_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                [(chunk.optimization_id, chunk.first_trial + i, dict(r.parameters), _figures(r.train),
                  _figures(r.test), r.score, chunk.id, replica_id) for i, r in enumerate(results)],
            )  # fmt: skip
            row = await conn.fetchrow(
                "UPDATE optimizations SET trials_done = trials_done + $2, updated_at = now() WHERE id = $1 "
                "RETURNING trials_done, trials_total", chunk.optimization_id, len(results),
            )  # fmt: skip
            assert row is not None
            still_open = await conn.fetchval(
                "SELECT count(*) FROM optimization_chunks WHERE optimization_id = $1 AND status <> 'done'",
                chunk.optimization_id,
            )
            if still_open:
                return Completion(True)
            if row["trials_done"] >= row["trials_total"]:
                await self._finish(conn, chunk.optimization_id)
                return Completion(True, finished=True)
            return Completion(True, needs_round=True)

    @staticmethod
    async def _finish(conn: asyncpg.Connection, opt_id: int) -> None:
        await conn.execute(
            "UPDATE optimizations SET status = 'done', finished_at = now(), updated_at = now() WHERE id = $1", opt_id
        )

    async def finished_trials(self, opt_id: int) -> list[tuple[dict[str, Any], float]]:
        rows = await self._pool.fetch(
            "SELECT parameters, score FROM optimization_trials WHERE optimization_id = $1 ORDER BY trial_no", opt_id
        )
        return [(dict(r["parameters"]), float(r["score"])) for r in rows]

    async def add_round(self, opt_id: int, done: int, chunks: Sequence[tuple[int, list[Any]]], produced: int) -> bool:
        """The next tpe round, asked for after ``done`` trials; refused (False) when another worker
        added it meanwhile or the run ended. A round smaller than asked means the space ran out:
        the total shrinks to what will have run (and a run with nothing more to try is done)."""
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "SELECT status, trials_done, trials_total FROM optimizations WHERE id = $1 FOR UPDATE", opt_id
            )
            if row is None or row["status"] not in ("pending", "running") or row["trials_done"] != done:
                return False
            if await conn.fetchval(
                "SELECT count(*) FROM optimization_chunks WHERE optimization_id = $1 AND status <> 'done'", opt_id
            ):
                return False
            wanted = row["trials_total"] - done
            if produced < wanted:
                await conn.execute("UPDATE optimizations SET trials_total = $2 WHERE id = $1", opt_id, done + produced)
            if produced == 0:
                await self._finish(conn, opt_id)
                return True
            await conn.executemany(
                "INSERT INTO optimization_chunks (optimization_id, first_trial, trials) VALUES ($1, $2, $3)",
                [(opt_id, first, trials) for first, trials in chunks],
            )
            return True

    async def stalled_rounds(self, older_than: dt.timedelta) -> list[int]:
        """tpe runs with every chunk done and trials still due, untouched for ``older_than``: the
        worker that was to add the next round died in between."""
        rows = await self._pool.fetch(
            f"SELECT o.id FROM optimizations o WHERE o.{_LIVE} AND o.trials_done < o.trials_total "
            "AND o.updated_at < now() - $1::interval AND NOT EXISTS (SELECT 1 FROM optimization_chunks c "
            "WHERE c.optimization_id = o.id AND c.status <> 'done')", older_than,
        )  # fmt: skip
        return [int(r["id"]) for r in rows]

    async def fail(self, opt_id: int, message: str) -> bool:
        async with self._pool.acquire() as conn, conn.transaction():
            status = await conn.execute(
                "UPDATE optimizations SET status = 'failed', error_message = $2, finished_at = now(), "
                f"updated_at = now() WHERE id = $1 AND {_LIVE}", opt_id, message,
            )  # fmt: skip
            if status != "UPDATE 1":
                return False
            await conn.execute("DELETE FROM optimization_chunks WHERE optimization_id = $1 AND status <> 'done'",
                               opt_id)  # fmt: skip
            return True

    async def status(self, opt_id: int) -> OptimizationStatus | None:
        raw = await self._pool.fetchval("SELECT status FROM optimizations WHERE id = $1", opt_id)
        return None if raw is None else OptimizationStatus(raw)
