"""Operations endpoints (no auth): liveness, readiness, metrics, the OpenAPI document and its page."""

from __future__ import annotations

import asyncio
from typing import Literal

import orjson
from aiohttp import web
from pydantic import BaseModel

from tradebot import __version__
from tradebot.http.appkeys import DB, HTTP_METRICS, OPERATIONS, REDIS, REPLICA_ID
from tradebot.http.metrics import CONTENT_TYPE_LATEST
from tradebot.http.routing import RouteTable, build_openapi

routes = RouteTable()

READY_TIMEOUT_S = 1.0


class Health(BaseModel):
    """The process is up."""

    status: Literal["ok"]
    replica_id: str
    version: str


class Readiness(BaseModel):
    """Each dependency's answer."""

    status: Literal["ready", "unavailable"]
    postgres: str
    redis: str


@routes.route("GET", "/healthz", summary="Liveness", responses={200: Health}, public=True, tags=["operations"])
async def healthz(request: web.Request) -> web.Response:
    body = Health(status="ok", replica_id=request.app[REPLICA_ID], version=__version__)
    return web.Response(body=orjson.dumps(body.model_dump()), content_type="application/json")


@routes.route(
    "GET",
    "/readyz",
    summary="Readiness: PostgreSQL and Redis answer",
    responses={200: Readiness, 503: Readiness},
    public=True,
    tags=["operations"],
)
async def readyz(request: web.Request) -> web.Response:
    pg, rd = await asyncio.gather(_check_postgres(request.app), _check_redis(request.app))
    ok = pg == "ok" and rd == "ok"
    body = Readiness(status="ready" if ok else "unavailable", postgres=pg, redis=rd)
    return web.Response(
        status=200 if ok else 503, body=orjson.dumps(body.model_dump()), content_type="application/json"
    )


async def _check_postgres(app: web.Application) -> str:
    try:
        async with asyncio.timeout(READY_TIMEOUT_S):
            await app[DB].fetchval("SELECT 1")
    except Exception as e:  # any failure means "not ready"; the reason is shown, not raised
        return f"unavailable: {type(e).__name__}"
    return "ok"


async def _check_redis(app: web.Application) -> str:
    try:
        async with asyncio.timeout(READY_TIMEOUT_S):
            await app[REDIS].ping()
    except Exception as e:
        return f"unavailable: {type(e).__name__}"
    return "ok"


@routes.route(
    "GET", "/metrics", summary="Prometheus metrics", responses={200: "text/plain"}, public=True, tags=["operations"]
)
async def metrics(request: web.Request) -> web.Response:
    resp = web.Response(body=request.app[HTTP_METRICS].render())
    resp.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return resp


@routes.route(
    "GET",
    "/api/openapi.json",
    summary="This API's OpenAPI 3.1 document",
    responses={200: "application/json"},
    public=True,
    tags=["operations"],
)
async def openapi_json(request: web.Request) -> web.Response:
    doc = build_openapi(list(request.app[OPERATIONS].values()), title="tradebot API", version=__version__)
    return web.Response(body=orjson.dumps(doc), content_type="application/json")


_DOCS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>tradebot API</title>
<link rel="stylesheet" href="/api/docs/assets/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/api/docs/assets/swagger-ui-bundle.js"></script>
<script src="/static/docs-init.js"></script></body></html>
"""


@routes.route(
    "GET", "/api/docs", summary="A page rendering the OpenAPI document", responses={200: "text/html"},
    public=True, tags=["operations"],
)
async def api_docs(request: web.Request) -> web.Response:
    resp = web.Response(text=_DOCS_PAGE, content_type="text/html")
    # The dashboard's policy but for Swagger UI's needs: it injects inline styles and data: images.
    # Scripts stay same-origin only; no plugins, no <base> rewriting, no framing.
    resp.headers["Content-Security-Policy"] = "; ".join((
        "default-src 'self'", "script-src 'self'", "style-src 'self' 'unsafe-inline'", "img-src 'self' data:",
        "connect-src 'self'", "font-src 'self'", "object-src 'none'", "base-uri 'none'", "form-action 'self'",
        "frame-ancestors 'none'",
    ))
    return resp
