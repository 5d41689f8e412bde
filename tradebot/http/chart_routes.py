"""Charts for the dashboard (beyond the contract): a bot's recent closed candles, or a backtest's, with
the indicators of its strategy.

The indicators are the strategy's own ``indicators(candles, params)`` (through the registry, so
nothing here names a strategy), computed over the shown candles plus the strategy's warm-up before
them: the values the bot or the backtest compares, to within the warm-up's 1e-12. A strategy
without indicators (a plugin written before the method), or one no longer installed, is charted
with its candles alone.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any, Final

import numpy as np
from aiohttp import web
from pydantic import BaseModel, Field

from tradebot.backtests.candle_cache import CandleCache
from tradebot.backtests.models import EXCHANGE, to_ms
from tradebot.exchange.errors import ExchangeError
from tradebot.http import backtest_routes, bot_routes
from tradebot.http.appkeys import BACKTESTS, BOTS, DB, MARKET_DATA, PRINCIPAL
from tradebot.http.json_response import json_response
from tradebot.http.problems import Problem
from tradebot.http.request_body import parse_query
from tradebot.http.routing import RouteTable
from tradebot.strategies import (
    NO_INDICATORS,
    CandleDataError,
    Candles,
    Indicators,
    ParameterError,
    UnknownStrategyError,
    get_strategy,
    indicators_of,
)
from tradebot.strategies.plugins import RESERVED_PARAMETERS

routes = RouteTable()
log = logging.getLogger(__name__)

MAX_BOT_FETCH: Final = 1500
"""Candles asked of the exchange for a bot's chart at most (one klines request), warm-up included."""
MAX_BACKTEST_WARMUP: Final = 20_000
"""Candles read before a backtest chart's first shown one at most (the EMA(1000)'s warm-up is 14,816)."""


class BotCandlesQuery(BaseModel):
    """`?limit=` closed candles, newest last (default 200, at most 1000)."""

    limit: int = Field(default=200, ge=1, le=1000)


class BacktestCandlesQuery(BaseModel):
    """`?limit=` candles, the last of the backtest's period (default 1000, at most 5000)."""

    limit: int = Field(default=1000, ge=1, le=5000)


class ChartCandle(BaseModel):
    time: int = Field(description="open time, ms since the epoch (UTC)")
    open: float
    high: float
    low: float
    close: float
    volume: float


class IndicatorPaneOut(BaseModel):
    """A pane under the price for lines on a scale of their own, with horizontal lines at `levels`."""

    name: str
    label: str
    levels: list[float]


class IndicatorLineOut(BaseModel):
    """One series, a value per candle (null while undefined); `pane` is "price" or a pane's name."""

    name: str
    label: str
    pane: str
    values: list[float | None]


class IndicatorsOut(BaseModel):
    panes: list[IndicatorPaneOut]
    lines: list[IndicatorLineOut]


class ChartOut(BaseModel):
    """A market's candles and the indicators its strategy decides on."""

    symbol: str
    timeframe: str
    strategy: str
    parameters: dict[str, Any]
    candles: list[ChartCandle]
    indicators: IndicatorsOut


def _chart_params(strategy: str, parameters: Mapping[str, Any], allow_short: bool) -> tuple[Any, Any] | None:
    """(strategy, parsed parameters), or None when it cannot be charted any more (uninstalled, or its
    stored parameters no longer parse): the candles are still worth showing."""
    try:
        impl = get_strategy(strategy)
        strategy_only = {k: v for k, v in parameters.items() if k not in RESERVED_PARAMETERS}
        return impl, impl.parse_params({**strategy_only, "allow_short": allow_short})
    except (UnknownStrategyError, ParameterError) as e:
        log.info("chart without indicators", extra={"strategy": strategy, "reason": str(e)})
        return None


def _indicators(resolved: tuple[Any, Any] | None, candles: Candles) -> Indicators:
    if resolved is None or not len(candles):
        return NO_INDICATORS
    impl, params = resolved
    return indicators_of(impl, candles, params)


def _floats(values: np.ndarray[Any, Any]) -> list[float | None]:
    return [None if math.isnan(v) else v for v in values.tolist()]


