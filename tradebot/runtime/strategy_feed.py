"""A bot's strategy state fed by closed candles: warm-up, subscription, gap backfill, catch-up.

Owned by one bot actor and used only from its task. It restores the saved strategy state or warms
it up from closed history, subscribes after the last candle decided on, backfills a gap in open
times before the next decision (no candle skipped or double-counted, DESIGN.md invariant 3), and
tracks the catch-up: between a warm-up and the newest closed candle in sight the bot decides
without trading, since a decision that a newer candle it can already see would change is never
traded on. Nothing here places an order.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any, Protocol

from tradebot.runtime.bot_store import BotConfig
from tradebot.runtime.candles import Candle, CandleSink
from tradebot.runtime.history_cache import HistoryCache
from tradebot.runtime.live_strategy import LiveStrategy, Progress
from tradebot.runtime.mailbox import Mailbox
from tradebot.runtime.state_writer import Snapshot, StateWriter
from tradebot.strategies.base import Decision
from tradebot.strategies.candles import Candle as StrategyCandle
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


class Fenced(Protocol):
    @property
    def bot_id(self) -> int: ...

    @property
    def fence(self) -> int: ...


class StrategyFeed:
    # One per running bot, thousands per replica: slots keep an idle bot small.
    __slots__ = ("_history", "_lease", "_mailbox", "_market_data", "_state_writer", "_subscription",
                 "catching_up", "follow_when_caught_up", "last_close", "live")

    def __init__(
        self, market_data: MarketData, history: HistoryCache | None, state_writer: StateWriter | None,
        mailbox: Mailbox, lease: Fenced,
    ) -> None:
        self._market_data = market_data
        self._history = history
        self._state_writer = state_writer
        self._mailbox = mailbox
        self._lease = lease
        self._subscription: Any = None
        self.live: LiveStrategy | None = None  # None until warmed up
        self.last_close: float | None = None
        self.catching_up = False
        self.follow_when_caught_up = False

    # ------------------------------------------------------------------ strategy state

    @property
    def strategy(self) -> Any:
        """The strategy's own live state (None until warmed up)."""
        return None if self.live is None else self.live.state

    @property
    def params(self) -> Any:
        """The strategy's parsed parameters (None until warmed up)."""
        return None if self.live is None else self.live.params

    @property
    def progress(self) -> Progress | None:
        return None if self.live is None else self.live.progress

    async def warm_up(self, config: BotConfig, saved: dict[str, Any] | None, *, shared: bool = False) -> int | None:
        """Restore the saved strategy state and catch up from it, or rebuild it from closed history;
        returns the saved stop-out signal, if the saved state is still valid.

        The strategy comes from the registry (`config.strategy`); one this replica does not have, or
        whose stored parameters it refuses, raises (UnknownStrategyError, ParameterError). The state
        is replaced at the end, so a reader never sees new parameters with an indicator computed for
        the old ones.
        """
        live = LiveStrategy.fresh(config.strategy, config.parameters, config.allow_short)
        stopped_out_seq: int | None = None
        restored = live.restored(saved, config.timeframe) if saved else None
        if restored is None:
            since = None
        else:
            live, stopped_out_seq = restored.live, restored.stopped_out_seq
            since = next_open(config.timeframe, live.progress.last_candle_ts or 0)
        # A shared read may be a few seconds old: fine before subscribing (the subscription starts
        # after the last candle seen), not while already subscribed (a reconfiguration). It serves a
        # saved state too when it reaches back to that state's next candle: bots taken over together
        # (a failover, a restart) then cost one read per market instead of one each.
        warmup = live.warmup_candles()
        history: list[Candle] | None = None
        if shared and self._history is not None:
            latest = await self._history.latest(config.symbol, config.timeframe, warmup)
            if since is None:
                history = latest
            elif latest and latest[0].open_time <= since:
                history = [c for c in latest if c.open_time >= since]
        if history is None:
            history = await self._market_data.fetch_closed_history(
                config.symbol, config.timeframe, since, warmup if since is None else GAP_READ_CANDLES
            )
        for candle in history:
            last = live.progress.last_candle_ts
            if last is None or candle.open_time > last:
                _, live = live.decide(_strategy_candle(candle))
            self.last_close = candle.close
        self.live = live
        return stopped_out_seq

    def strategy_fields(self, config: BotConfig, stopped_out_seq: int | None) -> dict[str, Any]:
        """The strategy state for a synchronous save; a batched snapshot still pending is older."""
        if self.live is None:
            return {}
        if self._state_writer is not None:
            self._state_writer.discard(self._lease.bot_id)
        return {
            "strategy_state": self.live.saved(config.timeframe, stopped_out_seq),
            "signal_seq": self.live.progress.seq,
            "last_candle_time": self.live.progress.last_candle_ts,
        }

    def snapshot(self, config: BotConfig, stopped_out_seq: int | None) -> bool:
        """Hand the indicator state to the batch writer (written within a second, fenced); False
        when there is no batch writer (or no state yet) to hand it to."""
        if self._state_writer is None or self.live is None:
            return False
        progress = self.live.progress
        self._state_writer.put(self._lease.bot_id, Snapshot(
            self._lease.fence, self.live.saved(config.timeframe, stopped_out_seq), progress.seq,
            progress.last_candle_ts, datetime.now(UTC), self.last_close,
        ))
        return True

    # ------------------------------------------------------------------ candles

    def is_next(self, candle: Candle, config: BotConfig) -> bool:
        assert self.live is not None
        if candle.symbol != config.symbol or candle.timeframe != config.timeframe or not candle.closed:
            return False  # a leftover from before a reconfiguration
        last = self.live.progress.last_candle_ts
        return last is None or candle.open_time > last  # else already decided on (a replay)

    async def backfill_before(self, candle: Candle, config: BotConfig) -> None:
        """Decide on the candles we missed (without trading on stale prices) before this one."""
        assert self.live is not None
        last = self.live.progress.last_candle_ts
        if last is None:
            return
        since, until = next_open(config.timeframe, last), candle.open_time
        if until <= since:
            return
        missed = await self._market_data.fetch_closed_history(config.symbol, config.timeframe, since,
                                                              candles_between(config.timeframe, since, until) + 1)
        for c in missed:
            if c.open_time >= until:
                break
            done = self.live.progress.last_candle_ts
            if done is None or c.open_time > done:
                _, self.live = self.live.decide(_strategy_candle(c))
        log.info("backfilled missed candles", extra={"bot_id": self._lease.bot_id, "since": since, "until": until})

    def decide(self, candle: Candle) -> Decision:
        assert self.live is not None
        decision, self.live = self.live.decide(_strategy_candle(candle))
        self.last_close = candle.close
        return decision

    def catch_up(self, *, follow: bool) -> None:
        """From now on decide without trading until no newer closed candle is in sight; then follow
        the target if `follow` (a start) or if any candle was decided meanwhile."""
        self.catching_up = True
        self.follow_when_caught_up = follow

    def caught_up(self) -> bool:
        """No closed candle newer than the last one decided on is queued or held by the stream."""
        if self._mailbox.queued_candles:
            return False
        if self._subscription is None or self.live is None:
            return True
        newest = self._market_data.newest_closed(self._subscription)
        last = self.live.progress.last_candle_ts
        return not (newest is not None and (last is None or newest > last))

    def end_catch_up(self) -> bool:
        """Leave the catch-up; True if the target is due now."""
        self.catching_up = False
        follow, self.follow_when_caught_up = self.follow_when_caught_up, False
        return follow

    # ------------------------------------------------------------------ subscription

    async def subscribe(self, config: BotConfig) -> None:
        """Subscribe after the last candle decided on, and wait until the stream is live.

        With no history at all the subscription starts from the beginning of time, which costs
        nothing (there is nothing) and closes the gap between the warm-up read and the subscription.
        """
        last = self.live.progress.last_candle_ts if self.live else None
        self._subscription = self._market_data.subscribe(
            config.symbol, config.timeframe, self._mailbox, after=last if last is not None else 0
        )
        live = getattr(self._subscription, "live", None)
        if live is not None:
            try:
                await asyncio.wait_for(live.wait(), timeout=SUBSCRIBE_TIMEOUT_S)
            except TimeoutError:
                log.warning("market data not live yet; the hub keeps trying", extra={"bot_id": self._lease.bot_id})

    def unsubscribe(self) -> None:
        if self._subscription is not None:
            self._market_data.unsubscribe(self._subscription)
            self._subscription = None


def _strategy_candle(c: Candle) -> StrategyCandle:
    return StrategyCandle(c.open_time, c.open, c.high, c.low, c.close, c.volume)
