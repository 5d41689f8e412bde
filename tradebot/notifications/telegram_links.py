"""Which Telegram chat belongs to which user: one-time link codes, the link, unlinking.

A code is random (128 bits), shown once, stored as its SHA-256, valid for
TRADEBOT_TELEGRAM_LINK_TTL_S and used at most once: redeeming it deletes it in the statement that
writes the link. A chat linked to one user is relinked by another user's code only after it was
unlinked (one chat, one user: its commands act for exactly that user).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass
from enum import StrEnum

import asyncpg

CODE_BYTES = 16


def code_hash(code: str) -> bytes:
    return hashlib.sha256(code.encode()).digest()


@dataclass(frozen=True, slots=True)
class LinkCode:
    code: str
    expires_at: dt.datetime


@dataclass(frozen=True, slots=True)
class LinkStatus:
    linked: bool
    username: str | None = None
    linked_at: dt.datetime | None = None


class Redeemed(StrEnum):
    LINKED = "linked"
    UNKNOWN = "unknown"  # never issued, already used, or replaced by a newer code
    EXPIRED = "expired"
    CHAT_TAKEN = "chat_taken"  # the chat is linked to another user


class TelegramLinks:
    def __init__(self, pool: asyncpg.Pool, *, code_ttl_s: float) -> None:
        self._pool = pool
        self._ttl = dt.timedelta(seconds=code_ttl_s)

    async def new_code(self, user_id: int) -> LinkCode:
        code = secrets.token_urlsafe(CODE_BYTES)
        expires = await self._pool.fetchval(
            """INSERT INTO telegram_link_codes (user_id, code_hash, expires_at) VALUES ($1, $2, now() + $3)
               ON CONFLICT (user_id) DO UPDATE SET code_hash = EXCLUDED.code_hash,
                   expires_at = EXCLUDED.expires_at, created_at = now()
               RETURNING expires_at""",
            user_id, code_hash(code), self._ttl,
        )
        return LinkCode(code, expires)

    async def redeem(self, code: str, chat_id: int, username: str | None) -> Redeemed:
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "DELETE FROM telegram_link_codes WHERE code_hash = $1 RETURNING user_id, expires_at > now() AS valid",
                code_hash(code),
            )
            if row is None:
                return Redeemed.UNKNOWN
            if not row["valid"]:
                return Redeemed.EXPIRED
            owner = await conn.fetchval("SELECT user_id FROM telegram_links WHERE chat_id = $1", chat_id)
            if owner is not None and owner != row["user_id"]:
                return Redeemed.CHAT_TAKEN
            await conn.execute(
                """INSERT INTO telegram_links (user_id, chat_id, username) VALUES ($1, $2, $3)
                   ON CONFLICT (user_id) DO UPDATE SET chat_id = EXCLUDED.chat_id,
                       username = EXCLUDED.username, linked_at = now()""",
                row["user_id"], chat_id, username,
            )
        return Redeemed.LINKED

    async def status(self, user_id: int) -> LinkStatus:
        row = await self._pool.fetchrow("SELECT username, linked_at FROM telegram_links WHERE user_id = $1", user_id)
        return LinkStatus(False) if row is None else LinkStatus(True, row["username"], row["linked_at"])

    async def unlink(self, user_id: int) -> bool:
        return bool(await self._pool.fetchval(
            "WITH gone AS (DELETE FROM telegram_links WHERE user_id = $1 RETURNING 1) SELECT count(*) FROM gone",
            user_id,
        ))

    async def unlink_chat(self, chat_id: int) -> bool:
        return bool(await self._pool.fetchval(
            "WITH gone AS (DELETE FROM telegram_links WHERE chat_id = $1 RETURNING 1) SELECT count(*) FROM gone",
            chat_id,
        ))

    async def user_of(self, chat_id: int) -> int | None:
        value = await self._pool.fetchval("SELECT user_id FROM telegram_links WHERE chat_id = $1", chat_id)
        return None if value is None else int(value)
