"""The bots service: what the API does to bots, one method per operation, each scoped to a user.

The database row is the truth (is_active, bot_state.status); after each change the service prompts
the runtime with a command and tells SSE clients with a "state" event. Both go over Redis and may be
lost while Redis is away: the request still succeeds, and the runtime's reconcile loop converges on
the row anyway (see tradebot.bots.commands). The service reaches both through ports that the app
fills in (BotEventSink, CommandSender): the runtime sits above this package.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from collections.abc import Mapping
from typing import Any

import asyncpg
import redis.asyncio as aioredis

from tradebot.bots.commands import BotCommand, CommandKind, CommandSender
from tradebot.bots.errors import (
    BotAlreadyRunning,
    BotHasNoApiKey,
    BotIsRunning,
    BotLimitReached,
    BotNotFound,
    CommandRefused,
    InvalidBotSettings,
)
from tradebot.bots.models import DEFAULT_MAX_LEVERAGE, SETTING_FIELDS, BotEventSink, BotSettings, SymbolResolver
from tradebot.bots.repo import BotsRepo, StartOutcome, settings_of
from tradebot.bots.stats import EMPTY_LIFETIME, StatsGroup, TradeFilter, TradeStats
from tradebot.bots.views import bot_view, order_view, state_or_stopped_view, state_view, trade_view
from tradebot.strategies import ParameterError
from tradebot.strategies.selection import ema_period_of, resolve_parameters

log = logging.getLogger(__name__)

# Settings a running bot cannot take over: its open position lives on the old market and key, and
# its strategy state was built by the old strategy (a switch would act on a state it never built).
# A paper bot's mode and virtual balance belong to its run too (CONTRACT.md "Paper trading").
_FIXED_WHILE_RUNNING = ("symbol", "api_key_id", "strategy", "mode", "paper_balance")
# Changing these on a stopped bot that holds a position would abandon it: a live position left on
# the exchange, or a virtual one whose balance is reset under it.
_FLAT_ONLY = ("mode", "paper_balance")
_STRATEGY_FIELDS = frozenset({"strategy", "parameters", "ema_period"})
# Optimistic PATCH: re-read and re-check this many times when another write lands in between.
_UPDATE_ATTEMPTS = 5


def _merged(current: BotSettings, changes: Mapping[str, Any]) -> BotSettings:
    """``current`` with a PATCH's ``changes``: ``parameters`` merge key by key into the current ones,
    or into the new strategy's defaults when ``strategy`` changes; ``ema_period`` counts only when
    sent (the stored one mirrors ``parameters``)."""
    if not changes.keys() & _STRATEGY_FIELDS:
        return dataclasses.replace(current, **changes)
    strategy = changes.get("strategy", current.strategy)
    base = dict(current.parameters) if strategy == current.strategy else {}
    sent = changes.get("parameters") or {}
    parameters = {**base, **sent}
    # The shorthand replaces the stored value unless parameters.ema_period changes it too (a body
    # read back and sent with only ema_period edited carries the old value in parameters).
    if changes.get("ema_period") is not None and sent.get("ema_period", base.get("ema_period")) == base.get(
        "ema_period"
    ):
        parameters.pop("ema_period", None)
    rest = {k: v for k, v in changes.items() if k not in _STRATEGY_FIELDS}
    return dataclasses.replace(
        current, **rest, strategy=strategy, parameters=parameters, ema_period=changes.get("ema_period")
    )


class BotService:
    def __init__(
        self,
        pool: asyncpg.Pool,
        events: BotEventSink,
        commands: CommandSender,
        markets: SymbolResolver,
        *,
        max_bots_per_user: int,
    ) -> None:
        self._repo = BotsRepo(pool)
        self._stats = TradeStats(pool)
        self._max_bots = max_bots_per_user
        self._events = events
        self._send = commands
        self._markets = markets

    # -- settings -------------------------------------------------------------------------------

    async def create(self, user_id: int, settings: BotSettings) -> dict[str, Any]:
        checked = await self._checked(user_id, settings, changed=frozenset(SETTING_FIELDS))
        row = await self._repo.insert(user_id, checked, max_bots=self._max_bots)
        if row is None:
            raise BotLimitReached(self._max_bots)
        log.info("bot created", extra={"user_id": user_id, "bot_id": row["id"]})
        return bot_view(row)

    async def get(self, user_id: int, bot_id: int) -> dict[str, Any]:
        row = await self._repo.get(user_id, bot_id)
        if row is None:
            raise BotNotFound
        return (await self._with_stats(user_id, [row]))[0]

    async def page(self, user_id: int, *, after_id: int | None, limit: int) -> list[dict[str, Any]]:
        return await self._with_stats(user_id, await self._repo.page(user_id, after_id=after_id, limit=limit))

    async def _with_stats(self, user_id: int, rows: list[asyncpg.Record]) -> list[dict[str, Any]]:
        """Bot objects with their lifetime figures, read in one statement for all of them."""
        lifetimes = await self._stats.lifetimes(user_id, [int(r["id"]) for r in rows])
        return [bot_view(r, lifetimes.get(int(r["id"]), EMPTY_LIFETIME)) for r in rows]

    async def update(self, user_id: int, bot_id: int, changes: Mapping[str, Any]) -> dict[str, Any]:
        """Apply any subset of the settings; the merged result is checked as a whole."""
        unknown = set(changes) - set(SETTING_FIELDS)
        if unknown:
            raise ValueError(f"not settings: {sorted(unknown)}")
        for _ in range(_UPDATE_ATTEMPTS):
            row = await self._repo.get(user_id, bot_id)
            if row is None:
                raise BotNotFound
            current = settings_of(row)
            merged = await self._checked(
                user_id, _merged(current, changes), changed=frozenset(changes)
            )
            diff = {
                name: getattr(merged, name)
                for name in SETTING_FIELDS
                if getattr(merged, name) != getattr(current, name)
            }
            if not diff:
                return (await self._with_stats(user_id, [row]))[0]
            if row["is_active"]:
                fixed = [name for name in _FIXED_WHILE_RUNNING if name in diff]
                if fixed:
                    raise BotIsRunning(f"stop the bot before changing {', '.join(fixed)}")
            flat_only = [name for name in _FLAT_ONLY if name in diff]
            if flat_only and row["in_position"]:
                raise BotIsRunning(f"close the bot's position before changing {', '.join(flat_only)}")
            if await self._repo.update_if_unchanged(user_id, bot_id, diff, row["updated_at"]):
                break
        else:
            raise BotIsRunning("the bot is being changed concurrently; try again")
        await self._command(bot_id, "reconfigure")
        log.info("bot reconfigured", extra={"user_id": user_id, "bot_id": bot_id, "fields": sorted(diff)})
        return await self.get(user_id, bot_id)

    async def _checked(self, user_id: int, settings: BotSettings, *, changed: frozenset[str]) -> BotSettings:
        """Check what only the database and the market list can tell; returns the normalised settings."""
        errors: list[tuple[str, str]] = []
        if changed & _STRATEGY_FIELDS:
            try:
                parameters = resolve_parameters(settings.strategy, settings.parameters, settings.ema_period)
            except ParameterError as e:
                errors.append((e.field, e.message))
            else:
                ema_period = ema_period_of(settings.strategy, parameters)
                settings = dataclasses.replace(settings, parameters=parameters, ema_period=ema_period)
        if changed & {"api_key_id", "mode"}:
            if settings.api_key_id is None:
                if settings.mode != "paper":  # a paper bot trades no exchange account
                    errors.append(("api_key_id", "an api key is required (paper bots need none)"))
            elif not await self._repo.api_key_owned(user_id, settings.api_key_id):
                errors.append(("api_key_id", "no such api key"))
        if changed & {"symbol", "leverage"}:
            market = await self._markets.resolve(settings.symbol)
            if market is None:
                errors.append(("symbol", f"unknown symbol {settings.symbol!r}"))
            else:
                settings = dataclasses.replace(settings, symbol=market.symbol)
                ceiling = min(int(market.max_leverage or DEFAULT_MAX_LEVERAGE), DEFAULT_MAX_LEVERAGE)
                if settings.leverage > ceiling:
                    errors.append(("leverage", f"must be at most {ceiling} for {market.symbol}"))
        if errors:
            raise InvalidBotSettings(errors)
        return settings

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self, user_id: int, bot_id: int) -> None:
        outcome, state = await self._repo.start(user_id, bot_id)
        if outcome is StartOutcome.NOT_FOUND:
            raise BotNotFound
        if outcome is StartOutcome.ALREADY_ACTIVE:
            raise BotAlreadyRunning
        if outcome is StartOutcome.NO_API_KEY:
            raise BotHasNoApiKey
        if outcome is StartOutcome.MARKET_IN_USE:
            raise BotIsRunning(
                "another running bot trades this symbol with the same API key; stop it first "
                "(two bots would share one position on the exchange)"
            )
        assert state is not None
        await self._publish_state(bot_id, state)
        await self._command(bot_id, "start")
        log.info("bot start requested", extra={"user_id": user_id, "bot_id": bot_id})

    async def stop(self, user_id: int, bot_id: int, *, close_position: bool = False) -> None:
        change = await self._repo.stop(user_id, bot_id, close_position=close_position)
        if change is None:
            raise BotNotFound
        await self._publish_state(bot_id, change.state)
        await self._command(bot_id, "stop", close_position=close_position)
        log.info(
            "bot stop requested",
            extra={"user_id": user_id, "bot_id": bot_id, "close_position": close_position},
        )

    async def delete(self, user_id: int, bot_id: int) -> None:
        """Stop (when active) and soft-delete; orders and trades stay readable in GET /trades."""
        change = await self._repo.delete(user_id, bot_id)
        if change is None:
            raise BotNotFound
        if change.was_active:
            await self._publish_state(bot_id, change.state)
            await self._command(bot_id, "stop")
        await self._command(bot_id, "delete")
        log.info("bot deleted", extra={"user_id": user_id, "bot_id": bot_id, "was_active": change.was_active})

    # -- manual control (CONTRACT.md "Protective orders and manual control") --------------------

    async def force_exit(self, user_id: int, bot_id: int, *, pct: float) -> dict[str, Any]:
        """Record a force-exit for the bot's owner to carry out between decisions."""
        target = await self._running(user_id, bot_id)
        if not target["in_position"]:
            raise CommandRefused("the bot holds no position to exit")
        command_id = await self._repo.insert_command(user_id, bot_id, "force_exit", pct=pct)
        return await self._manual(user_id, bot_id, command_id, "force_exit")

    async def force_entry(
        self, user_id: int, bot_id: int, *, side: str, order_size_pct: float | None
    ) -> dict[str, Any]:
        """Record a force-entry; refused while the bot holds a position (force-exit it first) or a
        daily limit pauses it."""
        target = await self._running(user_id, bot_id)
        if target["in_position"]:
            raise CommandRefused(
                f"the bot already holds a {target['position_side']} position; force-exit it first"
            )
        if target["status"] == "paused":
            raise CommandRefused("a daily limit pauses the bot until 00:00 UTC")
        command_id = await self._repo.insert_command(
            user_id, bot_id, "force_entry", side=side, order_size_pct=order_size_pct
        )
        return await self._manual(user_id, bot_id, command_id, "force_entry")

    async def set_entries_paused(self, user_id: int, bot_id: int, *, paused: bool) -> dict[str, Any]:
        """pause-entries / resume-entries: written here (the actor reads it before every entry), so
        it holds at once, on every replica, across restarts and failover."""
        await self._running(user_id, bot_id)
        state = await self._repo.set_entries_paused(user_id, bot_id, paused)
        if state is None:  # stopped between the check and the write
            raise CommandRefused("the bot is not running")
        await self._publish_state(bot_id, state)
        kind = "pause_entries" if paused else "resume_entries"
        log.info("bot entries %s", "paused" if paused else "resumed", extra={"user_id": user_id, "bot_id": bot_id})
        return {"id": None, "kind": kind, "status": "done"}

    async def _running(self, user_id: int, bot_id: int) -> asyncpg.Record:
        target = await self._repo.command_target(user_id, bot_id)
        if target is None:
            raise BotNotFound
        if not target["is_active"] or target["status"] not in ("running", "paused"):
            raise CommandRefused(f"the bot is not running (status {target['status'] or 'stopped'})")
        return target

    async def _manual(self, user_id: int, bot_id: int, command_id: int, kind: str) -> dict[str, Any]:
        await self._command(bot_id, "manual")
        log.info("manual command recorded", extra={"user_id": user_id, "bot_id": bot_id, "command_id": command_id,
                                                   "kind": kind})
        return {"id": command_id, "kind": kind, "status": "pending"}

    # -- reads ----------------------------------------------------------------------------------

    async def state(self, user_id: int, bot_id: int) -> dict[str, Any]:
        row = await self._repo.state(user_id, bot_id)
        if row is None:
            raise BotNotFound
        return state_or_stopped_view(row)

    async def states(self, user_id: int) -> dict[int, dict[str, Any]]:
        """bot id → state of every bot of the user."""
        return {int(r["id"]): state_or_stopped_view(r) for r in await self._repo.states(user_id)}

    async def bot_trades(
        self, user_id: int, bot_id: int, *, before: tuple[dt.datetime, int] | None, limit: int
    ) -> list[dict[str, Any]]:
        if not await self._repo.bot_exists(user_id, bot_id):
            raise BotNotFound
        rows = await self._repo.trades(user_id, TradeFilter(bot_id=bot_id), before=before, limit=limit)
        return [trade_view(r) for r in rows]

    async def bot_orders(
        self, user_id: int, bot_id: int, *, before_id: int | None, limit: int
    ) -> list[dict[str, Any]]:
        if not await self._repo.bot_exists(user_id, bot_id):
            raise BotNotFound
        return [
            order_view(r) for r in await self._repo.orders(user_id, bot_id, before_id=before_id, limit=limit)
        ]

    async def user_trades(
        self,
        user_id: int,
        flt: TradeFilter,
        *,
        before: tuple[dt.datetime, int] | None,
        limit: int,
    ) -> list[dict[str, Any]]:
        """The user's trades newest first, deleted bots' included (their history stays readable)."""
        rows = await self._repo.trades(user_id, flt, before=before, limit=limit)
        return [trade_view(r) for r in rows]

    async def stats(self, user_id: int, group: StatsGroup, flt: TradeFilter) -> dict[str, Any]:
        """GET /stats: figures per period and their totals over the same trades as user_trades."""
        result = await self._stats.periods(user_id, group, flt)
        return {"items": [p.view() for p in result.periods], "totals": result.totals.view()}

    # -- prompts to the runtime and to SSE clients ---------------------------------------------

    async def _publish_state(self, bot_id: int, state: Mapping[str, Any]) -> None:
        try:
            await self._events.publish(bot_id, "state", state_view(state))
        except (OSError, aioredis.RedisError) as e:
            # The change is committed; clients see it on their next connect (the snapshot comes
            # from the database). Failing the request would only invite a retry of a done change.
            log.warning("could not publish bot state event", extra={"bot_id": bot_id, "error": str(e)})

    async def _command(self, bot_id: int, kind: CommandKind, *, close_position: bool = False) -> None:
        await self._send(BotCommand(bot_id, kind, close_position))
