"""The account a bot trades on, as the order executor sees it: a small Protocol.

The live account is ccxt on the exchange (`live_account.py`); a paper account is the same
interface on PostgreSQL rows, filling from the hub's candles (DESIGN.md "Paper accounts"). The
executor and the actor are written against this Protocol only, so they cannot tell which one
they have, and paper and live share every rule, test and failover path.

Every method raises tradebot's own exchange errors (`tradebot.exchange.errors`), never a
backend's: Retryable (try later), Rejected (final answer for this order), InvalidCredentials and
InsufficientBalance (stop the bot), and `OutcomeUnknown` below.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from tradebot.exchange.errors import ExchangeError
from tradebot.exchange.protective_orders import ProtectiveSpec
from tradebot.runtime.bot_store import BotConfig
from tradebot.runtime.positions import Position
from tradebot.runtime.risk import MarketLimits


class OutcomeUnknown(ExchangeError):
    """The account may or may not have the order; nobody may trade this bot until we know."""


@dataclass(frozen=True, slots=True)
class Fill:
    exchange_order_id: str
    status: str  # one of the orders table's statuses
    filled: float
    average: float | None
    fee: float | None  # None: the account did not say; never read as 0


@dataclass(frozen=True, slots=True)
class ProtectiveFill:
    """A protective order as the account holds it: "open" while it waits, "filled" once its
    trigger closed (part of) the position, else "canceled" / "rejected" / "expired"."""

    exchange_order_id: str  # the market order the trigger placed once it fired, else the conditional's id
    status: str
    filled: float
    average: float | None
    fee: float | None
    stop_price: float | None

    @property
    def is_open(self) -> bool:
        return self.status == "open"


@dataclass(frozen=True, slots=True)
class CandleRange:
    """A closed candle's prices, which a paper account triggers its protective orders on."""

    open: float
    high: float
    low: float


class Account(Protocol):
    """Orders are addressed by their client order id, which the caller chooses (deterministic)."""

    async def place_market_order(
        self, client_order_id: str, symbol: str, side: str, amount: float, *, reduce_only: bool
    ) -> Fill:
        """Place at most once; an unclear outcome is resolved by `find_order`, else OutcomeUnknown."""
        ...

    async def find_order(self, client_order_id: str, symbol: str) -> Fill | None:
        """The order with this client id, None only when the account says there is none."""
        ...

    async def position(self, symbol: str) -> Position:
        """The account's position; raises rather than ever reading a failed report as flat."""
        ...

    async def free_balance(self, asset: str = "USDT") -> float: ...

    def expected_fill_price(self, side: str, price: float) -> float:
        """What a market order decided at `price` is expected to fill at, which orders are sized
        on: the price itself on the exchange (its slippage is not known in advance), the fill
        model's price on paper (so paper sizes exactly as the backtest does)."""
        ...

    async def market_limits(self, symbol: str) -> MarketLimits: ...

    async def set_leverage(self, symbol: str, leverage: int) -> None: ...

    async def order_fee(self, exchange_order_id: str, symbol: str, filled: float) -> float | None:
        """The fee of a filled order when it is known by now, else None (asked again later)."""
        ...

    # Protective orders (DESIGN.md): reduce-only conditional orders held by the account, by
    # deterministic client id like market orders. Their fills are learnt by `find_protective`
    # (polled at each candle and on start): the seam where the user-data stream will push them.

    async def place_protective(self, spec: ProtectiveSpec) -> ProtectiveFill:
        """Place at most once (an unclear outcome is settled by the client id, else OutcomeUnknown);
        Rejected when the account refuses it (a stop that would trigger at once)."""
        ...

    async def find_protective(self, client_order_id: str, symbol: str) -> ProtectiveFill | None:
        """The protective order with this client id in any status; None only when there is none."""
        ...

    async def open_protective(self, symbol: str) -> set[str]:
        """The client ids of every protective order waiting on `symbol` (one request: the poll at
        each candle asks `find_protective` only about those missing from it)."""
        ...

    async def cancel_protective(self, client_order_id: str, symbol: str) -> bool:
        """True if this cancelled it; False if it was no longer open (triggered, cancelled) or unknown."""
        ...

    async def observe_candle(self, symbol: str, candle: CandleRange) -> None:
        """A closed candle the bot is about to decide on, while it holds protective orders: a paper
        account triggers them on its range here; the exchange sees prices itself (nothing to do)."""
        ...


class Accounts(Protocol):
    """Accounts by API key id (the live pool holds one ccxt private client per key)."""

    async def get(self, api_key_id: int) -> Account: ...


# The close of the last candle the bot decided on (None before any): a paper fill's price.
LastClose = Callable[[], float | None]


class BotAccounts(Accounts, Protocol):
    """The account a bot's run trades on, chosen by its mode: live on its API key (`get`), or paper.

    A keyless live bot raises InvalidCredentials (the bot then goes to status error)."""

    async def for_bot(self, config: BotConfig, fence: int, last_close: LastClose) -> Account: ...
