"""Exchange API keys: encrypted at rest, visible only to their owner.

Every query goes through `OwnedApiKeys`, which is made for one user and puts `user_id = $1` into
each statement itself: no call site can forget the owner, and another user's key id finds nothing
(404, DESIGN.md invariant 5). The clear key and secret exist only in memory, briefly, to encrypt
them or to call the exchange; they are never returned, logged or shown in a repr.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol

import asyncpg

from tradebot.accounts.errors import ApiKeyInUse, ApiKeyNotFound, RateLimited, TooManyApiKeys
from tradebot.security.rate_limit import Limit, RateLimiter
from tradebot.security.secrets_box import SecretBox

log = logging.getLogger(__name__)

MAX_KEYS_PER_USER = 100
# Each validation is a signed call to the exchange on the user's behalf: bounded per user.
VALIDATE_PER_USER = Limit("validate-key", 10, 60)

_COLUMNS = "id, label, exchange, api_key_hint, is_valid, validated_at, created_at, updated_at"


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: int
    label: str
    exchange: str
    api_key_hint: str
    is_valid: bool | None
    validated_at: dt.datetime | None
    created_at: dt.datetime
    updated_at: dt.datetime


@dataclass(frozen=True, slots=True)
class ExchangeCredentials:
    exchange: str
    api_key: str = field(repr=False)
    secret: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class _Encrypted:
    exchange: str
    api_key: bytes = field(repr=False)
    secret: bytes = field(repr=False)


class KeyValidator(Protocol):
    """Asks the exchange whether a key works: True or False, or ExchangeUnavailable when unclear."""

    async def check(self, credentials: ExchangeCredentials) -> bool: ...


class DeleteOutcome(Enum):
    DELETED = "deleted"
    NOT_FOUND = "not_found"
    IN_USE = "in_use"


def api_key_hint(api_key: str) -> str:
    """At most the last 4 characters, and never more than a quarter of the key."""
    shown = min(4, len(api_key) // 4)
    return api_key[-shown:] if shown else ""


class OwnedApiKeys:
    """The api_keys rows of one user; the only way this package touches the table per user."""

    def __init__(self, pool: asyncpg.Pool, user_id: int) -> None:
        self._pool = pool
        self._user_id = user_id

    async def insert(self, label: str, exchange: str, encrypted: _Encrypted, hint: str, cap: int) -> ApiKey | None:
        """The new key, or None when the user already has `cap` keys."""
        async with self._pool.acquire() as conn, conn.transaction():
            # Locking the user's row serialises concurrent inserts, so the cap cannot be raced past.
            await conn.execute("SELECT 1 FROM users WHERE id = $1 FOR UPDATE", self._user_id)
            row = await conn.fetchrow(
                f"""
                INSERT INTO api_keys (user_id, label, exchange, api_key_encrypted, secret_encrypted, api_key_hint)
                SELECT $1, $2, $3, $4, $5, $6
                 WHERE (SELECT count(*) FROM api_keys WHERE user_id = $1) < $7
                RETURNING {_COLUMNS}
                """,
                self._user_id,
                label,
                exchange,
                encrypted.api_key,
                encrypted.secret,
                hint,
                cap,
            )
        return ApiKey(**dict(row)) if row else None

    async def page(self, after_id: int | None, limit: int) -> list[ApiKey]:
        """Keyset page in id order: rows after `after_id`, at most `limit`."""
        rows = await self._pool.fetch(
            f"SELECT {_COLUMNS} FROM api_keys WHERE user_id = $1 AND id > $2 ORDER BY id LIMIT $3",
            self._user_id,
            after_id or 0,
            limit,
        )
        return [ApiKey(**dict(r)) for r in rows]

    async def get(self, key_id: int) -> ApiKey | None:
        row = await self._pool.fetchrow(
            f"SELECT {_COLUMNS} FROM api_keys WHERE user_id = $1 AND id = $2", self._user_id, key_id
        )
        return ApiKey(**dict(row)) if row else None

    async def encrypted(self, key_id: int) -> _Encrypted | None:
        row = await self._pool.fetchrow(
            "SELECT exchange, api_key_encrypted, secret_encrypted FROM api_keys WHERE user_id = $1 AND id = $2",
            self._user_id,
            key_id,
        )
        return _Encrypted(row[0], bytes(row[1]), bytes(row[2])) if row else None

    async def record_validation(self, key_id: int, is_valid: bool) -> ApiKey | None:
        row = await self._pool.fetchrow(
            f"""
            UPDATE api_keys SET is_valid = $3, validated_at = now(), updated_at = now()
             WHERE user_id = $1 AND id = $2 RETURNING {_COLUMNS}
            """,
            self._user_id,
            key_id,
            is_valid,
        )
        return ApiKey(**dict(row)) if row else None

    async def delete(self, key_id: int) -> DeleteOutcome:
        async with self._pool.acquire() as conn, conn.transaction():
            # The row lock makes the check and the delete one step: a bot start takes FOR KEY SHARE
            # on the key before activating (BotsRepo.start), so it either waits for this delete or
            # holds it off until the active bot is visible to the check below.
            found = await conn.fetchval(
                "SELECT id FROM api_keys WHERE user_id = $1 AND id = $2 FOR UPDATE", self._user_id, key_id
            )
            if found is None:
                return DeleteOutcome.NOT_FOUND
            in_use = await conn.fetchval(
                "SELECT EXISTS (SELECT 1 FROM bot_configs WHERE api_key_id = $1 AND is_active AND deleted_at IS NULL)",
                key_id,
            )
            if in_use:
                return DeleteOutcome.IN_USE
            await conn.execute("DELETE FROM api_keys WHERE user_id = $1 AND id = $2", self._user_id, key_id)
            return DeleteOutcome.DELETED


class ApiKeyService:
    def __init__(
        self,
        pool: asyncpg.Pool,
        box: SecretBox,
        validator: KeyValidator,
        limiter: RateLimiter,
        *,
        max_keys_per_user: int = MAX_KEYS_PER_USER,
    ) -> None:
        self._pool = pool
        self._box = box
        self._validator = validator
        self._limiter = limiter
        self._max_keys = max_keys_per_user

    def _owned(self, user_id: int) -> OwnedApiKeys:
        return OwnedApiKeys(self._pool, user_id)

    async def create(self, user_id: int, *, label: str, exchange: str, api_key: str, secret_key: str) -> ApiKey:
        encrypted = _Encrypted(exchange, self._box.encrypt(api_key), self._box.encrypt(secret_key))
        key = await self._owned(user_id).insert(label, exchange, encrypted, api_key_hint(api_key), self._max_keys)
        if key is None:
            raise TooManyApiKeys
        log.info("api key stored", extra={"user_id": user_id, "api_key_id": key.id})
        return key

    async def page(self, user_id: int, *, after_id: int | None, limit: int) -> list[ApiKey]:
        return await self._owned(user_id).page(after_id, limit)

    async def get(self, user_id: int, key_id: int) -> ApiKey:
        key = await self._owned(user_id).get(key_id)
        if key is None:
            raise ApiKeyNotFound
        return key

    async def credentials(self, user_id: int, key_id: int) -> ExchangeCredentials:
        """The clear key and secret, for a caller about to talk to the exchange for this user."""
        enc = await self._owned(user_id).encrypted(key_id)
        if enc is None:
            raise ApiKeyNotFound
        return ExchangeCredentials(enc.exchange, self._box.decrypt(enc.api_key), self._box.decrypt(enc.secret))

    async def validate(self, user_id: int, key_id: int) -> ApiKey:
        """Ask the exchange; store and return the answer. ExchangeUnavailable stores nothing."""
        credentials = await self.credentials(user_id, key_id)
        decision = await self._limiter.hit(VALIDATE_PER_USER, f"user:{user_id}")
        if not decision.allowed:
            raise RateLimited(decision.retry_after_s)
        is_valid = await self._validator.check(credentials)
        key = await self._owned(user_id).record_validation(key_id, is_valid)
        if key is None:
            raise ApiKeyNotFound  # deleted while the exchange was answering
        log.info("api key validated", extra={"user_id": user_id, "api_key_id": key_id, "is_valid": is_valid})
        return key

    async def delete(self, user_id: int, key_id: int) -> None:
        outcome = await self._owned(user_id).delete(key_id)
        if outcome is DeleteOutcome.NOT_FOUND:
            raise ApiKeyNotFound
        if outcome is DeleteOutcome.IN_USE:
            raise ApiKeyInUse
        log.info("api key deleted", extra={"user_id": user_id, "api_key_id": key_id})
