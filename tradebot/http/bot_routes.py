"""/api/v1/bots: thin handlers over the bots service (CONTRACT.md "Bots")."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from tradebot.bots.repo import key_of_trade
from tradebot.http.appkeys import BOTS, PRINCIPAL
from tradebot.http.bot_schemas import (
    BotCreate,
    BotOut,
    BotPage,
    BotUpdate,
    CommandOut,
    ForceEntryRequest,
    ForceExitRequest,
    LifecycleOut,
    ListQuery,
    OrderOut,
    OrderPage,
    StateOut,
    StopRequest,
    TradePage,
)
from tradebot.http.csv_export import CSV_TYPE, keyset_batches, stream_csv, wants_csv
from tradebot.http.json_response import json_response
from tradebot.http.pagination import PageQuery, build_page, decode_id_cursor
from tradebot.http.problems import path_id
from tradebot.http.request_body import parse_body, parse_query
from tradebot.http.routing import RouteTable
from tradebot.http.trade_routes import TRADE_CSV_COLUMNS, decode_trade_cursor, trade_key

routes = RouteTable()

PREFIX = "/api/v1/bots"
TAGS = ["bots"]


def by_id(row: Mapping[str, Any]) -> tuple[int]:
    return (row["id"],)


def bot_id_of(request: web.Request) -> int:
    return path_id(request.match_info["id"], "bot")


@routes.route(
    "POST", PREFIX, summary="Create a bot (stopped)", body=BotCreate, responses={201: BotOut}, tags=TAGS,
    description="409 when the user already has TRADEBOT_MAX_BOTS_PER_USER bots (default 100).", errors=[409],
)
async def create_bot(request: web.Request) -> web.Response:
    body = await parse_body(request, BotCreate)
    bot = await request.app[BOTS].create(request[PRINCIPAL].user_id, body.to_settings())
    return json_response(bot, status=201, headers={"Location": f"{PREFIX}/{bot['id']}"})


@routes.route(
    "GET", PREFIX, summary="The caller's bots", query=PageQuery, responses={200: BotPage}, tags=TAGS
)
async def list_bots(request: web.Request) -> web.Response:
    query = parse_query(request, PageQuery)
    rows = await request.app[BOTS].page(
        request[PRINCIPAL].user_id, after_id=decode_id_cursor(query.cursor), limit=query.limit + 1
    )
    items, next_cursor = build_page(rows, query.limit, by_id)
    return json_response({"items": items, "next_cursor": next_cursor})


@routes.route("GET", PREFIX + "/{id}", summary="One bot, with its state", responses={200: BotOut}, tags=TAGS)
async def get_bot(request: web.Request) -> web.Response:
    bot = await request.app[BOTS].get(request[PRINCIPAL].user_id, bot_id_of(request))
    return json_response(bot)


@routes.route(
    "PATCH",
    PREFIX + "/{id}",
    summary="Change any of the bot's settings",
    description="A running bot picks the new settings up at its next decision; symbol and api_key_id "
    "can only change while it is stopped (409).",
    body=BotUpdate,
    responses={200: BotOut},
    errors=[409],
    tags=TAGS,
)
async def update_bot(request: web.Request) -> web.Response:
    bot_id = bot_id_of(request)
    body = await parse_body(request, BotUpdate)
    bot = await request.app[BOTS].update(request[PRINCIPAL].user_id, bot_id, body.changes())
    return json_response(bot)


@routes.route(
    "DELETE", PREFIX + "/{id}", summary="Delete a bot (stopping it first)", responses={204: None}, tags=TAGS
)
async def delete_bot(request: web.Request) -> web.Response:
    await request.app[BOTS].delete(request[PRINCIPAL].user_id, bot_id_of(request))
    return web.Response(status=204)


@routes.route(
    "POST",
    PREFIX + "/{id}/start",
    summary="Start the bot",
    responses={202: LifecycleOut},
    errors=[409],
    description="409 when it is already running or has no API key.",
    tags=TAGS,
)
async def start_bot(request: web.Request) -> web.Response:
    await request.app[BOTS].start(request[PRINCIPAL].user_id, bot_id_of(request))
    return json_response({"status": "starting"}, status=202)


@routes.route(
    "POST",
    PREFIX + "/{id}/stop",
    summary="Stop the bot, optionally closing its position",
    body=StopRequest,
    body_required=False,
    responses={202: LifecycleOut},
    tags=TAGS,
)
async def stop_bot(request: web.Request) -> web.Response:
    bot_id = bot_id_of(request)
    body = await parse_body(request, StopRequest, optional=True)
    await request.app[BOTS].stop(request[PRINCIPAL].user_id, bot_id, close_position=body.close_position)
    return json_response({"status": "stopping"}, status=202)


_MANUAL_NOTE = ("409 when the bot is not running or the command makes no sense now; the bot's owner carries it "
                "out between decisions through the same record-before-send path (trade reason \"manual\").")


@routes.route(
    "POST",
    PREFIX + "/{id}/force-exit",
    summary="Close a share of the bot's position now (default all)",
    description=_MANUAL_NOTE + " 409 when the bot holds no position. A full exit stays flat until the "
    "strategy's target changes.",
    body=ForceExitRequest,
    body_required=False,
    responses={202: CommandOut},
    errors=[409],
    tags=TAGS,
)
async def force_exit(request: web.Request) -> web.Response:
    bot_id = bot_id_of(request)
    body = await parse_body(request, ForceExitRequest, optional=True)
    out = await request.app[BOTS].force_exit(request[PRINCIPAL].user_id, bot_id, pct=body.pct)
    return json_response(out, status=202)


@routes.route(
    "POST",
    PREFIX + "/{id}/force-entry",
    summary="Open a position now, held until the strategy's target changes",
    description=_MANUAL_NOTE + " 409 while the bot holds a position (force-exit it first) or a daily limit "
    "pauses it; entries paused by pause-entries do not stop a force-entry.",
    body=ForceEntryRequest,
    responses={202: CommandOut},
    errors=[409],
    tags=TAGS,
)
async def force_entry(request: web.Request) -> web.Response:
    bot_id = bot_id_of(request)
    body = await parse_body(request, ForceEntryRequest)
    out = await request.app[BOTS].force_entry(request[PRINCIPAL].user_id, bot_id, side=body.side,
                                              order_size_pct=body.order_size_pct)
    return json_response(out, status=202)


@routes.route(
    "POST",
    PREFIX + "/{id}/pause-entries",
    summary="Stop the bot entering positions (it still exits and protects)",
    description="409 when the bot is not running. Kept across restarts and failover until resume-entries.",
    responses={202: CommandOut},
    errors=[409],
    tags=TAGS,
)
async def pause_entries(request: web.Request) -> web.Response:
    out = await request.app[BOTS].set_entries_paused(request[PRINCIPAL].user_id, bot_id_of(request), paused=True)
    return json_response(out, status=202)


@routes.route(
    "POST",
    PREFIX + "/{id}/resume-entries",
    summary="Let the bot enter again: it takes its strategy's current target at its next decision",
    description="409 when the bot is not running.",
    responses={202: CommandOut},
    errors=[409],
    tags=TAGS,
)
async def resume_entries(request: web.Request) -> web.Response:
    out = await request.app[BOTS].set_entries_paused(request[PRINCIPAL].user_id, bot_id_of(request), paused=False)
    return json_response(out, status=202)


@routes.route("GET", PREFIX + "/{id}/state", summary="The bot's state", responses={200: StateOut}, tags=TAGS)
async def get_bot_state(request: web.Request) -> web.Response:
    state = await request.app[BOTS].state(request[PRINCIPAL].user_id, bot_id_of(request))
    return json_response(state)


_CSV_NOTE = ("`?format=csv` or `Accept: text/csv` streams every item as CSV (header row of the JSON field names; "
             "`limit` does not apply, `cursor` starts after that item).")


@routes.route(
    "GET",
    PREFIX + "/{id}/trades",
    summary="The bot's trades, newest first",
    description=_CSV_NOTE,
    query=ListQuery,
    responses={200: TradePage},
    also_media=[CSV_TYPE],
    tags=TAGS,
)
async def list_bot_trades(request: web.Request) -> web.StreamResponse:
    bot_id = bot_id_of(request)
    query = parse_query(request, ListQuery)
    user_id, service = request[PRINCIPAL].user_id, request.app[BOTS]
    before = decode_trade_cursor(query.cursor)

    async def fetch(after: tuple[dt.datetime, int] | None, limit: int) -> list[dict[str, Any]]:
        return await service.bot_trades(user_id, bot_id, before=after, limit=limit)

    if wants_csv(request, query.format):
        return await stream_csv(request, TRADE_CSV_COLUMNS, keyset_batches(fetch, key_of_trade, before),
                                filename=f"bot-{bot_id}-trades.csv")
    rows = await fetch(before, query.limit + 1)
    items, next_cursor = build_page(rows, query.limit, trade_key)
    return json_response({"items": items, "next_cursor": next_cursor})


ORDER_CSV_COLUMNS = tuple(OrderOut.model_fields)


@routes.route(
    "GET",
    PREFIX + "/{id}/orders",
    summary="The bot's orders, newest first",
    description=_CSV_NOTE,
    query=ListQuery,
    responses={200: OrderPage},
    also_media=[CSV_TYPE],
    tags=TAGS,
)
async def list_bot_orders(request: web.Request) -> web.StreamResponse:
    bot_id = bot_id_of(request)
    query = parse_query(request, ListQuery)
    user_id, service = request[PRINCIPAL].user_id, request.app[BOTS]
    before = decode_id_cursor(query.cursor)

    async def fetch(after: int | None, limit: int) -> list[dict[str, Any]]:
        return await service.bot_orders(user_id, bot_id, before_id=after, limit=limit)

    if wants_csv(request, query.format):
        return await stream_csv(request, ORDER_CSV_COLUMNS, keyset_batches(fetch, _order_id, before),
                                filename=f"bot-{bot_id}-orders.csv")
    rows = await fetch(before, query.limit + 1)
    items, next_cursor = build_page(rows, query.limit, by_id)
    return json_response({"items": items, "next_cursor": next_cursor})


def _order_id(row: Mapping[str, Any]) -> int:
    return int(row["id"])
