"""The order executor's protocol against real PostgreSQL and an in-memory `Account`.

Record → send → settle, fencing, unclear outcomes, rejections, reconciliation and the fee rule,
seen from the rows the executor writes and from what the account received. The same executor
against the simulator through ccxt is covered by the integration tests (test_runtime_*.py,
test_crash_safety.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from typing import Any

import asyncpg
import pytest

from tests.component.memory_account import MemoryAccount
from tradebot.exchange.errors import InsufficientBalance, Rejected
from tradebot.runtime import bot_store
from tradebot.runtime.account import OutcomeUnknown
from tradebot.runtime.bot_store import FencedOut
from tradebot.runtime.client_order_id import Leg
from tradebot.runtime.mailbox import FeeFound, Mailbox
from tradebot.runtime.order_decisions import Book, DailyTally
from tradebot.runtime.order_executor import BotRef, OrderExecutor, OrderRequest, ReconcileFailed
from tradebot.runtime.positions import FLAT, Position

SYMBOL = "BTC/USDT:USDT"
FENCE = 3
TODAY = datetime.now(UTC).date()


class Published:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    async def __call__(self, event: str, data: dict[str, Any]) -> None:
        self.events.append((event, data))

    def kinds(self) -> list[str]:
        return [e for e, _ in self.events]


async def _bot(pool: asyncpg.Pool) -> tuple[int, int]:
    user = await pool.fetchval("INSERT INTO users (email, password_hash) VALUES ('c@example.com', 'x') RETURNING id")
    key = await pool.fetchval(
        """INSERT INTO api_keys (user_id, label, exchange, api_key_encrypted, secret_encrypted, api_key_hint)
           VALUES ($1, 'k', 'binanceusdm', 'x', 'y', 'xxxx') RETURNING id""", user)
    bot = await pool.fetchval(
        "INSERT INTO bot_configs (user_id, api_key_id, symbol, timeframe, ema_period, is_active) "
        "VALUES ($1, $2, $3, '1m', 3, true) RETURNING id", user, key, SYMBOL)
    await pool.execute("INSERT INTO bot_state (bot_id, status) VALUES ($1, 'running')", bot)
    assert await bot_store.claim(pool, bot, FENCE, "r-test")
    return int(bot), int(user)


class Rig:
    def __init__(self, pool: asyncpg.Pool, bot: int, user: int, valid: Callable[[], bool] = lambda: True) -> None:
        self.pool = pool
        self.bot = bot
        self.account = MemoryAccount(pool)
        self.published = Published()
        self.executor = OrderExecutor(pool, self.account, BotRef(bot, user, FENCE, valid), self.published)

    async def orders(self) -> list[asyncpg.Record]:
        return list(await self.pool.fetch("SELECT * FROM orders WHERE bot_id = $1 ORDER BY id", self.bot))

    async def trades(self) -> list[asyncpg.Record]:
        return list(await self.pool.fetch("SELECT * FROM trades WHERE bot_id = $1 ORDER BY id", self.bot))

    async def state(self) -> asyncpg.Record:
        row = await bot_store.load_state_row(self.pool, self.bot)
        assert row is not None
        return row


@pytest.fixture
async def rig(pool: asyncpg.Pool) -> Rig:
    bot, user = await _bot(pool)
    return Rig(pool, bot, user)


def _open(seq: int = 1, side: str = "buy", amount: float = 2.0) -> OrderRequest:
    return OrderRequest(SYMBOL, side, amount, False, Leg.OPEN, seq, "open_long" if side == "buy" else "open_short")


def _close(position: Position, seq: int = 1, leg: Leg = Leg.CLOSE) -> OrderRequest:
    side = "sell" if position.side == "long" else "buy"
    return OrderRequest(SYMBOL, side, position.size, True, leg, seq, f"close_{position.side}:signal")


def _state() -> Mapping[str, Any]:
    return {"signal_seq": 1}


BOOK = Book(FLAT, DailyTally(TODAY))


async def test_an_order_is_recorded_before_it_is_sent_and_settled_in_one_go(rig: Rig) -> None:
    book = await rig.executor.place(_open(), BOOK, _state)
    [sent] = rig.account.placements
    assert sent.recorded_first and sent.client_order_id == f"tb{rig.bot}-{FENCE}-1o"
    [order] = await rig.orders()
    assert order["status"] == "filled" and order["fence_token"] == FENCE and order["exchange_order_id"] == "x1"
    [trade] = await rig.trades()
    assert trade["fee"] is None  # the answer carried no fee: unknown, never 0
    assert book.position == Position("long", 2.0, 100.0) and book.tally == DailyTally(TODAY, 0.0, 1)
    state = await rig.state()
    assert state["position_side"] == "long" and state["daily_trades_count"] == 1 and state["signal_seq"] == 1
    assert rig.published.kinds() == ["trade", "state"]


async def test_a_cancellation_while_an_order_is_on_its_way_settles_it_first(rig: Rig) -> None:
    # A hand-over cancels a bot that is slow to stop; an order already sent cannot be called back,
    # so its fill is recorded before the cancellation goes on (else the books miss an exchange fill
    # until some later owner reconciles: the chaos audit saw exactly that after a graceful stop).
    rig.account.answer_gate = asyncio.Event()
    placing = asyncio.create_task(rig.executor.place(_open(), BOOK, _state))
    await rig.account.received.wait()
    placing.cancel()
    await asyncio.sleep(0)
    rig.account.answer_gate.set()
    with pytest.raises(asyncio.CancelledError):
        await placing
    [order] = await rig.orders()
    assert order["status"] == "filled" and len(await rig.trades()) == 1


async def test_a_replayed_decision_is_settled_by_its_client_id_and_never_sent_again(rig: Rig) -> None:
    book = await rig.executor.place(_open(), BOOK, _state)
    again = await rig.executor.place(_open(), book, _state)
    assert len(rig.account.placements) == 1
    assert again == book and len(await rig.trades()) == 1


async def test_an_unclear_outcome_is_marked_unknown_and_settled_by_reconciliation_not_resent(rig: Rig) -> None:
    rig.account.fail_next = OutcomeUnknown("timeout, then no answer")
    rig.account.fill_on_failure = True  # it did reach the exchange
    with pytest.raises(OutcomeUnknown):
        await rig.executor.place(_open(), BOOK, _state)
    [order] = await rig.orders()
    assert order["status"] == "unknown" and await rig.trades() == []
    book = await rig.executor.reconcile(SYMBOL, BOOK, _state)
    assert len(rig.account.placements) == 1  # asked by client id, never resent
    [order] = await rig.orders()
    assert order["status"] == "filled" and len(await rig.trades()) == 1
    assert book.position == Position("long", 2.0, 100.0)


async def test_an_order_that_never_reached_the_account_expires_at_reconciliation(rig: Rig) -> None:
    rig.account.fail_next = OutcomeUnknown("connection reset")
    with pytest.raises(OutcomeUnknown):
        await rig.executor.place(_open(), BOOK, _state)
    book = await rig.executor.reconcile(SYMBOL, BOOK, _state)
    [order] = await rig.orders()
    assert order["status"] == "expired" and book.position.flat and len(rig.account.placements) == 1


async def test_reconciliation_that_cannot_tell_fails_closed(rig: Rig) -> None:
    rig.account.fail_next = OutcomeUnknown("no answer")
    with pytest.raises(OutcomeUnknown):
        await rig.executor.place(_open(), BOOK, _state)

    async def cannot_tell(client_order_id: str, symbol: str) -> None:
        raise OutcomeUnknown("still no answer")

    rig.account.find_order = cannot_tell  # type: ignore[method-assign]  # an account that cannot tell
    with pytest.raises(ReconcileFailed):
        await rig.executor.reconcile(SYMBOL, BOOK, _state)


async def test_the_accounts_position_wins_when_it_differs(rig: Rig) -> None:
    rig.account.held = Position("short", 0.5, 120.0)
    book = await rig.executor.reconcile(SYMBOL, Book(Position("long", 2.0, 100.0), DailyTally(TODAY)), _state)
    assert book.position == Position("short", 0.5, 120.0)
    state = await rig.state()
    assert state["position_side"] == "short" and "exchange has short 0.5 @ 120" in state["last_error_message"]


async def test_a_rejection_is_recorded_with_its_reason_and_changes_nothing_else(rig: Rig) -> None:
    rig.account.fail_next = Rejected('binance {"code":-2027,"msg":"Exceeded the maximum allowable position"}')
    book = await rig.executor.place(_open(), BOOK, _state)
    assert book == BOOK
    [order] = await rig.orders()
    assert order["status"] == "rejected" and order["error_message"] == "Exceeded the maximum allowable position"
    assert (await rig.state())["last_error_message"] == "order rejected: Exceeded the maximum allowable position"


async def test_insufficient_balance_is_recorded_and_stops_the_caller(rig: Rig) -> None:
    rig.account.fail_next = InsufficientBalance("margin is insufficient")
    with pytest.raises(InsufficientBalance):
        await rig.executor.place(_open(), BOOK, _state)
    [order] = await rig.orders()
    assert order["status"] == "rejected"


async def test_a_lapsed_lease_records_but_never_sends(pool: asyncpg.Pool) -> None:
    bot, user = await _bot(pool)
    rig = Rig(pool, bot, user, valid=lambda: False)
    with pytest.raises(FencedOut):
        await rig.executor.place(_open(), BOOK, _state)
    assert rig.account.placements == []
    [order] = await rig.orders()
    assert order["status"] == "pending"  # the next owner asks the account, then expires it


async def test_a_newer_owner_fences_out_every_write_before_anything_is_sent(rig: Rig) -> None:
    assert await bot_store.claim(rig.pool, rig.bot, FENCE + 1, "r-other")
    with pytest.raises(FencedOut):
        await rig.executor.place(_open(), BOOK, _state)
    assert rig.account.placements == [] and await rig.orders() == []


async def test_a_reversal_goes_out_leg_after_leg_with_its_fees_unknown_then_filled_in(rig: Rig) -> None:
    book = await rig.executor.place(_open(seq=1), BOOK, _state)
    rig.account.price = 90.0
    book = await rig.executor.place(_close(book.position, seq=2), book, _state)
    book = await rig.executor.place(_open(seq=2, side="sell"), book, _state)
    assert [p.client_order_id[-2:] for p in rig.account.placements] == ["1o", "2c", "2o"]
    trades = await rig.trades()
    assert [t["fee"] for t in trades] == [None, None, None]  # nothing waited on a fee
    assert book.position == Position("short", 2.0, 90.0) and book.tally.pnl == pytest.approx(-20.0)

    # The fee collector reads the fees between messages and hands them to the mailbox.
    mailbox = Mailbox()
    rig.account.fees = {"x1": 0.1, "x2": 0.09, "x3": 0.09}
    rig.executor.start_fee_lookups(mailbox)
    try:
        found: list[FeeFound] = []
        async with asyncio.timeout(10):
            while len(found) < 3:
                message = await mailbox.get()
                assert isinstance(message, FeeFound)
                found.append(message)
        for message in found:
            book = await rig.executor.fill_in_fee(message, book)
    finally:
        await rig.executor.close()
    assert book.tally.pnl == pytest.approx(-20.28)
    assert [float(t["fee"]) for t in await rig.trades()] == [0.1, 0.09, 0.09]
    assert float((await rig.state())["daily_pnl"]) == pytest.approx(-20.28)


async def test_a_late_fee_of_an_earlier_day_leaves_todays_tally_alone(rig: Rig) -> None:
    yesterday = DailyTally(date(2020, 1, 1))
    book = await rig.executor.place(_open(), Book(FLAT, yesterday), _state)
    today = Book(book.position, DailyTally(TODAY, 5.0, 0))
    [trade] = await rig.trades()
    after = await rig.executor.fill_in_fee(FeeFound(trade["id"], 0.2), today)
    assert after.tally == today.tally
    assert await rig.executor.fill_in_fee(FeeFound(trade["id"], 0.2), today) == today  # known already
