"""The backtests API's wire shapes (pydantic at the edge): the request body and the responses.

The body forbids unknown fields. ``parameters`` is a free object here on purpose: its rules (names,
ranges, defaults) are the engine's own (``split_parameters``), and its errors come back named
``parameters.<field>``, so the API cannot drift from what the engine accepts.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tradebot.backtests.models import BacktestRequest
from tradebot.http.pagination import Page
from tradebot.http.times import accepted_time
from tradebot.timeframes import Timeframe

Status = Literal["pending", "running", "done", "failed"]


class BacktestCreate(BaseModel):
    """A backtest of `strategy` on `symbol` over `[start_time, end_time)` (ISO 8601, UTC when no zone)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    symbol: str = Field(min_length=1, max_length=64, strict=True)
    timeframe: Timeframe
    start_time: dt.datetime
    end_time: dt.datetime
    strategy: str = Field(
        min_length=1, max_length=64, strict=True, description="a name from GET /strategies (e.g. ema_cross)"
    )
    parameters: dict[str, Any] = Field(
        description="the strategy's parameters (GET /strategies; omitted ones take their defaults) beside "
        "order_size_pct (0-100, default 10), leverage (1-125, default 1), allow_short (default false), "
        "stop_loss_pct, take_profit_pct",
    )
    initial_balance: float = Field(gt=0, le=1e15, strict=True)
    fee_rate: float | None = Field(default=None, ge=0, lt=0.1, strict=True)
    slippage_bps: float | None = Field(default=None, ge=0, lt=1000, strict=True)

    @field_validator("start_time", "end_time", mode="before")
    @classmethod
    def _iso_text(cls, v: Any) -> Any:
        # pydantic would also take a number as Unix seconds; the contract says ISO 8601 strings.
        if not isinstance(v, str):
            raise ValueError("must be an ISO 8601 time string")
        return v

    @field_validator("start_time", "end_time")
    @classmethod
    def _utc(cls, v: dt.datetime) -> dt.datetime:
        try:
            utc = v.replace(tzinfo=dt.UTC) if v.tzinfo is None else v.astimezone(dt.UTC)
        except OverflowError:  # 9999-12-31T23:00:00-05:00 is past the last datetime in UTC
            raise ValueError("is out of range") from None
        return accepted_time(utc)

    def to_request(self) -> BacktestRequest:
        return BacktestRequest(
            symbol=self.symbol,
            timeframe=self.timeframe,
            start_time=self.start_time,
            end_time=self.end_time,
            strategy=self.strategy,
            parameters=self.parameters,
            initial_balance=self.initial_balance,
            fee_rate=self.fee_rate,
            slippage_bps=self.slippage_bps,
        )


class BacktestAccepted(BaseModel):
    """The backtest is queued; poll GET /backtests/{id}."""

    id: int
    status: Literal["pending"]


class BacktestParameters(BaseModel):
    """The strategy's own parameters (every one, defaults filled in) beside the sizing keys."""

    model_config = ConfigDict(extra="allow")

    order_size_pct: float
    leverage: float
    allow_short: bool
    stop_loss_pct: float | None
    take_profit_pct: float | None


class BacktestTrade(BaseModel):
    n: int
    side: Literal["long", "short"]
    entry_time: str
    exit_time: str
    entry_ts: int
    exit_ts: int
    entry_price: float | None
    exit_price: float | None
    amount: float | None
    pnl: float | None
    fees: float | None
    balance_after: float | None
    exit_reason: Literal["signal", "stop_loss", "take_profit", "liquidation", "end"]


class BacktestOut(BaseModel):
    """A backtest; the result fields are present once `status` is "done"."""

    id: int
    status: Status
    symbol: str
    timeframe: Timeframe
    start_time: dt.datetime
    end_time: dt.datetime
    strategy: str
    parameters: BacktestParameters
    initial_balance: float
    fee_rate: float
    slippage_bps: float
    created_at: dt.datetime
    updated_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    error_message: str | None
    final_balance: float | None = None
    total_pnl: float | None = None
    return_pct: float | None = None
    trades_count: int | None = None
    win_rate: float | None = None
    max_drawdown_pct: float | None = None
    sharpe: float | None = None
    exposure_pct: float | None = None
    fees_paid: float | None = None
    candles_count: int | None = Field(default=None, description="candles the backtest ran on")
    expected_candles: int | None = Field(default=None, description="candles the (closed part of the) range holds")
    missing_candles: int | None = Field(default=None, description="gaps in the exchange's history, not filled in")
    first_candle_time: str | None = None
    last_candle_time: str | None = None
    equity_curve: list[tuple[int, float | None]] | None = Field(
        default=None, description="[[open time ms, equity], ...], at most 1000 points; the last is final_balance"
    )
    trades: list[BacktestTrade] | None = Field(
        default=None, description="round trips, oldest first (the first 10,000; GET /backtests/{id} only)"
    )
    trades_truncated: bool | None = None


class BacktestPage(Page[BacktestOut]):
    """A page of the caller's backtests, newest first (without their trades)."""
