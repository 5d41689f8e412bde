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
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

import asyncpg

from tradebot.exchange.errors import InsufficientBalance, InvalidCredentials, Rejected, Retryable
from tradebot.exchange.protective_orders import ProtectiveKind, ProtectiveSpec
from tradebot.runtime import bot_store
from tradebot.runtime.account import Account, Accounts, CandleRange, Fill, LastClose, ProtectiveFill
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
        async with bot_store.fenced(self._pool, self._bot_id, self._fence) as conn:
            return await self._fill_at(conn, client_order_id, side, amount, reduce_only, reference)

    async def _fill_at(self, conn: asyncpg.Connection, client_order_id: str, side: str, amount: float,
                       reduce_only: bool, reference: float) -> Fill:
        """Fill a market order at `reference` ± slippage (inside the caller's fenced transaction)."""
        price = self.terms.fill_price(side, reference)
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

    # ------------------------------------------------------------------ protective orders

    async def place_protective(self, spec: ProtectiveSpec) -> ProtectiveFill:
        async with bot_store.fenced(self._pool, self._bot_id, self._fence) as conn:
            await conn.execute(
                """INSERT INTO paper_protective_orders (bot_id, client_order_id, kind, side, amount, stop_price,
                                                        callback_rate, best_price)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (bot_id, client_order_id) DO NOTHING""",
                self._bot_id, spec.client_order_id, spec.kind.value, spec.order_side, _dec(spec.amount),
                None if spec.stop_price is None else _dec(spec.stop_price), spec.callback_rate,
                None if spec.kind is not ProtectiveKind.TRAILING_STOP else _opt_dec(self._last_close()),
            )
        found = await self.find_protective(spec.client_order_id, spec.symbol)
        assert found is not None
        return found

    async def find_protective(self, client_order_id: str, symbol: str) -> ProtectiveFill | None:
        row = await self._pool.fetchrow(
            """SELECT p.*, f.id AS fill_id, f.amount AS fill_amount, f.price AS fill_price, f.fee AS fill_fee
               FROM paper_protective_orders p
               LEFT JOIN paper_fills f ON f.bot_id = p.bot_id AND f.client_order_id = p.fill_client_order_id
               WHERE p.bot_id = $1 AND p.client_order_id = $2""",
            self._bot_id, client_order_id,
        )
        if row is None:
            return None
        stop = None if row["stop_price"] is None else float(row["stop_price"])
        if row["fill_id"] is not None:
            return ProtectiveFill(f"paper-{row['fill_id']}", "filled", float(row["fill_amount"]),
                                  float(row["fill_price"]), float(row["fill_fee"]), stop)
        return ProtectiveFill(f"paper-protective-{row['id']}", str(row["status"]), 0.0, None, None, stop)

    async def open_protective(self, symbol: str) -> set[str]:
        rows = await self._pool.fetch(
            "SELECT client_order_id FROM paper_protective_orders WHERE bot_id = $1 AND status = 'open'", self._bot_id
        )
        return {str(r["client_order_id"]) for r in rows}

    async def cancel_protective(self, client_order_id: str, symbol: str) -> bool:
        async with bot_store.fenced(self._pool, self._bot_id, self._fence) as conn:
            done = await conn.execute(
                "UPDATE paper_protective_orders SET status = 'canceled' WHERE bot_id = $1 AND client_order_id = $2 "
                "AND status = 'open'", self._bot_id, client_order_id,
            )
        return bool(done == "UPDATE 1")

    async def observe_candle(self, symbol: str, candle: CandleRange) -> None:
        """Triggers the open protective orders on the candle's range with the backtest's rule: a
        candle that opens beyond a level fills at its open, else a level the range reaches fills
        at the level (± slippage); when both the stop and the take profit are reached, the stop
        first (conservative), as in the backtest. A reduce-only order left on a flat account is
        cancelled when it fires (Binance expires it)."""
        async with bot_store.fenced(self._pool, self._bot_id, self._fence) as conn:
            rows = await conn.fetch(
                "SELECT * FROM paper_protective_orders WHERE bot_id = $1 AND status = 'open' "
                "ORDER BY CASE kind WHEN 'stop_loss' THEN 0 WHEN 'trailing_stop' THEN 1 ELSE 2 END, id",
                self._bot_id,
            )
            for row in rows:
                reference = trigger_price(row, candle)
                if row["kind"] == ProtectiveKind.TRAILING_STOP.value:
                    best = _best(row, candle)
                    await conn.execute("UPDATE paper_protective_orders SET best_price = $2 WHERE id = $1",
                                       row["id"], _dec(best))
                if reference is None:
                    continue
                account = _position(await self._account_row(conn))
                if account.flat or row["side"] != closing_side(account):
                    await conn.execute("UPDATE paper_protective_orders SET status = 'canceled' WHERE id = $1",
                                       row["id"])
                    continue
                cid = row["client_order_id"]
                await self._fill_at(conn, cid, row["side"], float(row["amount"]), True, reference)
                await conn.execute(
                    "UPDATE paper_protective_orders SET status = 'filled', fill_client_order_id = $2 WHERE id = $1",
                    row["id"], cid,
                )

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


def trigger_price(row: Mapping[str, Any], candle: CandleRange) -> float | None:
    """The price a protective order fills at before slippage on this candle, None if it does not fire."""
    sell = row["side"] == "sell"  # protects a long
    if row["kind"] == ProtectiveKind.TRAILING_STOP.value:
        # The level trails the best price seen before this candle, then this candle's extreme
        # (conservatively after its adverse move: the level that counts is the earlier one).
        best = float(row["best_price"] or candle.open)
        rate = float(row["callback_rate"]) / 100
        level = best * (1 - rate) if sell else best * (1 + rate)
        stop_like = True
    else:
        level = float(row["stop_price"])
        stop_like = row["kind"] == ProtectiveKind.STOP_LOSS.value
    below = stop_like == sell  # a long's stop and a short's take profit fire as the price falls
    if below:
        if candle.open <= level:
            return candle.open
        return level if candle.low <= level else None
    if candle.open >= level:
        return candle.open
    return level if candle.high >= level else None


def _best(row: Mapping[str, Any], candle: CandleRange) -> float:
    best = float(row["best_price"] or candle.open)
    return max(best, candle.high) if row["side"] == "sell" else min(best, candle.low)


def _opt_dec(value: float | None) -> Decimal | None:
    return None if value is None else _dec(value)


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
