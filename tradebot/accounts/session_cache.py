"""What each replica remembers about users and tokens, so a request whose user and token did not
change is authenticated without reading PostgreSQL or Redis.

It keeps user rows (token version, active flag, what `GET /auth/me` shows) and the jtis found not
revoked. Every logout, password change or reset and deactivation is announced on the sessions
channel (session_events.py) and drops what it touches here; the replica that made the change drops
it before answering.

The cache answers only while it is *trusted*: while this replica has, within the last TRUST_S,
received one of its own heartbeats over its subscription. A heartbeat goes through the same
connection as the announcements and Redis delivers a connection's messages in order, so receiving
the heartbeat sent at time S proves that every announcement Redis took before S has been applied.
Hence a cached "valid" never outlives a revocation by more than TRUST_S (plus the moment between
the database commit and the publish), whatever happens to the subscription: a reconnect, a silent
network partition, or a loop too busy to read. While untrusted every request is checked against
Redis and PostgreSQL as without the cache; when the subscription is lost or confirmed again the
whole cache is dropped, since announcements may have been missed in between.

A row read while an announcement arrives is not stored (the epoch moved): it may predate the change.
An entry is also read again after MAX_AGE_S, which bounds the one case the heartbeat cannot see: an
announcement whose publish failed while the subscriptions stayed up (the stream registry's sweep
covers the same case for open streams).
"""

from __future__ import annotations

import asyncio
import logging
import math
import secrets
import time
from collections import deque
from collections.abc import Callable
from typing import TypeVar

import redis.asyncio as aioredis

from tradebot.accounts.session_events import parse_session_event
from tradebot.accounts.users import UserRecord
from tradebot.security.redis_guard import REDIS_ERRORS

log = logging.getLogger(__name__)

TRUST_S = 0.75
HEARTBEAT_S = 0.2
MAX_AGE_S = 10.0
PUBLISH_TIMEOUT_S = 0.5
MAX_USERS = 50_000
MAX_TOKENS = 200_000


K = TypeVar("K")
V = TypeVar("V")


def _bounded_put(store: dict[K, V], key: K, value: V, limit: int) -> None:
    # Insertion order is age: past the limit the oldest entries go (they are read again if needed).
    store.pop(key, None)
    store[key] = value
    while len(store) > limit:
        del store[next(iter(store))]


class SessionCache:
    def __init__(
        self,
        redis: aioredis.Redis,
        prefix: str,
        *,
        clock: Callable[[], float] = time.monotonic,
        heartbeat_s: float = HEARTBEAT_S,
    ) -> None:
        self._redis = redis
        self._clock = clock
        self._heartbeat_s = heartbeat_s
        # Only this replica subscribes to its own heartbeat channel: nobody else pays for it.
        self.heartbeat_channel = f"{prefix}:sessions-heartbeat:{secrets.token_hex(8)}"
        # Values carry the monotonic time they were read at.
        self._users: dict[int, tuple[UserRecord, float]] = {}
        self._tokens: dict[str, tuple[int, float]] = {}  # jti -> user id, for tokens found not revoked
        self._epoch = 0
        self._heard_sent_at = -math.inf  # when the latest heartbeat received was sent
        self._sent: deque[tuple[int, float]] = deque(maxlen=256)
        self._seq = 0
        self._task: asyncio.Task[None] | None = None
        # Token checks answered here, and those that went to Redis and PostgreSQL (for /metrics).
        self.hits = 0
        self.misses = 0

    # ------------------------------------------------------------------ reads

    def trusted(self) -> bool:
        return self._clock() - self._heard_sent_at < TRUST_S

    def _fresh(self, read_at: float) -> bool:
        now = self._clock()
        return now - self._heard_sent_at < TRUST_S and now - read_at < MAX_AGE_S

    @property
    def epoch(self) -> int:
        """Read before a database lookup and handed to `store`: a change in between voids the store."""
        return self._epoch

    def user(self, user_id: int) -> UserRecord | None:
        found = self._users.get(user_id)
        return found[0] if found is not None and self._fresh(found[1]) else None

    def accepted_user(self, user_id: int, jti: str) -> UserRecord | None:
        """The user's row if both it and the token's "not revoked" can be answered from here."""
        record = self.user(user_id)
        if record is not None and self.token_not_revoked(jti, user_id):
            self.hits += 1
            return record
        self.misses += 1
        return None

    def token_not_revoked(self, jti: str, user_id: int) -> bool:
        found = self._tokens.get(jti)
        return found is not None and found[0] == user_id and self._fresh(found[1])

    def __len__(self) -> int:
        return len(self._users) + len(self._tokens)

    # ------------------------------------------------------------------ stores

    def store(self, epoch: int, record: UserRecord, jti: str | None = None) -> None:
        """Remember a row (and a jti found not revoked) read from the record since `epoch`."""
        if epoch != self._epoch or not self.trusted():
            return
        now = self._clock()
        _bounded_put(self._users, record.id, (record, now), MAX_USERS)
        if jti is not None:
            _bounded_put(self._tokens, jti, (record.id, now), MAX_TOKENS)

    # ------------------------------------------------------------------ invalidation

    def forget_token(self, jti: str) -> None:
        self._epoch += 1
        self._tokens.pop(jti, None)

    def forget_user(self, user_id: int) -> None:
        self._epoch += 1
        self._users.pop(user_id, None)

    def clear(self) -> None:
        self._epoch += 1
        self._users.clear()
        self._tokens.clear()

    def on_message(self, raw: bytes | str) -> None:
        """A session announcement (runs on the subscription's dispatcher task)."""
        event = parse_session_event(raw)
        if event is None:
            self.clear()  # cannot tell whom it concerns: forget everyone
        elif event.jti is not None:
            self.forget_token(event.jti)
        else:
            self.forget_user(event.user_id)

    def on_heartbeat(self, raw: bytes | str) -> None:
        try:
            seq = int(raw)
        except ValueError:
            return
        while self._sent and self._sent[0][0] < seq:
            self._sent.popleft()
        if self._sent and self._sent[0][0] == seq:
            _, sent_at = self._sent.popleft()
            self._heard_sent_at = max(self._heard_sent_at, sent_at)

    def subscription_up(self) -> None:
        self._lost()

    def subscription_down(self) -> None:
        self._lost()

    def _lost(self) -> None:
        # What was announced around a reconnect may never arrive: start empty, and trust again only
        # from a heartbeat sent over the new subscription.
        self._heard_sent_at = -math.inf
        self._sent.clear()
        self.clear()

    # ------------------------------------------------------------------ heartbeats

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._beat(), name="session-cache-heartbeat")

    async def _beat(self) -> None:
        while True:
            self._seq += 1
            self._sent.append((self._seq, self._clock()))
            try:
                async with asyncio.timeout(PUBLISH_TIMEOUT_S):
                    await self._redis.publish(self.heartbeat_channel, str(self._seq))
            except REDIS_ERRORS as e:
                # Nothing to do: without heartbeats the cache stops answering by itself.
                log.debug("session heartbeat not sent", extra={"error": str(e)})
            await asyncio.sleep(self._heartbeat_s)

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            # asyncio.wait does not raise the child's CancelledError: ours still propagates.
            await asyncio.wait([task], timeout=2.0)
        self._lost()
