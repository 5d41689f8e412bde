"""The paper account behind the real order executor, on real PostgreSQL: the executor's protocol
(record → send → settle, replay, reconcile, fencing) holds unchanged, and the virtual account
follows the backtest's fill model (close ± slippage, fee on notional, from the balance)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import asyncpg
import pytest

from tests.component.test_order_executor import Published
from tradebot.exchange.errors import Rejected
from tradebot.runtime import bot_store
from tradebot.runtime.bot_store import FencedOut, NewOrder
from tradebot.runtime.client_order_id import Leg, client_order_id
from tradebot.runtime.order_decisions import Book, DailyTally
from tradebot.runtime.order_executor import BotRef, OrderExecutor, OrderRequest
from tradebot.runtime.paper_account import PaperAccount, PaperTerms
from tradebot.runtime.positions import FLAT, Position
from tradebot.runtime.risk import MarketLimits

SYMBOL = "BTC/USDT:USDT"
FENCE = 4
TODAY = datetime.now(UTC).date()
BOOK = Book(FLAT, DailyTally(TODAY))
TERMS = PaperTerms(start_balance=1000.0, fee_rate=0.001, slippage_bps=10.0)


class FixedMarket:
    """`PublicMarkets` for one market whose last close a test sets."""

    def __init__(self) -> None:
        self.close: float | None = 100.0

    async def market_limits(self, symbol: str) -> MarketLimits:
        return MarketLimits(amount_step=0.001, min_amount=0.001)

    async def last_close(self, symbol: str, timeframe: str) -> float | None:
        return self.close


async def _paper_bot(pool: asyncpg.Pool) -> tuple[int, int]:
    user = await pool.fetchval("INSERT INTO users (email, password_hash) VALUES ('p@example.com', 'x') RETURNING id")
    bot = await pool.fetchval(
        "INSERT INTO bot_configs (user_id, api_key_id, symbol, timeframe, ema_period, is_active, mode, paper_balance) "
        "VALUES ($1, NULL, $2, '1m', 3, true, 'paper', 1000) RETURNING id", user, SYMBOL)
    await pool.execute("INSERT INTO bot_state (bot_id, status) VALUES ($1, 'running')", bot)
    assert await bot_store.claim(pool, bot, FENCE, "r-test")
    return int(bot), int(user)


class PaperRig:
    def __init__(self, pool: asyncpg.Pool, bot: int, user: int, fence: int = FENCE) -> None:
        self.pool = pool
        self.bot = bot
        self.user = user
        self.market = FixedMarket()
        self.decided_close: float | None = 100.0  # the bot's last decided close
        self.account = PaperAccount(pool, bot, fence, TERMS, self.market, lambda: self.decided_close, "1m")
        self.published = Published()
        self.executor = OrderExecutor(pool, self.account, BotRef(bot, user, fence, lambda: True), self.published)

    async def fills(self) -> list[asyncpg.Record]:
        return list(await self.pool.fetch("SELECT * FROM paper_fills WHERE bot_id = $1 ORDER BY id", self.bot))

    async def trades(self) -> list[asyncpg.Record]:
        return list(await self.pool.fetch("SELECT * FROM trades WHERE bot_id = $1 ORDER BY id", self.bot))

    async def state(self) -> asyncpg.Record:
        row = await bot_store.load_state_row(self.pool, self.bot)
        assert row is not None
        return row


@pytest.fixture
async def rig(pool: asyncpg.Pool) -> PaperRig:
    bot, user = await _paper_bot(pool)
    return PaperRig(pool, bot, user)


def _holds(p: Position, side: str, size: float, entry: float) -> bool:
    return p.side == side and p.size == size and p.entry_price == pytest.approx(entry, rel=1e-12)


def _state() -> Mapping[str, Any]:
    return {"signal_seq": 1}


def _open(seq: int, side: str, amount: float) -> OrderRequest:
    return OrderRequest(SYMBOL, side, amount, False, Leg.OPEN, seq, f"open_{side}")


def _close(position: Position, seq: int) -> OrderRequest:
    side = "sell" if position.side == "long" else "buy"
    return OrderRequest(SYMBOL, side, position.size, True, Leg.CLOSE, seq, f"close_{position.side}:signal")


async def test_a_paper_round_trip_fills_at_the_close_with_slippage_and_pays_fees_from_the_balance(rig: PaperRig) -> None:
    assert await rig.account.free_balance() == 1000.0  # the starting balance until the first fill
    book = await rig.executor.place(_open(1, "buy", 2.0), BOOK, _state)
    buy = 100.0 * 1.001
    assert _holds(book.position, "long", 2.0, buy)
    rig.decided_close = 110.0
    book = await rig.executor.place(_close(book.position, 2), book, _state)
    sell = 110.0 * 0.999
    assert book.position.flat
    trades = await rig.trades()
    assert [t["side"] for t in trades] == ["buy", "sell"] and all(t["paper"] for t in trades)
    assert float(trades[0]["price"]) == pytest.approx(buy, rel=1e-12)
    assert float(trades[1]["price"]) == pytest.approx(sell, rel=1e-12)
    fees = [0.001 * 2.0 * buy, 0.001 * 2.0 * sell]
    assert [float(t["fee"]) for t in trades] == pytest.approx(fees, rel=1e-9)  # known at once, never unknown
    realized = (sell - buy) * 2.0
    assert float(trades[1]["realized_pnl"]) == pytest.approx(realized, rel=1e-9)  # before fees, as live
    balance = 1000.0 + realized - sum(fees)
    assert await rig.account.free_balance() == pytest.approx(balance, rel=1e-12)
    state = await rig.state()
    assert float(state["paper_free_balance"]) == pytest.approx(balance, rel=1e-12)
    assert float(state["paper_equity"]) == pytest.approx(balance, rel=1e-12)
    orders = await rig.pool.fetch("SELECT paper, status FROM orders WHERE bot_id = $1", rig.bot)
    assert [(o["paper"], o["status"]) for o in orders] == [(True, "filled"), (True, "filled")]


async def test_equity_marks_the_open_position_at_the_last_close(rig: PaperRig) -> None:
    await rig.executor.place(_open(1, "sell", 1.0), BOOK, _state)
    state = await rig.state()
    sell = 100.0 * 0.999
    balance = 1000.0 - 0.001 * sell
    assert float(state["paper_free_balance"]) == pytest.approx(balance)
    assert float(state["paper_equity"]) == pytest.approx(balance + (sell - 100.0))  # short, marked at 100


async def test_a_replayed_order_is_found_by_its_client_id_and_never_filled_twice(rig: PaperRig) -> None:
    book = await rig.executor.place(_open(1, "buy", 1.0), BOOK, _state)
    again = await rig.executor.place(_open(1, "buy", 1.0), book, _state)
    assert again == book and len(await rig.fills()) == 1 and len(await rig.trades()) == 1
    # The account itself refuses to fill one client id twice, whoever asks.
    cid = client_order_id(rig.bot, FENCE, 1, Leg.OPEN)
    fill = await rig.account.place_market_order(cid, SYMBOL, "buy", 1.0, reduce_only=False)
    assert len(await rig.fills()) == 1 and fill.filled == 1.0
    assert _holds(await rig.account.position(SYMBOL), "long", 1.0, 100.1)


async def test_a_crash_between_fill_and_settlement_is_reconciled_by_client_id(rig: PaperRig) -> None:
    # The executor recorded the order and the account filled it; the process died before settling.
    cid = client_order_id(rig.bot, FENCE, 1, Leg.OPEN)
    async with bot_store.fenced(rig.pool, rig.bot, FENCE) as conn:
        await bot_store.insert_order(conn, NewOrder(rig.bot, rig.user, cid, SYMBOL, "buy", 1.5, False, "open_long", 1,
                                                    FENCE))
    await rig.account.place_market_order(cid, SYMBOL, "buy", 1.5, reduce_only=False)
    # An order recorded but never sent (crash before sending) expires.
    lost = client_order_id(rig.bot, FENCE, 2, Leg.CLOSE)
    async with bot_store.fenced(rig.pool, rig.bot, FENCE) as conn:
        await bot_store.insert_order(conn, NewOrder(rig.bot, rig.user, lost, SYMBOL, "sell", 1.5, True, "close", 2,
                                                    FENCE))
    book = await rig.executor.reconcile(SYMBOL, BOOK, _state)
    assert _holds(book.position, "long", 1.5, 100.1)
    statuses = {r["client_order_id"]: r["status"] for r in await rig.pool.fetch(
        "SELECT client_order_id, status FROM orders WHERE bot_id = $1", rig.bot)}
    assert statuses == {cid: "filled", lost: "expired"}
    assert len(await rig.trades()) == 1 and len(await rig.fills()) == 1


async def test_a_superseded_owner_cannot_fill(rig: PaperRig) -> None:
    assert await bot_store.claim(rig.pool, rig.bot, FENCE + 1, "r-other")
    cid = client_order_id(rig.bot, FENCE, 1, Leg.OPEN)
    with pytest.raises(FencedOut):
        await rig.account.place_market_order(cid, SYMBOL, "buy", 1.0, reduce_only=False)
    assert await rig.fills() == [] and await rig.account.free_balance() == 1000.0


async def test_a_reduce_only_order_without_a_position_is_rejected(rig: PaperRig) -> None:
    book = await rig.executor.place(_close(Position("long", 1.0, 100.0), 1), BOOK, _state)
    assert book == BOOK and await rig.fills() == []
    [order] = await rig.pool.fetch("SELECT status, error_message FROM orders WHERE bot_id = $1", rig.bot)
    assert order["status"] == "rejected" and "ReduceOnly" in order["error_message"]
    with pytest.raises(Rejected):
        await rig.account.place_market_order("x-1", SYMBOL, "sell", 1.0, reduce_only=True)


async def test_sizing_uses_the_fill_price_and_a_fill_before_any_decision_uses_the_markets_last_close(
    rig: PaperRig,
) -> None:
    assert rig.account.expected_fill_price("buy", 200.0) == pytest.approx(200.2)
    assert rig.account.expected_fill_price("sell", 200.0) == pytest.approx(199.8)
    rig.decided_close = None
    rig.market.close = 50.0
    book = await rig.executor.place(_open(1, "buy", 1.0), BOOK, _state)
    assert book.position.entry_price == pytest.approx(50.05)
