"""The Telegram bot on exactly one replica: a Redis lease, long polling, and the chat outbox.

Telegram lets one client at a time call getUpdates, so one replica polls: the holder of the
`…:telegram:poller` lease (the cluster's leader election on a key of its own: SET NX PX, kept by
compare-and-extend, given up at its local renew deadline). When the holder dies the key expires
and another replica's next tick takes it, within the lease TTL. The holder also sends the pending
Telegram messages of the outbox (one sender: each chat's messages in order, one rate).

Three supervised loops per replica: the lease (renew or try to take), the updates (long poll while
holding), the messages (drain while holding). The offset of the next update lives in Redis, and
an update is claimed there (compare-and-set) before it is handled: a deposed holder whose long
poll returns late cannot act on an update the new holder already took. An update claimed by a
replica that dies before answering is lost (at most once): the user sends the command again.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import redis.asyncio as aioredis

from tradebot.backoff import Backoff, Retrier
from tradebot.notifications.delivery_worker import DeliveryWorker
from tradebot.notifications.telegram_api import BotApi, TelegramApiError, Update
from tradebot.notifications.telegram_commands import CommandHandler
from tradebot.runtime.clock import Clock
from tradebot.runtime.cluster.leader import LeaderElection
from tradebot.runtime.supervised import BackgroundTasks
from tradebot.runtime.tasks import reraise_if_cancelling

log = logging.getLogger(__name__)

# Claim update ARGV[1]: only if the stored offset has not passed it; the offset moves past it.
_CLAIM = """
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
local id = tonumber(ARGV[1])
if id < current then return 0 end
redis.call('SET', KEYS[1], id + 1)
return 1
"""

_ERRORS = (TelegramApiError, aioredis.RedisError, asyncpg.PostgresError, asyncpg.InterfaceError, OSError)


@dataclass(frozen=True)
class PollerTiming:
    lease_ttl_ms: int = 5000
    renew_interval_ms: int = 1000
    poll_timeout_s: int = 30  # getUpdates' long poll
    send_poll_s: float = 0.2  # how often an idle holder looks for due messages


@dataclass
class PollerStats:
    updates: int = 0
    handler_errors: int = 0


@dataclass
class TelegramPoller:
    redis: aioredis.Redis
    prefix: str
    replica_id: str
    clock: Clock
    api: BotApi
    handler: CommandHandler
    worker: DeliveryWorker
    timing: PollerTiming = field(default_factory=PollerTiming)
    rng: Callable[[], float] = random.random
    stats: PollerStats = field(default_factory=PollerStats)

    def __post_init__(self) -> None:
        self.election = LeaderElection(self.redis, self.prefix, self.replica_id, self.clock,
                                       ttl_ms=self.timing.lease_ttl_ms,
                                       renew_interval_ms=self.timing.renew_interval_ms,
                                       key=f"{self.prefix}:telegram:poller")
        self._offset_key = f"{self.prefix}:telegram:offset"
        self._claim = self.redis.register_script(_CLAIM)
        self._held = asyncio.Event()

    @property
    def is_holder(self) -> bool:
        return self.election.is_leader

    def _loops(self) -> dict[str, Callable[[], Coroutine[Any, Any, None]]]:
        return {"telegram-lease": self.run_lease, "telegram-updates": self.run_updates,
                "telegram-messages": self.run_messages}

    def spawn(self, tasks: BackgroundTasks) -> None:
        for name, run in self._loops().items():
            tasks.spawn(name, run())

    def respawn(self, tasks: BackgroundTasks, name: str) -> None:
        """Start one loop again (after its crash)."""
        tasks.spawn(name, self._loops()[name]())

    async def release(self) -> None:
        """On shutdown: give the lease up so another replica polls at once."""
        try:
            await self.election.release()
        except _ERRORS as e:
            log.warning("could not release the telegram lease; it expires", extra={"error": str(e)})

    async def run_lease(self) -> None:
        while True:
            try:
                await self.election.tick()
            except _ERRORS as e:
                reraise_if_cancelling(e)
                self.election.check_deadline()
                log.warning("telegram lease: redis unavailable", extra={"error": str(e)})
            if self.is_holder:
                self._held.set()
            else:
                self._held.clear()
            await asyncio.sleep(self.timing.renew_interval_ms / 1000)

    async def _while_holding(self, what: str, step: Callable[[], Awaitable[int]], idle_s: float) -> None:
        errors = Retrier(Backoff(base=0.5, cap=10.0), rng=self.rng)
        while True:
            if not self.is_holder:
                self._held.clear()
                await self._held.wait()
                continue
            try:
                done = await step()
                errors.reset()
            except _ERRORS as e:
                reraise_if_cancelling(e)
                delay = errors.next_delay()
                if isinstance(e, TelegramApiError) and e.retry_after is not None:
                    delay = max(delay, e.retry_after)
                log.warning("%s failed; retrying in %.1f s", what, delay, extra={"error": str(e)})
                await asyncio.sleep(delay)
                continue
            if not done and idle_s:
                await asyncio.sleep(idle_s)

    async def run_updates(self) -> None:
        await self._while_holding("telegram getUpdates", self.poll_once, 0.0)

    async def run_messages(self) -> None:
        async def send() -> int:
            return await self.worker.telegram_due(self.api)

        await self._while_holding("telegram messages", send, self.timing.send_poll_s)

    async def poll_once(self) -> int:
        stored = await self.redis.get(self._offset_key)
        offset = None if stored is None else int(stored)
        updates = await self.api.get_updates(offset, self.timing.poll_timeout_s)
        for update in updates:
            if not self.is_holder:
                break  # deposed while polling: the new holder reads these again
            if await self._claim(keys=[self._offset_key], args=[update.update_id]):
                await self._handle(update)
        return len(updates)

    async def _handle(self, update: Update) -> None:
        self.stats.updates += 1
        try:
            if update.message is not None:
                await self.handler.on_message(update.message)
            elif update.callback is not None:
                await self.handler.on_callback(update.callback)
        except _ERRORS as e:
            reraise_if_cancelling(e)
            # One update's failure (the database away, a reply refused) never stops the others.
            self.stats.handler_errors += 1
            log.warning("telegram update not handled", extra={"update_id": update.update_id, "error": str(e)})
