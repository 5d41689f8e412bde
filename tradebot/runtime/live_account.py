"""The live account: the `Account` interface on the exchange through ccxt, one private client per
API key, shared by that key's bots; ccxt's errors are translated at this edge.

Placement is idempotent by client order id. An unclear outcome (timeout, 5xx, dropped connection)
is resolved by querying that id, never by resending blindly: only a definite "no such order"
allows sending the same id again, and the exchange's duplicate rejection backs that up. If the
outcome stays unknown, `OutcomeUnknown` tells the bot to stop trading until reconciliation can
tell (DESIGN.md invariant 2).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg
from ccxt.async_support.base.exchange import Exchange

from tradebot.backoff import Backoff, Retrier, Rng
from tradebot.exchange import protective_orders, rate_limit
from tradebot.exchange.ccxt_factory import ExchangeClientFactory
from tradebot.exchange.errors import (
    InvalidCredentials,
    NotServed,
    OrderNotFound,
    Rejected,
    Retryable,
    translated,
)
from tradebot.exchange.protective_orders import ProtectiveOrder, ProtectiveSpec
from tradebot.runtime.account import CandleRange, Fill, OutcomeUnknown, ProtectiveFill
from tradebot.runtime.positions import FLAT, Position
from tradebot.runtime.risk import MarketLimits
from tradebot.security.secrets_box import SecretBox

log = logging.getLogger(__name__)

T = TypeVar("T")

DUPLICATE_CLIENT_ORDER_ID = "-4116"
PLACE_ATTEMPTS = 4
READ_ATTEMPTS = 5  # waits of at most 0.2 + 0.4 + 0.8 + 1.6 s (full jitter): rides out a short burst of 5xx
READ_BACKOFF = Backoff(base=0.2, cap=1.6)
PLACE_BACKOFF = Backoff(base=0.25, cap=2.0)
QUERY_ATTEMPTS = 5
USER_TRADES_WEIGHT = 5  # Binance's weight of GET /fapi/v1/userTrades


_STATUS = {"closed": "filled", "open": "open", "canceled": "canceled", "rejected": "rejected", "expired": "expired"}


class LiveAccount:
    """An `Account` on the exchange (Binance USD-M first), with ccxt's errors translated here."""

    def __init__(
        self,
        client: Exchange,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: Rng = random.random,
    ) -> None:
        self._client = client
        self._sleep = sleep
        self._rng = rng
        self._markets_loaded = False
        self._lock = asyncio.Lock()

    async def _markets(self) -> None:
        if self._markets_loaded:
            return
        async with self._lock:
            if not self._markets_loaded:
                await self._retrying(self._client.load_markets)
                self._markets_loaded = True

    async def _retrying(self, call: Callable[[], Awaitable[T]], attempts: int = READ_ATTEMPTS) -> T:
        """Retry reads (never order placement) on transient errors with a short backoff."""
        retry = Retrier(READ_BACKOFF, self._rng)
        for attempt in range(attempts):
            try:
                with translated():
                    return await call()
            except Retryable:
                if attempt == attempts - 1:
                    raise
                await self._sleep(retry.next_delay())
        raise AssertionError("unreachable")

    async def market_limits(self, symbol: str) -> MarketLimits:
        await self._markets()
        m = self._client.market(symbol)
        step = float(m["precision"]["amount"] or 0)
        limits = m.get("limits") or {}
        return MarketLimits(
            amount_step=step,
            min_amount=float((limits.get("amount") or {}).get("min") or step or 0),
            min_notional=float((limits.get("cost") or {}).get("min") or 0),
            max_leverage=int((limits.get("leverage") or {}).get("max") or 125),
        )

    async def set_leverage(self, symbol: str, leverage: int) -> None:
        await self._markets()
        await self._retrying(lambda: self._client.set_leverage(leverage, symbol))

    async def free_balance(self, asset: str = "USDT") -> float:
        balance = await self._retrying(self._client.fetch_balance)
        return float((balance.get("free") or {}).get(asset) or 0.0)

    def expected_fill_price(self, side: str, price: float) -> float:
        return price  # the exchange's slippage is not known before the fill

    async def position(self, symbol: str) -> Position:
        """The exchange's position; raises rather than ever reading a failed report as flat."""
        await self._markets()
        positions = await self._retrying(lambda: self._client.fetch_positions([symbol]))
        for p in positions:
            if p.get("symbol") != symbol:
                continue
            contracts = float(p.get("contracts") or 0.0)
            if contracts > 0:
                side = p.get("side")
                if side not in ("long", "short"):
                    raise Retryable(f"position report for {symbol} has no side: {side!r}")
                return Position(side, contracts, float(p.get("entryPrice") or 0.0) or None)
        return FLAT

    async def find_order(self, client_order_id: str, symbol: str) -> Fill | None:
        """The order with this client id, or None when the exchange says there is none."""
        await self._markets()
        retry = Retrier(READ_BACKOFF, self._rng)
        for attempt in range(QUERY_ATTEMPTS):
            try:
                with translated():
                    order = await self._client.fetch_order(None, symbol, {"origClientOrderId": client_order_id})
                return _fill(order)
            except OrderNotFound:
                return None
            except NotServed as e:
                raise OutcomeUnknown(f"cannot tell whether order {client_order_id} exists: {e}") from e
            except Retryable as e:
                if attempt == QUERY_ATTEMPTS - 1:
                    raise OutcomeUnknown(f"cannot tell whether order {client_order_id} exists: {e}") from e
                await self._sleep(retry.next_delay())
        raise AssertionError("unreachable")

    async def place_market_order(
        self, client_order_id: str, symbol: str, side: str, amount: float, *, reduce_only: bool
    ) -> Fill:
        await self._markets()
        params: dict[str, Any] = {"newClientOrderId": client_order_id}
        if reduce_only:
            params["reduceOnly"] = True
        retry = Retrier(PLACE_BACKOFF, self._rng)
        for attempt in range(PLACE_ATTEMPTS):
            try:
                with translated():
                    order = await self._client.create_order(symbol, "market", side, amount, None, params)
                return _fill(order)
            except Retryable as e:
                # Unclear: the request may have reached the exchange. Ask before anything else.
                log.warning("order outcome unclear; querying it", extra={"client_order_id": client_order_id,
                                                                          "error": str(e)})
                await self._sleep(retry.next_delay())
                found = await self.find_order(client_order_id, symbol)
                if found is not None:
                    return found
                if attempt == PLACE_ATTEMPTS - 1:
                    raise OutcomeUnknown(f"order {client_order_id} was not placed after {PLACE_ATTEMPTS} tries") from e
                # The exchange definitely has no such order: sending the same id again is safe.
            except Rejected as e:
                if e.code == DUPLICATE_CLIENT_ORDER_ID or "-4116" in str(e):
                    found = await self.find_order(client_order_id, symbol)
                    if found is not None:
                        return found
                raise
        raise AssertionError("unreachable")

    async def place_protective(self, spec: ProtectiveSpec) -> ProtectiveFill:
        """`protective_orders.place` settles one unclear outcome by the client id; a few more tries
        of the same id ride out a burst, then the outcome is unknown (never a blind resend: each try
        asks first)."""
        await self._markets()
        retry = Retrier(PLACE_BACKOFF, self._rng)
        for attempt in range(PLACE_ATTEMPTS):
            try:
                return _protective(await protective_orders.place(self._client, spec))
            except Retryable as e:
                if attempt == PLACE_ATTEMPTS - 1:
                    raise OutcomeUnknown(f"protective order {spec.client_order_id} was not placed: {e}") from e
                await self._sleep(retry.next_delay())
            except Rejected:
                found = await self.find_protective(spec.client_order_id, spec.symbol)
                if found is not None and found.status in ("open", "filled"):
                    return found  # a duplicate id: ours, placed by an earlier try or owner
                raise
        raise AssertionError("unreachable")

    async def find_protective(self, client_order_id: str, symbol: str) -> ProtectiveFill | None:
        await self._markets()
        try:
            order = await self._retrying(lambda: protective_orders.find(self._client, symbol, client_order_id))
        except (Retryable, NotServed) as e:
            raise OutcomeUnknown(f"cannot tell whether protective order {client_order_id} exists: {e}") from e
        return None if order is None else _protective(order)

    async def open_protective(self, symbol: str) -> set[str]:
        await self._markets()
        try:
            orders = await self._retrying(lambda: protective_orders.open_orders(self._client, symbol))
        except (Retryable, NotServed) as e:
            raise OutcomeUnknown(f"cannot list the protective orders on {symbol}: {e}") from e
        return {o.client_order_id for o in orders}

    async def cancel_protective(self, client_order_id: str, symbol: str) -> bool:
        await self._markets()
        return await self._retrying(lambda: protective_orders.cancel(self._client, symbol, client_order_id))

    async def observe_candle(self, symbol: str, candle: CandleRange) -> None:
        return None  # the exchange triggers its orders on its own prices

    async def order_fee(self, exchange_order_id: str, symbol: str, filled: float) -> float | None:
        """The fee of a filled order from the exchange's trades: one request, no retries (the caller
        backs off). None while the trades listed do not yet add up to `filled`; raises ExchangeError
        (NotServed when the exchange has no such endpoint)."""
        await self._markets()
        await rate_limit.spare(self._client, USER_TRADES_WEIGHT)
        with translated():
            trades = await self._client.fetch_my_trades(symbol, None, 100, {"orderId": exchange_order_id})
        amount = 0.0
        total = 0.0
        for t in trades:
            if str(t.get("order")) != exchange_order_id:
                continue
            fee = t.get("fee")
            if not fee or fee.get("cost") is None:
                return None  # a trade without its commission says nothing about the fee
            amount += float(t.get("amount") or 0.0)
            total += float(fee["cost"])
        if amount < filled * (1 - 1e-9):
            return None
        return total


