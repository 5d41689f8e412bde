"""The web dashboard: its pages (one HTML shell, rendered by ES modules from /static/js/), the security
headers every response carries, and the one API addition it needs (a bot's recent candles with the EMA).

Pages are plain routes, not API operations: they are public (the shell holds no data; the modules
call the API with the bearer token kept in sessionStorage) and stay out of the OpenAPI document.
The shell has no inline script or style, so the Content-Security-Policy can be strict: same-origin
scripts, styles, images and connections only, no eval, no framing.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from aiohttp import web
from pydantic import BaseModel, Field

from tradebot.exchange.errors import ExchangeError
from tradebot.http.appkeys import BOTS, MARKET_DATA, PRINCIPAL
from tradebot.http.bot_routes import PREFIX, TAGS, bot_id_of
from tradebot.http.json_response import json_response
from tradebot.http.problems import Problem
from tradebot.http.request_body import parse_query
from tradebot.http.routing import RouteTable
from tradebot.strategies.ema import ema

routes = RouteTable()

STATIC_DIR = Path(__file__).parent / "static"

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)

SERVER_NAME = "tradebot"

# Client-side routes: each serves the same shell; /static/js/main.js picks the page from the path.
PAGE_PATHS = (
    "/",
    "/login",
    "/register",
    "/forgot-password",
    "/reset-password",
    "/keys",
    "/bots",
    "/bots/new",
    "/bots/{id:\\d{1,19}}",
    "/bots/{id:\\d{1,19}}/edit",
    "/backtests",
    "/backtests/new",
    "/backtests/{id:\\d{1,19}}",
)


def install(app: web.Application) -> None:
    """Adds the page routes and the security-header hook (before the app freezes)."""
    shell = (STATIC_DIR / "index.html").read_bytes()

    async def page(request: web.Request) -> web.Response:
        resp = web.Response(body=shell, content_type="text/html", charset="utf-8")
        resp.headers["Cache-Control"] = "no-store"
        return resp

    for path in PAGE_PATHS:
        app.router.add_get(path, page)
    app.on_response_prepare.append(_security_headers)


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    headers = response.headers
    # aiohttp's default names its own and Python's versions, a free hint for an attacker.
    headers["Server"] = SERVER_NAME
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "no-referrer")
    if request.path.startswith("/static/"):
        # Unversioned file names: revalidate each time (a 304 when unchanged), so an upgrade is seen at once.
        headers.setdefault("Cache-Control", "no-cache")
    if headers.get("Content-Type", "").startswith("text/html"):
        # A page that sets its own policy (the Swagger UI page) keeps it.
        headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        headers.setdefault("X-Frame-Options", "DENY")


class CandlesQuery(BaseModel):
    """`?limit=` closed candles, newest last (default 200, at most 1000)."""

    limit: int = Field(default=200, ge=1, le=1000)


class CandleOut(BaseModel):
    """One closed candle and the EMA at its close (null while the EMA is still warming up)."""

    time: int = Field(description="open time, ms since the epoch (UTC)")
    open: float
    high: float
    low: float
    close: float
    volume: float
    ema: float | None


class CandlesOut(BaseModel):
    """A bot's market: its recent closed candles and the EMA its strategy uses."""

    symbol: str
    timeframe: str
    ema_period: int
    candles: list[CandleOut]


# Candles fetched before the shown ones so the EMA has converged (an EMA seeded N periods back differs
# from the bot's own, seeded further back, by about (1 - alpha)^N of the seed's error).
WARMUP_PERIODS = 4
MAX_FETCH = 1500


@routes.route(
    "GET",
    PREFIX + "/{id}/candles",
    summary="The bot's recent closed candles with its EMA",
    description="For charts: the bot's symbol and timeframe from the exchange, with the EMA of the bot's "
    "period computed by tradebot.strategies.ema over extra warm-up candles. 503 when this replica has no "
    "market data.",
    query=CandlesQuery,
    responses={200: CandlesOut},
    errors=[503],
    tags=TAGS,
)
async def bot_candles(request: web.Request) -> web.Response:
    bot_id = bot_id_of(request)
    query = parse_query(request, CandlesQuery)
    bot = await request.app[BOTS].get(request[PRINCIPAL].user_id, bot_id)
    hub = request.app.get(MARKET_DATA)
    if hub is None:
        raise Problem(503, "market data is not available on this replica")
    period = int(bot["ema_period"])
    fetch = min(query.limit + WARMUP_PERIODS * period, MAX_FETCH)
    try:
        candles = await hub.fetch_closed_history(bot["symbol"], bot["timeframe"], None, fetch)
    except ExchangeError as e:
        raise Problem(503, "market data is unavailable right now; try again shortly") from e
    closes = np.array([c.close for c in candles], dtype=np.float64)
    averages = ema(closes, period) if len(closes) else closes
    shown = candles[-query.limit :]
    offset = len(candles) - len(shown)
    out = CandlesOut(
        symbol=bot["symbol"],
        timeframe=bot["timeframe"],
        ema_period=period,
        candles=[
            CandleOut(
                time=c.open_time,
                open=c.open,
                high=c.high,
                low=c.low,
                close=c.close,
                volume=c.volume,
                ema=None if math.isnan(v := float(averages[offset + i])) else v,
            )
            for i, c in enumerate(shown)
        ],
    )
    return json_response(out)
