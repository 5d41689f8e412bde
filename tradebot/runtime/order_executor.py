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
from typing import Any

import asyncpg

from tradebot.bots.views import trade_view
from tradebot.exchange.errors import ExchangeError, InsufficientBalance, InvalidCredentials, Rejected
from tradebot.runtime import bot_store
from tradebot.runtime.account import Account, Fill, OutcomeUnknown
from tradebot.runtime.bot_store import FencedOut, NewOrder
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
                 "_pool", "_publish", "account")

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
                                               closing=request.reduce_only, book=book, state=state)
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
                                       closing=request.reduce_only, book=book, state=state)

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
                                               closing=bool(order["reduce_only"]), book=book, state=state)
            else:
                async with self._fenced() as conn:
                    await bot_store.mark_order(conn, order["id"], status=fill.status,
                                               exchange_order_id=fill.exchange_order_id)
        actual = await self.account.position(symbol)
        if not differs(actual, book.position):
            return book
        note = (f"position reconciled with the exchange: recorded {describe(book.position)}, "
                f"exchange has {describe(actual)}")
        log.warning(note, extra={"bot_id": self._bot.bot_id})
        await self._write({**bot_store.position_fields(actual), "last_error_message": note})
        return replace(book, position=actual)

    async def _reject(self, order_id: int, error: ExchangeError) -> None:
        self._counters.orders_rejected += 1
        async with self._fenced() as conn:
            await bot_store.mark_order(conn, order_id, status="rejected", error_message=readable(error)[:500])

    async def _record_fill(self, order_id: int, cid: str, symbol: str, side: str, fill: Fill, *, closing: bool,
                           book: Book, state: StateFields) -> Book:
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
                    client_order_id=cid,
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

    async def _note(self, message: str) -> None:
        await self._write({"last_error_message": message})

    async def _write(self, fields: Mapping[str, Any]) -> None:
        async with self._fenced() as conn:
            row = await bot_store.update_state(conn, self._bot.bot_id, fields)
        await self._publish("state", row)


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
