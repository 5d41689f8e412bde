"""SQL for backtests: every read and user-facing write is scoped by the owner's user id; the job
transitions (pending -> running -> done | failed) are conditional on the status they leave, so a job
marked failed by a sweep is never overwritten by a late finish, and the other way round."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping
from typing import Any

import asyncpg

from tradebot.backtests.models import BacktestSpec

COLUMNS = (
    "id, user_id, status, exchange, symbol, timeframe, start_time, end_time, strategy, parameters, "
    "initial_balance, fee_rate, slippage_bps, error_message, created_at, updated_at, started_at, finished_at"
)
_LIVE = "status IN ('pending', 'running')"


class BacktestsRepo:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def insert(self, user_id: int, spec: BacktestSpec) -> asyncpg.Record:
        row = await self._pool.fetchrow(
            "INSERT INTO backtests (user_id, exchange, symbol, timeframe, start_time, end_time, strategy, "
            "parameters, initial_balance, fee_rate, slippage_bps) "
            f"VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING {COLUMNS}, NULL::jsonb AS result",
            user_id,
            spec.exchange,
            spec.symbol,
            spec.timeframe,
            spec.start_time,
            spec.end_time,
            spec.strategy,
            dict(spec.parameters),
            spec.initial_balance,
            spec.fee_rate,
            spec.slippage_bps,
        )
        assert row is not None
        return row

    async def get(self, user_id: int, backtest_id: int) -> asyncpg.Record | None:
        return await self._pool.fetchrow(
            f"SELECT {COLUMNS}, result FROM backtests WHERE id = $1 AND user_id = $2", backtest_id, user_id
        )

    async def page(self, user_id: int, *, before_id: int | None, limit: int) -> list[asyncpg.Record]:
        """Newest first. The list leaves the trades out: they can be thousands per backtest."""
        return list(
            await self._pool.fetch(
                f"SELECT {COLUMNS}, result - 'trades' AS result FROM backtests "
                "WHERE user_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3",
                user_id,
                before_id if before_id is not None else 2**63 - 1,
                limit,
            )
        )

    async def count_live(self, user_id: int) -> int:
        """The user's pending and running backtests, on every replica."""
        count = await self._pool.fetchval(f"SELECT count(*) FROM backtests WHERE user_id = $1 AND {_LIVE}", user_id)
        return int(count)

    # -- the job's transitions ------------------------------------------------------------------

    async def claim(self, backtest_id: int) -> asyncpg.Record | None:
        """pending -> running; None when the job is no longer pending (a sweep failed it)."""
        return await self._pool.fetchrow(
            "UPDATE backtests SET status = 'running', started_at = now(), updated_at = now() "
            f"WHERE id = $1 AND status = 'pending' RETURNING {COLUMNS}",
            backtest_id,
        )

    async def finish(self, backtest_id: int, result: Mapping[str, Any]) -> bool:
        status = await self._pool.execute(
            "UPDATE backtests SET status = 'done', result = $2, error_message = NULL, finished_at = now(), "
            "updated_at = now() WHERE id = $1 AND status = 'running'",
            backtest_id,
            dict(result),
        )
        return bool(status == "UPDATE 1")

    async def fail(self, backtest_id: int, message: str) -> bool:
        status = await self._pool.execute(
            "UPDATE backtests SET status = 'failed', error_message = $2, finished_at = now(), updated_at = now() "
            f"WHERE id = $1 AND {_LIVE}",
            backtest_id,
            message,
        )
        return bool(status == "UPDATE 1")

    async def fail_many(self, backtest_ids: Collection[int], message: str) -> int:
        if not backtest_ids:
            return 0
        status = await self._pool.execute(
            "UPDATE backtests SET status = 'failed', error_message = $2, finished_at = now(), updated_at = now() "
            f"WHERE id = ANY($1::bigint[]) AND {_LIVE}",
            list(backtest_ids),
            message,
        )
        return int(status.split()[-1])

    async def heartbeat(self, backtest_ids: Collection[int]) -> None:
        """Touches updated_at of this replica's live jobs: proof that their replica is alive."""
        if backtest_ids:
            await self._pool.execute(
                f"UPDATE backtests SET updated_at = now() WHERE id = ANY($1::bigint[]) AND {_LIVE}",
                list(backtest_ids),
            )

    async def fail_stale(self, older_than: dt.timedelta, message: str, *, keep: Collection[int] = ()) -> list[int]:
        """Fails the live jobs nobody has touched for ``older_than`` (their replica died); returns
        their ids. ``keep`` are this replica's own jobs, alive by definition."""
        rows = await self._pool.fetch(
            "UPDATE backtests SET status = 'failed', error_message = $2, finished_at = now(), updated_at = now() "
            f"WHERE {_LIVE} AND updated_at < now() - $1::interval AND NOT (id = ANY($3::bigint[])) RETURNING id",
            older_than,
            message,
            list(keep),
        )
        return [int(r["id"]) for r in rows]
