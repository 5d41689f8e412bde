"""Performance figures over a user's trades, computed in PostgreSQL (CONTRACT.md "Reporting").

Every figure is a sum over trade rows, so `GET /stats` totals equal the same sums over `GET /trades`
with the same filters: one statement per request, scoped by the owner's user id, served by the
covering indexes of migration 0007 (index-only scans: the heap is not read).

Periods are cut in UTC whatever the session's time zone: days, ISO weeks (PostgreSQL's
`date_trunc('week')` starts on Monday, so 2021-01-03 belongs to the week of 2020-12-28, ISO
2020-W53) and calendar months. A fee not known yet (NULL) is summed as 0 and counted in
`fees_unknown`, never hidden.

A bot's lifetime figures add the max drawdown of its realised equity: the cumulative net PnL
(realized_pnl − fee, in the quote currency) in trade order, starting from 0; the drawdown at a
trade is the highest point reached so far (0 included) minus the current point. Live bots have no
starting balance to divide by, so no percentage is given.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any

import asyncpg


class StatsGroup(StrEnum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    ALL = "all"


@dataclass(frozen=True, slots=True)
class TradeFilter:
    """The filters GET /trades and GET /stats share: `since` inclusive, `until` exclusive."""

    bot_id: int | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    paper: bool | None = None  # None: paper and live alike

    def where(self, user_id: int, args: list[Any]) -> str:
        """The WHERE clause (without the keyword), appending its values to `args`."""
        args.append(user_id)
        clauses = [f"user_id = ${len(args)}"]
        for column, op, value in (
            ("bot_id", "=", self.bot_id),
            ("created_at", ">=", self.since),
            ("created_at", "<", self.until),
            ("paper", "=", self.paper),
        ):
            if value is not None:
                args.append(value)
                clauses.append(f"{column} {op} ${len(args)}")
        return " AND ".join(clauses)


@dataclass(frozen=True, slots=True)
class Figures:
    """Sums over a set of trade rows; money stays Decimal (numeric) until the JSON edge."""

    trades_count: int
    realized_pnl: Decimal
    fees: Decimal
    wins: int
    losses: int
    fees_unknown: int

    @property
    def net_pnl(self) -> Decimal:
        return self.realized_pnl - self.fees

    @property
    def win_rate(self) -> float | None:
        decided = self.wins + self.losses
        return self.wins / decided if decided else None

    def view(self) -> dict[str, Any]:
        return {
            "trades_count": self.trades_count,
            "realized_pnl": float(self.realized_pnl),
            "fees": float(self.fees),
            "net_pnl": float(self.net_pnl),
            "wins": self.wins,
            "losses": self.losses,
            "win_rate": self.win_rate,
            "fees_unknown": self.fees_unknown,
        }


def _figures(row: Mapping[str, Any]) -> Figures:
    return Figures(
        trades_count=int(row["trades_count"]),
        realized_pnl=row["realized_pnl"],
        fees=row["fees"],
        wins=int(row["wins"]),
        losses=int(row["losses"]),
        fees_unknown=int(row["fees_unknown"]),
    )


_SUMS = """
    count(*) AS trades_count,
    coalesce(sum(realized_pnl), 0) AS realized_pnl,
    coalesce(sum(fee), 0) AS fees,
    count(*) FILTER (WHERE realized_pnl > 0) AS wins,
    count(*) FILTER (WHERE realized_pnl < 0) AS losses,
    count(*) FILTER (WHERE fee IS NULL) AS fees_unknown"""

# date_trunc's own field names; `all` has no period of its own.
_TRUNC_UNIT = {StatsGroup.DAY: "day", StatsGroup.WEEK: "week", StatsGroup.MONTH: "month"}

ZERO = Figures(0, Decimal(0), Decimal(0), 0, 0, 0)


def period_sql(where: str) -> str:
    """Sums per UTC day first (a hash aggregate over the rows the index gives), then per period of
    unit $1 and in total over those few day rows. `AT TIME ZONE 'UTC'` makes the cut independent of
    the session's zone, and costs less per row than date_trunc's zone argument."""
    return f"""
        WITH days AS (
            SELECT date_trunc('day', created_at AT TIME ZONE 'UTC') AS day, {_SUMS}
              FROM trades
             WHERE {where}
             GROUP BY 1)
        SELECT date_trunc($1, day) AT TIME ZONE 'UTC' AS period_start,
               grouping(date_trunc($1, day)) = 1 AS is_total,
               coalesce(sum(trades_count), 0)::bigint AS trades_count,
               coalesce(sum(realized_pnl), 0) AS realized_pnl,
               coalesce(sum(fees), 0) AS fees,
               coalesce(sum(wins), 0)::bigint AS wins,
               coalesce(sum(losses), 0)::bigint AS losses,
               coalesce(sum(fees_unknown), 0)::bigint AS fees_unknown
          FROM days
         GROUP BY GROUPING SETS ((date_trunc($1, day)), ())
         ORDER BY is_total, period_start
        """


@dataclass(frozen=True, slots=True)
class Period:
    start: dt.datetime
    figures: Figures

    def view(self) -> dict[str, Any]:
        return {"period_start": self.start, **self.figures.view()}


@dataclass(frozen=True, slots=True)
class PeriodStats:
    periods: list[Period]  # oldest first, only periods with trades
    totals: Figures


@dataclass(frozen=True, slots=True)
class BotLifetime:
    figures: Figures
    max_drawdown: Decimal  # of the cumulative net PnL, in the quote currency, ≥ 0

    def view(self) -> dict[str, Any]:
        return {**self.figures.view(), "max_drawdown": float(self.max_drawdown)}


EMPTY_LIFETIME = BotLifetime(ZERO, Decimal(0))


class TradeStats:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def periods(self, user_id: int, group: StatsGroup, flt: TradeFilter) -> PeriodStats:
        """One statement: a row per period plus the grand total (GROUPING SETS)."""
        if group is StatsGroup.ALL:
            args: list[Any] = []
            where = flt.where(user_id, args)
            row = await self._pool.fetchrow(
                f"SELECT min(created_at) AS first_at, {_SUMS} FROM trades WHERE {where}", *args
            )
            assert row is not None
            totals = _figures(row)
            # One period holding every trade; it starts at the first of them.
            return PeriodStats([Period(row["first_at"], totals)] if totals.trades_count else [], totals)
        args = [_TRUNC_UNIT[group]]
        where = flt.where(user_id, args)
        rows = await self._pool.fetch(period_sql(where), *args)
        # The grand total sorts last, and exists even when no trade matched.
        *period_rows, totals_row = rows
        assert totals_row["is_total"]
        return PeriodStats([Period(r["period_start"], _figures(r)) for r in period_rows], _figures(totals_row))

    async def lifetimes(self, user_id: int, bot_ids: Sequence[int]) -> dict[int, BotLifetime]:
        """Each bot's lifetime figures (bots without trades absent): one row per bot, kept by the
        trades trigger of migration 0007; a drawdown curve the trigger could not extend exactly is
        recomputed here, for those bots only, in one statement, and stored back."""
        if not bot_ids:
            return {}
        rows = await self._pool.fetch(
            "SELECT bot_id, trades_count, realized_pnl, fees, wins, losses, fees_unknown, curve_exact, "
            "max_drawdown, version FROM bot_trade_totals WHERE bot_id = ANY($1::bigint[]) AND user_id = $2 "
            "AND trades_count > 0",
            list(bot_ids),
            user_id,
        )
        inexact = {int(r["bot_id"]): int(r["version"]) for r in rows if not r["curve_exact"]}
        drawdowns = await self._recompute_curves(inexact) if inexact else {}
        return {
            int(r["bot_id"]): BotLifetime(
                _figures(r), max(Decimal(0), drawdowns.get(int(r["bot_id"]), r["max_drawdown"]))
            )
            for r in rows
        }

    async def _recompute_curves(self, versions: Mapping[int, int]) -> dict[int, Decimal]:
        """The curves of these bots from their trades; stored back only where no trade changed since
        `versions` were read (a newer change leaves its bot inexact for the next reader)."""
        rows = await self._pool.fetch(
            """
            WITH curve AS (
                SELECT bot_id, created_at, id,
                       sum(realized_pnl - coalesce(fee, 0)) OVER w AS equity
                  FROM trades WHERE bot_id = ANY($1::bigint[])
                WINDOW w AS (PARTITION BY bot_id ORDER BY created_at, id ROWS UNBOUNDED PRECEDING)),
            peaks AS (
                SELECT bot_id, created_at, id, equity, greatest(max(equity) OVER w, 0) AS peak
                  FROM curve
                WINDOW w AS (PARTITION BY bot_id ORDER BY created_at, id ROWS UNBOUNDED PRECEDING)),
            drawdowns AS (
                SELECT bot_id, created_at, id, equity, peak, max(peak - equity) OVER w AS max_drawdown
                  FROM peaks
                WINDOW w AS (PARTITION BY bot_id ORDER BY created_at, id ROWS UNBOUNDED PRECEDING)),
            steps AS (
                SELECT *, coalesce(lag(peak) OVER w, 0) AS prev_peak,
                       coalesce(lag(max_drawdown) OVER w, 0) AS prev_drawdown,
                       row_number() OVER (PARTITION BY bot_id ORDER BY created_at DESC, id DESC) AS from_end
                  FROM drawdowns
                WINDOW w AS (PARTITION BY bot_id ORDER BY created_at, id))
            SELECT bot_id, created_at, id, equity, peak, max_drawdown, prev_peak, prev_drawdown
              FROM steps WHERE from_end = 1
            """,
            list(versions),
        )
        await self._pool.executemany(
            "UPDATE bot_trade_totals SET curve_exact = true, last_created_at = $2, last_id = $3, equity = $4, "
            "peak = $5, max_drawdown = $6, prev_peak = $7, prev_drawdown = $8 WHERE bot_id = $1 AND version = $9",
            [(r["bot_id"], r["created_at"], r["id"], r["equity"], r["peak"], r["max_drawdown"], r["prev_peak"],
              r["prev_drawdown"], versions[int(r["bot_id"])]) for r in rows],
        )
        return {int(r["bot_id"]): r["max_drawdown"] for r in rows}
