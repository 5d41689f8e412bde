"""The paper account: the `Account` interface on PostgreSQL rows, filling from the hub's candles.

A paper bot runs the same actor, executor, risk rules and failover path as a live one; only this
account differs (DESIGN.md "Paper accounts"). Its fill model is the backtest's
(`tradebot.strategies.backtest`), so paper, live and backtest are one model:

- a market order fills at the close of the candle it was decided on (the bot's last decided
  close, `LastClose`), a buy × (1 + slippage_bps/10⁴) and a sell × (1 − slippage_bps/10⁴); the
  backtest fills at the next candle's open, which is that close when candles open at the previous
  close. Prices are not rounded to the tick;
- the fee is `fee_rate` × notional, taken from the balance with the realised PnL of a close;
- orders are sized on that fill price (`expected_fill_price`), and the executor's amount was
  rounded down to the market's step already (the public market cache gives the step).

The virtual balance and position live in `paper_accounts`, each filled order in `paper_fills`
(by client order id, which `find_order` answers from exactly as the exchange would), both written
in one transaction under the bot's fencing token (`bot_store.fenced`): an owner that lost the bot
cannot fill, so a paper order is placed at most once like a live one, and a crash between the
fill and the executor's settlement is reconciled by client id on the next start. There is no
margin model (as in the backtest: liquidation is not modelled); an entry needs a positive balance.

No private exchange endpoint is ever called: a paper bot needs no API key, and its market data is
public (the market cache and the hub's kline streams).
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

import asyncpg

from tradebot.exchange.errors import InsufficientBalance, InvalidCredentials, Rejected, Retryable
from tradebot.runtime import bot_store
from tradebot.runtime.account import Account, Accounts, Fill, LastClose
from tradebot.runtime.bot_store import BotConfig
from tradebot.runtime.positions import FLAT, Position, apply_fill, closing_side, side_of, unrealized_pnl
from tradebot.runtime.risk import MarketLimits

REDUCE_ONLY_REJECTED = "-2022"  # Binance's code for a reduce-only order that would not reduce


@dataclass(frozen=True, slots=True)
class PaperTerms:
    """A paper bot's account settings (bot_configs.paper_*)."""

    start_balance: float
    fee_rate: float
    slippage_bps: float

    def fill_price(self, side: str, price: float) -> float:
        slip = self.slippage_bps / 1e4
        return price * (1.0 + slip) if side == "buy" else price * (1.0 - slip)


class PublicMarkets(Protocol):
    """What the paper account reads of the market: public data only."""

    async def market_limits(self, symbol: str) -> MarketLimits: ...

    async def last_close(self, symbol: str, timeframe: str) -> float | None:
        """The newest closed candle's close, for a fill before the bot decided on any candle."""
        ...


