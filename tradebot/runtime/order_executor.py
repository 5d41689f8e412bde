"""The order executor: one bot's orders under one fencing token, record → send → settle.

  record  the order row (deterministic client order id, fence token, intent) is written, fenced,
          before anything is sent; a row that exists already is a replayed decision: it is
          settled by asking the account, never sent again;
  send    only while the lease is valid, exactly once per row (crash points `before_send` and
          `after_send` let tests kill the process on either side of it);
  settle  the fill, its trade, the new position and today's tally in one fenced transaction; an
          unclear outcome is resolved by the account querying the client id (never by resending)
          and, if still unclear, the row is marked unknown and the bot stops until reconciliation
          tells; a rejection is recorded with the exchange's reason.

A fee the account did not report with a fill is stored as unknown (NULL) at once and looked up by
the bot's fee collector between messages, so a reversal's second leg never waits on a fee. The
executor talks to an `Account` (live or paper) and cannot tell which (DESIGN.md invariant 2).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import asyncpg

from tradebot.bots.views import trade_view
from tradebot.exchange.errors import ExchangeError, InsufficientBalance, InvalidCredentials, Rejected
from tradebot.exchange.protective_orders import (
    ProtectiveKind,
    ProtectiveSpec,
    protective_client_id,
    protective_prices,
)
from tradebot.runtime import bot_store
from tradebot.runtime.account import Account, CandleRange, Fill, OutcomeUnknown, ProtectiveFill
from tradebot.runtime.bot_store import FencedOut, NewOrder, NewProtectiveOrder
from tradebot.runtime.client_order_id import Leg, client_order_id
from tradebot.runtime.faults import NO_CRASHES, CrashPoints
from tradebot.runtime.fee_collector import FeeCollector
from tradebot.runtime.mailbox import FeeFound, HelperFailed, Mailbox
from tradebot.runtime.metrics import RuntimeCounters
from tradebot.runtime.order_decisions import Book
from tradebot.runtime.positions import apply_fill, describe, differs
from tradebot.runtime.tasks import cancel_and_wait

log = logging.getLogger(__name__)

# How long an order already sent may take to settle after its bot was cancelled (a hand-over that
# timed out): far above an exchange's usual answer time, below the 5 s a cancelled bot is waited for.
IN_FLIGHT_GRACE_S = 3.0

Publish = Callable[[str, dict[str, Any]], Awaitable[None]]
# The actor's strategy fields, read only when a fill is written with them (reading them supersedes
# the batch writer's pending snapshot).
StateFields = Callable[[], Mapping[str, Any]]


class ReconcileFailed(Exception):
    """An order left pending cannot be settled now; the bot must not trade until it can."""


class ProtectionUnconfirmed(Exception):
    """A position's protective orders cannot be confirmed on the account: no new entries until they are."""


# orders.type of each protective kind, and back.
ORDER_TYPES = {
    ProtectiveKind.STOP_LOSS: "stop_market",
    ProtectiveKind.TAKE_PROFIT: "take_profit_market",
    ProtectiveKind.TRAILING_STOP: "trailing_stop_market",
}
KINDS = {v: k for k, v in ORDER_TYPES.items()}
# An open protective order at this relative distance from the wanted level is the wanted one (the
# exchange rounds a trigger to its tick: 1e-6 of a price on BTC, 5e-6 on ETH).
LEVEL_TOLERANCE = 1e-4


@dataclass(frozen=True, slots=True)
class Protection:
    """The protective orders the bot's settings ask of every position (percent; None: none)."""

    stop_loss_pct: float | None = None
    take_profit_pct: float | None = None
    trailing_stop_pct: float | None = None

    @property
    def wanted(self) -> bool:
        return bool(self.stop_loss_pct or self.take_profit_pct or self.trailing_stop_pct)

    def orders(self, side: str, entry: float) -> list[tuple[ProtectiveKind, float | None, float | None]]:
        """(kind, stop price, callback rate) of each order a position of `side` at `entry` needs."""
        stop, take = protective_prices(side, entry, self.stop_loss_pct, self.take_profit_pct)
        out: list[tuple[ProtectiveKind, float | None, float | None]] = []
        if stop is not None:
            out.append((ProtectiveKind.STOP_LOSS, stop, None))
        if take is not None:
            out.append((ProtectiveKind.TAKE_PROFIT, take, None))
        if self.trailing_stop_pct:
            out.append((ProtectiveKind.TRAILING_STOP, None, self.trailing_stop_pct))
        return out


