"""Reads the fees the exchange did not report with a fill, for one bot, and hands them to its actor.

A fill whose fee is unknown is recorded at once with fee NULL: recording never waits on a fee (a
reversal's second leg goes out right after the first). This task, owned by the bot's actor, asks
the exchange for those fees (its trades, by exchange order id): one request per unknown fee per
round, rounds when the actor says it recorded one (between decisions) and, while any is still
missing, again after a full-jitter backoff. Each fee found goes to the actor's mailbox; the actor
writes it (fenced, like every write of the bot) and catches its daily PnL up. This task only reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from typing import Protocol

import asyncpg

from tradebot.exchange.errors import ExchangeError
from tradebot.runtime import bot_store
from tradebot.runtime.mailbox import FeeFound
from tradebot.runtime.market_data_hub import Backoff

log = logging.getLogger(__name__)

# The first retry within a second (a blip), then doubling up to a minute (an exchange that lacks
# the endpoint for a while costs one request per unknown fee a minute).
FEE_BACKOFF = Backoff(base=1.0, cap=60.0)


class FeeSource(Protocol):
    async def order_fee(self, exchange_order_id: str, symbol: str, filled: float) -> float | None: ...


class FeeCollector:
    def __init__(
        self,
        pool: asyncpg.Pool,
        bot_id: int,
        source: FeeSource,
        deliver: Callable[[FeeFound], None],
        *,
        backoff: Backoff = FEE_BACKOFF,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self._pool = pool
        self._bot_id = bot_id
        self._source = source
        self._deliver = deliver
        self._backoff = backoff
        self._rng = rng
        self._wake = asyncio.Event()
        self._wake.set()  # the first round picks up fees that earlier runs left unknown
        self._delivered: set[int] = set()

    def wake(self) -> None:
        """A fill with an unknown fee was recorded: look it up now rather than after the backoff."""
        self._wake.set()

    async def run(self) -> None:
        failures = 0
        while True:
            if failures == 0:
                await self._wake.wait()
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._backoff.delay(failures - 1, self._rng))
            self._wake.clear()
            failures = failures + 1 if await self._round() else 0

    async def _round(self) -> bool:
        """Ask for every unknown fee once; True if some are still unknown."""
        missing = False
        unknown = await bot_store.unknown_fees(self._pool, self._bot_id)
        self._delivered &= {item.trade_id for item in unknown}  # the rest the actor has written
        for item in unknown:
            if item.trade_id in self._delivered:
                continue  # the actor has it in its mailbox
            if item.exchange_order_id is None:
                log.error("trade %s has no exchange order id to read its fee by", item.trade_id,
                          extra={"bot_id": self._bot_id, "trade_id": item.trade_id})
                self._delivered.add(item.trade_id)  # nothing to ask; left unknown for a person
                continue
            try:
                fee = await self._source.order_fee(item.exchange_order_id, item.symbol, item.amount)
            except ExchangeError as e:
                log.warning("fee not readable yet", extra={"bot_id": self._bot_id, "trade_id": item.trade_id,
                                                           "error": str(e)[:300], "kind": type(e).__name__})
                fee = None
            if fee is None:
                missing = True
                continue
            self._delivered.add(item.trade_id)
            self._deliver(FeeFound(item.trade_id, fee))
        return missing
