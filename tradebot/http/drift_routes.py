"""GET /api/v1/bots/{id}/drift: a bot's live fills against a replay of its own candles
(tradebot.backtests.drift), and GET /api/v1/bots/{id}/drift/last, the nightly job's stored one."""

from __future__ import annotations

import datetime as dt
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator

from tradebot.http.appkeys import DRIFT, PRINCIPAL
from tradebot.http.bot_routes import bot_id_of
from tradebot.http.bot_schemas import TradeFilterQuery
from tradebot.http.json_response import json_response
from tradebot.http.problems import not_found
from tradebot.http.request_body import parse_query
from tradebot.http.routing import RouteTable

routes = RouteTable()

PATH = "/api/v1/bots/{id}/drift"
TAGS = ["bots"]
DEFAULT_WINDOW = dt.timedelta(hours=24)


class DriftQuery(BaseModel):
    """`?since=` (inclusive, default 24 hours before `until`) and `?until=` (exclusive, default now):
    ISO 8601, UTC when no zone; the window of candles whose close decided a fill."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    since: dt.datetime | None = None
    until: dt.datetime | None = None

    # The same reading of times as the trade filters (no bare numbers, "+" surviving the query
    # string, UTC when no zone, nothing before 2000).
    @field_validator("since", "until", mode="before")
    @classmethod
    def _as_iso(cls, v: Any) -> Any:
        return TradeFilterQuery._plus_survives_the_query_string(v)

    @field_validator("since", "until")
    @classmethod
    def _utc(cls, v: dt.datetime | None) -> dt.datetime | None:
        return TradeFilterQuery._utc(v)

    @field_validator("until")
    @classmethod
    def _after_since(cls, v: dt.datetime | None, info: ValidationInfo) -> dt.datetime | None:
        since = info.data.get("since")
        if v is not None and since is not None and v <= since:
            raise ValueError("must be after since")
        return v

    def window(self, now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
        until = self.until or now  # a `since` in the future without `until`: a 422 on `until`
        return self.since or until - DEFAULT_WINDOW, until


class DriftSummaryOut(BaseModel):
    expected_fills: int
    actual_fills: int
    matched: int
    missing_signals: int
    extra_signals: int
    signal_differences: int
    mean_slippage_bps: float | None
    max_slippage_bps: float | None
    expected_fees: float
    actual_fees: float
    fee_difference: float
    fees_unknown: int
    expected_net_pnl: float
    live_net_pnl: float
    pnl_gap: float
    traded_notional: float
    pnl_gap_bps: float


class DriftTradeOut(BaseModel):
    """One fill: `matched` (both), `missing` (the replay's only) or `extra` (the bot's only).
    `slippage_bps` is positive when the bot got the worse price."""

    decided_at: str
    side: str
    status: str
    amount: float
    expected_price: float | None
    actual_price: float | None
    slippage_bps: float | None
    expected_fee: float | None
    actual_fee: float | None
    fee_difference: float | None
    trade_id: int | None


class DriftOut(BaseModel):
    """The comparison over `[since, until)`; `warning` is set when |pnl_gap_bps| exceeds
    `threshold_bps` (TRADEBOT_DRIFT_WARN_GAP_BPS)."""

    bot_id: int
    symbol: str
    timeframe: str
    strategy: str
    since: str
    until: str
    summary: DriftSummaryOut
    trades: list[DriftTradeOut]
    warning: str | None
    threshold_bps: float


@routes.route(
    "GET",
    PATH,
    summary="Live versus backtest drift of the bot over a window",
    description="Replays the bot's candles of the window through the backtest with the bot's settings and "
    "compares fill by fill with its recorded trades: missing and extra signals, slippage, fee differences "
    "and the PnL gap. 404 for another user's bot; 422 names `since` or `until`; 503 when the exchange's "
    "candles cannot be read.",
    query=DriftQuery,
    responses={200: DriftOut},
    errors=[503],
    tags=TAGS,
)
async def get_drift(request: web.Request) -> web.Response:
    bot_id = bot_id_of(request)
    query = parse_query(request, DriftQuery)
    since, until = query.window(dt.datetime.now(dt.UTC))
    report: dict[str, Any] = await request.app[DRIFT].report(request[PRINCIPAL].user_id, bot_id, since, until)
    return json_response(report)


@routes.route(
    "GET",
    PATH + "/last",
    summary="The bot's last nightly drift report",
    description="Stored by the cluster leader's nightly job; 404 before its first run for this bot.",
    responses={200: DriftOut},
    tags=TAGS,
)
async def get_last_drift(request: web.Request) -> web.Response:
    report = await request.app[DRIFT].last_report(request[PRINCIPAL].user_id, bot_id_of(request))
    if report is None:
        raise not_found("drift report")
    return json_response(report)
