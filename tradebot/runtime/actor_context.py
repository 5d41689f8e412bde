"""What a bot actor is given (its context and lease) and how its run can end.

Kept apart from the actor so that the supervisor and the runtime name these without the actor's
machinery; `bot_actor` re-exports them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import asyncpg

from tradebot.runtime.account import BotAccounts
from tradebot.runtime.clock import Clock
from tradebot.runtime.events import BotEvents
from tradebot.runtime.faults import NO_CRASHES, CrashPoints
from tradebot.runtime.history_cache import HistoryCache
from tradebot.runtime.metrics import RuntimeCounters
from tradebot.runtime.state_writer import StateWriter
from tradebot.runtime.strategy_feed import MarketData


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
    accounts: BotAccounts  # live (by API key) or paper, by the bot's mode
    clock: Clock
    replica_id: str
    crash_points: CrashPoints = NO_CRASHES
    counters: RuntimeCounters = field(default_factory=RuntimeCounters)
    state_writer: StateWriter | None = None
    history: HistoryCache | None = None
