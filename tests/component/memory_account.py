"""An `Account` held in memory: a real implementation of the Protocol for the executor's
component tests (not a mock: it keeps orders by client id and positions like an exchange would).

It fills market orders in full at `price` with no fee in the answer (like Binance's order answer),
refuses a client id it already has, and can be told to answer the next placement with an error.
Each placement records whether its order row was already in PostgreSQL when it arrived, so the
tests can see "recorded before sent" from the account's side.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import asyncpg

from tradebot.exchange.errors import ExchangeError, Rejected
from tradebot.exchange.protective_orders import ProtectiveSpec
from tradebot.runtime.account import CandleRange, Fill, ProtectiveFill
from tradebot.runtime.positions import FLAT, Position, apply_fill
from tradebot.runtime.risk import MarketLimits


@dataclass
class Placement:
    client_order_id: str
    side: str
    amount: float
    reduce_only: bool
    recorded_first: bool  # its orders row existed when the account received it


@dataclass
class MemoryAccount:
    pool: asyncpg.Pool
    price: float = 100.0
    balance: float = 1000.0
    held: Position = FLAT
    placements: list[Placement] = field(default_factory=list)
    orders: dict[str, Fill] = field(default_factory=dict)
    fail_next: ExchangeError | None = None  # the answer to the next placement
    fill_on_failure: bool = False  # the failed placement reached the account all the same
    fees: dict[str, float] = field(default_factory=dict)  # exchange order id -> fee, once readable
    # When set, a placement has reached the account and waits for this before it is answered.
    answer_gate: asyncio.Event | None = None
    received: asyncio.Event = field(default_factory=asyncio.Event)  # set by every placement
    # Protective orders by client id, as the exchange holds them; `refuse_protective` is the
    # answer to the next protective placement.
    protective: dict[str, tuple[ProtectiveSpec, ProtectiveFill]] = field(default_factory=dict)
    refuse_protective: ExchangeError | None = None

    async def place_market_order(
        self, client_order_id: str, symbol: str, side: str, amount: float, *, reduce_only: bool
    ) -> Fill:
        recorded = await self.pool.fetchval(
            "SELECT count(*) FROM orders WHERE client_order_id = $1", client_order_id)
        self.placements.append(Placement(client_order_id, side, amount, reduce_only, recorded == 1))
        self.received.set()
        if self.answer_gate is not None:
            await self.answer_gate.wait()
        if client_order_id in self.orders:
            raise Rejected("duplicate client order id", code="-4116")
        failure, self.fail_next = self.fail_next, None
        if failure is not None and not self.fill_on_failure:
            raise failure
        fill = Fill(f"x{len(self.orders) + 1}", "filled", amount, self.price, None)
        self.orders[client_order_id] = fill
        self.held, _ = apply_fill(self.held, side, amount, self.price, closing=reduce_only)
        if failure is not None:
            raise failure
        return fill

    async def find_order(self, client_order_id: str, symbol: str) -> Fill | None:
        return self.orders.get(client_order_id)

    async def position(self, symbol: str) -> Position:
        return self.held

    async def free_balance(self, asset: str = "USDT") -> float:
        return self.balance

    def expected_fill_price(self, side: str, price: float) -> float:
        return price

    async def market_limits(self, symbol: str) -> MarketLimits:
        return MarketLimits(amount_step=0.001, min_amount=0.001)

    async def set_leverage(self, symbol: str, leverage: int) -> None:
        return None

    async def order_fee(self, exchange_order_id: str, symbol: str, filled: float) -> float | None:
        return self.fees.get(exchange_order_id)

    async def place_protective(self, spec: ProtectiveSpec) -> ProtectiveFill:
        failure, self.refuse_protective = self.refuse_protective, None
        if failure is not None:
            raise failure
        if spec.client_order_id in self.protective:
            raise Rejected("duplicate client algo id", code="-4116")
        held = ProtectiveFill(f"a{len(self.protective) + 1}", "open", 0.0, None, None, spec.stop_price)
        self.protective[spec.client_order_id] = (spec, held)
        return held

    async def find_protective(self, client_order_id: str, symbol: str) -> ProtectiveFill | None:
        entry = self.protective.get(client_order_id)
        return None if entry is None else entry[1]

    async def open_protective(self, symbol: str) -> set[str]:
        return {cid for cid, (_, held) in self.protective.items() if held.is_open}

    async def cancel_protective(self, client_order_id: str, symbol: str) -> bool:
        entry = self.protective.get(client_order_id)
        if entry is None or not entry[1].is_open:
            return False
        spec, held = entry
        self.protective[client_order_id] = (spec, ProtectiveFill(held.exchange_order_id, "canceled", 0.0, None, None,
                                                                 held.stop_price))
        return True

    async def observe_candle(self, symbol: str, candle: CandleRange) -> None:
        return None

    def trigger(self, client_order_id: str) -> None:
        """The exchange fires this protective order at its stop price and closes the position."""
        spec, held = self.protective[client_order_id]
        price = spec.stop_price or self.price
        self.held, _ = apply_fill(self.held, spec.order_side, spec.amount, price, closing=True)
        self.protective[client_order_id] = (spec, ProtectiveFill(f"t-{held.exchange_order_id}", "filled", spec.amount,
                                                                 price, None, spec.stop_price))