@dataclass(frozen=True, slots=True)
class OrderRequest:
    symbol: str
    side: str  # "buy" | "sell"
    amount: float
    reduce_only: bool
    leg: Leg
    seq: int  # the signal this order serves: with bot, fence and leg it makes the client order id
    intent: str
    candle_time: int | None = None  # open time (ms) of the candle whose close decided it
    reason: str = "signal"  # the trade's reason (CONTRACT.md), recorded with the order
    command_id: int | None = None  # the manual command it carries out (seq is then that command's id)


@dataclass(frozen=True, slots=True)
class BotRef:
    bot_id: int
    user_id: int
    fence: int
    lease_valid: Callable[[], bool]


class OrderExecutor:
    # One per running bot, thousands per replica: slots keep an idle bot small.
    __slots__ = ("_bot", "_counters", "_crash_points", "_fee_days", "_fee_task", "_fees", "_fees_unknown",
                 "_holds_protection", "_pool", "_publish", "account", "unprotected")

    def __init__(
        self,
        pool: asyncpg.Pool,
        account: Account,
        bot: BotRef,
        publish: Publish,
        *,
        crash_points: CrashPoints = NO_CRASHES,
        counters: RuntimeCounters | None = None,
    ) -> None:
        self.account = account
        self._pool = pool
        self._bot = bot
        self._publish = publish
        self._crash_points = crash_points
        self._counters = counters if counters is not None else RuntimeCounters()
        self._fee_task: asyncio.Task[None] | None = None
        self._fees: FeeCollector | None = None
        self._fees_unknown = False  # a fill with an unknown fee was recorded since the last wake
        self._fee_days: dict[int, date | None] = {}  # trade id -> the day its PnL was counted in
        # Why the position's protection is not confirmed on the account (None: it is, or none is
        # needed): the bot takes no new entries while this is set (fail closed).
        self.unprotected: str | None = None
        # Whether the account may hold protective orders of this bot (only this executor writes its
        # rows, fenced): False spares a flat or unprotected bot the query at every candle.
        self._holds_protection = True

    # ------------------------------------------------------------------ orders

    async def place(self, request: OrderRequest, book: Book, state: StateFields) -> Book:
        """Record, send once, settle; the book after the fill (`state` is written with it)."""
        bot = self._bot
        cid = client_order_id(bot.bot_id, bot.fence, request.seq, request.leg)
        order = NewOrder(bot.bot_id, bot.user_id, cid, request.symbol, request.side, request.amount,
                         request.reduce_only, request.intent, request.seq, bot.fence, request.candle_time,
                         request.reason, request.command_id)
        async with self._fenced() as conn:
            order_id = await bot_store.insert_order(conn, order)
        if order_id is None:
            # This exact order was recorded before (a replayed decision): settle it, never resend.
            existing = await bot_store.order_by_client_id(self._pool, cid)
            assert existing is not None
            fill = await self.account.find_order(cid, request.symbol)
            if fill is not None and fill.filled > 0:
                return await self._record_fill(existing["id"], cid, request.symbol, request.side, fill,
                                               closing=request.reduce_only, book=book, state=state,
                                               reason=request.reason)
            return book
        if not bot.lease_valid():
            # The row is written but nothing was sent; the next owner expires it after asking the account.
            raise FencedOut(f"bot {bot.bot_id}: lease lapsed before sending {cid}")
        self._crash_points.hit("before_send")
        self._counters.orders_sent += 1
        settling = asyncio.ensure_future(self._send_and_settle(order_id, cid, request, book, state))
        try:
            return await asyncio.shield(settling)
        except asyncio.CancelledError:
            # An order on its way cannot be called back: settle it (for a bounded time) before the
            # cancellation goes on, so a hand-over never leaves an exchange fill missing from the
            # books until some later owner reconciles it.
            try:
                await asyncio.wait([settling], timeout=IN_FLIGHT_GRACE_S)
            finally:
                if settling.done():
                    if not settling.cancelled() and settling.exception() is not None:
                        log.warning("order on its way when cancelled did not settle: %s", settling.exception(),
                                    extra={"bot_id": bot.bot_id, "client_order_id": cid})
                else:
                    settling.cancel()
            raise

    async def _send_and_settle(self, order_id: int, cid: str, request: OrderRequest, book: Book,
                               state: StateFields) -> Book:
        try:
            fill = await self.account.place_market_order(cid, request.symbol, request.side, request.amount,
                                                         reduce_only=request.reduce_only)
        except OutcomeUnknown:
            self._counters.orders_unknown += 1
            async with self._fenced() as conn:
                await bot_store.mark_order(conn, order_id, status="unknown", error_message="outcome unknown")
            raise
        except (InsufficientBalance, InvalidCredentials) as e:
            await self._reject(order_id, e)
            raise  # the bot stops with a readable message (`readable`)
        except Rejected as e:
            await self._reject(order_id, e)
            await self._note(f"order rejected: {readable(e)}")
            return book
        self._crash_points.hit("after_send")
        return await self._record_fill(order_id, cid, request.symbol, request.side, fill,
                                       closing=request.reduce_only, book=book, state=state, reason=request.reason)

    async def reconcile(self, symbol: str, book: Book, state: StateFields) -> Book:
        """Settle orders a crash left open (by client id), then take the account's word for the
        position: a failed report raises and is never read as "flat"."""
        for order in await bot_store.unresolved_orders(self._pool, self._bot.bot_id):
            cid = order["client_order_id"]
            try:
                fill = await self.account.find_order(cid, order["symbol"])
            except OutcomeUnknown as e:
                raise ReconcileFailed(f"cannot reconcile order {cid}: {e}") from e
            if fill is None:
                async with self._fenced() as conn:
                    await bot_store.mark_order(conn, order["id"], status="expired",
                                               error_message="never reached the exchange")
                log.warning("pending order never reached the exchange",
                            extra={"bot_id": self._bot.bot_id, "client_order_id": cid})
            elif fill.filled > 0:
                self._counters.orders_reconciled += 1
                book = await self._record_fill(order["id"], cid, order["symbol"], order["side"], fill,
                                               closing=bool(order["reduce_only"]), book=book, state=state,
                                               reason=None if order["reason"] != "signal"
                                               else trade_reason(order["intent"]))
            else:
                async with self._fenced() as conn:
                    await bot_store.mark_order(conn, order["id"], status=fill.status,
                                               exchange_order_id=fill.exchange_order_id)
        # A stop that fired while no replica ran is recorded from its own fill (price, reason) before
        # the account's position is taken, which would otherwise show it as a bare correction.
        book = await self.settle_protection(book, state)
        actual = await self.account.position(symbol)
        if not differs(actual, book.position):
            return book
        note = (f"position reconciled with the exchange: recorded {describe(book.position)}, "
                f"exchange has {describe(actual)}")
        log.warning(note, extra={"bot_id": self._bot.bot_id})
        await self._write({**bot_store.position_fields(actual), "last_error_message": note})
        return replace(book, position=actual)

    # ------------------------------------------------------------------ protective orders

    async def protect(self, symbol: str, book: Book, protection: Protection, state: StateFields) -> Book:
        """`_protect`, failing closed: a protection that cannot be confirmed is noted in the bot's
        state and blocks new entries (`unprotected`) until a later call confirms it."""
        try:
            book = await self._protect(symbol, book, protection, state)
        except ProtectionUnconfirmed as e:
            return await self._unprotected(book, str(e))
        await self.protection_confirmed()
        return book

    async def protection_confirmed(self) -> None:
        """The position is protected (or flat): entries may go on, and the state's note goes."""
        if self.unprotected is not None:
            self.unprotected = None
            await self._note(None)

    async def _unprotected(self, book: Book, reason: str) -> Book:
        self.unprotected = f"position not protected, no new entries: {reason}"
        log.warning(self.unprotected, extra={"bot_id": self._bot.bot_id})
        await self._note(self.unprotected)
        return book

    async def _protect(self, symbol: str, book: Book, protection: Protection, state: StateFields) -> Book:
        """Make sure the position has each protective order `protection` asks for, open on the
        account at the position's size and level: those missing are recorded (fenced), then placed
        under the next revision of the entry's id. Raises ProtectionUnconfirmed when one cannot be."""
        position = book.position
        if position.flat or not position.entry_price or not protection.wanted or position.side is None:
            return book
        held = {row["type"]: row for row in await bot_store.protective_orders(self._pool, self._bot.bot_id)}
        entry_seq = await self._entry_seq()
        for kind, price, rate in protection.orders(position.side, position.entry_price):
            row = held.get(ORDER_TYPES[kind])
            if row is not None and row["status"] == "open" and _matches(row, position.size, price, rate):
                continue
            if row is not None:
                book = await self._cancel_one(row, book, state)
                if book.position.flat:
                    return book  # it fired meanwhile: nothing left to protect
            book = await self._place_protective(symbol, book, kind, price, rate, entry_seq, state)
            if book.position.flat:
                return book
        return book

    async def _place_protective(self, symbol: str, book: Book, kind: ProtectiveKind, price: float | None,
                                rate: float | None, entry_seq: int, state: StateFields) -> Book:
        bot = self._bot
        position = book.position
        assert position.side is not None
        order_type = ORDER_TYPES[kind]
        revision = await bot_store.protective_revisions(self._pool, bot.bot_id, entry_seq, order_type)
        cid = protective_client_id(bot.bot_id, entry_seq, kind, revision)
        spec = ProtectiveSpec(kind, symbol, position.side, position.size, cid, stop_price=price, callback_rate=rate)
        async with self._fenced() as conn:
            order_id = await bot_store.insert_protective_order(conn, NewProtectiveOrder(
                bot.bot_id, bot.user_id, cid, symbol, spec.order_side, position.size, order_type,
                f"protect_{position.side}:{kind.value}", entry_seq, bot.fence, price, rate,
            ))
        if order_id is None:
            raise ProtectionUnconfirmed(f"protective order {cid} was recorded twice")
        self._holds_protection = True
        if not bot.lease_valid():
            raise FencedOut(f"bot {bot.bot_id}: lease lapsed before sending {cid}")
        self._counters.orders_sent += 1
        try:
            placed = await self.account.place_protective(spec)
        except OutcomeUnknown as e:
            async with self._fenced() as conn:
                await bot_store.mark_order(conn, order_id, status="unknown", error_message="outcome unknown")
            raise ProtectionUnconfirmed(f"the {kind.value.replace('_', ' ')} order's outcome is unknown") from e
        except Rejected as e:
            await self._reject(order_id, e)
            raise ProtectionUnconfirmed(f"the exchange refused the {kind.value.replace('_', ' ')} order: "
                                        f"{readable(e)}") from e
        except InvalidCredentials:
            raise  # the bot stops with a readable message, as for any order
        except ExchangeError as e:
            # Not served, or some answer that says nothing definite: the next check asks by id.
            async with self._fenced() as conn:
                await bot_store.mark_order(conn, order_id, status="unknown", error_message=readable(e)[:500])
            raise ProtectionUnconfirmed(f"the {kind.value.replace('_', ' ')} order could not be placed: "
                                        f"{readable(e)}") from e
        log.info("protective order placed", extra={"bot_id": bot.bot_id, "client_order_id": cid,
                                                   "kind": kind.value, "stop_price": placed.stop_price})
        return await self._settle_protective(order_id, cid, symbol, spec.order_side, kind, entry_seq, placed,
                                             book, state)

    async def _settle_protective(self, order_id: int, cid: str, symbol: str, side: str, kind: ProtectiveKind,
                                 entry_seq: int, found: ProtectiveFill, book: Book, state: StateFields) -> Book:
        """Write what the account says of one protective order; a fill is the position's closing
        trade with the order's kind as its reason, and stops the signal out (no re-entry until the
        target changes, as after the backtest's stop)."""
        if found.filled > 0:
            fill = Fill(found.exchange_order_id, found.status, found.filled, found.average, found.fee)
            book = await self._record_fill(order_id, cid, symbol, side, fill, closing=True, book=book,
                                           state=state, reason=kind.value)
            log.info("protective order filled", extra={"bot_id": self._bot.bot_id, "client_order_id": cid,
                                                       "kind": kind.value, "price": found.average})
            return replace(book, stopped_out_seq=entry_seq)
        async with self._fenced() as conn:
            await bot_store.mark_order(conn, order_id, status=found.status, exchange_order_id=found.exchange_order_id)
            if found.stop_price is not None:
                await conn.execute("UPDATE orders SET stop_price = $2 WHERE id = $1", order_id,
                                   Decimal(repr(found.stop_price)))
        return book

    async def settle_protection(self, book: Book, state: StateFields, candle: CandleRange | None = None) -> Book:
        """`_settle_protection`, failing closed like `protect`. With the candle about to be decided
        on, the account sees it first (a paper account triggers its orders on its range)."""
        try:
            return await self._settle_protection(book, state, candle)
        except ProtectionUnconfirmed as e:
            return await self._unprotected(book, str(e))

    async def _settle_protection(self, book: Book, state: StateFields, candle: CandleRange | None = None) -> Book:
        """Ask the account about each protective order it may hold (at each candle and on start:
        the seam where the user-data stream will tell instead). A triggered one is recorded; once
        the position is flat, the others are cancelled."""
        if not self._holds_protection:
            return book
        rows = await bot_store.protective_orders(self._pool, self._bot.bot_id)
        if not rows:
            self._holds_protection = False
            return book
        if candle is not None:
            await self.account.observe_candle(rows[0]["symbol"], candle)
        try:
            waiting = await self.account.open_protective(rows[0]["symbol"])
        except InvalidCredentials:
            raise
        except ExchangeError as e:  # OutcomeUnknown included
            raise ProtectionUnconfirmed(f"cannot list the protective orders: {readable(e)}") from e
        fired = False
        changed = False
        for row in rows:
            cid = row["client_order_id"]
            if row["status"] == "open" and cid in waiting:
                continue  # still waiting on the account: nothing to ask
            changed = True
            try:
                found = await self.account.find_protective(cid, row["symbol"])
            except InvalidCredentials:
                raise
            except ExchangeError as e:  # OutcomeUnknown included
                raise ProtectionUnconfirmed(f"cannot tell the state of protective order {cid}: {readable(e)}") from e
            if found is None:
                async with self._fenced() as conn:
                    await bot_store.mark_order(conn, row["id"], status="expired",
                                               error_message="not on the exchange")
                continue
            if found.filled > 0:
                fired = True
            elif found.status == row["status"]:
                continue
            book = await self._settle_protective(row["id"], cid, row["symbol"], row["side"], KINDS[row["type"]],
                                                 int(row["signal_seq"]), found, book, state)
        if fired and book.position.flat:
            book = await self._cancel_protection(book, state)
        elif changed:
            self._holds_protection = bool(await bot_store.protective_orders(self._pool, self._bot.bot_id))
        return book

    async def cancel_protection(self, book: Book, state: StateFields) -> Book:
        """`_cancel_protection`, failing closed like `protect` (a strategy's close goes on anyway:
        reducing risk is never blocked)."""
        try:
            return await self._cancel_protection(book, state)
        except ProtectionUnconfirmed as e:
            return await self._unprotected(book, str(e))

    async def _cancel_protection(self, book: Book, state: StateFields) -> Book:
        """Cancel every protective order the account may hold (the strategy exits, the settings
        change, the position went flat); one that fired meanwhile is recorded instead."""
        if not self._holds_protection:
            return book
        for row in await bot_store.protective_orders(self._pool, self._bot.bot_id):
            book = await self._cancel_one(row, book, state)
        self._holds_protection = False
        return book

    async def _cancel_one(self, row: asyncpg.Record, book: Book, state: StateFields) -> Book:
        cid, symbol = row["client_order_id"], row["symbol"]
        try:
            return await self._cancel_or_settle(row, book, state)
        except InvalidCredentials:
            raise
        except ExchangeError as e:  # OutcomeUnknown included
            raise ProtectionUnconfirmed(f"protective order {cid} on {symbol} could not be cancelled: "
                                        f"{readable(e)}") from e

    async def _cancel_or_settle(self, row: asyncpg.Record, book: Book, state: StateFields) -> Book:
        cid, symbol = row["client_order_id"], row["symbol"]
        if await self.account.cancel_protective(cid, symbol):
            async with self._fenced() as conn:
                await bot_store.mark_order(conn, row["id"], status="canceled")
            log.info("protective order cancelled", extra={"bot_id": self._bot.bot_id, "client_order_id": cid})
            return book
        found = await self.account.find_protective(cid, symbol)
        if found is None:
            async with self._fenced() as conn:
                await bot_store.mark_order(conn, row["id"], status="expired", error_message="not on the exchange")
            return book
        if found.is_open:
            raise ProtectionUnconfirmed(f"protective order {cid} could not be cancelled")
        return await self._settle_protective(row["id"], cid, symbol, row["side"], KINDS[row["type"]],
                                             int(row["signal_seq"]), found, book, state)

    async def _entry_seq(self) -> int:
        """The signal of the entry the position came from (its protective orders' ids carry it)."""
        seq = await self._pool.fetchval(
            """SELECT signal_seq FROM orders WHERE bot_id = $1 AND type = 'market' AND NOT reduce_only
                                                  AND filled_amount > 0 ORDER BY id DESC LIMIT 1""",
            self._bot.bot_id,
        )
        return 0 if seq is None else int(seq)

    async def _reject(self, order_id: int, error: ExchangeError) -> None:
        self._counters.orders_rejected += 1
        async with self._fenced() as conn:
            await bot_store.mark_order(conn, order_id, status="rejected", error_message=readable(error)[:500])

    async def _record_fill(self, order_id: int, cid: str, symbol: str, side: str, fill: Fill, *, closing: bool,
                           book: Book, state: StateFields, reason: str | None = None) -> Book:
        """Order, trade, position and today's tally in one fenced transaction, then tell the subscribers."""
        price = fill.average or 0.0
        position, realized = apply_fill(book.position, side, fill.filled, price, closing=closing)
        trade_row = None
        async with self._fenced() as conn:
            await bot_store.mark_order(conn, order_id, status=fill.status, exchange_order_id=fill.exchange_order_id,
                                       filled_amount=fill.filled, average_price=fill.average, fee=fill.fee)
            if fill.filled > 0 and price > 0:
                trade_row = await bot_store.insert_trade(
                    conn, bot_id=self._bot.bot_id, user_id=self._bot.user_id, order_id=order_id, symbol=symbol,
                    side=side, price=price, amount=fill.filled, fee=fill.fee, realized_pnl=realized,
                    client_order_id=cid, reason=reason,
                )
            if trade_row is not None:
                book = replace(book, position=position, tally=book.tally.with_fill(realized, fill.fee))
                if fill.fee is None:
                    self._fees_unknown = True
                    self._fee_days[trade_row["id"]] = book.tally.day
            tally = book.tally
            row = await bot_store.update_state(conn, self._bot.bot_id, {
                **bot_store.position_fields(book.position),
                **bot_store.daily_fields(tally.pnl, tally.trades, tally.day),
                "last_run_at": _now(),
                **state(),
            })
        if trade_row is not None:
            self._counters.orders_filled += 1
            await self._publish("trade", trade_view(trade_row))
            log.info("traded", extra={"bot_id": self._bot.bot_id, "client_order_id": cid, "side": side,
                                      "amount": fill.filled, "price": price})
        await self._publish("state", row)
        return book

    # ------------------------------------------------------------------ fees

    def start_fee_lookups(self, mailbox: Mailbox) -> None:
        """Run this bot's fee collector; a fee found arrives in `mailbox` as FeeFound, a crash as
        HelperFailed (owner: this executor), so the actor fails with it under the restart budget."""
        self._fees = FeeCollector(self._pool, self._bot.bot_id, self.account, mailbox.send)
        task = asyncio.create_task(self._fees.run(), name=f"bot-{self._bot.bot_id}-fees")
        self._fee_task = task

        def done(task: asyncio.Task[None]) -> None:
            if task.cancelled():
                return
            error = task.exception()
            log.error("fee collector stopped", exc_info=error, extra={"bot_id": self._bot.bot_id})
            mailbox.send(HelperFailed(self, task.get_name(), repr(error) if error else "returned"))

        task.add_done_callback(done)

    def wake_fee_lookups(self) -> None:
        """Called between messages, so lookups never start between the legs of one decision."""
        if self._fees_unknown and self._fees is not None:
            self._fees_unknown = False
            self._fees.wake()

    async def fill_in_fee(self, found: FeeFound, book: Book) -> Book:
        """Write a fee that was unknown; today's tally takes it if its trade was counted today."""
        async with self._fenced() as conn:
            row = await bot_store.set_trade_fee(conn, self._bot.bot_id, found.trade_id, found.fee)
            if row is None:
                return book  # known already (reported twice, or by an earlier run's lookup)
            day = self._fee_days.pop(found.trade_id, None) or row["created_at"].astimezone(UTC).date()
            tally = book.tally.with_fee(found.fee, day)
            state = await bot_store.update_state(
                conn, self._bot.bot_id, bot_store.daily_fields(tally.pnl, tally.trades, tally.day)
            )
        log.info("fee filled in", extra={"bot_id": self._bot.bot_id, "trade_id": found.trade_id, "fee": found.fee})
        await self._publish("state", state)
        return replace(book, tally=tally)

    async def close(self) -> None:
        if self._fee_task is not None:
            await cancel_and_wait(self._fee_task)

    # ------------------------------------------------------------------ plumbing

    def _fenced(self) -> AbstractAsyncContextManager[asyncpg.Connection]:
        return bot_store.fenced(self._pool, self._bot.bot_id, self._bot.fence)

    async def _note(self, message: str | None) -> None:
        await self._write({"last_error_message": message})

    async def _write(self, fields: Mapping[str, Any]) -> None:
        async with self._fenced() as conn:
            row = await bot_store.update_state(conn, self._bot.bot_id, fields)
        await self._publish("state", row)