def _fill(order: dict[str, Any]) -> Fill:
    status = _STATUS.get(str(order.get("status")), "unknown")
    filled = float(order.get("filled") or 0.0)
    if status == "canceled" and filled > 0:
        status = "partially_filled"
    # Binance's order answer carries no commission, so this is usually None: the fee is unknown
    # until `order_fee` reads it, and recording the fill never waits for that.
    return Fill(str(order["id"]), status, filled, _opt_float(order.get("average")), _fee_of(order))


_PROTECTIVE_STATUS = {"closed": "filled", "open": "open", "canceled": "canceled", "rejected": "rejected",
                      "expired": "expired"}


def _protective(order: ProtectiveOrder) -> ProtectiveFill:
    status = _PROTECTIVE_STATUS.get(order.status, "unknown")
    if status == "canceled" and order.filled > 0:
        status = "partially_filled"
    # The fill is the market order the trigger placed: its trades (and fee) carry that order's id.
    return ProtectiveFill(order.actual_order_id or order.exchange_id, status, order.filled, order.average, None,
                          order.stop_price)


def _fee_of(order: dict[str, Any]) -> float | None:
    """The fee when the answer carries every part of it (ccxt sums an answer's fills), else None."""
    fees = order.get("fees") or ([order["fee"]] if order.get("fee") else [])
    if not fees or any(not f or f.get("cost") is None for f in fees):
        return None
    return sum(float(f["cost"]) for f in fees)


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