class PaperAccount:
    """One paper bot's virtual account under one fencing token."""

    # One per running paper bot, thousands per replica: slots keep an idle bot small.
    __slots__ = ("_bot_id", "_fence", "_last_close", "_markets", "_pool", "_timeframe", "terms")

    def __init__(
        self,
        pool: asyncpg.Pool,
        bot_id: int,
        fence: int,
        terms: PaperTerms,
        markets: PublicMarkets,
        last_close: LastClose,
        timeframe: str,
    ) -> None:
        self._pool = pool
        self._bot_id = bot_id
        self._fence = fence
        self.terms = terms
        self._markets = markets
        self._last_close = last_close
        self._timeframe = timeframe

    # ------------------------------------------------------------------ orders

    async def place_market_order(
        self, client_order_id: str, symbol: str, side: str, amount: float, *, reduce_only: bool
    ) -> Fill:
        reference = self._last_close()
        if reference is None:
            reference = await self._markets.last_close(symbol, self._timeframe)
        if reference is None or not (math.isfinite(reference) and reference > 0):
            raise Retryable(f"no market price for {symbol} yet")
        price = self.terms.fill_price(side, reference)
        async with bot_store.fenced(self._pool, self._bot_id, self._fence) as conn:
            known = await conn.fetchrow(
                "SELECT * FROM paper_fills WHERE client_order_id = $1 AND bot_id = $2", client_order_id, self._bot_id
            )
            if known is not None:
                return _fill(known)  # placed before (a replay): the same order, never a second one
            row = await self._account_row(conn)
            balance = float(row["balance"])
            position = _position(row)
            if reduce_only:
                if position.flat or side != closing_side(position):
                    raise Rejected(f"paper account: ReduceOnly order rejected ({side} with position "
                                   f"{position.side or 'flat'})", code=REDUCE_ONLY_REJECTED)
                amount = min(amount, position.size)
            else:
                if not position.flat and side_of(side) != position.side:
                    raise Rejected(f"paper account: a {side} would reverse the {position.side} position; "
                                   "close it first", code=REDUCE_ONLY_REJECTED)
                if balance <= 0:
                    raise InsufficientBalance(f"paper balance {balance:g} is not positive")
            if not (amount > 0 and math.isfinite(amount)):
                raise Rejected(f"paper account: invalid amount {amount!r}")
            fee = self.terms.fee_rate * amount * price
            after, realized = apply_fill(position, side, amount, price, closing=reduce_only)
            balance_after = balance + realized - fee
            fill = await conn.fetchrow(
                """INSERT INTO paper_fills (bot_id, client_order_id, side, amount, price, fee, reduce_only)
                   VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING *""",
                self._bot_id, client_order_id, side, _dec(amount), _dec(price), _dec(fee), reduce_only,
            )
            await conn.execute(
                """UPDATE paper_accounts SET balance = $2, position_side = $3, position_size = $4, entry_price = $5,
                                              updated_at = now() WHERE bot_id = $1""",
                self._bot_id, _dec(balance_after), *_position_columns(after),
            )
            await self._show(conn, balance_after, after, reference)
        assert fill is not None
        return _fill(fill)

    async def find_order(self, client_order_id: str, symbol: str) -> Fill | None:
        row = await self._pool.fetchrow(
            "SELECT * FROM paper_fills WHERE client_order_id = $1 AND bot_id = $2", client_order_id, self._bot_id
        )
        return None if row is None else _fill(row)

    async def order_fee(self, exchange_order_id: str, symbol: str, filled: float) -> float | None:
        fill_id = _fill_id(exchange_order_id)
        if fill_id is None:
            return None
        fee = await self._pool.fetchval(
            "SELECT fee FROM paper_fills WHERE id = $1 AND bot_id = $2", fill_id, self._bot_id
        )
        return None if fee is None else float(fee)

    # ------------------------------------------------------------------ account

    async def position(self, symbol: str) -> Position:
        row = await self._pool.fetchrow("SELECT * FROM paper_accounts WHERE bot_id = $1", self._bot_id)
        return FLAT if row is None else _position(row)

    async def free_balance(self, asset: str = "USDT") -> float:
        balance = await self._pool.fetchval("SELECT balance FROM paper_accounts WHERE bot_id = $1", self._bot_id)
        return self.terms.start_balance if balance is None else float(balance)

    def expected_fill_price(self, side: str, price: float) -> float:
        return self.terms.fill_price(side, price)

    async def market_limits(self, symbol: str) -> MarketLimits:
        return await self._markets.market_limits(symbol)

    async def set_leverage(self, symbol: str, leverage: int) -> None:
        # Nothing to tell: the virtual account has no margin model, and the API checked the
        # leverage against the market's ceiling.
        return None

    # ------------------------------------------------------------------ plumbing

    async def _account_row(self, conn: asyncpg.Connection) -> asyncpg.Record:
        """The account row, created with the starting balance on the first fill (inside `fenced`)."""
        await conn.execute(
            "INSERT INTO paper_accounts (bot_id, balance) VALUES ($1, $2) ON CONFLICT (bot_id) DO NOTHING",
            self._bot_id, _dec(self.terms.start_balance),
        )
        row = await conn.fetchrow("SELECT * FROM paper_accounts WHERE bot_id = $1 FOR UPDATE", self._bot_id)
        assert row is not None
        return row

    async def _show(self, conn: asyncpg.Connection, balance: Any, position: Position, mark: float | None) -> None:
        """The state object's `paper_balance` and `equity` (balance plus unrealised PnL at the last close)."""
        equity = float(balance) + (unrealized_pnl(position, mark) if mark else 0.0)
        await conn.execute(
            "UPDATE bot_state SET paper_free_balance = $2, paper_equity = $3 WHERE bot_id = $1",
            self._bot_id, _dec(float(balance)), _dec(equity),
        )


