"""The streams open on this replica by user and token, ended the moment their token stops being valid.

A stream is authenticated once, when it connects; after that it is this registry that ends it:
- a logout anywhere is announced on Redis pub/sub with the token's jti: the matching streams end;
- a password change or reset is announced with the user id: that user's streams are re-checked
  against the database in one query (the token version moved), and the stale ones end;
- a local timer ends each stream when its token stops being accepted (expiry plus leeway);
- while the subscription is down nothing is announced to this replica, so every open stream's token
  is re-checked in one batch query each second until it is back, and once more when it is back
  (what was announced in between never arrives);
- an announcement that lands between a request's authentication and its stream's registration is
  remembered for a few seconds, so a stream registered just after it still obeys it;
- an announcement that could not be sent at all (its publish failed while the subscriptions stayed
  up) is caught by a sweep of every open stream's token, in one query, every SWEEP_S.
No stream polls the database by itself.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import asyncpg

from tradebot.accounts.session_events import TokenRef, parse_session_event
from tradebot.runtime.tasks import cancel_and_wait

log = logging.getLogger(__name__)

RECHECK_WHILE_DOWN_S = 1.0
SWEEP_S = 30.0
# How long an announcement is kept for streams registering just after it: far longer than the time
# between a request's token check and its stream's registration.
REMEMBER_S = 10.0

K = TypeVar("K")
TokenCheck = Callable[[Sequence[TokenRef]], Awaitable[set[str]]]


@dataclass(eq=False, slots=True)
class StreamHandle:
    token: TokenRef
    accepted_until: int
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    reason: str | None = None
    timer: asyncio.TimerHandle | None = None

    def end(self, reason: str) -> None:
        if not self.ended.is_set():
            self.reason = reason
            self.ended.set()


class StreamRegistry:
    def __init__(
        self,
        check: TokenCheck,
        *,
        wall_clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        sweep_s: float = SWEEP_S,
    ) -> None:
        self._check = check
        self._sweep_s = sweep_s
        self._sweeper: asyncio.Task[None] | None = None
        self._wall = wall_clock
        self._monotonic = monotonic
        self._by_user: dict[int, set[StreamHandle]] = {}
        self._recent_jtis: dict[str, float] = {}
        self._recent_users: dict[int, float] = {}
        self._subscribed = False  # until the relay confirms it, nothing announced reaches us
        self._tasks: set[asyncio.Task[None]] = set()
        self._watchdog: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ streams

    def add(self, user_id: int, jti: str, token_version: int, accepted_until: int) -> StreamHandle:
        handle = StreamHandle(TokenRef(user_id, jti, token_version), accepted_until)
        self._by_user.setdefault(user_id, set()).add(handle)
        delay = max(0.0, accepted_until - self._wall())
        handle.timer = asyncio.get_running_loop().call_later(delay, handle.end, "expired")
        self._forget_old()
        if jti in self._recent_jtis:
            handle.end("revoked")
        elif user_id in self._recent_users:
            self._spawn(self._recheck([handle]))
        if not self._subscribed:
            self._ensure_watchdog()
        if self._sweeper is None or self._sweeper.done():
            self._sweeper = self._spawn(self._sweep(), name="stream-token-sweep")
        return handle

    def discard(self, handle: StreamHandle) -> None:
        if handle.timer is not None:
            handle.timer.cancel()
        group = self._by_user.get(handle.token.user_id)
        if group is not None:
            group.discard(handle)
            if not group:
                del self._by_user[handle.token.user_id]

    def __len__(self) -> int:
        return sum(len(g) for g in self._by_user.values())

    def handles(self) -> list[StreamHandle]:
        return [h for g in self._by_user.values() for h in g]

    # ------------------------------------------------------------------ announcements

    def on_message(self, raw: bytes | str) -> None:
        """A session announcement from the relay's subscription (runs on the dispatcher's task)."""
        event = parse_session_event(raw)
        if event is None:
            log.warning("ignoring a malformed session announcement")
            return
        now = self._monotonic()
        self._forget_old()
        group = tuple(self._by_user.get(event.user_id, ()))
        if event.jti is not None:
            self._recent_jtis[event.jti] = now
            for handle in group:
                if handle.token.jti == event.jti:
                    handle.end("revoked")
        else:
            self._recent_users[event.user_id] = now
            if group:
                self._spawn(self._recheck(group))

    def subscription_up(self) -> None:
        self._subscribed = True
        if self._by_user:
            self._spawn(self._recheck(self.handles()))  # what was announced while it was down

    def subscription_down(self) -> None:
        self._subscribed = False
        self._ensure_watchdog()

    # ------------------------------------------------------------------ checks

    async def _recheck(self, handles: Iterable[StreamHandle]) -> None:
        live = [h for h in handles if not h.ended.is_set()]
        if not live:
            return
        try:
            stale = await self._check([h.token for h in live])
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as e:
            # Nothing to go by: the streams stay, as new requests cannot be checked either.
            log.warning("open streams' tokens not re-checked", extra={"count": len(live), "error": str(e)})
            return
        for handle in live:
            if handle.token.jti in stale:
                handle.end("revoked")

    async def _watch(self) -> None:
        while not self._subscribed and self._by_user:
            await self._recheck(self.handles())
            await asyncio.sleep(RECHECK_WHILE_DOWN_S)

    async def _sweep(self) -> None:
        while self._by_user:
            await asyncio.sleep(self._sweep_s)
            await self._recheck(self.handles())

    def _ensure_watchdog(self) -> None:
        if self._watchdog is None or self._watchdog.done():
            self._watchdog = self._spawn(self._watch(), name="stream-token-watchdog")

    def _spawn(self, coro: Coroutine[Any, Any, None], *, name: str = "stream-token-recheck") -> asyncio.Task[None]:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _forget_old(self) -> None:
        horizon = self._monotonic() - REMEMBER_S
        _forget_before(self._recent_jtis, horizon)
        _forget_before(self._recent_users, horizon)

    async def close(self) -> None:
        for handle in self.handles():
            if handle.timer is not None:
                handle.timer.cancel()
        if self._tasks:
            await cancel_and_wait(tuple(self._tasks), timeout=2.0)


def _forget_before(memory: dict[K, float], horizon: float) -> None:
    for key in [k for k, at in memory.items() if at < horizon]:
        del memory[key]