class AccountPool:
    """Exchange accounts by API key id, created on first use and closed with the runtime.

    Nothing is evicted, and nothing needs to be: key ids are never reused and a stored key's clear
    values never change (rotate-keys re-encrypts the same ones), so a cached account never signs
    with the wrong credentials; a deleted key leaves its bots keyless, so no bot looks it up again.
    What stays is one idle REST client per key that ran here, which the factory closes at shutdown.
    """

    def __init__(self, pool: asyncpg.Pool, box: SecretBox, factory: ExchangeClientFactory) -> None:
        self._pool = pool
        self._box = box
        self._factory = factory
        self._accounts: dict[int, LiveAccount] = {}
        self._lock = asyncio.Lock()

    async def get(self, api_key_id: int) -> LiveAccount:
        account = self._accounts.get(api_key_id)
        if account is not None:
            return account
        async with self._lock:
            account = self._accounts.get(api_key_id)
            if account is None:
                row = await self._pool.fetchrow(
                    "SELECT exchange, api_key_encrypted, secret_encrypted FROM api_keys WHERE id = $1", api_key_id
                )
                if row is None:
                    raise InvalidCredentials("the bot's API key was deleted")
                client = self._factory.private_client(
                    row["exchange"], self._box.decrypt(row["api_key_encrypted"]), self._box.decrypt(row["secret_encrypted"])
                )
                account = LiveAccount(client)
                self._accounts[api_key_id] = account
            return account