def _position(row: asyncpg.Record) -> Position:
    if row["position_side"] is None:
        return FLAT
    entry = row["entry_price"]
    return Position(row["position_side"], float(row["position_size"]), None if entry is None else float(entry))


def _position_columns(p: Position) -> tuple[str | None, Decimal, Decimal | None]:
    if p.flat:
        return None, Decimal(0), None
    return p.side, _dec(p.size), None if p.entry_price is None else _dec(p.entry_price)


def _fill(row: asyncpg.Record) -> Fill:
    return Fill(f"paper-{row['id']}", "filled", float(row["amount"]), float(row["price"]), float(row["fee"]))


def _fill_id(exchange_order_id: str) -> int | None:
    prefix, _, number = exchange_order_id.partition("-")
    return int(number) if prefix == "paper" and number.isdigit() else None


def _dec(value: float) -> Decimal:
    # repr round-trips a float exactly: the virtual account keeps every bit of the fill model.
    return Decimal(repr(float(value)))


class ChosenAccounts:
    """The runtime's `BotAccounts`: a live bot trades on its API key's account (one ccxt private
    client per key), a paper bot on its own virtual account, which needs no key at all."""

    def __init__(self, pool: asyncpg.Pool, live: Accounts, markets: PublicMarkets) -> None:
        self._pool = pool
        self._live = live
        self._markets = markets

    async def for_bot(self, config: BotConfig, fence: int, last_close: LastClose) -> Account:
        if config.paper:
            # Nothing to open: the account's row is written with its first fill (its starting
            # balance is the bot's setting until then, and the API shows it), so a paper bot starts
            # with no more work than a live one.
            return PaperAccount(
                self._pool, config.id, fence,
                PaperTerms(config.paper_balance, config.paper_fee_rate, config.paper_slippage_bps),
                self._markets, last_close, config.timeframe,
            )
        if config.api_key_id is None:
            raise InvalidCredentials("the bot has no API key; set api_key_id and start it again")
        return await self._live.get(config.api_key_id)

    async def get(self, api_key_id: int) -> Account:
        return await self._live.get(api_key_id)


class CachedPublicMarkets:
    """`PublicMarkets` from the replica's market cache (or any symbol resolver) and the hub's
    public candle history."""

    def __init__(
        self,
        resolve: Callable[[str], Awaitable[Any]],
        closed_history: Callable[[str, str, int | None, int], Awaitable[list[Any]]],
    ) -> None:
        self._resolve = resolve
        self._closed_history = closed_history

    async def market_limits(self, symbol: str) -> MarketLimits:
        market = await self._resolve(symbol)
        if market is None:
            raise Rejected(f"unknown market {symbol}")
        step = float(market.amount_step or 0)
        return MarketLimits(
            amount_step=step,
            min_amount=float(market.min_amount or step or 0),
            min_notional=float(market.min_notional or 0),
            max_leverage=int(market.max_leverage or 125),
        )

    async def last_close(self, symbol: str, timeframe: str) -> float | None:
        candles = await self._closed_history(symbol, timeframe, None, 1)
        return float(candles[-1].close) if candles else None
