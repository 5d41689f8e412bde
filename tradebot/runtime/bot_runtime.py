"""This replica's bot runtime: which bots run here, their leases, and the loops that keep it so.

- reconcile loop: the database says which bots should run (active) or wind down (stopping); the
  assignment says which of them are this replica's; bots are started (lease, claim, actor) or
  handed over accordingly. Commands from the API only make it run sooner.
- lease loop: renews every lease in one batch (`Leases.renew_all`); a lost or lapsed lease stops that actor at once, and
  a Redis outage stops every actor before its lease could expire elsewhere (safety over liveness).
- tick loop: a Tick to every actor when the UTC date changes (daily counters reset, bots a daily
  limit paused resume).
Each loop is a supervised task (runtime/supervised.py). A loop that crashes is a bug this replica
cannot trade through (no lease supervision, no reconcile, ...): it is logged at once, counted in
/metrics (`tradebot_runtime_loop_crashes`), and the runtime stands down: it leaves the cluster, hands
every bot over exactly as on SIGTERM (between decisions, state saved, leases released, so another
replica resumes them at once), takes no bot again, and /readyz answers 503 until the process is
restarted. The API keeps serving.
On shutdown the bots are handed over (state saved, leases released) so the next owner resumes at
once instead of waiting for expiry (DESIGN.md invariant 7).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncpg
import redis.asyncio as aioredis

from tradebot.bots.commands import BotCommand
from tradebot.runtime import bot_store
from tradebot.runtime.bot_actor import ActorContext, BotActor, Lease
from tradebot.runtime.clock import Clock, utc_date
from tradebot.runtime.commands import command_channel, decode_command
from tradebot.runtime.gc_policy import GcPolicy
from tradebot.runtime.health import RuntimeHealth
from tradebot.runtime.leases import LeaseManager
from tradebot.runtime.mailbox import Mailbox, ManualCommands, Reconfigure, Stop, Tick
from tradebot.runtime.pubsub_listener import PubSubListener
from tradebot.runtime.supervised import BackgroundTasks
from tradebot.runtime.supervisor import Supervisor
from tradebot.statuses import BotStatus

log = logging.getLogger(__name__)

Assignment = Callable[[set[int]], set[int]]
Hook = Callable[[], Awaitable[None]]

TAKE_CONCURRENCY = 16
LOOP_STOP_TIMEOUT_S = 1.0


def run_everything(bots: set[int]) -> set[int]:
    """Single-replica assignment: every bot is a candidate; leases still decide who runs it."""
    return bots


@dataclass
class RuntimeTiming:
    reconcile_interval_s: float = 1.0
    renew_interval_s: float = 1.0
    tick_interval_s: float = 5.0
    stop_timeout_s: float = 10.0
    handover_timeout_s: float = 2.0


@dataclass
class RuntimeStats:
    lost_leases: int = 0
    redis_down: bool = False


class BotRuntime:
    def __init__(
        self,
        *,
        ctx: ActorContext,
        redis: aioredis.Redis,
        prefix: str,
        leases: LeaseManager,
        clock: Clock,
        timing: RuntimeTiming | None = None,
        assignment: Assignment = run_everything,
    ) -> None:
        self.ctx = ctx
        self._pool: asyncpg.Pool = ctx.pool
        self._redis = redis
        self._prefix = prefix
        self.leases = leases
        self._clock = clock
        self.timing = timing or RuntimeTiming()
        self.assignment = assignment
        self.stats = RuntimeStats()
        self.supervisor = Supervisor(self._make_actor, on_failed=self._failed, on_exit=self._exited, clock=clock)
        self._poke = asyncio.Event()
        self.health = RuntimeHealth()
        self.tasks = BackgroundTasks("runtime", on_crash=self.fault)
        # Set by the composition root when a cluster coordinator runs: stepping down leaves the
        # cluster first (the leader maps our bots elsewhere) and says so once the leases are free.
        self.leave_cluster: Hook | None = None
        self.announce_released: Hook | None = None
        self._stand_down_task: asyncio.Task[None] | None = None
        self._closing = False
        self._take_limit = asyncio.Semaphore(TAKE_CONCURRENCY)
        self.gc = GcPolicy()

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        if self.ctx.state_writer is not None:
            self.tasks.spawn("runtime-state-writer", self.ctx.state_writer.run())
        self.tasks.spawn("runtime-reconcile", self._reconcile_loop())
        self.tasks.spawn("runtime-leases", self._lease_loop())
        self.tasks.spawn("runtime-commands", self._commands().run())
        self.tasks.spawn("runtime-ticks", self._tick_loop())

    async def close(self) -> None:
        """Hand every bot over (between decisions), release the leases, stop the loops."""
        self._closing = True
        if self._stand_down_task is not None:
            # Already standing down after a crash: let it finish its hand-over, not cut it short.
            await self.tasks.wait(self._stand_down_task, self.timing.handover_timeout_s + LOOP_STOP_TIMEOUT_S)
        # A loop that is slow to honour its cancellation (a pub/sub read inside redis-py, say) must
        # not eat the hand-over's 2 s: give them a second, then hand over regardless.
        await self.tasks.close(timeout=LOOP_STOP_TIMEOUT_S)
        await self._hand_over("replica shutting down")

    def fault(self, loop: str, error: BaseException) -> None:
        """A loop crashed: stop trading here, safely (see the module docstring)."""
        if self._closing or not self.health.set_fault(f"{loop} crashed: {type(error).__name__}: {error}"):
            return
        self._closing = True  # no bot is taken again
        log.critical("runtime standing down: %s; its bots are handed over to other replicas", self.health.fault,
                     extra={"task": loop})
        self._stand_down_task = self.tasks.spawn("runtime-stand-down", self._stand_down(), forever=False)

    async def _stand_down(self) -> None:
        if self.leave_cluster is not None:
            await self.leave_cluster()
        await self._hand_over("replica standing down after a runtime fault")
        if self.announce_released is not None:
            await self.announce_released()

    async def _hand_over(self, reason: str) -> None:
        running = self.supervisor.running()
        if running:
            log.info("handing over %d bots", len(running))
        await self.supervisor.close(Stop(reason=reason, handover=True),
                                    timeout=self.timing.handover_timeout_s)
        if self.ctx.state_writer is not None:
            try:
                await self.ctx.state_writer.flush()
            except (OSError, asyncpg.PostgresError) as e:
                log.warning("last strategy snapshots not written: %s", e)
        try:
            await bot_store.release_replica_ownerships(self._pool, self.leases.replica_id)
        except (OSError, asyncpg.PostgresError) as e:
            log.warning("could not record the end of ownerships: %s", e)
        # The snapshots are written: now the next owner may take the bots.
        await self.leases.release_all()

    def poke(self) -> None:
        self._poke.set()

    # ------------------------------------------------------------------ actors

    def _make_actor(self, lease: Lease, mailbox: Mailbox) -> BotActor:
        return BotActor(self.ctx, lease, mailbox)

    async def _failed(self, lease: Lease, message: str) -> None:
        """A bot that must not trade until a person looks: status 'error', no longer active."""
        try:
            async with bot_store.fenced(self._pool, lease.bot_id, lease.fence) as conn:
                await conn.execute("UPDATE bot_configs SET is_active = false, updated_at = now() WHERE id = $1",
                                   lease.bot_id)
                state = await bot_store.update_state(conn, lease.bot_id, {
                    "status": BotStatus.ERROR, "last_error_message": message[:1000], "stop_close_position": False,
                })
            await self.ctx.events.publish(lease.bot_id, "state", state)
        except bot_store.FencedOut:
            log.info("bot %s failed after losing its lease; the new owner decides", lease.bot_id)

    async def _exited(self, lease: Lease) -> None:
        self.gc.bot_exited()
        if self._closing:
            return  # released in bulk by close(): one statement and one script call for every bot
        try:
            await bot_store.release_ownership(self._pool, lease.bot_id, lease.fence)
        except (OSError, asyncpg.PostgresError) as e:
            log.warning("could not record the end of ownership", extra={"bot_id": lease.bot_id, "error": str(e)})
        if self.leases.is_valid(lease.bot_id, lease.fence) or lease.bot_id in self.leases.held():
            await self.leases.release(lease.bot_id)
        if not self._closing:
            self.poke()

    async def _take_bounded(self, bot_id: int) -> None:
        async with self._take_limit:
            if not self._closing and bot_id not in self.supervisor.running():
                await self._take(bot_id)

    async def _take(self, bot_id: int) -> None:
        floor = await bot_store.current_fence(self._pool, bot_id)
        held = await self.leases.acquire(bot_id, floor)
        if held is None:
            return
        if not await bot_store.claim(self._pool, bot_id, held.fence, self.leases.replica_id):
            await self.leases.release(bot_id)
            return
        fence = held.fence
        lease = Lease(bot_id, fence, lambda: self.leases.is_valid(bot_id, fence))
        self.supervisor.start(lease)
        log.info("took bot", extra={"bot_id": bot_id, "fence": fence})

    # ------------------------------------------------------------------ loops

    async def reconcile_once(self) -> None:
        active, winding = await bot_store.desired_bots(self._pool)
        mine = self.assignment(active | winding)
        running = self.supervisor.running()
        missing = sorted((mine & (active | winding)) - running)
        if missing and not self._closing:
            # Takes run side by side (bounded): after a failover a survivor inherits many bots, and
            # taking them one by one (query, lease, fence, claim each) added up to seconds.
            results = await asyncio.gather(*(self._take_bounded(b) for b in missing), return_exceptions=True)
            for bot_id, result in zip(missing, results, strict=True):
                if isinstance(result, (OSError, aioredis.RedisError)):
                    log.warning("cannot take bot while Redis is unreachable",
                                extra={"bot_id": bot_id, "error": str(result)})
                elif isinstance(result, BaseException):
                    log.error("taking bot %s failed", bot_id, exc_info=result)
            self.gc.bots_taken()
        else:
            self.gc.maybe_collect()
        # Set operations first (in C); only the few bots that need a message are visited.
        for bot_id in running - active:
            if self.supervisor.is_stopping(bot_id):
                continue
            if bot_id in winding:
                row = await bot_store.load_state_row(self._pool, bot_id)
                close = bool(row and row["stop_close_position"])
                self.supervisor.send(bot_id, Stop(close_position=close))
            else:
                self.supervisor.send(bot_id, Stop(reason="bot is no longer active"))
        for bot_id in (running & active) - mine:
            if not self.supervisor.is_stopping(bot_id):
                self.supervisor.send(bot_id, Stop(reason="reassigned to another replica", handover=True))

    async def _reconcile_loop(self) -> None:
        while True:
            try:
                await self.reconcile_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("reconcile failed; retrying")
            try:
                await asyncio.wait_for(self._poke.wait(), timeout=self.timing.reconcile_interval_s)
            except TimeoutError:
                pass
            self._poke.clear()

    async def _lease_loop(self) -> None:
        while True:
            lost: set[int] = set()
            try:
                lost = await self.leases.renew_all()
                if self.stats.redis_down:
                    log.info("Redis is back; leases renewed")
                self.stats.redis_down = False
            except asyncio.CancelledError:
                raise
            except (OSError, aioredis.RedisError) as e:
                if not self.stats.redis_down:
                    log.error("cannot renew leases: Redis unreachable (%s); bots stop before their leases expire", e)
                self.stats.redis_down = True
            lapsed = self.leases.expired() - lost
            for bot_id in lost | lapsed:
                self.stats.lost_leases += 1
                log.warning("lease lost; stopping the bot now", extra={"bot_id": bot_id})
                fence = self.leases.held().get(bot_id)
                self.leases.drop([bot_id])
                await self.supervisor.kill(bot_id)
                if bot_id in lapsed and fence is not None:
                    await self._suspended(bot_id, fence.fence)
            await self._clock.sleep(self.timing.renew_interval_s)

    async def _suspended(self, bot_id: int, fence: int) -> None:
        """Say why a bot stopped trading when its lease lapsed (Redis unreachable): the status goes
        back to 'starting' under our fence, unless another replica has the bot by now."""
        try:
            async with bot_store.fenced(self._pool, bot_id, fence) as conn:
                state = await bot_store.update_state(conn, bot_id, {
                    "status": BotStatus.STARTING,
                    "last_error_message": "trading suspended: the lease could not be renewed (Redis unreachable); "
                                          "it resumes when Redis answers again",
                })
            await self.ctx.events.publish(bot_id, "state", state)
        except bot_store.FencedOut:
            pass
        except (OSError, asyncpg.PostgresError, aioredis.RedisError) as e:
            log.warning("could not record the suspension", extra={"bot_id": bot_id, "error": str(e)})

    def _commands(self) -> PubSubListener:
        def on_message(_channel: str, data: bytes | str) -> None:
            command = decode_command(data)
            if command is not None:
                self._handle(command)

        def on_up() -> None:
            # A manual command's prompt published while we were not subscribed is lost; its row is
            # not: every actor here reads the pending rows again (one query per bot, per reconnect).
            self.supervisor.broadcast(ManualCommands())

        return PubSubListener(self._redis, (command_channel(self._prefix),), on_message, name="runtime-commands",
                              on_up=on_up)

    def _handle(self, command: BotCommand) -> None:
        if command.kind == "reconfigure":
            self.supervisor.send(command.bot_id, Reconfigure())
        elif command.kind in ("stop", "delete"):
            self.supervisor.send(command.bot_id, Stop(close_position=command.close_position))
        elif command.kind == "manual":
            self.supervisor.send(command.bot_id, ManualCommands())
        self.poke()

    async def _tick_loop(self) -> None:
        """Tick the actors when the UTC date changes (daily counters, resuming paused bots). Only a
        date change is sent: waking every actor every few seconds is thousands of wake-ups with
        nothing to do."""
        day = utc_date(self._clock.now_ms())
        while True:
            await self._clock.sleep(self.timing.tick_interval_s)
            today = utc_date(self._clock.now_ms())
            if today != day:
                day = today
                self.supervisor.broadcast(Tick())
