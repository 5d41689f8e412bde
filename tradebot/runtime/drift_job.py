"""The nightly drift reports: once per UTC day, from TRADEBOT_DRIFT_RUN_AT_HOUR on, the cluster
leader stores each bot's drift report over the hours before that day's midnight (the bots that
are active or traded in the window), and the report sets or clears the bot's state warning
(tradebot.backtests.drift does the work; this module only decides when and for whom).

Each bot's run is recorded in job_runs (job ``drift_report``, key ``<day>:<bot id>``) after its
report is stored, so a leader that takes over halfway through the night reports only the bots not
done yet; two leaders overlapping for a moment at worst store the same report twice (an upsert).
A bot whose report fails (its candles unreadable, say) is logged and retried at the next check;
one bot never holds up the others.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Protocol

import asyncpg

from tradebot.runtime.clock import Clock
from tradebot.runtime.tasks import reraise_if_cancelling

log = logging.getLogger(__name__)

JOB: Final = "drift_report"


class NightlyReports(Protocol):
    async def store_nightly(self, bot_id: int, until: dt.datetime, hours: int) -> Any: ...


@dataclass(frozen=True, slots=True)
class DriftSchedule:
    run_at_hour: int = 1  # UTC
    window_hours: int = 24
    check_every_s: float = 60.0


class DriftJob:
    def __init__(
        self,
        pool: asyncpg.Pool,
        reports: NightlyReports,
        *,
        is_leader: Callable[[], bool],
        clock: Clock,
        replica_id: str,
        schedule: DriftSchedule,
    ) -> None:
        self._pool = pool
        self._reports = reports
        self._is_leader = is_leader
        self._clock = clock
        self._replica_id = replica_id
        self.schedule = schedule
        self.reported = 0  # reports stored by this replica
        self.failed = 0

    async def loop(self) -> None:
        """Runs until cancelled (a supervised task)."""
        while True:
            try:
                await self.run_once()
            except (OSError, asyncpg.PostgresError) as e:  # the database is away: try again next check
                log.warning("drift reports could not run: %s", e)
            await self._clock.sleep(self.schedule.check_every_s)

    async def run_once(self) -> int:
        """Stores the reports due now if this replica leads; returns how many it stored."""
        if not self._is_leader():
            return 0
        now = dt.datetime.fromtimestamp(self._clock.now_ms() / 1000, tz=dt.UTC)
        if now.hour < self.schedule.run_at_hour:
            return 0
        until = now.replace(hour=0, minute=0, second=0, microsecond=0)
        since = until - dt.timedelta(hours=self.schedule.window_hours)
        day = until.date().isoformat()
        due = await self._pool.fetch(
            "SELECT c.id FROM bot_configs c WHERE c.deleted_at IS NULL "
            "AND (c.is_active OR EXISTS (SELECT 1 FROM trades t WHERE t.bot_id = c.id AND t.created_at >= $1)) "
            "AND NOT EXISTS (SELECT 1 FROM job_runs j WHERE j.job = $2 AND j.run_key = $3 || ':' || c.id) "
            "ORDER BY c.id",
            since,
            JOB,
            day,
        )
        stored = 0
        for row in due:
            if not self._is_leader():  # stepped down meanwhile: the new leader carries on
                break
            bot_id = int(row["id"])
            try:
                await self._reports.store_nightly(bot_id, until, self.schedule.window_hours)
            except Exception as e:
                reraise_if_cancelling(e)
                self.failed += 1
                log.warning("drift report failed: %s", e, extra={"bot_id": bot_id})
                continue
            await self._pool.execute(
                "INSERT INTO job_runs (job, run_key, replica_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
                JOB,
                f"{day}:{bot_id}",
                self._replica_id,
            )
            stored += 1
            self.reported += 1
        if stored:
            log.info("drift reports stored", extra={"day": day, "bots": stored})
        return stored
