"""The bots API's wire shapes (pydantic at the edge): request bodies, queries and response models.

The bot object's own fields (`id`, `user_id`, `is_active`, `state`, the timestamps) are never taken
from a request body (CONTRACT; mass assignment): they are dropped, so a client may send back the
object it read. Any other unknown field is a 422 naming it (a typo must not be silently ignored).
The ranges mirror the CHECK constraints of bot_configs, so a bad value is a 422 naming the field
and never a database error.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from tradebot.bots.models import DEFAULT_MAX_LEVERAGE, BotSettings
from tradebot.bots.stats import TradeFilter
from tradebot.http.pagination import Page, PageQuery
from tradebot.http.times import accepted_time
from tradebot.strategies.selection import DEFAULT_STRATEGY
from tradebot.timeframes import Timeframe

Status = Literal["stopped", "starting", "running", "paused", "stopping", "error"]

_ID = Field(ge=1, lt=2**63)

Mode = Literal["live", "paper"]
_PAPER_BALANCE = "a paper bot's starting free balance (quote currency); a new one resets a stopped, flat paper bot"
_TRAILING = "a trailing stop held by the exchange: its callback rate in percent (Binance allows 0.1 to 10)"
_PAPER_SLIPPAGE = "a paper fill's slippage: buys at close × (1 + bps/10⁴), sells at close × (1 − bps/10⁴)"

READ_ONLY_FIELDS = ("id", "user_id", "is_active", "state", "stats", "created_at", "updated_at")


def _document_read_only(schema: dict[str, Any]) -> None:
    properties = schema.setdefault("properties", {})
    for name in READ_ONLY_FIELDS:
        properties[name] = {"readOnly": True, "description": "the server's own field: ignored in a request"}


class _SettingsBody(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, json_schema_extra=_document_read_only)

    @model_validator(mode="before")
    @classmethod
    def _drop_read_only(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if k not in READ_ONLY_FIELDS}
        return data


class BotCreate(_SettingsBody):
    """Bot settings; `symbol` may be the exchange's id (BTCUSDT) and is stored in ccxt's unified form."""

    name: str = Field(default="", max_length=100)
    api_key_id: int | None = Field(default=None, ge=1, lt=2**63, description="required for live bots; paper bots need none")
    symbol: str = Field(min_length=1, max_length=64)
    strategy: str = Field(default=DEFAULT_STRATEGY, min_length=1, max_length=64, description="a name from GET /strategies")
    parameters: dict[str, Any] = Field(
        default_factory=dict, description="the strategy's parameters (GET /strategies); omitted ones take defaults"
    )
    timeframe: Timeframe
    ema_period: int | None = Field(default=None, ge=2, le=1000, description="shorthand for ema_cross's ema_period")
    leverage: int = Field(default=1, ge=1, le=DEFAULT_MAX_LEVERAGE)
    order_size_pct: float = Field(default=10.0, gt=0, le=100)
    allow_short: bool = False
    max_daily_trades: int = Field(default=50, ge=1, le=100_000)
    max_daily_loss_pct: float = Field(default=5.0, gt=0, le=100)
    stop_loss_pct: float | None = Field(default=None, gt=0, lt=100)
    take_profit_pct: float | None = Field(default=None, gt=0, le=1000)
    trailing_stop_pct: float | None = Field(default=None, ge=0.1, le=10, description=_TRAILING)
    mode: Mode = "live"
    paper_balance: float = Field(default=10_000.0, gt=0, le=1e15, description=_PAPER_BALANCE)
    paper_fee_rate: float = Field(default=0.0004, ge=0, lt=0.1, description="a paper fill's fee: this × notional")
    paper_slippage_bps: float = Field(default=1.0, ge=0, lt=1000, description=_PAPER_SLIPPAGE)

    def to_settings(self) -> BotSettings:
        return BotSettings(**self.model_dump())


_NULLABLE = frozenset({"stop_loss_pct", "take_profit_pct", "trailing_stop_pct"})


class BotUpdate(_SettingsBody):
    """Any subset of the bot settings; `null` clears stop_loss_pct, take_profit_pct or trailing_stop_pct."""

    name: str | None = Field(default=None, max_length=100)
    api_key_id: int | None = Field(default=None, ge=1, lt=2**63)
    symbol: str | None = Field(default=None, min_length=1, max_length=64)
    strategy: str | None = Field(default=None, min_length=1, max_length=64)
    parameters: dict[str, Any] | None = Field(
        default=None, description="merged key by key; a changed strategy starts from its defaults"
    )
    timeframe: Timeframe | None = None
    ema_period: int | None = Field(default=None, ge=2, le=1000)
    leverage: int | None = Field(default=None, ge=1, le=DEFAULT_MAX_LEVERAGE)
    order_size_pct: float | None = Field(default=None, gt=0, le=100)
    allow_short: bool | None = None
    max_daily_trades: int | None = Field(default=None, ge=1, le=100_000)
    max_daily_loss_pct: float | None = Field(default=None, gt=0, le=100)
    stop_loss_pct: float | None = Field(default=None, gt=0, lt=100)
    take_profit_pct: float | None = Field(default=None, gt=0, le=1000)
    trailing_stop_pct: float | None = Field(default=None, ge=0.1, le=10, description=_TRAILING)
    mode: Mode | None = None
    paper_balance: float | None = Field(default=None, gt=0, le=1e15, description=_PAPER_BALANCE)
    paper_fee_rate: float | None = Field(default=None, ge=0, lt=0.1)
    paper_slippage_bps: float | None = Field(default=None, ge=0, lt=1000)

    @field_validator(
        "name",
        "api_key_id",
        "symbol",
        "strategy",
        "parameters",
        "timeframe",
        "ema_period",
        "leverage",
        "order_size_pct",
        "allow_short",
        "max_daily_trades",
        "max_daily_loss_pct",
        "mode",
        "paper_balance",
        "paper_fee_rate",
        "paper_slippage_bps",
    )
    @classmethod
    def _not_null(cls, v: Any) -> Any:
        # Runs only for fields present in the body: an absent field stays unchanged, a null is refused.
        if v is None:
            raise ValueError("may not be null")
        return v

    def changes(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.model_fields_set}


class StopRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    close_position: bool = False


class ForceExitRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    pct: float = Field(default=100.0, gt=0, le=100, description="share of the position to close, rounded down to the market's step")


class ForceEntryRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    side: Literal["long", "short"]
    order_size_pct: float | None = Field(default=None, gt=0, le=100, description="sized like an entry; default the bot's")


class CommandOut(BaseModel):
    """The command is recorded; the bot's owner carries it out between decisions (watch the stream)."""

    id: int | None = Field(description="the recorded force-exit / force-entry; null for pause and resume")
    kind: Literal["force_exit", "force_entry", "pause_entries", "resume_entries"]
    status: Literal["pending", "done"]


