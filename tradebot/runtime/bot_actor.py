"""One running bot: an asyncio task that owns its bot's state and reads one bounded mailbox.

Lifecycle of a run (one lease, one fencing token):
  1. load the settings; reconcile orders left pending by a crash (query each client order id);
  2. reconcile the position with the exchange (the exchange wins; a failed report is never "flat");
  3. set leverage; restore the strategy state or warm it up from closed history (as many candles as
     the strategy says its state needs to equal the full-history one);
  4. subscribe to closed candles and decide on those newer than the warm-up without trading; once
     caught up to the newest closed candle in sight, take the position of the current target;
  5. on each later closed candle: decide (pure strategy), apply risk rules, trade;
  6. on Stop: optionally flatten, save everything, status "stopped".
Only this task changes the bot's state; everyone else sends it a message. Every database write
goes through `bot_store.fenced`, so a run whose lease was taken over cannot write or trade.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Any, Protocol

import asyncpg

from tradebot.bots.views import trade_view
from tradebot.exchange.errors import ExchangeError, InsufficientBalance, InvalidCredentials, Rejected
from tradebot.runtime import bot_store
from tradebot.runtime.bot_store import FLAT, BotConfig, FencedOut, NewOrder, Position
from tradebot.runtime.candles import Candle, CandleSink
from tradebot.runtime.client_order_id import Leg, client_order_id
from tradebot.runtime.clock import Clock, utc_date
from tradebot.runtime.events import BotEvents
from tradebot.runtime.faults import NO_CRASHES, CrashPoints
from tradebot.runtime.fee_collector import FeeCollector
from tradebot.runtime.history_cache import HistoryCache
from tradebot.runtime.mailbox import FeeFound, HelperFailed, Mailbox, Reconfigure, Stop, Tick
from tradebot.runtime.metrics import RuntimeCounters
from tradebot.runtime.order_executor import AccountPool, ExchangeAccount, Fill, OutcomeUnknown
from tradebot.runtime.risk import (
    ExitReason,
    RiskLimits,
    check_exit,
    daily_loss_breached,
    daily_trades_reached,
    position_size,
)
from tradebot.runtime.state_writer import Snapshot, StateWriter
from tradebot.runtime.tasks import cancel_and_wait
from tradebot.strategies.base import Target
from tradebot.strategies.candles import Candle as StrategyCandle
from tradebot.strategies.ema_cross import EMA_CROSS, EmaCrossParams, EmaCrossState, decide
from tradebot.timeframes import candles_between, next_open

log = logging.getLogger(__name__)

# Closed candles read in one go to close a gap after a saved state (one page: ccxt trims binance
# pages to 1000); the subscription's catch-up brings the rest. A fresh start reads what the strategy
# asks for (`Strategy.warmup_candles`), page after page.
GAP_READ_CANDLES = 1000
SUBSCRIBE_TIMEOUT_S = 10.0


class MarketData(Protocol):
    def subscribe(self, symbol: str, timeframe: str, sink: CandleSink, *, after: int | None = None) -> Any:
        """Closed candles after open time `after` (REST catch-up, then live), or from the next one."""
        ...

    def unsubscribe(self, subscription: Any) -> None: ...

    async def fetch_closed_history(
        self, symbol: str, timeframe: str, since_ms: int | None, limit: int
    ) -> list[Candle]: ...

    def newest_closed(self, subscription: Any) -> int | None:
        """Open time of the newest closed candle the subscription's stream holds (delivered or not)."""
        ...


class BotStopped(Exception):
    """The run ended on purpose (stopped, deleted, fenced out); nothing to restart."""


class BotFailed(Exception):
    """The bot must not trade until a person looks: it goes to status 'error' with this message."""


@dataclass(frozen=True, slots=True)
class Lease:
    bot_id: int
    fence: int
    is_valid: Callable[[], bool]


@dataclass
class ActorContext:
    pool: asyncpg.Pool
    events: BotEvents
    market_data: MarketData
    accounts: AccountPool
    clock: Clock
    replica_id: str
    crash_points: CrashPoints = NO_CRASHES
    counters: RuntimeCounters = field(default_factory=RuntimeCounters)
    state_writer: StateWriter | None = None
    history: HistoryCache | None = None


