"""Conditional orders (Binance's algo-order service) and liquidations: what happens as a price moves.

Pure state transitions like the matching engine's (no I/O, no clock: callers pass `now_ms`).

Orders: STOP_MARKET, TAKE_PROFIT_MARKET and TRAILING_STOP_MARKET, placed at POST /fapi/v1/algoOrder
(`algoType=CONDITIONAL`, `clientAlgoId`, `triggerPrice`; a trailing stop takes `callbackRate` in
percent, 0.1 to 10, and an optional `activatePrice`), with `reduceOnly` or `closePosition`. They
trigger on the contract price (the simulator's last price): a SELL stop when the price falls to
its trigger, a BUY stop when it rises to it, take profits the other way round; a trailing SELL
stop follows the best (highest) price since it was activated and triggers `callbackRate` % below
it. Triggered, an order becomes a MARKET order with the same client id (`ot` keeps its type, `sp`
its trigger price) that fills at once at the trigger price moved by the slippage against the
taker, or, when the price jumped past the trigger between trades (a pushed candle whose open lies
beyond it), at the price it jumped to, as the backtest does. A reduce-only order finding no
position to reduce is REJECTED ("Reduce Only reject"). Events follow Binance: ALGO_UPDATE on every
status change (NEW, TRIGGERING, TRIGGERED, FINISHED, CANCELED, REJECTED), ORDER_TRADE_UPDATE and
ACCOUNT_UPDATE for the market order it became.

The path of a move: the random walk moves continuously from one price to the next; a pushed candle
jumps from the last price to its open, then (having no finer data) moves to its adverse extreme
for the account's position first (the low for a long or flat account, the high for a short), then
to the other extreme, then to its close: the conservative order the backtest assumes too. Orders
and the liquidation are met in the order the path reaches their levels; at one level an order
fills before the liquidation.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from decimal import Decimal
from itertools import pairwise

from tradebot.exchange.simulator.accounts import (
    ZERO,
    Account,
    AlgoOrder,
    AlgoReport,
    AlgoRequest,
    AuditEntry,
    ExecutionReport,
    Rejection,
)
from tradebot.exchange.simulator.engine import (
    CLIENT_ORDER_ID,
    CONDITIONAL_TYPES,
    MatchingEngine,
    parse_price,
    parse_quantity,
    require,
)

Report = ExecutionReport | AlgoReport
MAX_OPEN_ALGO_ORDERS = 10  # per account and symbol: Binance's MAX_NUM_ALGO_ORDERS filter
MIN_CALLBACK_RATE = Decimal("0.1")
MAX_CALLBACK_RATE = Decimal("10")
_TAKE_PROFIT = "TAKE_PROFIT_MARKET"
_TRAILING = "TRAILING_STOP_MARKET"


@dataclass(frozen=True, slots=True)
class Segment:
    """One monotone leg of a price move; `jump` when no trade happened in between."""

    start: Decimal
    end: Decimal
    jump: bool = False

    @property
    def down(self) -> bool:
        return self.end < self.start


@dataclass(frozen=True, slots=True)
class Move:
    """A price move: a continuous step (random walk) or a pushed candle."""

    start: Decimal
    close: Decimal
    open: Decimal | None = None  # set for a candle, with low and high
    low: Decimal | None = None
    high: Decimal | None = None

    def segments(self, adverse_down: bool) -> list[Segment]:
        if self.open is None or self.low is None or self.high is None:
            return [Segment(self.start, self.close)]
        first, second = (self.low, self.high) if adverse_down else (self.high, self.low)
        points = [self.open, first, second, self.close]
        legs = [Segment(self.start, self.open, jump=True)]
        legs += [Segment(a, b) for a, b in pairwise(points)]
        return [leg for leg in legs if leg.start != leg.end]


@dataclass(frozen=True, slots=True)
class _Event:
    hit: Decimal  # where on the segment the level is met (its start when already beyond it)
    rank: int  # at one price: stops, then take profits, then the liquidation
    algo: AlgoOrder | None  # None: the liquidation


class AlgoService:
    """Every account's conditional orders, beside the matching engine that fills what they become."""

    def __init__(self, engine: MatchingEngine) -> None:
        self.engine = engine
        self._next_algo_id = 3_000_001

    # ---- requests ---------------------------------------------------------------------------------

    def place(
        self, account: Account, req: AlgoRequest, now_ms: int, *, received_ms: int | None = None
    ) -> tuple[AlgoOrder, list[Report]]:
        """Validates and records a conditional order; every request lands in the audit trail."""
        audit_ms = now_ms if received_ms is None else received_ms
        try:
            algo = self._validate(account, req, now_ms)
        except Rejection as rejection:
            account.audit.append(_audit(req, rejection.code, None, audit_ms))
            raise
        account.algo_orders[algo.algo_id] = algo
        account.algo_ids_by_client_id[algo.client_algo_id] = algo.algo_id
        account.audit.append(_audit(req, None, algo.algo_id, audit_ms))
        return algo, [AlgoReport(account.api_key, replace(algo))]

    def _validate(self, account: Account, req: AlgoRequest, now_ms: int) -> AlgoOrder:
        algo_type = require(req.algo_type, "algoType").upper()
        if algo_type != "CONDITIONAL":
            raise Rejection(-1100, "Illegal characters found in parameter 'algoType'; legal range is 'CONDITIONAL'.")
        market = self.engine.market(req.symbol)
        side = require(req.side, "side").upper()
        if side not in ("BUY", "SELL"):
            raise Rejection(-1117, "Invalid side.")
        order_type = require(req.type, "type").upper()
        if order_type not in CONDITIONAL_TYPES:
            raise Rejection(-1116, "Invalid orderType.")
        close_position = _flag(req.close_position, "closePosition")
        reduce_only = _flag(req.reduce_only, "reduceOnly")
        if close_position:
            if order_type == _TRAILING:
                raise Rejection(-1106, "Parameter 'closePosition' sent when not required.")
            if req.quantity:
                raise Rejection(-1106, "Parameter 'quantity' sent when not required.")
            if reduce_only:
                raise Rejection(-1106, "Parameter 'reduceOnly' sent when not required.")
            qty = ZERO
        else:
            qty = parse_quantity(market, req.quantity)
        working_type = (req.working_type or "CONTRACT_PRICE").upper()
        if working_type not in ("CONTRACT_PRICE", "MARK_PRICE"):
            raise Rejection(-1100, "Illegal characters found in parameter 'workingType'.")
        time_in_force = (req.time_in_force or "GTC").upper()
        if time_in_force not in ("GTC", "IOC", "FOK"):
            raise Rejection(-1115, "Invalid timeInForce.")
        client_algo_id = req.client_algo_id
        if client_algo_id is not None:
            if not CLIENT_ORDER_ID.match(client_algo_id):
                raise Rejection(
                    -1100,
                    "Illegal characters found in parameter 'clientAlgoId'; "
                    "legal range is '^[\\.A-Z\\:/a-z0-9_-]{1,36}$'.",
                )
            # Stricter than Binance in the same way as regular orders (see the engine): an id once
            # accepted is refused for good, unless the simulator runs with Binance's own rule.
            previous = account.algo_ids_by_client_id.get(client_algo_id)
            if previous is not None and (
                not self.engine.reuse_closed_client_ids or account.algo_orders[previous].is_open
            ):
                raise Rejection(-4116, "ClientOrderId is duplicated.")
        if sum(1 for _ in account.open_algo_orders(market.symbol)) >= MAX_OPEN_ALGO_ORDERS:
            # A bot that re-places protection without cancelling the old orders meets this limit.
            raise Rejection(-4045, "Reach max stop order limit.")
        current = self.engine.prices[market.symbol]
        trigger = activate = callback = ZERO
        if order_type == _TRAILING:
            callback = _decimal(require(req.callback_rate, "callbackRate"), "callbackRate")
            if not MIN_CALLBACK_RATE <= callback <= MAX_CALLBACK_RATE:
                raise Rejection(-1130, "Invalid data sent for a parameter: callbackRate must be from 0.1 to 10.")
            if req.activate_price:
                activate = parse_price(market, req.activate_price, "activatePrice")
                if (activate <= current) if side == "SELL" else (activate >= current):
                    raise Rejection(-2021, "Order would immediately trigger.")
        else:
            trigger = parse_price(market, req.trigger_price, "triggerPrice")
            if _triggers_down(side, order_type):
                immediately = current <= trigger
            else:
                immediately = current >= trigger
            if immediately:
                raise Rejection(-2021, "Order would immediately trigger.")
        algo_id = self._next_algo_id
        self._next_algo_id += 1
        algo = AlgoOrder(
            algo_id=algo_id,
            client_algo_id=client_algo_id or f"sim-algo-{algo_id}",
            symbol=market.symbol,
            side=side,
            order_type=order_type,
            quantity=qty,
            trigger_price=trigger,
            reduce_only=reduce_only,
            close_position=close_position,
            time_in_force=time_in_force,
            working_type=working_type,
            create_time=now_ms,
            update_time=now_ms,
            activate_price=activate,
            callback_rate=callback,
        )
        if order_type == _TRAILING and not activate:
            # Without an activation price a trailing stop trails from the price it was placed at.
            algo.activated = True
            algo.best_price = current
        return algo

    def find(self, account: Account, algo_id: str | None, client_algo_id: str | None) -> AlgoOrder:
        if not algo_id and not client_algo_id:
            raise Rejection(-1102, "Param 'clientAlgoId' or 'algoId' must be sent, but both were empty/null!")
        found: AlgoOrder | None
        if algo_id:
            try:
                found = account.algo_orders.get(int(algo_id))
            except ValueError:
                raise Rejection(
                    -1100, "Illegal characters found in parameter 'algoId'; legal range is '^[0-9]{1,20}$'."
                ) from None
        else:
            assert client_algo_id is not None
            key = account.algo_ids_by_client_id.get(client_algo_id)
            found = account.algo_orders.get(key) if key is not None else None
        if found is None:
            raise Rejection(-2013, "Order does not exist.")
        return found

    def cancel(
        self, account: Account, algo_id: str | None, client_algo_id: str | None, now_ms: int
    ) -> tuple[AlgoOrder, list[Report]]:
        try:
            algo = self.find(account, algo_id, client_algo_id)
        except Rejection as rejection:
            if rejection.code == -2013:
                raise Rejection(-2011, "Unknown order sent.") from None
            raise
        if not algo.is_open:
            raise Rejection(-2011, "Unknown order sent.")
        return algo, [self._set_status(account, algo, "CANCELED", now_ms)]

    def cancel_all(self, account: Account, symbol: str, now_ms: int) -> list[Report]:
        return [
            self._set_status(account, algo, "CANCELED", now_ms)
            for algo in sorted(account.open_algo_orders(symbol), key=lambda a: a.algo_id)
        ]

    # ---- prices -----------------------------------------------------------------------------------

    def on_move(self, symbol: str, move: Move, now_ms: int) -> list[Report]:
        """Triggers the conditional orders and liquidations the move reaches, account by account."""
        reports: list[Report] = []
        for account in self.engine.accounts.values():
            position = account.positions.get(symbol)
            has_position = position is not None and position.amount != 0
            if not has_position and not any(True for _ in account.open_algo_orders(symbol)):
                continue
            adverse_down = position is None or position.amount >= 0
            for segment in move.segments(adverse_down):
                reports += self._walk(account, symbol, segment, now_ms)
                self._trail(account, symbol, segment)
        return reports

    def _walk(self, account: Account, symbol: str, segment: Segment, now_ms: int) -> list[Report]:
        reports: list[Report] = []
        start = segment.start
        while True:
            leg = Segment(start, segment.end, segment.jump)
            events = list(self._events(account, symbol, leg))
            if not events:
                return reports
            # The first level the price meets on this leg; at one price, the lowest rank first.
            first = (
                min(events, key=lambda e: (-e.hit, e.rank, _id(e)))
                if leg.down
                else min(events, key=lambda e: (e.hit, e.rank, _id(e)))
            )
            fill_level = leg.end if leg.jump else first.hit
            if first.algo is None:
                reports += self._liquidate(account, symbol, now_ms)
            else:
                reports += self._trigger(account, first.algo, fill_level, now_ms)
            if not leg.jump:
                start = first.hit

    def _events(self, account: Account, symbol: str, leg: Segment) -> Iterator[_Event]:
        low, high = min(leg.start, leg.end), max(leg.start, leg.end)
        for algo in account.open_algo_orders(symbol):
            level = algo.trailing_level if algo.order_type == _TRAILING else algo.trigger_price
            if not level:
                continue
            down = _triggers_down(algo.side, algo.order_type)
            if down != leg.down:
                continue
            if (down and low <= level) or (not down and high >= level):
                hit = min(level, leg.start) if down else max(level, leg.start)
                yield _Event(hit, 1 if algo.order_type == _TAKE_PROFIT else 0, algo)
        position = account.positions.get(symbol)
        if position is not None and position.amount and (position.amount > 0) == leg.down:
            if self.engine.liquidation_due(account, symbol, low, high):
                level = self.engine.liquidation_price(account, position)
                hit = min(level, leg.start) if leg.down else max(level, leg.start)
                yield _Event(hit, 2, None)

    def _trail(self, account: Account, symbol: str, segment: Segment) -> None:
        """Trailing stops follow the best price the leg reached (and activate when it reaches theirs)."""
        top, bottom = max(segment.start, segment.end), min(segment.start, segment.end)
        for algo in account.open_algo_orders(symbol):
            if algo.order_type != _TRAILING:
                continue
            selling = algo.side == "SELL"
            best = top if selling else bottom
            if not algo.activated:
                if (top >= algo.activate_price) if selling else (bottom <= algo.activate_price):
                    algo.activated = True
                    algo.best_price = best
                continue
            algo.best_price = max(algo.best_price, best) if selling else min(algo.best_price, best)

    def _trigger(self, account: Account, algo: AlgoOrder, level: Decimal, now_ms: int) -> list[Report]:
        stop_price = algo.trigger_price or algo.trailing_level
        reports: list[Report] = [self._set_status(account, algo, "TRIGGERING", now_ms)]
        algo.trigger_time = now_ms
        try:
            fills = self.engine.execute_triggered(
                account,
                symbol=algo.symbol,
                side=algo.side,
                qty=None if algo.close_position else algo.quantity,
                level=level,
                reduce_only=algo.reduce_only,
                client_order_id=algo.client_algo_id,
                orig_type=algo.order_type,
                stop_price=stop_price,
                now_ms=now_ms,
            )
        except Rejection as rejection:
            algo.reject_reason = "Reduce Only reject" if rejection.code == -2022 else rejection.msg
            reports.append(self._set_status(account, algo, "REJECTED", now_ms))
            return reports
        order = fills[-1].order
        algo.actual_order_id = order.order_id
        reports.append(self._set_status(account, algo, "TRIGGERED", now_ms))
        reports += fills
        algo.executed_qty = order.executed_qty
        algo.avg_price = order.avg_price
        reports.append(self._set_status(account, algo, "FINISHED", now_ms))
        return reports

    def _liquidate(self, account: Account, symbol: str, now_ms: int) -> list[Report]:
        reports: list[Report] = list(self.cancel_all(account, symbol, now_ms))
        reports += self.engine.liquidate(account, symbol, now_ms)
        return reports

    def _set_status(self, account: Account, algo: AlgoOrder, status: str, now_ms: int) -> AlgoReport:
        algo.status = status
        algo.update_time = now_ms
        return AlgoReport(account.api_key, replace(algo))


