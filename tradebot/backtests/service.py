"""The backtests service: what the API does to backtests, one method per operation, scoped to a user.

Everything that can be checked is checked before a job is queued, so a 202 means the backtest will
run; what only the exchange can tell (where its history has gaps) is reported in the result.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Final

from tradebot.backtests.errors import BacktestNotFound, BacktestQueueFull, InvalidBacktest, TooManyBacktests
from tradebot.backtests.models import BacktestRequest, BacktestSpec, to_ms
from tradebot.backtests.repository import BacktestsRepo
from tradebot.backtests.runner import BacktestRunner
from tradebot.backtests.views import backtest_view
from tradebot.bots.models import DEFAULT_MAX_LEVERAGE, SymbolResolver
from tradebot.strategies import BacktestSettings, ParameterError, UnknownStrategyError, split_parameters
from tradebot.timeframes import candles_between

log = logging.getLogger(__name__)

# One user's share of the cluster's backtest capacity (TRADEBOT_BACKTEST_MAX_LIVE_PER_USER). Counted
# before queueing (two requests at the same instant may both pass: a soft limit, good enough for
# fairness, not a security boundary).
MAX_LIVE_PER_USER: Final = 16

# Engine fields that are top-level in the request; every other one lives under "parameters".
_TOP_LEVEL = frozenset({"initial_balance", "fee_rate", "slippage_bps"})


def candles_in_range(start_ms: int, end_ms: int, timeframe: str) -> int:
    """How many candles open in ``[start_ms, end_ms)``."""
    return candles_between(timeframe, start_ms, end_ms)


class BacktestService:
    def __init__(
        self,
        repo: BacktestsRepo,
        runner: BacktestRunner,
        markets: SymbolResolver,
        *,
        max_candles: int,
        max_live_per_user: int = MAX_LIVE_PER_USER,
        wall_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        self._repo = repo
        self._runner = runner
        self._markets = markets
        self._max_candles = max_candles
        self._max_live_per_user = max_live_per_user
        self._wall_ms = wall_ms

    async def create(self, user_id: int, request: BacktestRequest) -> dict[str, Any]:
        spec = await self._checked(request)
        if await self._repo.count_live(user_id) >= self._max_live_per_user:
            raise TooManyBacktests(self._max_live_per_user)
        if not self._runner.reserve():
            raise BacktestQueueFull
        try:
            row = await self._repo.insert(user_id, spec)
        except BaseException:
            self._runner.release()
            raise
        await self._runner.submit(row["id"])
        log.info("backtest accepted", extra={"user_id": user_id, "backtest_id": row["id"]})
        return {"id": row["id"], "status": row["status"]}

    async def get(self, user_id: int, backtest_id: int) -> dict[str, Any]:
        row = await self._repo.get(user_id, backtest_id)
        if row is None:
            raise BacktestNotFound
        return backtest_view(row)

    async def page(self, user_id: int, *, before_id: int | None, limit: int) -> list[dict[str, Any]]:
        return [backtest_view(r) for r in await self._repo.page(user_id, before_id=before_id, limit=limit)]

    async def _checked(self, request: BacktestRequest) -> BacktestSpec:
        errors: list[tuple[str, str]] = []
        start_ms, end_ms = to_ms(request.start_time), to_ms(request.end_time)
        if start_ms >= self._wall_ms():
            errors.append(("start_time", "must be in the past: there are no candles after now"))
        if start_ms >= end_ms:
            errors.append(("end_time", "must be after start_time"))
        else:
            count = candles_in_range(start_ms, end_ms, request.timeframe)
            if count > self._max_candles:
                errors.append(
                    (
                        "end_time",
                        f"the range holds {count:,} {request.timeframe} candles; at most "
                        f"{self._max_candles:,} are allowed (shorten it or use a longer timeframe)",
                    )
                )
        parameters: dict[str, Any] = {}
        settings: BacktestSettings | None = None
        try:
            settings, strategy_params = split_parameters(
                request.parameters,
                initial_balance=request.initial_balance,
                fee_rate=request.fee_rate,
                slippage_bps=request.slippage_bps,
                strategy=request.strategy,
            )
        except ParameterError as e:
            # A name inside "parameters" is reported there even when it is also a top-level one.
            top_level = e.field in _TOP_LEVEL and e.field not in request.parameters
            field = e.field if top_level else f"parameters.{e.field}"
            errors.append((field, e.message))
        except UnknownStrategyError as e:
            errors.append(("strategy", str(e)))
        else:
            parameters = {
                **strategy_params,
                "order_size_pct": settings.order_size_pct,
                "leverage": settings.leverage,
                "stop_loss_pct": settings.stop_loss_pct,
                "take_profit_pct": settings.take_profit_pct,
            }
        market = await self._markets.resolve(request.symbol)
        if market is None:
            errors.append(("symbol", f"unknown symbol {request.symbol!r}"))
        elif settings is not None:
            ceiling = min(int(market.max_leverage or DEFAULT_MAX_LEVERAGE), DEFAULT_MAX_LEVERAGE)
            if settings.leverage > ceiling:
                errors.append(("parameters.leverage", f"must be at most {ceiling} for {market.symbol}"))
        if errors or market is None or settings is None:
            raise InvalidBacktest(errors)
        return BacktestSpec(
            symbol=market.symbol,
            timeframe=request.timeframe,
            start_time=request.start_time,
            end_time=request.end_time,
            strategy=request.strategy,
            parameters=parameters,
            initial_balance=settings.initial_balance,
            fee_rate=settings.fee_rate,
            slippage_bps=settings.slippage_bps,
        )
