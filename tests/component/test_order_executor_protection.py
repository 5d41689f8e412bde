"""The executor's protective orders against real PostgreSQL and the in-memory `Account`
(tests/component/memory_account.py): recorded before sent, restored when missing, a trigger
recorded once with its reason, the rest cancelled, and fail closed when the account refuses."""

from __future__ import annotations

import asyncpg
import pytest

from tests.component.memory_account import MemoryAccount
from tests.component.test_order_executor import BOOK, FENCE, SYMBOL, Published, _bot, _open, _state
from tradebot.exchange.errors import Rejected
from tradebot.runtime.order_decisions import Book
from tradebot.runtime.order_executor import BotRef, OrderExecutor, Protection, trade_reason
from tradebot.runtime.positions import Position

PROTECTION = Protection(stop_loss_pct=2.0, take_profit_pct=5.0)


class Rig:
    def __init__(self, pool: asyncpg.Pool, bot: int, user: int) -> None:
        self.pool = pool
        self.bot = bot
        self.account = MemoryAccount(pool)
        self.executor = OrderExecutor(pool, self.account, BotRef(bot, user, FENCE, lambda: True), Published())

    async def rows(self) -> list[asyncpg.Record]:
        return list(await self.pool.fetch("SELECT * FROM orders WHERE bot_id = $1 AND type <> 'market' ORDER BY id",
                                          self.bot))

    async def entered(self) -> Book:
        book = await self.executor.place(_open(seq=7), BOOK, _state)
        return await self.executor.protect(SYMBOL, book, PROTECTION, _state)


@pytest.fixture
async def rig(pool: asyncpg.Pool) -> Rig:
    bot, user = await _bot(pool)
    return Rig(pool, bot, user)


async def test_each_protective_order_is_recorded_then_placed_at_the_entry_s_levels(rig: Rig) -> None:
    book = await rig.entered()
    assert book.position == Position("long", 2.0, 100.0)
    rows = await rig.rows()
    assert [(r["client_order_id"], r["type"], float(r["stop_price"]), r["status"], r["reduce_only"], r["side"])
            for r in rows] == [
        (f"tb{rig.bot}-7s0", "stop_market", 98.0, "open", True, "sell"),
        (f"tb{rig.bot}-7t0", "take_profit_market", 105.0, "open", True, "sell"),
    ]
    assert sorted(rig.account.protective) == [f"tb{rig.bot}-7s0", f"tb{rig.bot}-7t0"]
    assert rig.executor.unprotected is None
    # Checked again (a restart): both are there, nothing is placed twice.
    again = await rig.executor.protect(SYMBOL, book, PROTECTION, _state)
    assert again == book and len(rig.account.protective) == 2 and len(await rig.rows()) == 2


async def test_a_trigger_is_recorded_once_with_its_reason_and_the_rest_is_cancelled(rig: Rig) -> None:
    book = await rig.entered()
    rig.account.trigger(f"tb{rig.bot}-7s0")
    book = await rig.executor.settle_protection(book, _state)
    assert book.position.flat and book.stopped_out_seq == 7  # no re-entry on this signal
    trades = await rig.pool.fetch("SELECT side, price, reason, realized_pnl FROM trades WHERE bot_id = $1 ORDER BY id",
                                  rig.bot)
    assert [(t["side"], float(t["price"]), t["reason"]) for t in trades] == [("buy", 100.0, "signal"),
                                                                            ("sell", 98.0, "stop_loss")]
    assert float(trades[1]["realized_pnl"]) == pytest.approx(-4.0)
    assert [r["status"] for r in await rig.rows()] == ["filled", "canceled"]
    assert rig.account.protective[f"tb{rig.bot}-7t0"][1].status == "canceled"
    # Asked again (the next candle): nothing new.
    assert await rig.executor.settle_protection(book, _state) == book
    assert await rig.pool.fetchval("SELECT count(*) FROM trades WHERE bot_id = $1", rig.bot) == 2


async def test_a_missing_order_is_restored_under_the_next_revision(rig: Rig) -> None:
    book = await rig.entered()
    del rig.account.protective[f"tb{rig.bot}-7t0"]  # cancelled by hand on the exchange
    book = await rig.executor.settle_protection(book, _state)
    book = await rig.executor.protect(SYMBOL, book, PROTECTION, _state)
    assert [(r["client_order_id"], r["status"]) for r in await rig.rows()] == [
        (f"tb{rig.bot}-7s0", "open"), (f"tb{rig.bot}-7t0", "expired"), (f"tb{rig.bot}-7t1", "open"),
    ]


async def test_new_distances_re_place_the_orders(rig: Rig) -> None:
    book = await rig.entered()
    book = await rig.executor.protect(SYMBOL, book, Protection(stop_loss_pct=3.0), _state)
    assert [(r["client_order_id"], r["status"]) for r in await rig.rows()] == [
        (f"tb{rig.bot}-7s0", "canceled"), (f"tb{rig.bot}-7t0", "open"), (f"tb{rig.bot}-7s1", "open"),
    ]
    book = await rig.executor.cancel_protection(book, _state)
    assert {r["status"] for r in await rig.rows()} == {"canceled"}


async def test_a_refused_stop_fails_closed_with_a_readable_message(rig: Rig) -> None:
    book = await rig.executor.place(_open(seq=7), BOOK, _state)
    rig.account.refuse_protective = Rejected('{"code":-2021,"msg":"Order would immediately trigger."}')
    book = await rig.executor.protect(SYMBOL, book, PROTECTION, _state)
    assert rig.executor.unprotected is not None and "would immediately trigger" in rig.executor.unprotected
    state = await rig.pool.fetchrow("SELECT last_error_message FROM bot_state WHERE bot_id = $1", rig.bot)
    assert state["last_error_message"] == rig.executor.unprotected
    assert [r["status"] for r in await rig.rows()] == ["rejected"]
    # The next check places it (a new revision) and clears the block.
    book = await rig.executor.protect(SYMBOL, book, PROTECTION, _state)
    assert rig.executor.unprotected is None
    assert [r["status"] for r in await rig.rows()] == ["rejected", "open", "open"]


def test_a_trade_s_reason_comes_from_its_order_s_intent() -> None:
    assert [trade_reason(i) for i in ("open_long", "close_long:signal", "close_short:stop_loss",
                                      "close_long:take_profit", "close_long:daily loss limit")] == [
        "signal", "signal", "stop_loss", "take_profit", "signal",
    ]