def _triggers_down(side: str, order_type: str) -> bool:
    """Does the order trigger when the price falls to its level (else when it rises)?"""
    selling = side == "SELL"
    return not selling if order_type == _TAKE_PROFIT else selling


def _id(event: _Event) -> int:
    return event.algo.algo_id if event.algo is not None else 0


def _flag(value: str | None, name: str) -> bool:
    if value is None or value == "":
        return False
    lowered = value.lower()
    if lowered not in ("true", "false"):
        raise Rejection(-1100, f"Illegal characters found in parameter '{name}'; legal range is 'true', 'false'.")
    return lowered == "true"


def _decimal(value: str, name: str) -> Decimal:
    try:
        parsed = Decimal(value)
    except ArithmeticError:
        parsed = Decimal("NaN")
    if not parsed.is_finite():
        raise Rejection(-1100, f"Illegal characters found in parameter '{name}'.")
    return parsed


def _audit(req: AlgoRequest, code: int | None, algo_id: int | None, now_ms: int) -> AuditEntry:
    def number(text: str | None) -> Decimal | None:
        try:
            value = Decimal(text) if text else None
        except ArithmeticError:
            return None
        return value if value is not None and value.is_finite() else None

    return AuditEntry(
        client_order_id=req.client_algo_id,
        symbol=req.symbol,
        side=req.side.upper() if req.side else None,
        type=req.type.upper() if req.type else None,
        amount=number(req.quantity),
        reject_code=code,
        order_id=algo_id,
        received_at=now_ms,
        stop_price=number(req.trigger_price),
        algo=True,
    )
