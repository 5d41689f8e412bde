"""The optimisations API's wire shapes (pydantic at the edge).

``space`` and ``fixed`` are free objects here on purpose: their rules (names, ranges, constraints)
are the strategy's and the backtest's own, checked by the service, whose errors come back named
``space.<name>[.min|.max|.step|.values]`` and ``fixed.<name>``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tradebot.http.pagination import Page
from tradebot.http.times import accepted_time
from tradebot.optimizations.models import OptimizationRequest
from tradebot.timeframes import Timeframe

Status = Literal["pending", "running", "done", "failed", "cancelled"]
Objective = Literal["sharpe", "return_pct", "calmar", "profit_factor"]
Method = Literal["grid", "random", "tpe"]


class OptimizationCreate(BaseModel):
    """A search over `strategy`'s parameters on `symbol` over `[start_time, end_time)`; the last
    `test_fraction` of the candles is held out (never seen by the search) and reported per trial."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    symbol: str = Field(min_length=1, max_length=64, strict=True)
    timeframe: Timeframe
    start_time: dt.datetime
    end_time: dt.datetime
    strategy: str = Field(min_length=1, max_length=64, strict=True, description="a name from GET /strategies")
    space: dict[str, dict[str, Any]] = Field(
        description="parameter name (the strategy's, or order_size_pct, leverage, allow_short, stop_loss_pct, "
        "take_profit_pct) -> {min, max, step} (step required for grid; integers step 1 by default) or {values: [...]}",
    )
    fixed: dict[str, Any] = Field(default_factory=dict, description="parameters held constant in every trial")
    objective: Objective = "sharpe"
    method: Method = "grid"
    max_trials: int = Field(default=100, ge=1, strict=True, description="random and tpe run this many; a grid "
                            "may hold at most this many valid points")  # fmt: skip
    test_fraction: float = Field(default=0.3, ge=0, le=0.9, description="share of the candles held out at the end")
    seed: int = Field(default=0, ge=0, le=2**31 - 1, strict=True, description="random and tpe: the same seed, "
                      "the same trials")  # fmt: skip
    initial_balance: float = Field(default=10_000.0, gt=0, le=1e15)
    fee_rate: float | None = Field(default=None, ge=0, lt=0.1)
    slippage_bps: float | None = Field(default=None, ge=0, lt=1000)

    @field_validator("start_time", "end_time", mode="before")
    @classmethod
    def _iso_text(cls, v: Any) -> Any:
        if not isinstance(v, str):
            raise ValueError("must be an ISO 8601 time string")
        return v

    @field_validator("start_time", "end_time")
    @classmethod
    def _utc(cls, v: dt.datetime) -> dt.datetime:
        try:
            utc = v.replace(tzinfo=dt.UTC) if v.tzinfo is None else v.astimezone(dt.UTC)
        except OverflowError:
            raise ValueError("is out of range") from None
        return accepted_time(utc)

    def to_request(self) -> OptimizationRequest:
        return OptimizationRequest(
            symbol=self.symbol,
            timeframe=self.timeframe,
            start_time=self.start_time,
            end_time=self.end_time,
            strategy=self.strategy,
            space=self.space,
            fixed=self.fixed,
            objective=self.objective,
            method=self.method,
            max_trials=self.max_trials,
            test_fraction=self.test_fraction,
            seed=self.seed,
            initial_balance=self.initial_balance,
            fee_rate=self.fee_rate,
            slippage_bps=self.slippage_bps,
        )


class Progress(BaseModel):
    done: int
    total: int


class OptimizationAccepted(BaseModel):
    """Queued; poll GET /optimizations/{id} or follow GET /optimizations/{id}/stream."""

    id: int
    status: Literal["pending"]
    progress: Progress


class Figures(BaseModel):
    return_pct: float
    sharpe: float
    max_drawdown_pct: float
    trades_count: int
    win_rate: float
    profit_factor: float
    calmar: float
    final_balance: float


class Trial(BaseModel):
    trial: int = Field(description="trial number, in the order the search made them")
    parameters: dict[str, Any] = Field(description="what POST /backtests takes as parameters for this trial")
    score: float | None = Field(description="the objective over the train window")
    train: Figures
    test: Figures | None = Field(description="the held-out window (null when test_fraction is 0)")


class Window(BaseModel):
    start_time: dt.datetime
    end_time: dt.datetime


class OptimizationOut(BaseModel):
    id: int
    status: Status
    symbol: str
    timeframe: Timeframe
    start_time: dt.datetime
    end_time: dt.datetime
    strategy: str
    space: dict[str, Any]
    fixed: dict[str, Any]
    objective: Objective
    method: Method
    max_trials: int
    seed: int
    test_fraction: float
    initial_balance: float
    fee_rate: float | None
    slippage_bps: float | None
    candles_count: int | None
    error_message: str | None
    created_at: dt.datetime
    updated_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    progress: Progress
    train_window: Window = Field(description="POST /backtests over this window gives a trial's train figures")
    test_window: Window | None
    trials: list[Trial] | None = Field(default=None, description="ranked, best first (GET /optimizations/{id} only)")
    best: Trial | None


class OptimizationPage(Page[OptimizationOut]):
    """A page of the caller's optimisations, newest first (each with its best trial, without the list)."""
