"""A bot actor's mailbox: commands are never dropped, market data is bounded.

Commands (stop, reconfigure, the daily tick, a fee found, a helper task's failure, a prompt to
read the manual commands) are rare and must all arrive, so they queue without a bound and are
served first: a stop overtakes candles that are still waiting. Candles come from the market-data hub, which must never wait on a slow actor;
past `candle_capacity` the oldest candle is dropped and counted, and the actor notices the hole
in open times and backfills it from the exchange before deciding again, so no candle is skipped
for the strategy (DESIGN.md invariant 3).
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass

from tradebot.runtime.candles import Candle


@dataclass(frozen=True, slots=True)
class Stop:
    close_position: bool = False
    reason: str = "stopped by the user"
    # A hand-over (shutdown, rebalancing) leaves the bot running for its next owner: the state is
    # saved and the lease released, but the status stays as it is.
    handover: bool = False


@dataclass(frozen=True, slots=True)
class Reconfigure:
    pass


@dataclass(frozen=True, slots=True)
class Tick:
    """A new UTC day: the actor resets its daily counters and resumes a bot a daily limit paused."""


@dataclass(frozen=True, slots=True)
class FeeFound:
    """The exchange reported the fee of a trade that was recorded with an unknown one."""

    trade_id: int
    fee: float


@dataclass(frozen=True, slots=True)
class HelperFailed:
    """A task that an actor owns crashed; that actor (`owner`) fails too, under the restart budget."""

    owner: object
    name: str
    error: str


@dataclass(frozen=True, slots=True)
class ManualCommands:
    """The API recorded a force-exit or force-entry for this bot: read the pending ones and carry
    them out. A prompt only: the commands are rows (bot_commands), read again at every start."""


Command = Stop | Reconfigure | Tick | FeeFound | HelperFailed | ManualCommands
Message = Command | Candle


class Mailbox:
    def __init__(self, candle_capacity: int = 256) -> None:
        self._commands: deque[Command] = deque()
        self._candles: deque[Candle] = deque(maxlen=candle_capacity)
        self._ready = asyncio.Event()
        self.dropped_candles = 0

    def offer(self, candle: Candle) -> None:
        """The market-data hub's entry point: returns at once, never raises."""
        if len(self._candles) == self._candles.maxlen:
            self.dropped_candles += 1
        self._candles.append(candle)
        self._ready.set()

    def send(self, command: Command) -> None:
        if isinstance(command, Tick | ManualCommands) and any(type(c) is type(command) for c in self._commands):
            return  # one pending tick (or prompt to read the commands table) is as good as many
        self._commands.append(command)
        self._ready.set()

    async def get(self) -> Message:
        while True:
            if self._commands:
                return self._commands.popleft()
            if self._candles:
                return self._candles.popleft()
            self._ready.clear()
            await self._ready.wait()

    @property
    def queued_candles(self) -> int:
        """Candles waiting behind the commands (the actor decides on them before trading at start)."""
        return len(self._candles)

    def __len__(self) -> int:
        return len(self._commands) + len(self._candles)
