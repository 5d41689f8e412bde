"""/api/v1/trades: the caller's trades across bots, newest first (CONTRACT.md "Trades")."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from tradebot.http.appkeys import BOTS, PRINCIPAL
from tradebot.http.bot_schemas import TradePage, TradesQuery
from tradebot.http.json_response import json_response
from tradebot.http.pagination import build_page, decode_cursor
from tradebot.http.problems import field_problem
from tradebot.http.request_body import parse_query
from tradebot.http.routing import RouteTable

routes = RouteTable()

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROSECOND = dt.timedelta(microseconds=1)
# Far enough for any real trade, small enough that datetime arithmetic cannot overflow.
_MAX_US = (dt.datetime(9999, 1, 1, tzinfo=dt.UTC) - _EPOCH) // _MICROSECOND


def trade_key(trade: Mapping[str, Any]) -> tuple[int, int]:
    """Trades are ordered by (created_at, id); the cursor holds both, the time in microseconds."""
    created_at: dt.datetime = trade["created_at"]
    return (created_at - _EPOCH) // _MICROSECOND, trade["id"]


def decode_trade_cursor(cursor: str | None) -> tuple[dt.datetime, int] | None:
    key = decode_cursor(cursor, (int, int))
    if key is None:
        return None
    micros, trade_id = key
    assert isinstance(micros, int) and isinstance(trade_id, int)
    if micros > _MAX_US:
        raise field_problem("cursor", "invalid cursor")
    return _EPOCH + micros * _MICROSECOND, trade_id


@routes.route(
    "GET",
    "/api/v1/trades",
    summary="The caller's trades, newest first",
    query=TradesQuery,
    responses={200: TradePage},
    tags=["trades"],
)
async def list_trades(request: web.Request) -> web.Response:
    query = parse_query(request, TradesQuery)
    rows = await request.app[BOTS].user_trades(
        request[PRINCIPAL].user_id,
        bot_id=query.bot_id,
        since=query.since,
        before=decode_trade_cursor(query.cursor),
        limit=query.limit + 1,
    )
    items, next_cursor = build_page(rows, query.limit, trade_key)
    return json_response({"items": items, "next_cursor": next_cursor})