class StateOut(BaseModel):
    """A bot's live state."""

    status: Status
    in_position: bool
    position_side: Literal["long", "short"] | None
    position_size: float
    entry_price: float | None
    daily_pnl: float
    daily_trades_count: int
    last_error_message: str | None
    last_run_at: dt.datetime | None
    last_updated_at: dt.datetime | None
    replica_id: str | None
    paper_balance: float | None = Field(description="a paper bot's free balance after realised PnL and fees; null for live bots")
    equity: float | None = Field(description="a paper bot's balance plus unrealised PnL at the last close; null for live bots")
    # The leader's nightly drift report found live PnL beyond TRADEBOT_DRIFT_WARN_GAP_BPS of the backtest's.
    drift_warning: str | None = None
    entries_paused: bool = Field(description="pause-entries: the bot exits and protects, never enters")


class FiguresOut(BaseModel):
    """Sums over trade rows: `net_pnl` = realized_pnl − fees; a win/loss is a row with realized_pnl > 0 / < 0;
    `win_rate` = wins/(wins+losses), null when both are 0; `fees_unknown` counts rows whose fee is not
    known yet (summed as 0)."""

    trades_count: int
    realized_pnl: float
    fees: float
    net_pnl: float
    wins: int
    losses: int
    win_rate: float | None
    fees_unknown: int


class BotStatsOut(FiguresOut):
    """The bot's lifetime figures; `max_drawdown` is the largest fall of its cumulative net PnL
    (quote currency, from 0, in trade order) below the highest point reached before."""

    max_drawdown: float


class BotOut(BaseModel):
    """A bot: its settings, flags and current state."""

    id: int
    name: str
    api_key_id: int | None
    symbol: str
    strategy: str
    parameters: dict[str, Any]
    timeframe: Timeframe
    ema_period: int | None
    leverage: int
    order_size_pct: float
    allow_short: bool
    max_daily_trades: int
    max_daily_loss_pct: float
    stop_loss_pct: float | None
    take_profit_pct: float | None
    trailing_stop_pct: float | None
    mode: Mode
    paper_balance: float
    paper_fee_rate: float
    paper_slippage_bps: float
    is_active: bool
    created_at: dt.datetime
    updated_at: dt.datetime
    state: StateOut
    stats: BotStatsOut


