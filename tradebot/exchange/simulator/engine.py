"""Matching engine and accounts: pure state transitions, no I/O, no clock (callers pass `now_ms`).

Money is `Decimal` throughout so that a hand-computed PnL or fee equals what the simulator reports, to
the last digit. The model is Binance USD-M in one-way position mode; the available balance is
accounted as with cross margin, while each position is liquidated on its own (isolated) margin,
see `liquidation` and `conditional`:

- a market order fills at once, in full, at the current price moved by `slippage_bps` against the
  taker (a buy pays more, a sell gets less), then put on the tick grid against the taker too (a buy
  rounded up, a sell down), so every fill price is one the exchange could print;
- a GTC limit order that is not marketable rests and fills at its own price once a later price
  update crosses it (a marketable one fills at once like a market order, never worse than its limit);
  IOC fills what is marketable at once and expires otherwise; FOK is refused (-5021) unless it fills
  at once, GTX (post-only) is refused (-5022) if it would; as the engine fills in full, IOC and FOK
  differ only in that an unfillable IOC is recorded (EXPIRED) and an unfillable FOK is not;
- every fill pays `fee_rate` × notional in USDT (one rate for maker and taker: simpler to reason about);
- a fill against the position realises PnL on the reduced part; the entry price is the
  quantity-weighted average of the fills that opened it; a fill larger than the position flips it and
  the remainder opens at the fill price;
- opening exposure needs initial margin = notional / leverage, plus the order's fee, out of the
  available balance (wallet + unrealised PnL − margin of positions − margin of resting orders),
  else -2019;
- conditional order types (STOP_MARKET, TAKE_PROFIT_MARKET, TRAILING_STOP_MARKET) are refused here
  with -4120, as Binance does: they go to the algo-order API (`conditional`), whose triggers come
  back as market orders through `execute_triggered`; a liquidation closes a position through
  `liquidate`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from decimal import Decimal, InvalidOperation

from tradebot.exchange.simulator import liquidation
from tradebot.exchange.simulator.accounts import (
    SETTLEMENT_ASSET,
    ZERO,
    Account,
    AssetSummary,
    AuditEntry,
    ExecutionReport,
    Fill,
    Order,
    OrderRequest,
    Position,
    Rejection,
)
from tradebot.exchange.simulator.markets import MarketSpec, decimal_str, round_down, round_up

# GTD (good till a date) is not simulated and stays refused with Binance's -1115.
TIME_IN_FORCE = ("GTC", "IOC", "FOK", "GTX")
# The conditional types served (by the algo-order API, see `conditional`); STOP and TAKE_PROFIT
# (their limit variants) are not simulated.
CONDITIONAL_TYPES = ("STOP_MARKET", "TAKE_PROFIT_MARKET", "TRAILING_STOP_MARKET")
CLIENT_ORDER_ID = re.compile(r"^[.A-Z:/a-z0-9_-]{1,36}$")
_CLIENT_ORDER_ID = CLIENT_ORDER_ID


class MatchingEngine:
    """All accounts, their orders and positions, and the last price of every market."""

    def __init__(
        self,
        markets: Mapping[str, MarketSpec],
        *,
        fee_rate: Decimal,
        slippage_bps: Decimal,
        reuse_closed_client_ids: bool = False,
    ) -> None:
        self.markets = dict(markets)
        self.fee_rate = fee_rate
        self.slippage_bps = slippage_bps
        self.reuse_closed_client_ids = reuse_closed_client_ids
        self.prices: dict[str, Decimal] = {s: m.initial_price for s, m in self.markets.items()}
        self.accounts: dict[str, Account] = {}
        self._next_order_id = 1_000_001
        self._next_trade_id = 5_000_001

    # ---- accounts -------------------------------------------------------------------------------

    def add_account(self, api_key: str, secret: str, balances: Mapping[str, Decimal], now_ms: int) -> Account:
        """Creates (or replaces) the account behind an API key; replacing starts it afresh."""
        account = Account(api_key=api_key, secret=secret, balances=dict(balances), update_time=now_ms)
        self.accounts[api_key] = account
        return account

    def set_leverage(self, account: Account, symbol: str | None, leverage: str | None, now_ms: int) -> int:
        market = self._market(symbol)
        value = _parse_int(leverage, "leverage")
        if not 1 <= value <= market.max_leverage:
            raise Rejection(-4028, f"Leverage {value} is not valid")
        account.leverage[market.symbol] = value
        account.update_time = now_ms
        return value

    def set_margin_type(self, account: Account, symbol: str | None, margin_type: str | None) -> None:
        market = self._market(symbol)
        wanted = (margin_type or "").upper()
        if wanted not in ("ISOLATED", "CROSSED"):
            raise Rejection(-1102, "Mandatory parameter 'marginType' was not sent, was empty/null, or malformed.")
        current = account.margin_type.get(market.symbol, "CROSSED")
        if current == wanted:
            raise Rejection(-4046, "No need to change margin type.")
        # The setting is remembered and reported only: the available balance is accounted as cross
        # margin and every position liquidated on its own margin, whichever type was asked for.
        account.margin_type[market.symbol] = wanted

    def summary(self, account: Account, asset: str = SETTLEMENT_ASSET) -> AssetSummary:
        wallet = account.balances.get(asset, ZERO)
        if asset != SETTLEMENT_ASSET:
            return AssetSummary(asset, wallet, ZERO, wallet, ZERO, ZERO, wallet)
        unrealized = sum((self.unrealized_pnl(p) for p in account.positions.values()), ZERO)
        position_im = sum((self.position_initial_margin(account, p) for p in account.positions.values()), ZERO)
        order_im = sum((self._order_margin(account, o) for o in account.open_orders()), ZERO)
        margin_balance = wallet + unrealized
        available = margin_balance - position_im - order_im
        return AssetSummary(asset, wallet, unrealized, margin_balance, position_im, order_im, available)

    def unrealized_pnl(self, position: Position) -> Decimal:
        if not position.amount:
            return ZERO
        return (self.prices[position.symbol] - position.entry_price) * position.amount

    def position_initial_margin(self, account: Account, position: Position) -> Decimal:
        notional = abs(position.amount) * self.prices[position.symbol]
        return notional / account.leverage_for(position.symbol)

    # ---- orders ---------------------------------------------------------------------------------

    def place_order(
        self, account: Account, request: OrderRequest, now_ms: int, *, received_ms: int | None = None
    ) -> tuple[Order, list[ExecutionReport]]:
        """Validates, records and (if it can) fills an order; every request lands in the audit trail.

        `now_ms` is the exchange's clock (order times); `received_ms`, the audit trail's, is the wall
        clock when the simulated clock runs fast, so tests can set it beside their own wall times."""
        audit_ms = now_ms if received_ms is None else received_ms
        try:
            order, reports = self._place(account, request, now_ms)
        except Rejection as rejection:
            account.audit.append(_audit(request, rejection.code, None, audit_ms))
            raise
        account.audit.append(_audit(request, None, order.order_id, audit_ms))
        return order, reports

    def _place(self, account: Account, req: OrderRequest, now_ms: int) -> tuple[Order, list[ExecutionReport]]:
        market = self._market(req.symbol)
        side = _require(req.side, "side").upper()
        if side not in ("BUY", "SELL"):
            raise Rejection(-1117, "Invalid side.")
        order_type = _require(req.type, "type").upper()
        if order_type in CONDITIONAL_TYPES:
            # Binance moved conditional orders to its algo-order API (POST /fapi/v1/algoOrder).
            raise Rejection(
                -4120, "Order type not supported for this endpoint. Please use the Algo Order API endpoints instead."
            )
        if order_type not in ("MARKET", "LIMIT"):
            raise Rejection(-1116, "Invalid orderType.")
        qty = parse_quantity(market, req.quantity)
        limit_price = ZERO
        time_in_force = "GTC"
        if order_type == "LIMIT":
            limit_price = parse_price(market, req.price, "price")
            time_in_force = _require(req.time_in_force, "timeInForce").upper()
            if time_in_force not in TIME_IN_FORCE:
                raise Rejection(-1115, "Invalid timeInForce.")
        client_order_id = req.client_order_id
        if client_order_id is not None:
            if not _CLIENT_ORDER_ID.match(client_order_id):
                raise Rejection(
                    -1100,
                    "Illegal characters found in parameter 'newClientOrderId'; "
                    "legal range is '^[\\.A-Z\\:/a-z0-9_-]{1,36}$'.",
                )
            # By default stricter than Binance, which refuses a reused id only while the first order is
            # open: an id that was ever accepted for this key is refused for good, so that a test proves
            # an order is never sent twice. `reuse_closed_client_ids` gives Binance's own rule, for tests
            # proving a caller does not lean on the rejection. Ids of rejected requests were never
            # stored and may always be reused.
            previous = account.order_ids_by_client_id.get(client_order_id)
            if previous is not None and (not self.reuse_closed_client_ids or account.orders[previous].is_open):
                raise Rejection(-4116, "ClientOrderId is duplicated.")

        position = account.position(market.symbol)
        signed = qty if side == "BUY" else -qty
        if req.reduce_only:
            if position.amount == 0 or (position.amount > 0) == (signed > 0):
                raise Rejection(-2022, "ReduceOnly Order is rejected.")
            # Binance clamps a reduce-only order to the position, before any margin check: the clamped
            # order only closes, so it never needs margin however large the request was.
            qty = min(qty, abs(position.amount))
            signed = qty if side == "BUY" else -qty

        current = self.prices[market.symbol]
        marketable = order_type == "MARKET" or (limit_price >= current if side == "BUY" else limit_price <= current)
        reference = current if marketable else limit_price
        if not req.reduce_only and qty * reference < market.min_notional:
            raise Rejection(
                -4164,
                f"Order's notional must be no smaller than {decimal_str(market.min_notional)} "
                "(unless you choose reduce only).",
            )
        opening_qty = _opening_qty(position.amount, signed)
        if order_type == "LIMIT" and time_in_force == "FOK" and not marketable:
            raise Rejection(
                -5021,
                "Due to the order could not be filled immediately, the FOK order has been rejected. "
                "The order will not be recorded in the order history",
            )
        if order_type == "LIMIT" and time_in_force == "GTX" and marketable:
            raise Rejection(
                -5022,
                "Due to the order could not be executed as maker, the Post Only order will be rejected. "
                "The order will not be recorded in the order history",
            )
        if opening_qty > 0:
            # Initial margin for the exposure it adds, plus the fee it will pay, must be available.
            required = opening_qty * reference / account.leverage_for(market.symbol)
            required += qty * reference * self.fee_rate
            if required > self.summary(account).available_balance:
                raise Rejection(-2019, "Margin is insufficient.")

        if client_order_id is None:
            client_order_id = f"sim-{self._next_order_id}"
        order = Order(
            order_id=self._next_order_id,
            client_order_id=client_order_id,
            symbol=market.symbol,
            side=side,
            type=order_type,
            time_in_force=time_in_force,
            orig_qty=qty,
            price=limit_price,
            reduce_only=req.reduce_only,
            time=now_ms,
            update_time=now_ms,
        )
        self._next_order_id += 1
        account.orders[order.order_id] = order
        account.order_ids_by_client_id[client_order_id] = order.order_id
        reports = [ExecutionReport(account.api_key, "NEW", replace(order), None)]
        if marketable:
            price = self._taker_price(market.symbol, side)
            if order_type == "LIMIT":
                price = min(price, limit_price) if side == "BUY" else max(price, limit_price)
            reports.append(self._fill(account, order, qty, price, maker=False, now_ms=now_ms))
        elif time_in_force == "IOC":
            order.status = "EXPIRED"
            reports.append(ExecutionReport(account.api_key, "EXPIRED", replace(order), None))
        return order, reports

    def _taker_price(self, symbol: str, side: str) -> Decimal:
        slip = self.slippage_bps / Decimal(10_000)
        current = self.prices[symbol]
        tick = self.markets[symbol].tick_size
        return round_up(current * (1 + slip), tick) if side == "BUY" else round_down(current * (1 - slip), tick)

    def _fill(
        self,
        account: Account,
        order: Order,
        qty: Decimal,
        price: Decimal,
        *,
        maker: bool,
        now_ms: int,
        fee_rate: Decimal | None = None,
    ) -> ExecutionReport:
        position = account.position(order.symbol)
        signed = qty if order.side == "BUY" else -qty
        realized = ZERO
        if position.amount == 0 or (position.amount > 0) == (signed > 0):
            total = abs(position.amount) + qty
            position.entry_price = (abs(position.amount) * position.entry_price + qty * price) / total
        else:
            closed = min(qty, abs(position.amount))
            direction = 1 if position.amount > 0 else -1
            realized = closed * (price - position.entry_price) * direction
            if qty > abs(position.amount):
                position.entry_price = price  # flipped: the remainder opened at this fill
        position.amount += signed
        if position.amount == 0:
            position.entry_price = ZERO
        position.update_time = now_ms

        commission = qty * price * (self.fee_rate if fee_rate is None else fee_rate)
        balance = account.balances.get(SETTLEMENT_ASSET, ZERO)
        account.balances[SETTLEMENT_ASSET] = balance + realized - commission
        account.update_time = now_ms

        order.executed_qty += qty
        order.cum_quote += qty * price
        order.status = "FILLED" if order.executed_qty >= order.orig_qty else "PARTIALLY_FILLED"
        order.update_time = now_ms
        fill = Fill(
            trade_id=self._next_trade_id,
            order_id=order.order_id,
            symbol=order.symbol,
            side=order.side,
            price=price,
            qty=qty,
            commission=commission,
            realized_pnl=realized,
            maker=maker,
            time=now_ms,
        )
        self._next_trade_id += 1
        account.trades.append(fill)
        return ExecutionReport(account.api_key, "TRADE", replace(order), fill)

    def find_order(self, account: Account, order_id: str | None, client_order_id: str | None) -> Order:
        if order_id is None and client_order_id is None:
            raise Rejection(-1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!")
        if order_id is not None:
            found = account.orders.get(_parse_int(order_id, "orderId"))
        else:
            assert client_order_id is not None
            oid = account.order_ids_by_client_id.get(client_order_id)
            found = account.orders.get(oid) if oid is not None else None
        if found is None:
            raise Rejection(-2013, "Order does not exist.")
        return found

    def cancel_all_open_orders(self, account: Account, symbol: str, now_ms: int) -> list[ExecutionReport]:
        reports: list[ExecutionReport] = []
        for order in sorted(account.open_orders(symbol), key=lambda o: o.order_id):
            order.status = "CANCELED"
            order.update_time = now_ms
            reports.append(ExecutionReport(account.api_key, "CANCELED", replace(order), None))
        return reports

    def cancel_order(
        self, account: Account, order_id: str | None, client_order_id: str | None, now_ms: int
    ) -> tuple[Order, list[ExecutionReport]]:
        try:
            order = self.find_order(account, order_id, client_order_id)
        except Rejection as rejection:
            if rejection.code == -2013:
                raise Rejection(-2011, "Unknown order sent.") from None
            raise
        if not order.is_open:
            raise Rejection(-2011, "Unknown order sent.")
        order.status = "CANCELED"
        order.update_time = now_ms
        return order, [ExecutionReport(account.api_key, "CANCELED", replace(order), None)]

    # ---- prices ---------------------------------------------------------------------------------

    def on_price(
        self, symbol: str, last: Decimal, now_ms: int, low: Decimal | None = None, high: Decimal | None = None
    ) -> list[ExecutionReport]:
        """A new price (and the range it moved through): resting limit orders it crosses fill."""
        self.prices[symbol] = last
        low = last if low is None else min(low, last)
        high = last if high is None else max(high, last)
        reports: list[ExecutionReport] = []
        for account in self.accounts.values():
            # Oldest first, like a price-time queue on one price level.
            for order in sorted(account.open_orders(symbol), key=lambda o: o.order_id):
                crossed = low <= order.price if order.side == "BUY" else high >= order.price
                if not crossed:
                    continue
                qty = order.orig_qty - order.executed_qty
                if order.reduce_only:
                    position = account.position(symbol)
                    reduces = position.amount != 0 and (position.amount > 0) != (order.side == "BUY")
                    if not reduces:
                        order.status = "EXPIRED"
                        order.update_time = now_ms
                        reports.append(ExecutionReport(account.api_key, "EXPIRED", replace(order), None))
                        continue
                    qty = min(qty, abs(position.amount))
                reports.append(self._fill(account, order, qty, order.price, maker=True, now_ms=now_ms))
        return reports

    # ---- triggered orders and liquidations --------------------------------------------------------

    def execute_triggered(
        self,
        account: Account,
        *,
        symbol: str,
        side: str,
        qty: Decimal | None,
        level: Decimal,
        reduce_only: bool,
        client_order_id: str,
        orig_type: str,
        stop_price: Decimal,
        now_ms: int,
    ) -> list[ExecutionReport]:
        """The market order a triggered conditional order becomes, filled at `level` moved by the
        slippage against the taker and put on the tick grid (a trigger is a market order sent when the
        price reached `level`). `qty` None closes the whole position (closePosition).

        Raises Rejection (-2022 reduce-only, -2019 margin) when the matching engine would refuse it."""
        market = self.markets[symbol]
        position = account.position(symbol)
        signed_side = 1 if side == "BUY" else -1
        reduces = position.amount != 0 and (position.amount > 0) != (signed_side > 0)
        if qty is None or reduce_only:
            if not reduces:
                raise Rejection(-2022, "ReduceOnly Order is rejected.")
            qty = abs(position.amount) if qty is None else min(qty, abs(position.amount))
        slip = self.slippage_bps / Decimal(10_000)
        tick = market.tick_size
        price = round_up(level * (1 + slip), tick) if side == "BUY" else round_down(level * (1 - slip), tick)
        price = max(price, tick)
        opening_qty = _opening_qty(position.amount, qty * signed_side)
        if opening_qty > 0:
            required = opening_qty * price / account.leverage_for(symbol) + qty * price * self.fee_rate
            if required > self.summary(account).available_balance:
                raise Rejection(-2019, "Margin is insufficient.")
        order = self._new_order(
            account, symbol, side, "MARKET", qty, reduce_only or qty is None, client_order_id, now_ms,
            orig_type=orig_type, stop_price=stop_price,
        )  # fmt: skip
        return [
            ExecutionReport(account.api_key, "NEW", replace(order), None),
            self._fill(account, order, qty, price, maker=False, now_ms=now_ms),
        ]

    def liquidation_due(self, account: Account, symbol: str, low: Decimal, high: Decimal) -> bool:
        """Did marks between `low` and `high` reach the liquidation price of the account's position?"""
        position = account.positions.get(symbol)
        if position is None or not position.amount:
            return False
        level = self.liquidation_price(account, position)
        return liquidation.crossed(position.amount, level, low, high)

    def liquidation_price(self, account: Account, position: Position) -> Decimal:
        return liquidation.liquidation_price(
            self.markets[position.symbol], position.amount, position.entry_price, account.leverage_for(position.symbol)
        )

    def liquidate(self, account: Account, symbol: str, now_ms: int) -> list[ExecutionReport]:
        """Closes the position at its bankruptcy price, as Binance's liquidation engine does: open
        orders of the symbol are cancelled first, the order's client id starts with "autoclose-" and
        its type is LIQUIDATION; the position's margin is lost, no fee is added on top."""
        reports = self.cancel_all_open_orders(account, symbol, now_ms)
        position = account.position(symbol)
        if not position.amount:
            return reports
        market = self.markets[symbol]
        price = liquidation.bankruptcy_price(
            market, position.amount, position.entry_price, account.leverage_for(symbol)
        )
        side = "SELL" if position.amount > 0 else "BUY"
        qty = abs(position.amount)
        client_order_id = f"autoclose-{now_ms}-{self._next_order_id}"
        order = self._new_order(account, symbol, side, "LIQUIDATION", qty, True, client_order_id, now_ms)
        order.time_in_force = "IOC"
        reports.append(ExecutionReport(account.api_key, "NEW", replace(order), None))
        reports.append(self._fill(account, order, qty, price, maker=False, now_ms=now_ms, fee_rate=ZERO))
        return reports

    def _new_order(
        self,
        account: Account,
        symbol: str,
        side: str,
        order_type: str,
        qty: Decimal,
        reduce_only: bool,
        client_order_id: str,
        now_ms: int,
        *,
        orig_type: str | None = None,
        stop_price: Decimal = ZERO,
    ) -> Order:
        order = Order(
            order_id=self._next_order_id,
            client_order_id=client_order_id,
            symbol=symbol,
            side=side,
            type=order_type,
            time_in_force="GTC",
            orig_qty=qty,
            price=ZERO,
            reduce_only=reduce_only,
            time=now_ms,
            update_time=now_ms,
            orig_type=orig_type,
            stop_price=stop_price,
        )
        self._next_order_id += 1
        account.orders[order.order_id] = order
        # A triggered order carries its conditional order's client id; it never replaces the entry of an
        # earlier regular order that had the same id.
        account.order_ids_by_client_id.setdefault(client_order_id, order.order_id)
        return order

    # ---- helpers --------------------------------------------------------------------------------

    def market(self, symbol: str | None) -> MarketSpec:
        """The market named by a request's `symbol` (-1102 missing, -1121 unknown)."""
        return self._market(symbol)

    def _market(self, symbol: str | None) -> MarketSpec:
        market = self.markets.get(_require(symbol, "symbol").upper())
        if market is None:
            raise Rejection(-1121, "Invalid symbol.")
        return market

    def _order_margin(self, account: Account, order: Order) -> Decimal:
        if order.reduce_only:
            return ZERO
        remaining = order.orig_qty - order.executed_qty
        signed = remaining if order.side == "BUY" else -remaining
        opening = _opening_qty(account.position(order.symbol).amount, signed)
        return opening * order.price / account.leverage_for(order.symbol)


