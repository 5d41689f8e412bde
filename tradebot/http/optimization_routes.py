"""/api/v1/optimizations: thin handlers over the optimisations service, the progress stream, and the
app wiring: the service and this replica's workers (which share the backtests' history loader)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any, Final

from aiohttp import web
from aiohttp_sse import EventSourceResponse, sse_response

from tradebot.http.appkeys import (
    BACKTEST_RUNNER,
    DB,
    HTTP_METRICS,
    OPTIMIZATION_WORKERS,
    OPTIMIZATIONS,
    PRINCIPAL,
    REPLICA_ID,
    SETTINGS,
)
from tradebot.http.backtest_routes import AppMarkets
from tradebot.http.json_response import json_response
from tradebot.http.optimization_schemas import (
    OptimizationAccepted,
    OptimizationCreate,
    OptimizationOut,
    OptimizationPage,
)
from tradebot.http.pagination import PageQuery, build_page, decode_id_cursor
from tradebot.http.problems import path_id, unauthorized
from tradebot.http.request_body import parse_body, parse_query
from tradebot.http.routing import RouteTable
from tradebot.http.sse_frames import encode_user_frame
from tradebot.http.sse_routes import open_stream, relay, write
from tradebot.optimizations.repository import OptimizationsRepo
from tradebot.optimizations.service import OptimizationService
from tradebot.runtime.optimization_worker import OptimizationWorkers, OptimizationWorkersCollector, WorkerConfig
from tradebot.statuses import LIVE_OPTIMIZATION_STATUSES, OptimizationStatus

routes = RouteTable()

PREFIX = "/api/v1/optimizations"
TAGS = ["optimizations"]
# How often a progress stream reads its optimisation's row (progress moves a chunk at a time).
STREAM_POLL_S: Final = 0.5


def optimization_id_of(request: web.Request) -> int:
    return path_id(request.match_info["id"], "optimization")


def by_id(row: Mapping[str, Any]) -> tuple[int]:
    return (row["id"],)


@routes.route(
    "POST",
    PREFIX,
    summary="Start an optimisation (a parameter search)",
    description="Validated at once (422 names the field: `space.<name>`, `fixed.<name>`, `max_trials`, ...); "
    "the trials then run on every replica's workers: poll GET /optimizations/{id} or follow its stream.",
    body=OptimizationCreate,
    responses={202: OptimizationAccepted},
    errors=[429, 503],
    tags=TAGS,
)
async def create_optimization(request: web.Request) -> web.Response:
    body = await parse_body(request, OptimizationCreate)
    accepted = await request.app[OPTIMIZATIONS].create(request[PRINCIPAL].user_id, body.to_request())
    return json_response(accepted, status=202, headers={"Location": f"{PREFIX}/{accepted['id']}"})


@routes.route(
    "GET",
    PREFIX,
    summary="The caller's optimisations, newest first",
    query=PageQuery,
    responses={200: OptimizationPage},
    tags=TAGS,
)
async def list_optimizations(request: web.Request) -> web.Response:
    query = parse_query(request, PageQuery)
    rows = await request.app[OPTIMIZATIONS].page(
        request[PRINCIPAL].user_id, before_id=decode_id_cursor(query.cursor), limit=query.limit + 1
    )
    items, next_cursor = build_page(rows, query.limit, by_id)
    return json_response({"items": items, "next_cursor": next_cursor})


@routes.route(
    "GET",
    PREFIX + "/{id}",
    summary="One optimisation: progress and its trials ranked by the objective",
    responses={200: OptimizationOut},
    tags=TAGS,
)
async def get_optimization(request: web.Request) -> web.Response:
    out = await request.app[OPTIMIZATIONS].get(request[PRINCIPAL].user_id, optimization_id_of(request))
    return json_response(out)


@routes.route(
    "DELETE",
    PREFIX + "/{id}",
    summary="Cancel an optimisation",
    description="A pending or running one becomes `cancelled` (trials already run stay); a finished one is kept.",
    responses={204: None},
    tags=TAGS,
)
async def cancel_optimization(request: web.Request) -> web.Response:
    await request.app[OPTIMIZATIONS].cancel(request[PRINCIPAL].user_id, optimization_id_of(request))
    return web.Response(status=204)


@routes.route(
    "GET",
    PREFIX + "/{id}/stream",
    summary="Progress as Server-Sent Events",
    description="Event `progress` ({id, status, progress {done, total}}, `id:` = trials done) on every change; "
    "the stream ends after the event with a final status. Browsers' EventSource may pass `?access_token=`.",
    responses={200: "text/event-stream"},
    errors=(429, 503),
    query_token=True,
    tags=TAGS,
)
async def optimization_stream(request: web.Request) -> web.StreamResponse:
    opt_id = optimization_id_of(request)
    user_id = request[PRINCIPAL].user_id
    service = request.app[OPTIMIZATIONS]
    first = await service.status(user_id, opt_id)  # someone else's is a 404 before any stream opens
    async with open_stream(request) as handle:
        if handle.ended.is_set():
            raise unauthorized("invalid, expired or revoked token")
        async with sse_response(request, ping_interval=request.app[SETTINGS].sse_heartbeat_s) as resp:
            with contextlib.suppress(ConnectionResetError, TimeoutError):
                await relay(resp, _progress(resp, service, user_id, first), handle)
    return resp


async def _progress(resp: EventSourceResponse, service: OptimizationService, user_id: int,
                    current: dict[str, Any]) -> None:  # fmt: skip
    sent: dict[str, Any] | None = None
    while True:
        if current != sent:
            await write(resp, encode_user_frame(str(current["progress"]["done"]), "progress", current))
            sent = current
        if OptimizationStatus(current["status"]) not in LIVE_OPTIMIZATION_STATUSES:
            return
        await asyncio.sleep(STREAM_POLL_S)
        current = await service.status(user_id, int(current["id"]))


async def optimizations_context(app: web.Application) -> AsyncIterator[None]:
    """Needs the backtests' context (its history loader) to have started."""
    settings = app[SETTINGS]
    repo = OptimizationsRepo(app[DB])
    workers = OptimizationWorkers(
        repo,
        app[BACKTEST_RUNNER].loader,
        app[REPLICA_ID],
        WorkerConfig(workers=settings.optimizer_workers, lease_s=settings.optimizer_lease_s,
                     poll_s=settings.optimizer_poll_s),
    )
    await workers.start()
    app[OPTIMIZATION_WORKERS] = workers
    collector = OptimizationWorkersCollector(workers)
    app[HTTP_METRICS].registry.register(collector)
    app[OPTIMIZATIONS] = OptimizationService(
        repo, AppMarkets(app), max_candles=settings.backtest_max_candles,
        max_live_per_user=settings.optimizer_max_live_per_user, max_trials=settings.optimizer_max_trials,
        wake=workers.wake,
    )  # fmt: skip
    try:
        yield
    finally:
        app[HTTP_METRICS].registry.unregister(collector)
        await workers.close()