class BotActor:
    def __init__(self, ctx: ActorContext, lease: Lease, mailbox: Mailbox | None = None) -> None:
        self.ctx = ctx
        self.lease = lease
        self.bot_id = lease.bot_id
        # Not `mailbox or …`: an empty Mailbox has len 0 and is falsy.
        self.mailbox = mailbox if mailbox is not None else Mailbox()
        self.config: BotConfig | None = None
        self.account: ExchangeAccount | None = None
        self.position: Position = FLAT
        self.params: EmaCrossParams | None = None
        self.strategy: EmaCrossState | None = None
        self.stopped_out_seq: int | None = None
        self.daily_pnl = 0.0
        self.daily_trades = 0
        self.daily_date: date | None = None
        self.day_start_balance = 0.0
        self.status = "starting"
        self.pause_reason: str | None = None
        self._subscription: Any = None
        self._fees: FeeCollector | None = None
        self._fee_task: asyncio.Task[None] | None = None
        self._fees_unknown = False  # a fill with an unknown fee was recorded since the last wake
        self._fee_days: dict[int, date | None] = {}  # trade id -> the day its PnL was counted in
        self.decisions = 0
        self.last_close: float | None = None
        # Between a warm-up and the newest closed candle in sight the actor decides without trading:
        # a decision that a newer candle it can already see would change is never traded on.
        self._catching_up = False
        self._follow_when_caught_up = False

    # ------------------------------------------------------------------ lifecycle

    async def run(self) -> None:
        try:
            await self._run()
        except (InvalidCredentials, InsufficientBalance) as e:
            raise BotFailed(_readable(e)) from e

    async def _run(self) -> None:
        try:
            await self._start()
            while True:
                # Fee lookups start between messages, never between the legs of one decision.
                if self._fees_unknown and self._fees is not None:
                    self._fees_unknown = False
                    self._fees.wake()
                message = await self.mailbox.get()
                if isinstance(message, Stop):
                    await self._stop(message)
                    return
                if isinstance(message, Reconfigure):
                    await self._reconfigure()
                elif isinstance(message, Tick):
                    await self._tick()
                elif isinstance(message, FeeFound):
                    await self._fee_found(message)
                elif isinstance(message, HelperFailed):
                    if message.owner is self:
                        raise RuntimeError(f"{message.name} failed: {message.error}")
                else:
                    await self._on_candle(message)
        finally:
            self._unsubscribe()
            if self._fee_task is not None:
                await cancel_and_wait(self._fee_task)

    async def _start(self) -> None:
        config = await bot_store.load_config(self.ctx.pool, self.bot_id)
        if config is None:
            raise BotStopped("bot no longer exists")
        self.config = config
        row = await bot_store.load_state_row(self.ctx.pool, self.bot_id)
        assert row is not None
        self.position = bot_store.position_from_row(row)
        self.daily_pnl = float(row["daily_pnl"])
        self.daily_trades = int(row["daily_trades_count"])
        self.daily_date = row["daily_date"]
        self.pause_reason = row["pause_reason"]
        if config.api_key_id is None:
            raise BotFailed("the bot has no API key; set api_key_id and start it again")
        try:
            self.account = await self.ctx.accounts.get(config.api_key_id)
        except InvalidCredentials as e:
            raise BotFailed(str(e)) from e
        if row["status"] not in ("starting", "running", "paused") or not config.is_active:
            # Not meant to run: this run only winds the bot down (a stop nobody has carried out yet).
            await self._reconcile()
            await self._stop(Stop(close_position=bool(row["stop_close_position"])))
            raise BotStopped("wound down")
        await self._save({"status": "starting", "replica_id": self.ctx.replica_id})
        await self._reconcile()
        self._start_fee_collector()
        await self._apply_leverage(row["leverage_applied"])
        await self._warm_up(row["strategy_state"], shared=True)
        self._roll_day(self.ctx.clock.now_ms())
        self.day_start_balance = await self._account().free_balance()
        paused = self.pause_reason is not None and self.daily_date == utc_date(self.ctx.clock.now_ms())
        await self._subscribe()
        self.status = "paused" if paused else "running"
        await self._save(
            {
                "status": self.status,
                **bot_store.daily_fields(self.daily_pnl, self.daily_trades, self.daily_date),
                "pause_reason": self.pause_reason if paused else None,
                "last_error_message": None if not paused else row["last_error_message"],
                "last_run_at": _now(),
                **self._strategy_fields(),
            }
        )
        log.info("bot running", extra={"bot_id": self.bot_id, "fence": self.lease.fence, "status": self.status})
        # The position follows the target: after a restart (a crash may have interrupted a decision)
        # or a start with history, catch up now rather than at the next change of signal; but only
        # once the candles newer than the warm-up (a shared read may be seconds old) are decided on.
        self._catch_up(follow=True)
        await self._follow_once_caught_up()

    async def _stop(self, stop: Stop) -> None:
        self._unsubscribe()
        if stop.handover:
            # The status stays as it is for the next owner; only the indicator state needs keeping,
            # and the batch writer (flushed when the runtime closes) does that without a
            # transaction per bot: a replica with thousands of bots hands over in one statement.
            if self.ctx.state_writer is not None and self.strategy is not None:
                self._snapshot()
            else:
                await self._save({"last_run_at": _now(), **self._strategy_fields()})
            log.info("bot handed over", extra={"bot_id": self.bot_id, "reason": stop.reason})
            return
        await self._save({"status": "stopping"})
        if stop.close_position and not self.position.flat:
            seq = self.strategy.seq if self.strategy else 0
            await self._close_position(Leg.MANUAL, seq, reason="closed on stop")
        await self._save({"status": "stopped", "stop_close_position": False, **self._strategy_fields()})
        log.info("bot stopped", extra={"bot_id": self.bot_id, "reason": stop.reason})

    # ------------------------------------------------------------------ reconciliation

    async def _reconcile(self) -> None:
        """Settle orders a crash left open, then take the exchange's word for the position."""
        account = self._account()
        config = self._config()
        for order in await bot_store.unresolved_orders(self.ctx.pool, self.bot_id):
            try:
                fill = await account.find_order(order["client_order_id"], order["symbol"])
            except OutcomeUnknown as e:
                raise BotFailed(f"cannot reconcile order {order['client_order_id']}: {e}") from e
            if fill is None:
                async with bot_store.fenced(self.ctx.pool, self.bot_id, self.lease.fence) as conn:
                    await bot_store.mark_order(
                        conn, order["id"], status="expired", error_message="never reached the exchange"
                    )
                log.warning("pending order never reached the exchange", extra={"bot_id": self.bot_id,
                                                                               "client_order_id": order["client_order_id"]})
            elif fill.filled > 0:
                self.ctx.counters.orders_reconciled += 1
                await self._record_fill(order["id"], order["client_order_id"], order["side"], fill,
                                        closing=bool(order["reduce_only"]))
            else:
                async with bot_store.fenced(self.ctx.pool, self.bot_id, self.lease.fence) as conn:
                    await bot_store.mark_order(conn, order["id"], status=fill.status,
                                               exchange_order_id=fill.exchange_order_id)
        # A failed report raises (Retryable: the supervisor retries with backoff; InvalidCredentials:
        # the bot fails); it is never read as "flat".
        actual = await account.position(config.symbol)
        if _differs(actual, self.position):
            note = (
                f"position reconciled with the exchange: recorded {_describe(self.position)}, "
                f"exchange has {_describe(actual)}"
            )
            log.warning(note, extra={"bot_id": self.bot_id})
            self.position = actual
            await self._save({**bot_store.position_fields(actual), "last_error_message": note})

    async def _apply_leverage(self, applied: int | None) -> None:
        config = self._config()
        if applied == config.leverage:
            return
        try:
            await self._account().set_leverage(config.symbol, config.leverage)
        except Rejected as e:
            raise BotFailed(f"the exchange refused leverage {config.leverage}: {e}") from e
        await self._save({"leverage_applied": config.leverage})

    # ------------------------------------------------------------------ strategy state

    async def _warm_up(self, saved: dict[str, Any] | None, *, shared: bool = False) -> None:
        """Restore the saved strategy state and catch up from it, or rebuild it from closed history.

        Parameters and state are replaced together at the end, so a reader never sees new
        parameters with an indicator computed for the old ones.
        """
        config = self._config()
        params = EmaCrossParams(ema_period=config.ema_period, allow_short=config.allow_short)
        state: EmaCrossState | None = None
        stopped_out_seq: int | None = None
        if saved:
            try:
                state = EmaCrossState.from_dict(saved.get("ema_cross", {}))
                if state.ema.period != config.ema_period or saved.get("timeframe") != config.timeframe:
                    state = None
                else:
                    stopped_out_seq = saved.get("stopped_out_seq")
            except (ValueError, TypeError, AttributeError):
                state = None
        if state is None:
            state = EmaCrossState.start(params)
            since = None
        else:
            since = next_open(config.timeframe, state.last_candle_ts or 0)
        # A shared read may be a few seconds old: fine before subscribing (the subscription starts
        # after the last candle seen), not while already subscribed (a reconfiguration). It serves a
        # saved state too when it reaches back to that state's next candle: bots taken over together
        # (a failover, a restart) then cost one read per market instead of one each.
        warmup = EMA_CROSS.warmup_candles(params)
        history: list[Candle] | None = None
        if shared and self.ctx.history is not None:
            latest = await self.ctx.history.latest(config.symbol, config.timeframe, warmup)
            if since is None:
                history = latest
            elif latest and latest[0].open_time <= since:
                history = [c for c in latest if c.open_time >= since]
        if history is None:
            history = await self.ctx.market_data.fetch_closed_history(
                config.symbol, config.timeframe, since, warmup if since is None else GAP_READ_CANDLES
            )
        for candle in history:
            if state.last_candle_ts is None or candle.open_time > state.last_candle_ts:
                _, state = decide(_strategy_candle(candle), state, params)
            self.last_close = candle.close
        self.params, self.strategy, self.stopped_out_seq = params, state, stopped_out_seq

    def _strategy_fields(self) -> dict[str, Any]:
        """The strategy state for a synchronous save; a batched snapshot still pending is older."""
        if self.strategy is None:
            return {}
        if self.ctx.state_writer is not None:
            self.ctx.state_writer.discard(self.bot_id)
        return {
            "strategy_state": {
                "ema_cross": self.strategy.to_dict(),
                "timeframe": self._config().timeframe,
                "stopped_out_seq": self.stopped_out_seq,
            },
            "signal_seq": self.strategy.seq,
            "last_candle_time": self.strategy.last_candle_ts,
        }

    # ------------------------------------------------------------------ candles

    async def _on_candle(self, candle: Candle) -> None:
        decided = self._is_next(candle)
        if decided:
            await self._decide(candle)
        if self._catching_up:
            await self._follow_once_caught_up()
        if decided:
            # Counted once the candle's orders are out, the follow-up after a catch-up included:
            # whoever waits for a decision then sees its trades.
            self.decisions += 1

    def _is_next(self, candle: Candle) -> bool:
        assert self.strategy is not None
        config = self._config()
        if candle.symbol != config.symbol or candle.timeframe != config.timeframe or not candle.closed:
            return False  # a leftover from before a reconfiguration
        last = self.strategy.last_candle_ts
        return last is None or candle.open_time > last  # else already decided on (a replay)

    async def _decide(self, candle: Candle) -> None:
        assert self.strategy is not None and self.params is not None
        config = self._config()
        last = self.strategy.last_candle_ts
        expected = None if last is None else next_open(config.timeframe, last)
        if expected is not None and candle.open_time > expected:
            await self._backfill(expected, candle.open_time)
        started = time.perf_counter()
        decision, self.strategy = decide(_strategy_candle(candle), self.strategy, self.params)
        self.last_close = candle.close
        self._roll_day(self.ctx.clock.now_ms())
        if self._catching_up:
            traded = False
            self._follow_when_caught_up = True  # a candle after the warm-up: its target is due
        else:
            traded = await self._act(candle, decision.target, decision.seq)
        self.ctx.counters.decisions += 1
        self.ctx.counters.decision_seconds += time.perf_counter() - started
        if not traded and self.ctx.state_writer is not None:
            self._snapshot()

    def _catch_up(self, *, follow: bool) -> None:
        """From now on decide without trading until no newer closed candle is in sight; then follow
        the target if `follow` (a start) or if any candle was decided meanwhile."""
        self._catching_up = True
        self._follow_when_caught_up = follow

    async def _follow_once_caught_up(self) -> None:
        """Ends the catch-up once the newest closed candle in sight is decided on, and follows the
        target then: the mailbox's queued candles and those the hub holds for the stream come first,
        as trading on an older decision would be a round trip (two fees, slippage) for nothing."""
        if self.mailbox.queued_candles or self._stream_is_ahead():
            return  # the main loop decides on them, then comes back here
        self._catching_up = False
        follow, self._follow_when_caught_up = self._follow_when_caught_up, False
        if follow and self.status == "running" and self.strategy is not None and self.last_close is not None:
            await self._follow(self.strategy.target, self.strategy.seq, self.last_close)

    def _stream_is_ahead(self) -> bool:
        if self._subscription is None or self.strategy is None:
            return False
        newest = self.ctx.market_data.newest_closed(self._subscription)
        last = self.strategy.last_candle_ts
        return newest is not None and (last is None or newest > last)

    def _snapshot(self) -> None:
        """Hand the indicator state to the batch writer (written within a second, fenced)."""
        assert self.strategy is not None and self.ctx.state_writer is not None
        self.ctx.state_writer.put(self.bot_id, Snapshot(
            self.lease.fence,
            {"ema_cross": self.strategy.to_dict(), "timeframe": self._config().timeframe,
             "stopped_out_seq": self.stopped_out_seq},
            self.strategy.seq,
            self.strategy.last_candle_ts,
            _now(),
        ))

    async def _backfill(self, since: int, until: int) -> None:
        """Decide on the candles we missed (without trading on stale prices) before the new one."""
        assert self.strategy is not None and self.params is not None
        config = self._config()
        missed = await self.ctx.market_data.fetch_closed_history(config.symbol, config.timeframe, since,
                                                                 candles_between(config.timeframe, since, until) + 1)
        for c in missed:
            if c.open_time >= until:
                break
            if self.strategy.last_candle_ts is None or c.open_time > self.strategy.last_candle_ts:
                _, self.strategy = decide(_strategy_candle(c), self.strategy, self.params)
        log.info("backfilled missed candles", extra={"bot_id": self.bot_id, "since": since, "until": until})

    async def _act(self, candle: Candle, target: Target | None, seq: int) -> bool:
        """Risk rules, then move the position toward the target. True if it traded."""
        config = self._config()
        limits = RiskLimits(config.max_daily_trades, config.max_daily_loss_pct, config.stop_loss_pct,
                            config.take_profit_pct)
        traded = False
        # Stop loss / take profit on the candle just closed.
        if not self.position.flat and self.position.entry_price:
            reason = check_exit(self.position.side or "", self.position.entry_price, candle.low, candle.high, limits)
            if reason is not None:
                await self._close_position(Leg.EXIT, seq, reason=reason.value)
                # Like the backtest: no re-entry until the strategy's target changes again.
                self.stopped_out_seq = seq
                traded = True
                if reason is ExitReason.STOP_LOSS:
                    log.info("stop loss hit", extra={"bot_id": self.bot_id, "price": candle.low})
        # Today's loss counts the open position at this close too, not only what was realised.
        today = self.daily_pnl + self._unrealized(candle.close)
        if daily_loss_breached(today, self.day_start_balance, limits) and self.status != "paused":
            if not self.position.flat:
                await self._close_position(Leg.EXIT, seq, reason="daily loss limit")
            await self._pause("daily_loss", f"daily loss limit of {config.max_daily_loss_pct:g}% reached; "
                                            "trading resumes at 00:00 UTC")
            return True
        return await self._follow(target, seq, candle.close) or traded

    async def _follow(self, target: Target | None, seq: int, price: float) -> bool:
        """Move the position to the strategy's target (never re-entering after a stop-out on the
        same signal); True if it traded."""
        config = self._config()
        limits = RiskLimits(config.max_daily_trades, config.max_daily_loss_pct, config.stop_loss_pct,
                            config.take_profit_pct)
        traded = False
        if target is None:
            return traded
        desired = {Target.LONG: "long", Target.SHORT: "short", Target.FLAT: None}[target]
        if self.stopped_out_seq is not None and seq == self.stopped_out_seq:
            desired = None if not self.position.flat else self.position.side
        current = None if self.position.flat else self.position.side
        if desired == current:
            return traded
        if current is not None:
            await self._close_position(Leg.CLOSE, seq, reason="signal")
            traded = True
        if desired is not None:
            if self.status == "paused":
                return traded
            if daily_trades_reached(self.daily_trades, limits):
                await self._pause("daily_trades", f"daily limit of {config.max_daily_trades} trades reached; "
                                                  "trading resumes at 00:00 UTC")
                return traded
            traded = await self._open_position(desired, seq, price) or traded
        return traded

    def _unrealized(self, price: float) -> float:
        p = self.position
        if p.flat or not p.entry_price:
            return 0.0
        return (price - p.entry_price) * p.size * (1.0 if p.side == "long" else -1.0)

    # ------------------------------------------------------------------ orders

    async def _open_position(self, side: str, seq: int, price: float) -> bool:
        config = self._config()
        account = self._account()
        market = await account.market_limits(config.symbol)
        free = await account.free_balance()
        sizing = position_size(free, config.order_size_pct, config.leverage, price, market)
        if sizing.amount <= 0:
            await self._save({"last_error_message": f"no order: {sizing.reason}", **self._strategy_fields()})
            return False
        await self._place(Leg.OPEN, seq, "buy" if side == "long" else "sell", sizing.amount, reduce_only=False,
                          intent=f"open_{side}")
        return True

    async def _close_position(self, leg: Leg, seq: int, *, reason: str) -> None:
        side = "sell" if self.position.side == "long" else "buy"
        await self._place(leg, seq, side, self.position.size, reduce_only=True,
                          intent=f"close_{self.position.side}:{reason}")

    async def _place(self, leg: Leg, seq: int, side: str, amount: float, *, reduce_only: bool, intent: str) -> None:
        config = self._config()
        cid = client_order_id(self.bot_id, self.lease.fence, seq, leg)
        order = NewOrder(self.bot_id, config.user_id, cid, config.symbol, side, amount, reduce_only, intent, seq,
                         self.lease.fence)
        async with bot_store.fenced(self.ctx.pool, self.bot_id, self.lease.fence) as conn:
            order_id = await bot_store.insert_order(conn, order)
        if order_id is None:
            # This exact order was recorded before (a replayed decision): settle it, never resend.
            existing = await bot_store.order_by_client_id(self.ctx.pool, cid)
            assert existing is not None
            fill = await self._account().find_order(cid, config.symbol)
            if fill is not None and fill.filled > 0:
                await self._record_fill(existing["id"], cid, side, fill, closing=reduce_only)
            return
        if not self.lease.is_valid():
            # The row is written but nothing was sent; the next owner expires it after asking the exchange.
            raise FencedOut(f"bot {self.bot_id}: lease lapsed before sending {cid}")
        self.ctx.crash_points.hit("before_send")
        self.ctx.counters.orders_sent += 1
        try:
            fill = await self._account().place_market_order(cid, config.symbol, side, amount, reduce_only=reduce_only)
        except OutcomeUnknown:
            self.ctx.counters.orders_unknown += 1
            async with bot_store.fenced(self.ctx.pool, self.bot_id, self.lease.fence) as conn:
                await bot_store.mark_order(conn, order_id, status="unknown", error_message="outcome unknown")
            raise
        except (InsufficientBalance, InvalidCredentials) as e:
            await self._reject(order_id, e)
            raise BotFailed(_readable(e)) from e
        except Rejected as e:
            await self._reject(order_id, e)
            await self._save({"last_error_message": f"order rejected: {_readable(e)}"})
            return
        self.ctx.crash_points.hit("after_send")
        await self._record_fill(order_id, cid, side, fill, closing=reduce_only)

    async def _reject(self, order_id: int, error: ExchangeError) -> None:
        self.ctx.counters.orders_rejected += 1
        async with bot_store.fenced(self.ctx.pool, self.bot_id, self.lease.fence) as conn:
            await bot_store.mark_order(conn, order_id, status="rejected", error_message=_readable(error)[:500])

    async def _record_fill(self, order_id: int, cid: str, side: str, fill: Fill, *, closing: bool) -> None:
        """Order, trade and position in one fenced transaction, then tell the subscribers."""
        config = self._config()
        price = fill.average or 0.0
        realized = 0.0
        position = self.position
        if fill.filled > 0 and price > 0:
            if closing and not position.flat and position.entry_price:
                direction = 1.0 if position.side == "long" else -1.0
                closed = min(fill.filled, position.size)
                realized = (price - position.entry_price) * closed * direction
                remaining = position.size - closed
                position = FLAT if remaining <= 1e-12 else replace(position, size=remaining)
            elif not closing:
                new_side = "long" if side == "buy" else "short"
                if position.flat:
                    position = Position(new_side, fill.filled, price)
                else:  # adding to a position: weighted entry
                    size = position.size + fill.filled
                    entry = ((position.entry_price or price) * position.size + price * fill.filled) / size
                    position = Position(new_side, size, entry)
        trade_row = None
        async with bot_store.fenced(self.ctx.pool, self.bot_id, self.lease.fence) as conn:
            await bot_store.mark_order(conn, order_id, status=fill.status, exchange_order_id=fill.exchange_order_id,
                                       filled_amount=fill.filled, average_price=fill.average, fee=fill.fee)
            if fill.filled > 0 and price > 0:
                trade_row = await bot_store.insert_trade(
                    conn, bot_id=self.bot_id, user_id=config.user_id, order_id=order_id, symbol=config.symbol,
                    side=side, price=price, amount=fill.filled, fee=fill.fee, realized_pnl=realized,
                    client_order_id=cid,
                )
            if trade_row is not None:
                self.position = position
                # Only known fees count; an unknown one is added when the fee job reads it.
                self.daily_pnl += realized - (fill.fee or 0.0)
                self.daily_trades += 1
                if fill.fee is None:
                    self._fees_unknown = True
                    self._fee_days[trade_row["id"]] = self.daily_date
            state = await bot_store.update_state(conn, self.bot_id, {
                **bot_store.position_fields(self.position),
                **bot_store.daily_fields(self.daily_pnl, self.daily_trades, self.daily_date),
                "last_run_at": _now(),
                **self._strategy_fields(),
            })
        if trade_row is not None:
            self.ctx.counters.orders_filled += 1
            await self._publish("trade", trade_view(trade_row))
            log.info("traded", extra={"bot_id": self.bot_id, "client_order_id": cid, "side": side,
                                      "amount": fill.filled, "price": price})
        await self._publish("state", state)

    # ------------------------------------------------------------------ fees

    def _start_fee_collector(self) -> None:
        self._fees = FeeCollector(self.ctx.pool, self.bot_id, self._account(), self.mailbox.send)
        self._fee_task = asyncio.create_task(self._fees.run(), name=f"bot-{self.bot_id}-fees")
        self._fee_task.add_done_callback(self._fee_task_done)

    def _fee_task_done(self, task: asyncio.Task[None]) -> None:
        if task.cancelled():
            return
        error = task.exception()
        log.error("fee collector stopped", exc_info=error, extra={"bot_id": self.bot_id})
        # The actor fails with it, so the supervisor restarts both under its budget: never a silent death.
        self.mailbox.send(HelperFailed(self, task.get_name(), repr(error) if error else "returned"))

    async def _fee_found(self, found: FeeFound) -> None:
        """Fill in a fee that was unknown; today's PnL takes it if its trade was counted today."""
        async with bot_store.fenced(self.ctx.pool, self.bot_id, self.lease.fence) as conn:
            row = await bot_store.set_trade_fee(conn, self.bot_id, found.trade_id, found.fee)
            if row is None:
                return  # known already (reported twice, or by an earlier run's lookup)
            day = self._fee_days.pop(found.trade_id, None) or row["created_at"].astimezone(UTC).date()
            pnl = self.daily_pnl - found.fee if day == self.daily_date else self.daily_pnl
            state = await bot_store.update_state(
                conn, self.bot_id, bot_store.daily_fields(pnl, self.daily_trades, self.daily_date)
            )
        self.daily_pnl = pnl
        log.info("fee filled in", extra={"bot_id": self.bot_id, "trade_id": found.trade_id, "fee": found.fee})
        await self._publish("state", state)

    # ------------------------------------------------------------------ limits, days, config

    async def _pause(self, reason: str, message: str) -> None:
        self.status = "paused"
        self.pause_reason = reason
        await self._save({"status": "paused", "pause_reason": reason, "last_error_message": message,
                          **self._strategy_fields()})

    def _roll_day(self, now_ms: int) -> None:
        today = utc_date(now_ms)
        if self.daily_date != today:
            self.daily_date = today
            self.daily_pnl = 0.0
            self.daily_trades = 0

    async def _tick(self) -> None:
        """A new UTC day resets the counters and resumes a bot that a daily limit paused."""
        before = self.daily_date
        self._roll_day(self.ctx.clock.now_ms())
        if self.daily_date == before:
            return
        fields: dict[str, Any] = bot_store.daily_fields(0.0, 0, self.daily_date)
        if self.status == "paused":
            self.status = "running"
            self.pause_reason = None
            fields.update({"status": "running", "pause_reason": None, "last_error_message": None})
        self.day_start_balance = await self._account().free_balance()
        await self._save(fields)

    async def _reconfigure(self) -> None:
        old = self._config()
        config = await bot_store.load_config(self.ctx.pool, self.bot_id)
        if config is None or config.deleted or not config.is_active:
            return  # a stop or delete command follows
        self.config = config
        rewarmed = False
        if (config.symbol, config.timeframe) != (old.symbol, old.timeframe):
            self._unsubscribe()
            await self._warm_up(None)
            await self._subscribe()
            rewarmed = True
        elif (config.ema_period, config.allow_short) != (old.ema_period, old.allow_short):
            # A new period changes the indicator from its seed on: recompute it over history.
            await self._warm_up(None)
            rewarmed = True
        if config.leverage != old.leverage:
            await self._apply_leverage(None)
        await self._save({**self._strategy_fields()})
        log.info("bot reconfigured", extra={"bot_id": self.bot_id})
        if rewarmed:
            # The new settings take effect at the next candle; candles that closed during the
            # warm-up's read are decided on first, and only the newest is traded on.
            self._catch_up(follow=self._follow_when_caught_up and self._catching_up)
            await self._follow_once_caught_up()

    # ------------------------------------------------------------------ plumbing

    async def _subscribe(self) -> None:
        """Subscribe after the last candle decided on, and wait until the stream is live.

        With no history at all the subscription starts from the beginning of time, which costs
        nothing (there is nothing) and closes the gap between the warm-up read and the subscription.
        """
        config = self._config()
        last = self.strategy.last_candle_ts if self.strategy else None
        self._subscription = self.ctx.market_data.subscribe(
            config.symbol, config.timeframe, self.mailbox, after=last if last is not None else 0
        )
        live = getattr(self._subscription, "live", None)
        if live is not None:
            try:
                await asyncio.wait_for(live.wait(), timeout=SUBSCRIBE_TIMEOUT_S)
            except TimeoutError:
                log.warning("market data not live yet; the hub keeps trying", extra={"bot_id": self.bot_id})

    def _unsubscribe(self) -> None:
        if self._subscription is not None:
            self.ctx.market_data.unsubscribe(self._subscription)
            self._subscription = None

    async def _save(self, fields: dict[str, Any]) -> None:
        async with bot_store.fenced(self.ctx.pool, self.bot_id, self.lease.fence) as conn:
            state = await bot_store.update_state(conn, self.bot_id, fields)
        await self._publish("state", state)

    async def _publish(self, event: str, data: dict[str, Any]) -> None:
        try:
            await self.ctx.events.publish(self.bot_id, event, data)
        except Exception as e:  # a lost event must not stop trading; the state row is the truth
            log.warning("could not publish a bot event", extra={"bot_id": self.bot_id, "error": str(e)})

    def _config(self) -> BotConfig:
        assert self.config is not None
        return self.config

    def _account(self) -> ExchangeAccount:
        assert self.account is not None
        return self.account


def _strategy_candle(c: Candle) -> StrategyCandle:
    return StrategyCandle(c.open_time, c.open, c.high, c.low, c.close, c.volume)


def _differs(a: Position, b: Position) -> bool:
    if a.flat and b.flat:
        return False
    if a.flat != b.flat or a.side != b.side:
        return True
    return abs(a.size - b.size) > 1e-9 * max(1.0, a.size)


def _describe(p: Position) -> str:
    return "flat" if p.flat else f"{p.side} {p.size:g} @ {p.entry_price or 0:g}"


def _readable(e: Exception) -> str:
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
