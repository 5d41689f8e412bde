"""A bot's settings as the domain holds them, and the lookups the service needs from elsewhere."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from tradebot.strategies.selection import DEFAULT_STRATEGY

# The columns of bot_configs a user may set, in the order the API shows them.
SETTING_FIELDS: tuple[str, ...] = (
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
    "stop_loss_pct",
    "take_profit_pct",
    "trailing_stop_pct",
    "mode",
    "paper_balance",
    "paper_fee_rate",
    "paper_slippage_bps",
)

# bot_configs allows up to 125 (Binance's highest); a market without a stated maximum gets this.
DEFAULT_MAX_LEVERAGE = 125


@dataclass(frozen=True, slots=True)
class BotSettings:
    """Everything a user chooses about a bot; ranges were checked at the edge (pydantic)."""

    api_key_id: int | None
    symbol: str
    timeframe: str
    # The shorthand for parameters.ema_period of ema_cross (None for other strategies); the service
    # fills both from the registry (tradebot.strategies.selection).
    ema_period: int | None = None
    name: str = ""
    strategy: str = DEFAULT_STRATEGY
    parameters: Mapping[str, Any] = field(default_factory=dict)
    leverage: int = 1
    order_size_pct: float = 10.0
    allow_short: bool = False
    max_daily_trades: int = 50
    max_daily_loss_pct: float = 5.0
    stop_loss_pct: float | None = None
    take_profit_pct: float | None = None
    # A trailing stop held by the exchange (Binance's callbackRate, 0.1 to 10 %).
    trailing_stop_pct: float | None = None
    # Paper trading (CONTRACT.md): a paper bot trades a virtual account and needs no API key.
    mode: str = "live"
    paper_balance: float = 10_000.0
    paper_fee_rate: float = 0.0004
    paper_slippage_bps: float = 1.0


class Market(Protocol):
    """What the service reads of a market: its unified symbol and its leverage ceiling."""

    @property
    def symbol(self) -> str: ...

    @property
    def max_leverage(self) -> int | float | None: ...


class SymbolResolver(Protocol):
    """Turns user text ("BTCUSDT" or "BTC/USDT:USDT") into a known market, or None."""

    async def resolve(self, text: str) -> Market | None: ...


class BotEventSink(Protocol):
    """Where the service announces a bot's new state to its live streams (tradebot.runtime.events)."""

    async def publish(self, bot_id: int, event: str, data: dict[str, Any]) -> str: ...
