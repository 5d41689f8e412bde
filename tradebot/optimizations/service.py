"""The optimisations service: what the API does to optimisations, one method per operation, scoped
to a user. Everything that can be checked is checked before the row is written (the range and its
candle limit, the strategy, the space, the market), the first trials are generated, and the
optimisation goes into PostgreSQL with its chunks in one transaction: every replica's workers then
take them from there (tradebot.runtime.optimization_worker)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, Final

from tradebot.backtests.models import to_ms
from tradebot.bots.models import DEFAULT_MAX_LEVERAGE, SymbolResolver
from tradebot.optimizations.errors import InvalidOptimization, OptimizationNotFound, TooManyOptimizations
from tradebot.optimizations.models import (
    TPE_ROUND,
    OptimizationRequest,
    OptimizationSpec,
    TrialRules,
    chunked,
    parse_space,
)
from tradebot.optimizations.repository import OptimizationsRepo
from tradebot.optimizations.search import Dimension, grid_trials, random_trials, tpe_round
from tradebot.optimizations.views import optimization_view
from tradebot.strategies import UnknownStrategyError, get_strategy
from tradebot.timeframes import candles_between

log = logging.getLogger(__name__)

MAX_LIVE_PER_USER: Final = 4
MAX_TRIALS: Final = 10_000


def first_trials(
    spec_method: str, dims: list[Dimension], fixed: dict[str, Any], rules: TrialRules, max_trials: int, seed: int
) -> tuple[list[dict[str, Any]], int]:
    """The trials to queue now and the total the run will have (CPU work: called in a thread)."""
    if spec_method == "grid":
        trials = grid_trials(dims, fixed, rules.valid, max_trials)
        return trials, len(trials)
    if spec_method == "random":
        trials = random_trials(dims, fixed, rules.valid, max_trials, seed)
        return trials, len(trials)
    trials = tpe_round(dims, fixed, rules.valid, [], min(TPE_ROUND, max_trials), seed)
    return trials, max_trials if len(trials) == min(TPE_ROUND, max_trials) else len(trials)


class OptimizationService:
    def __init__(
        self,
        repo: OptimizationsRepo,
        markets: SymbolResolver,
        *,
        max_candles: int,
        max_live_per_user: int = MAX_LIVE_PER_USER,
        max_trials: int = MAX_TRIALS,
        wake: Callable[[], None] = lambda: None,
        wall_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        self._repo = repo
        self._markets = markets
        self._max_candles = max_candles
        self._max_live_per_user = max_live_per_user
        self._max_trials = max_trials
        self._wake = wake  # tells this replica's workers that chunks are waiting
        self._wall_ms = wall_ms

    @property
    def max_trials(self) -> int:
        return self._max_trials

    async def create(self, user_id: int, request: OptimizationRequest) -> dict[str, Any]:
        spec = await self._checked(request)
        if await self._repo.count_live(user_id) >= self._max_live_per_user:
            raise TooManyOptimizations(self._max_live_per_user)
        opt_id = await self._repo.insert(user_id, spec, chunked(spec.trials))
        self._wake()
        log.info("optimization accepted", extra={"user_id": user_id, "optimization_id": opt_id, "trials": spec.total})
        return {"id": opt_id, "status": "pending", "progress": {"done": 0, "total": spec.total}}

    async def get(self, user_id: int, opt_id: int) -> dict[str, Any]:
        row = await self._repo.get(user_id, opt_id)
        if row is None:
            raise OptimizationNotFound
        return optimization_view(row, await self._repo.ranked_trials(opt_id))

    async def status(self, user_id: int, opt_id: int) -> dict[str, Any]:
        """The progress only (what the stream sends)."""
        row = await self._repo.get(user_id, opt_id)
        if row is None:
            raise OptimizationNotFound
        return {"id": row["id"], "status": row["status"],
                "progress": {"done": row["trials_done"], "total": row["trials_total"]}}  # fmt: skip

    async def page(self, user_id: int, *, before_id: int | None, limit: int) -> list[dict[str, Any]]:
        rows = await self._repo.page(user_id, before_id=before_id, limit=limit)
        best = await self._repo.best_trials([int(r["id"]) for r in rows])
        return [optimization_view(r, None, best.get(int(r["id"]))) for r in rows]

    async def cancel(self, user_id: int, opt_id: int) -> None:
        if not await self._repo.cancel(user_id, opt_id):
            raise OptimizationNotFound

    async def _checked(self, request: OptimizationRequest) -> OptimizationSpec:
        errors: list[tuple[str, str]] = []
        start_ms, end_ms = to_ms(request.start_time), to_ms(request.end_time)
        if start_ms >= self._wall_ms():
            errors.append(("start_time", "must be in the past: there are no candles after now"))
        if start_ms >= end_ms:
            errors.append(("end_time", "must be after start_time"))
        else:
            count = candles_between(request.timeframe, start_ms, end_ms)
            if count > self._max_candles:
                errors.append(("end_time", f"the range holds {count:,} {request.timeframe} candles; at most "
                                           f"{self._max_candles:,} are allowed"))  # fmt: skip
        if request.max_trials > self._max_trials:
            errors.append(("max_trials", f"must be at most {self._max_trials:,}"))
        try:
            get_strategy(request.strategy)
        except UnknownStrategyError as e:
            errors.append(("strategy", str(e)))
        dims, space_errors = parse_space(request.strategy, request.space, request.fixed, request.method)
        errors.extend(space_errors)
        market = await self._markets.resolve(request.symbol)
        if market is None:
            errors.append(("symbol", f"unknown symbol {request.symbol!r}"))
        else:
            ceiling = min(int(market.max_leverage or DEFAULT_MAX_LEVERAGE), DEFAULT_MAX_LEVERAGE)
            for field, value in _leverages(request):
                if value > ceiling:
                    errors.append((field, f"must be at most {ceiling} for {market.symbol}"))
        if errors or market is None:
            raise InvalidOptimization(errors)
        rules = TrialRules(request.strategy, request.initial_balance, request.fee_rate, request.slippage_bps)
        try:
            trials, total = await asyncio.to_thread(first_trials, request.method, dims, dict(request.fixed), rules,
                                                    request.max_trials, request.seed)  # fmt: skip
        except ValueError as e:  # a grid larger than max_trials
            raise InvalidOptimization([("max_trials", f"{e}; raise max_trials or coarsen the space")]) from e
        if not trials:
            raise InvalidOptimization([("space", f"no point of the space is a valid set of {request.strategy} "
                                                 "parameters (check constraints such as fast_period < slow_period)")])
        return OptimizationSpec(
            symbol=market.symbol,
            timeframe=request.timeframe,
            start_time=request.start_time,
            end_time=request.end_time,
            strategy=request.strategy,
            space={k: dict(v) for k, v in request.space.items()},
            fixed=dict(request.fixed),
            objective=request.objective,
            method=request.method,
            max_trials=request.max_trials,
            test_fraction=request.test_fraction,
            seed=request.seed,
            initial_balance=request.initial_balance,
            fee_rate=request.fee_rate,
            slippage_bps=request.slippage_bps,
            trials=tuple(trials),
            total=total,
        )


def _leverages(request: OptimizationRequest) -> list[tuple[str, float]]:
    """Every leverage the run may use, with the field that carries it."""
    out: list[tuple[str, float]] = []
    fixed = request.fixed.get("leverage")
    if isinstance(fixed, int | float) and not isinstance(fixed, bool):
        out.append(("fixed.leverage", float(fixed)))
    dim = request.space.get("leverage")
    if dim is not None:
        for key in ("max", "values"):
            v = dim.get(key)
            values = v if isinstance(v, list) else [v]
            for x in values:
                if isinstance(x, int | float) and not isinstance(x, bool):
                    out.append((f"space.leverage.{key}", float(x)))
    return out