class BotPage(Page[BotOut]):
    """A page of the caller's bots, oldest first."""


class LifecycleOut(BaseModel):
    """The transition was accepted; the bot's runtime carries it out."""

    status: Literal["starting", "stopping"]


class TradeOut(BaseModel):
    """A fill of one of the bot's orders."""

    id: int
    bot_id: int
    symbol: str
    side: Literal["buy", "sell"]
    price: float
    amount: float
    fee: float | None  # null: not known yet (the exchange has not reported it); never read as 0
    realized_pnl: float
    paper: bool
    client_order_id: str
    # Why the position changed: the strategy's signal, a protective order that fired, a manual
    # command, a liquidation.
    reason: Literal["signal", "stop_loss", "take_profit", "trailing_stop", "manual", "liquidation"]
    created_at: dt.datetime


class TradePage(Page[TradeOut]):
    """A page of trades, newest first."""


class OrderOut(BaseModel):
    """An order the bot sent (or is about to send) to the exchange."""

    id: int
    bot_id: int
    client_order_id: str
    exchange_order_id: str | None
    side: Literal["buy", "sell"]
    amount: float
    status: str
    paper: bool
    # "market", or a protective order's "stop_market" / "take_profit_market" / "trailing_stop_market"
    type: str
    stop_price: float | None  # a protective order's trigger (null for market orders and trailing stops)
    created_at: dt.datetime
    updated_at: dt.datetime


class OrderPage(Page[OrderOut]):
    """A page of orders, newest first."""


_BARE_NUMBER = re.compile(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*")


def _iso_time(v: Any) -> Any:
    # pydantic would read a bare number ("0.0", "1700000000") as Unix seconds; the contract says ISO 8601.
    if isinstance(v, int | float) or (isinstance(v, str) and _BARE_NUMBER.fullmatch(v)):
        raise ValueError("must be an ISO 8601 time, e.g. 2026-01-01T00:00:00Z")
    # An unencoded "+00:00" arrives as " 00:00" after form-decoding; put the plus back.
    if isinstance(v, str) and " " in v.strip():
        return v.strip().replace(" ", "+")
    return v


def _query_bool(v: Any) -> Any:
    # Only the two spellings the contract names; pydantic alone would also take "yes", "1", "on"...
    if isinstance(v, str) and v not in ("true", "false"):
        raise ValueError("must be true or false")
    return v == "true" if isinstance(v, str) else v


class TradeFilterQuery(BaseModel):
    """`?bot_id=` one bot; `?since=` (inclusive) and `?until=` (exclusive), ISO 8601, UTC when no zone;
    `?paper=true|false` paper or live trades only (absent: both)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    bot_id: int | None = Field(default=None, ge=1, lt=2**63)
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    paper: bool | None = None

    @field_validator("since", "until", mode="before")
    @classmethod
    def _plus_survives_the_query_string(cls, v: Any) -> Any:
        return _iso_time(v)

    @field_validator("since", "until")
    @classmethod
    def _utc(cls, v: dt.datetime | None) -> dt.datetime | None:
        if v is None:
            return None
        return accepted_time(v.replace(tzinfo=dt.UTC) if v.tzinfo is None else v)

    @field_validator("paper", mode="before")
    @classmethod
    def _paper(cls, v: Any) -> Any:
        return _query_bool(v)

    @field_validator("until")
    @classmethod
    def _after_since(cls, v: dt.datetime | None, info: ValidationInfo) -> dt.datetime | None:
        since = info.data.get("since")
        if v is not None and since is not None and v <= since:
            raise ValueError("must be after since")
        return v

    def trade_filter(self) -> TradeFilter:
        return TradeFilter(bot_id=self.bot_id, since=self.since, until=self.until, paper=self.paper)


ListFormat = Literal["json", "csv"]


class TradesQuery(PageQuery, TradeFilterQuery):
    """The trade filters plus paging; `?format=csv` (or `Accept: text/csv`) streams every matching
    trade as CSV instead of one page."""

    format: ListFormat | None = None


class ListQuery(PageQuery):
    """Paging, and `?format=json|csv` (or `Accept: text/csv`: every item as CSV)."""

    format: ListFormat | None = None


class StreamQuery(BaseModel):
    """For browsers' EventSource, which cannot send headers."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    access_token: str | None = Field(
        default=None, description="the bearer token, when no Authorization header"
    )
    last_event_id: str | None = Field(
        default=None, pattern=r"^\d{1,20}(-\d{1,20})?$", description="as the Last-Event-ID header"
    )
