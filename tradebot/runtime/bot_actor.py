"""One running bot: an asyncio task that owns its bot's state and reads one bounded mailbox.

Lifecycle of a run (one lease, one fencing token):
  1. load the settings; reconcile orders left pending by a crash (query each client order id);
  2. reconcile the position with the account (the account wins; a failed report is never "flat");
  3. set leverage; restore the strategy state or warm it up from closed history (as many candles as
     the strategy says its state needs to equal the full-history one);
  4. subscribe to closed candles and decide on those newer than the warm-up without trading; once
     caught up to the newest closed candle in sight, take the position of the current target;
  5. on each later closed candle: decide (pure strategy), then carry out the order decision's steps
     (pure `order_decisions`: risk rules, then follow the target) through the order executor;
  6. on ManualCommands (and once running, for commands an earlier run left): carry out the pending
     force-exit / force-entry rows (pure `manual_decisions`) through the same executor, reason
     "manual"; a command whose order reached the account already is only marked done;
  7. on Stop: optionally flatten, save everything, status "stopped".
Only this task changes the bot's state; everyone else sends it a message. Every database write is
fenced (`bot_store.fenced`), so a run whose lease was taken over cannot write or trade. The actor
talks to its account only through the `Account` Protocol and cannot tell live from paper.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from tradebot.exchange.errors import InsufficientBalance, InvalidCredentials, Rejected
from tradebot.runtime import bot_store
from tradebot.runtime.account import Account, CandleRange
from tradebot.runtime.actor_context import ActorContext as ActorContext  # re-exported for the runtime
from tradebot.runtime.actor_context import BotFailed as BotFailed
from tradebot.runtime.actor_context import BotStopped as BotStopped
from tradebot.runtime.actor_context import Lease as Lease
from tradebot.runtime.bot_store import FLAT, BotConfig
from tradebot.runtime.candles import Candle
from tradebot.runtime.client_order_id import Leg
from tradebot.runtime.clock import utc_date
from tradebot.runtime.mailbox import FeeFound, HelperFailed, Mailbox, ManualCommands, Reconfigure, Stop, Tick
from tradebot.runtime.manual_decisions import ManualEntry, Refused, force_entry, force_exit
from tradebot.runtime.order_decisions import (
    Book,
    Close,
    ClosedCandle,
    DailyTally,
    Open,
    Pause,
    Steps,
    follow,
    on_candle,
    pause_still_holds,
)
from tradebot.runtime.order_executor import (
    BotRef,
    OrderExecutor,
    OrderRequest,
    Protection,
    ReconcileFailed,
    readable,
)
from tradebot.runtime.positions import closing_side
from tradebot.runtime.risk import ExitReason, RiskLimits, position_size
from tradebot.runtime.strategy_feed import StrategyFeed
from tradebot.statuses import LIVE_STATUSES, BotStatus
from tradebot.strategies.base import ParameterError, UnknownStrategyError

log = logging.getLogger(__name__)


class BotActor:
    def __init__(self, ctx: ActorContext, lease: Lease, mailbox: Mailbox | None = None) -> None:
        self.ctx = ctx
        self.lease = lease
        self.bot_id = lease.bot_id
        # Not `mailbox or …`: an empty Mailbox has len 0 and is falsy.
        self.mailbox = mailbox if mailbox is not None else Mailbox()
        self.config: BotConfig | None = None
        self.executor: OrderExecutor | None = None
        self.feed = StrategyFeed(ctx.market_data, ctx.history, ctx.state_writer, self.mailbox, lease)
        self.book = Book(FLAT, DailyTally(None))
        self.status = BotStatus.STARTING
        self.pause_reason: str | None = None
        self.decisions = 0

    @property
    def strategy(self) -> Any:
        """The strategy's own live state (its type is the strategy's; None until warmed up)."""
        return self.feed.strategy

    @property
    def params(self) -> Any:
        """The strategy's parsed parameters (None until warmed up)."""
        return self.feed.params

    # ------------------------------------------------------------------ lifecycle

    async def run(self) -> None:
        try:
            await self._run()
        except (InvalidCredentials, InsufficientBalance) as e:
            raise BotFailed(readable(e)) from e
        except ReconcileFailed as e:
            raise BotFailed(str(e)) from e

    async def _run(self) -> None:
        try:
            await self._start()
            while True:
                self._executor().wake_fee_lookups()  # between messages, never between two legs
                message = await self.mailbox.get()
                if isinstance(message, Stop):
                    await self._stop(message)
                    return
                if isinstance(message, Reconfigure):
                    await self._reconfigure()
                elif isinstance(message, Tick):
                    await self._new_day_if_due()
                elif isinstance(message, ManualCommands):
                    await self._manual_commands()
                elif isinstance(message, FeeFound):
                    self.book = await self._executor().fill_in_fee(message, self.book)
                elif isinstance(message, HelperFailed):
                    if message.owner is self.executor:
                        raise RuntimeError(f"{message.name} failed: {message.error}")
                else:
                    await self._on_candle(message)
        finally:
            self.feed.unsubscribe()
            if self.executor is not None:
                await self.executor.close()

    async def _start(self) -> None:
        config = await bot_store.load_config(self.ctx.pool, self.bot_id)
        if config is None:
            raise BotStopped("bot no longer exists")
        self.config = config
        row = await bot_store.load_state_row(self.ctx.pool, self.bot_id)
        assert row is not None
        self.book = Book(bot_store.position_from_row(row),
                         DailyTally(row["daily_date"], float(row["daily_pnl"]), int(row["daily_trades_count"])))
        self.pause_reason = row["pause_reason"]
        try:
            # Live on the bot's key or paper by its mode; the rest of the run cannot tell which.
            account = await self.ctx.accounts.for_bot(config, self.lease.fence, lambda: self.feed.last_close)
        except InvalidCredentials as e:
            raise BotFailed(str(e)) from e
        self.executor = OrderExecutor(
            self.ctx.pool, account, BotRef(self.bot_id, config.user_id, self.lease.fence, self.lease.is_valid),
            self._publish, crash_points=self.ctx.crash_points, counters=self.ctx.counters,
        )
        if row["status"] not in LIVE_STATUSES or not config.is_active:
            # Not meant to run: this run only winds the bot down (a stop nobody has carried out yet).
            await self._reconcile()
            await self._stop(Stop(close_position=bool(row["stop_close_position"])))
            raise BotStopped("wound down")
        await self._save({"status": BotStatus.STARTING, "replica_id": self.ctx.replica_id})
        await self._reconcile()
        stopped_while_away = self.book.stopped_out_seq  # a protective order that fired meanwhile
        self._executor().start_fee_lookups(self.mailbox)
        await self._apply_leverage(row["leverage_applied"])
        await self._warm_up(row["strategy_state"], shared=True)
        if stopped_while_away is not None:
            self.book = replace(self.book, stopped_out_seq=stopped_while_away)
        # Checked and restored on every start and takeover (fail closed: no entries until confirmed).
        await self._protect()
        today = utc_date(self.ctx.clock.now_ms())
        paused = pause_still_holds(self.pause_reason, self.book.tally.day, today)  # before the day rolls
        self.book = replace(self.book, tally=self.book.tally.rolled(today),
                            day_start_balance=await self._account().free_balance())
        await self.feed.subscribe(config)
        self.status = BotStatus.PAUSED if paused else BotStatus.RUNNING
        self.pause_reason = self.pause_reason if paused else None
        tally = self.book.tally
        await self._save({
            "status": self.status,
            **bot_store.daily_fields(tally.pnl, tally.trades, tally.day),
            "pause_reason": self.pause_reason,
            "last_error_message": None if not paused else row["last_error_message"],
            "last_run_at": _now(),
            **self._strategy_fields(),
        })
        log.info("bot running", extra={"bot_id": self.bot_id, "fence": self.lease.fence, "status": self.status})
        # The position follows the target: after a restart (a crash may have interrupted a decision)
        # or a start with history, catch up now rather than at the next change of signal; but only
        # once the candles newer than the warm-up (a shared read may be seconds old) are decided on.
        self.feed.catch_up(follow=True)
        await self._follow_once_caught_up()
        # Commands recorded while no run was there to carry them out (a failover, a lost prompt).
        await self._manual_commands()

    async def _stop(self, stop: Stop) -> None:
        self.feed.unsubscribe()
        if stop.handover:
            # The status stays as it is for the next owner; only the indicator state needs keeping,
            # and the batch writer (flushed when the runtime closes) does that without a
            # transaction per bot: a replica with thousands of bots hands over in one statement.
            if not self.feed.snapshot(self._config(), self.book.stopped_out_seq):
                await self._save({"last_run_at": _now(), **self._strategy_fields()})
            log.info("bot handed over", extra={"bot_id": self.bot_id, "reason": stop.reason})
            return
        await self._save({"status": BotStatus.STOPPING})
        if stop.close_position and not self.book.position.flat:
            seq = self.feed.progress.seq if self.feed.progress else 0
            await self._close(Close(Leg.MANUAL, "closed on stop"), seq)
        await self._save({"status": BotStatus.STOPPED, "stop_close_position": False, **self._strategy_fields()})
        log.info("bot stopped", extra={"bot_id": self.bot_id, "reason": stop.reason})

    async def _reconcile(self) -> None:
        """Settle orders a crash left open, then take the account's word for the position."""
        self.book = await self._executor().reconcile(self._config().symbol, self.book, self._strategy_fields)

    async def _apply_leverage(self, applied: int | None) -> None:
        config = self._config()
        if applied == config.leverage:
            return
        try:
            await self._account().set_leverage(config.symbol, config.leverage)
        except Rejected as e:
            raise BotFailed(f"the exchange refused leverage {config.leverage}: {e}") from e
        await self._save({"leverage_applied": config.leverage})

    # ------------------------------------------------------------------ candles

    async def _on_candle(self, candle: Candle) -> None:
        decided = self.feed.is_next(candle, self._config())
        if decided:
            await self._decide(candle)
        if self.feed.catching_up:
            await self._follow_once_caught_up()
        if decided:
            self.decisions += 1  # counted once the candle is fully handled, a catch-up's trade included

    async def _decide(self, candle: Candle) -> None:
        config = self._config()
        await self.feed.backfill_before(candle, config)
        started = time.perf_counter()
        decision = self.feed.decide(candle)
        await self._new_day_if_due()  # the day's first candle often comes before the day's tick
        traded = await self._settle_protection(candle)
        if self.feed.catching_up:
            self.feed.follow_when_caught_up = True  # a candle after the warm-up: its target is due
        else:
            executor = self._executor()
            steps = on_candle(self.book, ClosedCandle(candle.low, candle.high, candle.close), decision.target,
                              decision.seq, self._limits(),
                              paused=self.status == BotStatus.PAUSED or executor.unprotected is not None,
                              exchange_stops=self._protection().wanted and executor.unprotected is None)
            traded = await self._carry_out(steps, decision.seq, candle.close) or traded
        self.ctx.counters.decisions += 1
        self.ctx.counters.decision_seconds += time.perf_counter() - started
        if not traded:
            self.feed.snapshot(config, self.book.stopped_out_seq)

    async def _settle_protection(self, candle: Candle) -> bool:
        """The account's protective orders at this candle: a paper account triggers them on its
        range, then every one the account may hold is asked about (a fill is recorded with its
        reason and stops the signal out); a protection not confirmed yet is tried again. True if
        the book changed."""
        executor = self._executor()
        before = self.book
        self.book = await executor.settle_protection(self.book, self._strategy_fields,
                                                     CandleRange(candle.open, candle.high, candle.low))
        if executor.unprotected is not None:
            await self._protect()
        return self.book is not before

    async def _protect(self) -> None:
        executor = self._executor()
        if self.book.position.flat:
            await executor.protection_confirmed()
            return
        self.book = await executor.protect(self._config().symbol, self.book, self._protection(), self._strategy_fields)

    async def _follow_once_caught_up(self) -> None:
        """Ends the catch-up once the newest closed candle in sight is decided on, and follows the
        target then: the mailbox's queued candles and those the hub holds for the stream come first,
        as trading on an older decision would be a round trip (two fees, slippage) for nothing."""
        if not self.feed.caught_up():
            return  # the main loop decides on them, then comes back here
        progress = self.feed.progress
        if self.feed.end_catch_up() and self.status == BotStatus.RUNNING and progress is not None \
                and self.feed.last_close is not None:
            steps = follow(self.book, progress.target, progress.seq, self._limits(), paused=False)
            await self._carry_out(steps, progress.seq, self.feed.last_close)

    # ------------------------------------------------------------------ carrying out a decision

    async def _carry_out(self, steps: Steps, seq: int, price: float) -> bool:
        """Carry out each step, telling the decision the book as it is after it; True if the
        strategy state was saved along the way (a fill, a pause or a note writes it)."""
        saved = False
        try:
            step = next(steps)
            while True:
                if isinstance(step, Close):
                    await self._close(step, seq)
                    # No re-entry until the target changes again; a close the account refused
                    # stopped nothing out (the next candle's check fires again).
                    if step.stops_out and self.book.position.flat:
                        self.book = replace(self.book, stopped_out_seq=seq)
                    if step.reason == ExitReason.STOP_LOSS.label:
                        log.info("stop loss hit", extra={"bot_id": self.bot_id, "price": price})
                elif isinstance(step, Open):
                    # pause-entries is the API's column, read at the moment it matters (never a
                    # copy a lost prompt could leave stale); exits and protection go on. A skipped
                    # entry writes nothing: the strategy state then goes to the batch writer.
                    if await bot_store.entries_paused(self.ctx.pool, self.bot_id):
                        step = steps.send(self.book)
                        continue
                    await self._open(step, seq, price)
                elif isinstance(step, Pause):
                    await self._pause(step)
                saved = True
                step = steps.send(self.book)
        except StopIteration:
            return saved

    async def _open(self, step: Open, seq: int, price: float, *, order_size_pct: float | None = None,
                    command_id: int | None = None) -> str | None:
        """Size and place an entry; the reason when no order could be sized (noted in the state)."""
        config = self._config()
        account = self._account()
        market = await account.market_limits(config.symbol)
        free = await account.free_balance()
        side = "buy" if step.side == "long" else "sell"
        pct = config.order_size_pct if order_size_pct is None else order_size_pct
        sizing = position_size(free, pct, config.leverage, account.expected_fill_price(side, price), market)
        if sizing.amount <= 0:
            reason = f"no order: {sizing.reason}"
            await self._save({"last_error_message": reason, **self._strategy_fields()})
            return reason
        if command_id is None:
            request = OrderRequest(config.symbol, side, sizing.amount, False, Leg.OPEN, seq, f"open_{step.side}")
        else:
            request = OrderRequest(config.symbol, side, sizing.amount, False, Leg.FORCE_ENTRY, command_id,
                                   f"open_{step.side}:manual", reason="manual", command_id=command_id)
        await self._place(request)
        await self._protect()  # right after the entry fills
        return None

    async def _close(self, step: Close, seq: int) -> None:
        position = self.book.position
        intent = f"close_{position.side}:{step.reason}"
        await self._place(OrderRequest(self._config().symbol, closing_side(position), position.size, True, step.leg,
                                       seq, intent, reason=_trade_reason(step)))
        # The protective orders are cancelled right after the close, before anything else is sent
        # (left alone they could fire on a later position of the same side): the close goes out
        # first, as they are reduce-only and cannot open or grow a position meanwhile. One that
        # fired first is recorded here (the close was then refused as not reducing).
        self.book = await self._executor().cancel_protection(self.book, self._strategy_fields)

    async def _place(self, request: OrderRequest) -> None:
        # The candle the strategy decided on last is the one this order answers (the drift report
        # pairs it with the backtest's fill of the same decision).
        strategy = self.feed.strategy
        if strategy is not None:
            request = replace(request, candle_time=strategy.last_candle_ts)
        self.book = await self._executor().place(request, self.book, self._strategy_fields)

    # ------------------------------------------------------------------ manual commands

    async def _manual_commands(self) -> None:
        """Carry out the force-exit / force-entry rows the API recorded, oldest first, between
        decisions. Each order is numbered by its command (client id leg `f`/`e`), and a command
        whose order an earlier run got to the account (settled by this run's reconciliation) is
        only marked done: a command is carried out once, whoever owns the bot when it is read."""
        if self.status not in (BotStatus.RUNNING, BotStatus.PAUSED):
            return  # read again when this run is running (end of `_start`)
        for command in await bot_store.pending_commands(self.ctx.pool, self.bot_id):
            if await bot_store.command_reached_account(self.ctx.pool, command.id):
                await self._finish_command(command.id, "done", None)
                continue
            refusal = await self._manual(command)
            await self._finish_command(command.id, "refused" if refusal else "done", refusal)

    async def _manual(self, command: bot_store.PendingCommand) -> str | None:
        """Carry one command out; the reason when it no longer makes sense (recorded, shown)."""
        config = self._config()
        position = self.book.position
        # The signal the position now answers: held until the strategy's target changes again.
        seq = self.feed.progress.seq if self.feed.progress else 0
        if command.kind == "force_exit":
            market = await self._account().market_limits(config.symbol)
            decision = force_exit(position, command.pct or 100.0, market.amount_step)
            if isinstance(decision, Refused):
                await self._save({"last_error_message": decision.reason})
                return decision.reason
            await self._place(OrderRequest(config.symbol, closing_side(position), decision.amount, True,
                                           Leg.FORCE_EXIT, command.id, f"close_{position.side}:manual",
                                           reason="manual", command_id=command.id))
            if decision.full and self.book.position.flat:
                self.book = replace(self.book, stopped_out_seq=seq)
                await self._save({**self._strategy_fields()})
            return None
        entry = force_entry(position, command.side or "", command.order_size_pct, config.order_size_pct,
                            daily_paused=self.status == BotStatus.PAUSED)
        if isinstance(entry, Refused):
            await self._save({"last_error_message": entry.reason})
            return entry.reason
        assert isinstance(entry, ManualEntry)
        price = self.feed.last_close
        if price is None:
            reason = "force-entry: no price yet (no closed candle seen)"
            await self._save({"last_error_message": reason})
            return reason
        unsized = await self._open(Open(entry.side), seq, price, order_size_pct=entry.order_size_pct,
                                   command_id=command.id)
        if unsized is not None:
            return f"force-entry: {unsized}"
        if not self.book.position.flat:
            self.book = replace(self.book, stopped_out_seq=seq)
            await self._save({**self._strategy_fields()})
        return None

    async def _finish_command(self, command_id: int, status: str, message: str | None) -> None:
        async with bot_store.fenced(self.ctx.pool, self.bot_id, self.lease.fence) as conn:
            await bot_store.finish_command(conn, command_id, status=status, message=message)
        log.info("manual command %s", status, extra={"bot_id": self.bot_id, "command_id": command_id,
                                                      "detail": message})

    async def _pause(self, pause: Pause) -> None:
        self.status = BotStatus.PAUSED
        self.pause_reason = pause.reason.value
        await self._save({"status": BotStatus.PAUSED, "pause_reason": self.pause_reason, "last_error_message": pause.message,
                          **self._strategy_fields()})

    # ------------------------------------------------------------------ days, config

    async def _new_day_if_due(self) -> None:
        """A new UTC day resets the counters and resumes a bot that a daily limit paused."""
        tally = self.book.tally.rolled(utc_date(self.ctx.clock.now_ms()))
        if tally is self.book.tally:
            return
        fields: dict[str, Any] = bot_store.daily_fields(0.0, 0, tally.day)
        if self.status == BotStatus.PAUSED:
            self.status = BotStatus.RUNNING
            self.pause_reason = None
            fields.update({"status": BotStatus.RUNNING, "pause_reason": None, "last_error_message": None})
        self.book = replace(self.book, tally=tally, day_start_balance=await self._account().free_balance())
        await self._save(fields)

    async def _reconfigure(self) -> None:
        old = self._config()
        config = await bot_store.load_config(self.ctx.pool, self.bot_id)
        if config is None or config.deleted or not config.is_active:
            return  # a stop or delete command follows
        self.config = config
        rewarmed = False
        if (config.symbol, config.timeframe) != (old.symbol, old.timeframe):
            self.feed.unsubscribe()
            await self._warm_up(None)
            await self.feed.subscribe(config)
            rewarmed = True
        elif (config.strategy, config.parameters, config.allow_short) != (old.strategy, old.parameters, old.allow_short):
            # New parameters change the indicators from their seeds on: recompute them over history.
            await self._warm_up(None)
            rewarmed = True
        if config.leverage != old.leverage:
            await self._apply_leverage(None)
        if _protection_of(config) != _protection_of(old):
            # New distances: the position's orders are re-placed (a new revision of each id).
            self.book = await self._executor().cancel_protection(self.book, self._strategy_fields)
            await self._protect()
        await self._save({**self._strategy_fields()})
        log.info("bot reconfigured", extra={"bot_id": self.bot_id})
        if rewarmed:
            # The new settings take effect at the next candle; candles that closed during the
            # warm-up's read are decided on first, and only the newest is traded on.
            self.feed.catch_up(follow=self.feed.follow_when_caught_up and self.feed.catching_up)
            await self._follow_once_caught_up()

    # ------------------------------------------------------------------ plumbing

    def _protection(self) -> Protection:
        return _protection_of(self._config())

    def _limits(self) -> RiskLimits:
        c = self._config()
        return RiskLimits(c.max_daily_trades, c.max_daily_loss_pct, c.stop_loss_pct, c.take_profit_pct)

    async def _warm_up(self, saved: dict[str, Any] | None, *, shared: bool = False) -> None:
        config = self._config()
        try:
            stopped_out_seq = await self.feed.warm_up(config, saved, shared=shared)
        except UnknownStrategyError as e:
            # A plugin installed on the replica that took the bot but not on this one.
            raise BotFailed(f"strategy {config.strategy!r} is not installed on this replica: {e}") from e
        except ParameterError as e:
            raise BotFailed(f"strategy {config.strategy!r} refuses the bot's parameters: {e}") from e
        self.book = replace(self.book, stopped_out_seq=stopped_out_seq)

    def _strategy_fields(self) -> dict[str, Any]:
        return self.feed.strategy_fields(self._config(), self.book.stopped_out_seq)

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

    def _executor(self) -> OrderExecutor:
        assert self.executor is not None
        return self.executor

    def _account(self) -> Account:
        return self._executor().account


def _protection_of(config: BotConfig) -> Protection:
    return Protection(config.stop_loss_pct, config.take_profit_pct, config.trailing_stop_pct)


def _now() -> datetime:
    return datetime.now(UTC)


_EXIT_REASONS = frozenset({ExitReason.STOP_LOSS.label, ExitReason.TAKE_PROFIT.label, ExitReason.LIQUIDATION.label})


def _trade_reason(step: Close) -> str:
    """The trade's `reason` (CONTRACT.md) for a closing step: the stop that fired, "manual" for
    the user's close on stop, else "signal" (the strategy, or a daily limit acting for it)."""
    if step.reason in _EXIT_REASONS:
        return step.reason
    return "manual" if step.leg is Leg.MANUAL else "signal"
