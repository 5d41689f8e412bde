"""Announcements that tokens stopped being valid, pushed to every replica over Redis pub/sub.

Whatever a request keeps open (SSE streams) was authenticated once, at connect; these messages are
how every replica learns, within moments, that such a token was revoked (logout: its `jti`) or that
all of a user's earlier tokens were (password change or reset: the user's token version moved). The
database stays the record: a message is sent after the change is committed, and a replica that may
have missed messages re-checks its open streams against the database in one batch.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg
import redis.asyncio as aioredis

from tradebot import jsonutil
from tradebot.security.redis_guard import REDIS_ERRORS

log = logging.getLogger(__name__)

PUBLISH_TIMEOUT_S = 0.5


def sessions_channel(prefix: str) -> str:
    return f"{prefix}:sessions"


@dataclass(frozen=True, slots=True)
class SessionEvent:
    """`jti` set: that one token is revoked; None: every token of the user issued before now is."""

    user_id: int
    jti: str | None


@dataclass(frozen=True, slots=True)
class TokenRef:
    """An accepted token, as far as a re-check needs it."""

    user_id: int
    jti: str
    token_version: int


class SessionAnnouncer:
    def __init__(self, redis: aioredis.Redis, prefix: str) -> None:
        self._redis = redis
        self._channel = sessions_channel(prefix)

    async def token_revoked(self, user_id: int, jti: str) -> None:
        await self._publish({"user_id": user_id, "jti": jti})

    async def credentials_changed(self, user_id: int) -> None:
        await self._publish({"user_id": user_id})

    async def _publish(self, message: dict[str, object]) -> None:
        # Redis away: every replica's subscription is down too, and while it is down each replica
        # re-checks its open streams against the database (see StreamRegistry).
        try:
            async with asyncio.timeout(PUBLISH_TIMEOUT_S):
                await self._redis.publish(self._channel, jsonutil.dumps(message))
        except REDIS_ERRORS as e:
            log.warning("session change not announced", extra={"user_id": message["user_id"], "error": str(e)})


def parse_session_event(raw: bytes | str) -> SessionEvent | None:
    try:
        msg = jsonutil.loads(raw)
        user_id, jti = msg["user_id"], msg.get("jti")
    except (ValueError, KeyError, TypeError):
        return None
    if not isinstance(user_id, int) or isinstance(user_id, bool) or not (jti is None or isinstance(jti, str)):
        return None
    return SessionEvent(user_id, jti)


async def stale_tokens(pool: asyncpg.Pool, tokens: Sequence[TokenRef]) -> set[str]:
    """The jtis among `tokens` that are no longer accepted (revoked, an older token version, an
    inactive or deleted user), in one query however many there are."""
    if not tokens:
        return set()
    rows = await pool.fetch(
        """
        SELECT t.jti FROM unnest($1::text[], $2::bigint[], $3::int[]) AS t(jti, user_id, ver)
          LEFT JOIN users u ON u.id = t.user_id
         WHERE u.id IS NULL OR NOT u.is_active OR u.token_version <> t.ver
            OR EXISTS (SELECT 1 FROM revoked_tokens r WHERE r.jti = t.jti)
        """,
        [t.jti for t in tokens],
        [t.user_id for t in tokens],
        [t.token_version for t in tokens],
    )
    return {str(r["jti"]) for r in rows}
