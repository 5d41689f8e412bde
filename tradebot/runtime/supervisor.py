"""Supervises this replica's bot actors: one named task per bot, restarts on a budget.

A crashed actor is restarted after a full-jitter exponential backoff (actors that crash on one
cause must not all come back at once), at most `max_restarts` times (5) within `window_s` (300 s);
the next crash within the window (the sixth) is an explicit decision: the bot goes to status
"error" with the reason (mode's supervisor rule), never a silent crash loop. A bot's mailbox outlives its actor incarnations, so a
stop sent during a restart backoff is still the next thing the new actor reads.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from tradebot.backoff import Backoff, Rng
from tradebot.runtime.bot_actor import BotActor, BotFailed, BotStopped, Lease
from tradebot.runtime.bot_store import FencedOut
from tradebot.runtime.clock import Clock
from tradebot.runtime.mailbox import Command, Mailbox, Stop
from tradebot.runtime.tasks import cancel_and_wait

log = logging.getLogger(__name__)

ActorFactory = Callable[[Lease, Mailbox], BotActor]
FailureHandler = Callable[[Lease, str], Awaitable[None]]
ExitHandler = Callable[[Lease], Awaitable[None]]


@dataclass
class _Running:
    lease: Lease
    mailbox: Mailbox
    task: asyncio.Task[None] | None = None
    actor: BotActor | None = None
    stopping: bool = False
    crashes: deque[float] = field(default_factory=deque)


class Supervisor:
    def __init__(
        self,
        make_actor: ActorFactory,
        *,
        on_failed: FailureHandler,
        on_exit: ExitHandler,
        clock: Clock,
        max_restarts: int = 5,
        window_s: float = 300.0,
        base_backoff_s: float = 1.0,
        max_backoff_s: float = 30.0,
        rng: Rng = random.random,
    ) -> None:
        self._make_actor = make_actor
        self._on_failed = on_failed
        self._on_exit = on_exit
        self._clock = clock
        self.max_restarts = max_restarts
        self.window_s = window_s
        self.base_backoff_s = base_backoff_s
        self.max_backoff_s = max_backoff_s
        self._backoff = Backoff(base=base_backoff_s, cap=max_backoff_s)
        self._rng = rng
        self._bots: dict[int, _Running] = {}
        self.restarts = 0
        self.failures = 0

    def running(self) -> set[int]:
        return set(self._bots)

    def actor(self, bot_id: int) -> BotActor | None:
        entry = self._bots.get(bot_id)
        return entry.actor if entry else None

    def is_stopping(self, bot_id: int) -> bool:
        entry = self._bots.get(bot_id)
        return bool(entry and entry.stopping)

    def start(self, lease: Lease) -> None:
        if lease.bot_id in self._bots:
            raise RuntimeError(f"bot {lease.bot_id} is already supervised")
        entry = _Running(lease, Mailbox())
        self._bots[lease.bot_id] = entry
        entry.task = asyncio.create_task(self._supervise(entry), name=f"bot-{lease.bot_id}")

    def send(self, bot_id: int, command: Command) -> bool:
        entry = self._bots.get(bot_id)
        if entry is None:
            return False
        if isinstance(command, Stop):
            entry.stopping = True
        entry.mailbox.send(command)
        return True

    def broadcast(self, command: Command) -> None:
        for entry in self._bots.values():
            entry.mailbox.send(command)

    async def stop(self, bot_id: int, command: Stop, timeout: float) -> None:
        """Ask the actor to stop between decisions; cancel it if it does not within `timeout`."""
        entry = self._bots.get(bot_id)
        if entry is None or entry.task is None:
            return
        self.send(bot_id, command)
        done, _ = await asyncio.wait([entry.task], timeout=timeout)
        if not done:
            log.warning("bot did not stop in time; cancelling it", extra={"bot_id": bot_id})
            await cancel_and_wait(entry.task)

    async def kill(self, bot_id: int) -> None:
        """Stop at once (the lease is lost): whatever it was doing, the fence refuses its writes."""
        entry = self._bots.get(bot_id)
        if entry is not None and entry.task is not None:
            await cancel_and_wait(entry.task)

    async def close(self, command: Stop, timeout: float) -> None:
        await asyncio.gather(*(self.stop(b, command, timeout) for b in list(self._bots)))

    async def _supervise(self, entry: _Running) -> None:
        lease = entry.lease
        try:
            while True:
                actor = self._make_actor(lease, entry.mailbox)
                entry.actor = actor
                try:
                    await _run_actor(actor)
                    return
                except (BotStopped, FencedOut) as e:
                    log.info("bot run ended: %s", e, extra={"bot_id": lease.bot_id})
                    return
                except BotFailed as e:
                    self.failures += 1
                    log.error("bot failed: %s", e, extra={"bot_id": lease.bot_id})
                    await self._on_failed(lease, str(e))
                    return
                except Exception as e:
                    now = self._clock.monotonic()
                    entry.crashes.append(now)
                    while entry.crashes and now - entry.crashes[0] > self.window_s:
                        entry.crashes.popleft()
                    log.exception("bot actor crashed (%d in %.0fs)", len(entry.crashes), self.window_s,
                                  extra={"bot_id": lease.bot_id})
                    if len(entry.crashes) > self.max_restarts:
                        self.failures += 1
                        await self._on_failed(
                            lease,
                            f"stopped after {len(entry.crashes)} crashes in {self.window_s:.0f}s; "
                            f"last error: {type(e).__name__}: {e}",
                        )
                        return
                    if not lease.is_valid():
                        return
                    delay = self._backoff.delay(len(entry.crashes) - 1, self._rng)
                    self.restarts += 1
                    await self._clock.sleep(delay)
        finally:
            self._bots.pop(lease.bot_id, None)
            try:
                await self._on_exit(lease)
            except Exception:
                log.exception("cleanup after bot %s failed", lease.bot_id)


async def _run_actor(actor: BotActor) -> None:
    """`actor.run()`, with a cancellation that nobody asked of this task (one raised from inside,
    say by an awaited future another task cancelled) turned into a crash: otherwise the bot would
    end silently and never trade again."""
    try:
        await actor.run()
    except asyncio.CancelledError as e:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
        raise RuntimeError("the bot actor ended on a cancellation its supervisor did not ask for") from e

