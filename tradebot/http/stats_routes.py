"""/api/v1/stats: the caller's performance per day, ISO week or month (CONTRACT.md "Reporting")."""

from __future__ import annotations

import datetime as dt

from aiohttp import web
from pydantic import BaseModel

from tradebot.bots.stats import StatsGroup
from tradebot.http.appkeys import BOTS, PRINCIPAL
from tradebot.http.bot_schemas import FiguresOut, TradeFilterQuery
from tradebot.http.json_response import json_response
from tradebot.http.request_body import parse_query
from tradebot.http.routing import RouteTable

routes = RouteTable()


class StatsQuery(TradeFilterQuery):
    """`?group=day|week|month|all` (default day) over the trades GET /trades lists with the same filters."""

    group: StatsGroup = StatsGroup.DAY


class PeriodOut(FiguresOut):
    """One UTC day, ISO week (from Monday) or calendar month with trades; for `group=all`, every
    trade, starting at the first one."""

    period_start: dt.datetime


class StatsOut(BaseModel):
    """Periods oldest first (only those with trades); `totals` equal the same sums over GET /trades."""

    items: list[PeriodOut]
    totals: FiguresOut


@routes.route(
    "GET",
    "/api/v1/stats",
    summary="Realised PnL, fees, wins and losses per period",
    query=StatsQuery,
    responses={200: StatsOut},
    tags=["trades"],
)
async def get_stats(request: web.Request) -> web.Response:
    query = parse_query(request, StatsQuery)
    stats = await request.app[BOTS].stats(request[PRINCIPAL].user_id, query.group, query.trade_filter())
    return json_response(stats)