TRADE_REASONS = frozenset({"signal", "stop_loss", "take_profit", "trailing_stop", "manual", "liquidation"})


def trade_reason(intent: str) -> str:
    """A trade's reason from its order's intent (`close_long:stop_loss` → "stop_loss"); a close for
    another cause (the daily loss limit) is the strategy's risk rule, counted as a signal."""
    _, _, why = intent.partition(":")
    return why if why in TRADE_REASONS else "signal"


def _matches(row: asyncpg.Record, size: float, price: float | None, rate: float | None) -> bool:
    """Is this open protective order the one wanted (the position's size, the level, the rate)?"""
    if abs(float(row["amount"]) - size) > 1e-9 * max(1.0, size):
        return False
    if price is not None:
        held = row["stop_price"]
        return held is not None and abs(float(held) - price) <= LEVEL_TOLERANCE * price
    return row["callback_rate"] is not None and abs(float(row["callback_rate"]) - (rate or 0.0)) < 1e-9


def readable(e: Exception) -> str:
    """An exchange error as a person reads it in the bot's state (never a secret, never a stack)."""
    text = str(e)
    if isinstance(e, InsufficientBalance):
        return "insufficient balance on the exchange for this order"
    if isinstance(e, InvalidCredentials):
        return "the exchange refused the API key (invalid, revoked or without trading permission)"
    if '"msg"' in text:
        start = text.find('"msg"')
        return text[start:].split(":", 1)[-1].strip(' "}')
    return text


def _now() -> datetime:
    return datetime.now(UTC)
