"""The users table: every query the account service needs, and nothing else."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import asyncpg


@dataclass(frozen=True, slots=True)
class User:
    id: int
    email: str
    is_active: bool
    created_at: dt.datetime


@dataclass(frozen=True, slots=True)
class Credentials:
    id: int
    email: str
    password_hash: str
    is_active: bool
    token_version: int


@dataclass(frozen=True, slots=True)
class UserRecord:
    """The row a request's token is checked against, and what `GET /auth/me` shows: one read serves
    both, and the session cache keeps it."""

    id: int
    email: str
    is_active: bool
    created_at: dt.datetime
    token_version: int

    def public(self) -> User:
        return User(self.id, self.email, self.is_active, self.created_at)


class DuplicateEmail(Exception):
    pass


class UserRepository:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def create(self, email: str, password_hash: str) -> User:
        try:
            row = await self._pool.fetchrow(
                "INSERT INTO users (email, password_hash) VALUES ($1, $2) RETURNING id, email, is_active, created_at",
                email,
                password_hash,
            )
        except asyncpg.UniqueViolationError as e:
            raise DuplicateEmail from e
        assert row is not None
        return User(**dict(row))

    async def credentials_by_email(self, email: str) -> Credentials | None:
        # lower(email) matches the unique index users_email_key.
        row = await self._pool.fetchrow(
            "SELECT id, email, password_hash, is_active, token_version FROM users WHERE lower(email) = $1", email
        )
        return Credentials(**dict(row)) if row else None

    async def credentials_by_id(self, user_id: int) -> Credentials | None:
        row = await self._pool.fetchrow(
            "SELECT id, email, password_hash, is_active, token_version FROM users WHERE id = $1", user_id
        )
        return Credentials(**dict(row)) if row else None

    async def record(self, user_id: int) -> UserRecord | None:
        """The per-request check when the session cache cannot answer: one primary-key lookup."""
        row = await self._pool.fetchrow(
            "SELECT id, email, is_active, created_at, token_version FROM users WHERE id = $1", user_id
        )
        return UserRecord(**dict(row)) if row else None

    async def set_active(self, user_id: int, active: bool) -> bool:
        """Deactivation refuses every token of the user at once (each request checks the flag) and for
        good (the token version moves, so a reactivation does not revive them); False if there is no
        such user."""
        result: str = await self._pool.execute(
            """
            UPDATE users SET is_active = $2, updated_at = now(),
                   token_version = token_version + CASE WHEN $2 THEN 0 ELSE 1 END
             WHERE id = $1
            """,
            user_id,
            active,
        )
        return result == "UPDATE 1"

    async def replace_hash_if_unchanged(self, user_id: int, old_hash: str, new_hash: str) -> None:
        """Rehash-on-login: a no-op if the password changed in between (never undo that change)."""
        await self._pool.execute(
            "UPDATE users SET password_hash = $3 WHERE id = $1 AND password_hash = $2",
            user_id,
            old_hash,
            new_hash,
        )

    async def set_password_if_unchanged(self, user_id: int, old_hash: str, new_hash: str) -> bool:
        """Password change: new hash, every earlier token refused, any pending reset cancelled."""
        result: str = await self._pool.execute(
            """
            UPDATE users SET password_hash = $3, token_version = token_version + 1,
                   reset_token_hash = NULL, reset_token_expires_at = NULL, updated_at = now()
             WHERE id = $1 AND password_hash = $2 AND is_active
            """,
            user_id,
            old_hash,
            new_hash,
        )
        return result == "UPDATE 1"

    async def store_reset_token(self, user_id: int, token_hash: bytes, ttl: dt.timedelta) -> None:
        # A new request replaces any earlier token: only the latest link works.
        await self._pool.execute(
            """
            UPDATE users SET reset_token_hash = $2, reset_token_expires_at = now() + $3::interval
             WHERE id = $1 AND is_active
            """,
            user_id,
            token_hash,
            ttl,
        )

    async def reset_token_owner(self, user_id: int, token_hash: bytes) -> str | None:
        """The email of the account this fresh, unused token belongs to, or None; consumes nothing."""
        email: str | None = await self._pool.fetchval(
            """
            SELECT email FROM users
             WHERE id = $1 AND reset_token_hash = $2 AND reset_token_expires_at > now() AND is_active
            """,
            user_id,
            token_hash,
        )
        return email

    async def consume_reset_token(self, user_id: int, token_hash: bytes, new_hash: str) -> str | None:
        """The user's email, or None. Single use by construction: the row matches only while the
        token is stored and fresh."""
        email: str | None = await self._pool.fetchval(
            """
            UPDATE users SET password_hash = $3, token_version = token_version + 1,
                   reset_token_hash = NULL, reset_token_expires_at = NULL, updated_at = now()
             WHERE id = $1 AND reset_token_hash = $2 AND reset_token_expires_at > now() AND is_active
            RETURNING email
            """,
            user_id,
            token_hash,
            new_hash,
        )
        return email
