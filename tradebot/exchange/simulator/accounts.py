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
    # Set on the market order a triggered conditional order becomes: Binance reports its trigger
    # price (`sp`) and original type (`ot`, say STOP_MARKET) beside the MARKET type it fills as.
    orig_type: str | None = None
    stop_price: Decimal = ZERO

    @property
    def avg_price(self) -> Decimal:
        return self.cum_quote / self.executed_qty if self.executed_qty else ZERO

    @property
    def is_open(self) -> bool:
        return self.status in ("NEW", "PARTIALLY_FILLED")


@dataclass(frozen=True, slots=True)
class AlgoRequest:
    """The parameters of POST /fapi/v1/algoOrder (a conditional order), as the strings that came."""

    algo_type: str | None
    symbol: str | None
    side: str | None
    type: str | None
    quantity: str | None = None
    trigger_price: str | None = None
    activate_price: str | None = None
    callback_rate: str | None = None
    working_type: str | None = None
    time_in_force: str | None = None
    reduce_only: str | None = None
    close_position: str | None = None
    client_algo_id: str | None = None


# Binance's algo statuses: NEW waits for its trigger; TRIGGERING / TRIGGERED on the way to the
# matching engine; FINISHED once the order it became is done; CANCELED, REJECTED, EXPIRED.
ALGO_OPEN_STATUSES = ("NEW",)


@dataclass(slots=True)
class AlgoOrder:
    """A conditional order held by the exchange until its trigger (Binance's algo service)."""

    algo_id: int
    client_algo_id: str
    symbol: str
    side: str
    order_type: str  # STOP_MARKET, TAKE_PROFIT_MARKET, TRAILING_STOP_MARKET
    quantity: Decimal  # 0 with close_position
    trigger_price: Decimal  # 0 for a trailing stop (its level moves; see `trailing_level`)
    reduce_only: bool
    close_position: bool
    time_in_force: str
    working_type: str
    create_time: int
    update_time: int
    activate_price: Decimal = ZERO  # trailing stop: starts trailing once the price reaches this
    callback_rate: Decimal = ZERO  # trailing stop: percent back from the best price
    activated: bool = False
    best_price: Decimal = ZERO  # trailing stop: highest (SELL) or lowest (BUY) price since activation
    status: str = "NEW"
    trigger_time: int = 0
    actual_order_id: int | None = None
    executed_qty: Decimal = ZERO
    avg_price: Decimal = ZERO
    reject_reason: str = ""

    @property
    def is_open(self) -> bool:
        return self.status in ALGO_OPEN_STATUSES

    @property
    def trailing_level(self) -> Decimal:
        """A trailing stop's current trigger price (0 until it is activated)."""
        if not self.activated:
            return ZERO
        back = self.callback_rate / 100
        return self.best_price * (1 - back) if self.side == "SELL" else self.best_price * (1 + back)


@dataclass(frozen=True, slots=True)
class AlgoReport:
    """A conditional order's change, for the user-data stream (ALGO_UPDATE)."""

    api_key: str
    algo: AlgoOrder  # a snapshot, never the live object


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
    stop_price: Decimal | None = None  # a conditional order's trigger price (None: none, or trailing)
    algo: bool = False  # a POST /fapi/v1/algoOrder (order_id is then the algo id)


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
    algo_orders: dict[int, AlgoOrder] = field(default_factory=dict)
    algo_ids_by_client_id: dict[str, int] = field(default_factory=dict)
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

    def open_algo_orders(self, symbol: str | None = None) -> Iterator[AlgoOrder]:
        return (a for a in self.algo_orders.values() if a.is_open and (symbol is None or a.symbol == symbol))


@dataclass(frozen=True, slots=True)
class AssetSummary:
    asset: str
    wallet_balance: Decimal
    unrealized_pnl: Decimal
    margin_balance: Decimal
    position_initial_margin: Decimal
    open_order_initial_margin: Decimal
    available_balance: Decimal
