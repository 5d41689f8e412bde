"""Accounts, orders, fills and positions: the simulator's state, as plain dataclasses (no logic that
touches more than one of them; that is the matching engine's job)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal

ZERO = Decimal(0)
DEFAULT_LEVERAGE = 20
SETTLEMENT_ASSET = "USDT"


class Rejection(Exception):
    """A request the exchange refuses, with Binance's error code, message and HTTP status."""

    def __init__(self, code: int, msg: str, http_status: int = 400) -> None:
        super().__init__(f"{code}: {msg}")
        self.code = code
        self.msg = msg
        self.http_status = http_status


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """The parameters of POST /fapi/v1/order, still as the strings that came over the wire."""

    symbol: str | None
    side: str | None
    type: str | None
    quantity: str | None
    price: str | None = None
    time_in_force: str | None = None
    reduce_only: bool = False
    client_order_id: str | None = None


@dataclass(slots=True)
class Order:
    order_id: int
    client_order_id: str
    symbol: str
    side: str
    type: str
    time_in_force: str
    orig_qty: Decimal
    price: Decimal
    reduce_only: bool
    time: int
    update_time: int
    status: str = "NEW"
    executed_qty: Decimal = ZERO
    cum_quote: Decimal = ZERO

    @property
    def avg_price(self) -> Decimal:
        return self.cum_quote / self.executed_qty if self.executed_qty else ZERO

    @property
    def is_open(self) -> bool:
        return self.status in ("NEW", "PARTIALLY_FILLED")


@dataclass(frozen=True, slots=True)
class Fill:
    trade_id: int
    order_id: int
    symbol: str
    side: str
    price: Decimal
    qty: Decimal
    commission: Decimal
    realized_pnl: Decimal
    maker: bool
    time: int

    @property
    def quote_qty(self) -> Decimal:
        return self.price * self.qty


@dataclass(slots=True)
class Position:
    symbol: str
    amount: Decimal = ZERO  # signed: > 0 long, < 0 short (one-way mode)
    entry_price: Decimal = ZERO
    update_time: int = 0


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One order request as received, kept whether it was accepted or rejected."""

    client_order_id: str | None
    symbol: str | None
    side: str | None
    type: str | None
    amount: Decimal | None
    reject_code: int | None
    order_id: int | None
    received_at: int


@dataclass(frozen=True, slots=True)
class ExecutionReport:
    """What changed for one order, for the user-data stream (ORDER_TRADE_UPDATE / ACCOUNT_UPDATE)."""

    api_key: str
    execution_type: str  # NEW, TRADE, CANCELED, EXPIRED
    order: Order  # a snapshot, never the live object
    fill: Fill | None


@dataclass(slots=True)
class Account:
    api_key: str
    secret: str
    balances: dict[str, Decimal]  # wallet balance per asset
    update_time: int
    leverage: dict[str, int] = field(default_factory=dict)
    margin_type: dict[str, str] = field(default_factory=dict)
    positions: dict[str, Position] = field(default_factory=dict)
    orders: dict[int, Order] = field(default_factory=dict)
    order_ids_by_client_id: dict[str, int] = field(default_factory=dict)
    trades: list[Fill] = field(default_factory=list)
    audit: list[AuditEntry] = field(default_factory=list)

    def position(self, symbol: str) -> Position:
        pos = self.positions.get(symbol)
        if pos is None:
            pos = self.positions[symbol] = Position(symbol)
        return pos

    def leverage_for(self, symbol: str) -> int:
        return self.leverage.get(symbol, DEFAULT_LEVERAGE)

    def open_orders(self, symbol: str | None = None) -> Iterator[Order]:
        return (o for o in self.orders.values() if o.is_open and (symbol is None or o.symbol == symbol))


@dataclass(frozen=True, slots=True)
class AssetSummary:
    asset: str
    wallet_balance: Decimal
    unrealized_pnl: Decimal
    margin_balance: Decimal
    position_initial_margin: Decimal
    open_order_initial_margin: Decimal
    available_balance: Decimal
