"""/api/v1/trades: the caller's trades across bots, newest first (CONTRACT.md "Trades")."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from tradebot.bots.repo import key_of_trade
from tradebot.http.appkeys import BOTS, PRINCIPAL
from tradebot.http.bot_schemas import TradeOut, TradePage, TradesQuery
from tradebot.http.csv_export import CSV_TYPE, keyset_batches, stream_csv, wants_csv
from tradebot.http.json_response import json_response
from tradebot.http.pagination import build_page, decode_cursor
from tradebot.http.problems import field_problem
from tradebot.http.request_body import parse_query
from tradebot.http.routing import RouteTable

routes = RouteTable()

TRADE_CSV_COLUMNS = tuple(TradeOut.model_fields)

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
    description="`?format=csv` or `Accept: text/csv` streams every trade matching the filters as CSV "
    "(header row of the JSON field names; `limit` does not apply, `cursor` starts after that trade).",
    query=TradesQuery,
    responses={200: TradePage},
    also_media=[CSV_TYPE],
    tags=["trades"],
)
async def list_trades(request: web.Request) -> web.StreamResponse:
    query = parse_query(request, TradesQuery)
    user_id, flt = request[PRINCIPAL].user_id, query.trade_filter()
    service = request.app[BOTS]
    before = decode_trade_cursor(query.cursor)

    async def fetch(after: tuple[dt.datetime, int] | None, limit: int) -> list[dict[str, Any]]:
        return await service.user_trades(user_id, flt, before=after, limit=limit)

    if wants_csv(request, query.format):
        return await stream_csv(
            request, TRADE_CSV_COLUMNS, keyset_batches(fetch, key_of_trade, before), filename="trades.csv"
        )
    items, next_cursor = build_page(await fetch(before, query.limit + 1), query.limit, trade_key)
    return json_response({"items": items, "next_cursor": next_cursor})