def _chart(
    strategy: str, parameters: Mapping[str, Any], symbol: str, timeframe: str, candles: Candles,
    indicators: Indicators, shown: int,
) -> ChartOut:
    """The last ``shown`` of ``candles`` with the indicators (computed over all of them)."""
    start = max(0, len(candles) - shown)
    return ChartOut(
        symbol=symbol,
        timeframe=timeframe,
        strategy=strategy,
        parameters=dict(parameters),
        candles=[
            ChartCandle(time=t, open=o, high=h, low=lo, close=c, volume=v)
            for t, o, h, lo, c, v in zip(
                *(getattr(candles, col)[start:].tolist() for col in ("ts", "open", "high", "low", "close", "volume")),
                strict=True,
            )
        ],
        indicators=IndicatorsOut(
            panes=[IndicatorPaneOut(name=p.name, label=p.label, levels=list(p.levels)) for p in indicators.panes],
            lines=[
                IndicatorLineOut(name=line.name, label=line.label, pane=line.pane, values=_floats(line.values[start:]))
                for line in indicators.lines
            ],
        ),
    )


def _candles_of(rows: Sequence[Any]) -> Candles:
    """The exchange's closed candles (the runtime's type) as the strategies' columns."""
    if not rows:  # validation refuses an empty series; a chart shows it as "no candles yet"
        empty = np.empty(0)
        return Candles(np.empty(0, dtype=np.int64), empty, empty.copy(), empty.copy(), empty.copy(), empty.copy())
    try:
        return Candles.from_arrays(
            [c.open_time for c in rows],
            [c.open for c in rows],
            [c.high for c in rows],
            [c.low for c in rows],
            [c.close for c in rows],
            [c.volume for c in rows],
        )
    except CandleDataError as e:
        raise Problem(503, f"the exchange's candles are not usable right now: {e}") from e


def _warmup(resolved: tuple[Any, Any] | None) -> int:
    return 0 if resolved is None else int(resolved[0].warmup_candles(resolved[1]))


@routes.route(
    "GET",
    bot_routes.PREFIX + "/{id}/candles",
    summary="The bot's recent closed candles with its strategy's indicators",
    description="For charts: the bot's symbol and timeframe from the exchange, with the indicators of the "
    "bot's strategy (its `indicators`, e.g. EMA lines, MACD and signal, RSI with its levels, Bollinger bands) "
    "computed over extra warm-up candles. 503 when this replica has no market data.",
    query=BotCandlesQuery,
    responses={200: ChartOut},
    errors=[503],
    tags=bot_routes.TAGS,
)
async def bot_candles(request: web.Request) -> web.Response:
    bot_id = bot_routes.bot_id_of(request)
    query = parse_query(request, BotCandlesQuery)
    bot = await request.app[BOTS].get(request[PRINCIPAL].user_id, bot_id)
    hub = request.app.get(MARKET_DATA)
    if hub is None:
        raise Problem(503, "market data is not available on this replica")
    resolved = _chart_params(bot["strategy"], bot["parameters"], bool(bot["allow_short"]))
    fetch = min(query.limit + _warmup(resolved), MAX_BOT_FETCH)
    try:
        rows = await hub.fetch_closed_history(bot["symbol"], bot["timeframe"], None, fetch)
    except ExchangeError as e:
        raise Problem(503, "market data is unavailable right now; try again shortly") from e
    candles = _candles_of(rows)
    indicators = await asyncio.to_thread(_indicators, resolved, candles)  # numpy: off the event loop
    chart = _chart(bot["strategy"], bot["parameters"], bot["symbol"], bot["timeframe"], candles, indicators,
                   query.limit)
    return json_response(chart)


@routes.route(
    "GET",
    backtest_routes.PREFIX + "/{id}/candles",
    summary="The last candles of a backtest's period with its strategy's indicators",
    description="For charts: the candles the backtest ran on (from the candle cache; none before it has "
    "downloaded them), the last `limit` of its period, with its strategy's indicators computed over extra "
    "warm-up candles of the period.",
    query=BacktestCandlesQuery,
    responses={200: ChartOut},
    tags=backtest_routes.TAGS,
)
async def backtest_candles(request: web.Request) -> web.Response:
    backtest_id = backtest_routes.backtest_id_of(request)
    query = parse_query(request, BacktestCandlesQuery)
    bt = await request.app[BACKTESTS].get(request[PRINCIPAL].user_id, backtest_id)
    parameters = bt["parameters"] or {}
    resolved = _chart_params(bt["strategy"], parameters, bool(parameters.get("allow_short", False)))
    count = query.limit + min(_warmup(resolved), MAX_BACKTEST_WARMUP)
    loaded = await CandleCache(request.app[DB]).load_last(
        EXCHANGE, bt["symbol"], bt["timeframe"], to_ms(bt["start_time"]), to_ms(bt["end_time"]), count
    )
    candles = loaded if loaded is not None else _candles_of([])
    indicators = await asyncio.to_thread(_indicators, resolved, candles)
    chart = _chart(bt["strategy"], parameters, bt["symbol"], bt["timeframe"], candles, indicators, query.limit)
    return json_response(chart)