def _opening_qty(position_amount: Decimal, signed_qty: Decimal) -> Decimal:
    """The part of an order that adds exposure (all of it, or what is left after closing)."""
    if position_amount == 0 or (position_amount > 0) == (signed_qty > 0):
        return abs(signed_qty)
    return max(ZERO, abs(signed_qty) - abs(position_amount))


def _audit(req: OrderRequest, code: int | None, order_id: int | None, now_ms: int) -> AuditEntry:
    try:
        amount = Decimal(req.quantity) if req.quantity is not None else None
    except InvalidOperation:
        amount = None
    if amount is not None and not amount.is_finite():
        amount = None
    return AuditEntry(
        client_order_id=req.client_order_id,
        symbol=req.symbol,
        side=req.side.upper() if req.side else None,
        type=req.type.upper() if req.type else None,
        amount=amount,
        reject_code=code,
        order_id=order_id,
        received_at=now_ms,
    )


def parse_quantity(market: MarketSpec, value: str | None) -> Decimal:
    """An order quantity checked against the market's lot filters, with Binance's codes."""
    qty = _parse_decimal(_require(value, "quantity"), "quantity")
    if qty <= 0:
        raise Rejection(-4003, "Quantity less than or equal to zero.")
    if qty % market.step_size:
        raise Rejection(-1111, "Precision is over the maximum defined for this asset.")
    if qty < market.min_qty:
        raise Rejection(-4003, f"Quantity less than minimum quantity {market.min_qty}.")
    if qty > market.max_qty:
        raise Rejection(-4005, "Quantity greater than max quantity.")
    return qty


def parse_price(market: MarketSpec, value: str | None, name: str) -> Decimal:
    """A price on the market's tick grid, with Binance's codes."""
    price = _parse_decimal(_require(value, name), name)
    if price <= 0:
        raise Rejection(-4001, "Price less than 0.")
    if price % market.tick_size:
        raise Rejection(-1111, "Precision is over the maximum defined for this asset.")
    return price


def require(value: str | None, name: str) -> str:
    return _require(value, name)


def _require(value: str | None, name: str) -> str:
    if value is None or value == "":
        raise Rejection(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")
    return value


def _parse_decimal(value: str, name: str) -> Decimal:
    try:
        parsed = Decimal(value)
    except InvalidOperation:
        parsed = Decimal("NaN")
    if not parsed.is_finite():
        raise Rejection(-1100, f"Illegal characters found in parameter '{name}'.")
    return parsed


def _parse_int(value: str | None, name: str) -> int:
    text = _require(value, name)
    try:
        return int(text)
    except ValueError:
        raise Rejection(
            -1100, f"Illegal characters found in parameter '{name}'; legal range is '^[0-9]{{1,20}}$'."
        ) from None
