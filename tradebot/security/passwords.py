"""Password hashing: argon2id with RFC 9106's low-memory profile, always off the event loop.

Hashing costs ~60 MiB and tens of milliseconds of CPU by design, so every hash and verify runs in a
small executor of this hasher's own: it bounds how many run at once (memory) and never blocks the
loop. An unknown email is verified against a dummy hash with the same parameters, so it costs the
same as a wrong password and response times do not reveal which emails have accounts.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import argon2
from argon2 import Parameters, profiles
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

# RFC 9106 section 4, second recommended option: t=3, m=64 MiB, p=4.
DEFAULT_PARAMETERS: Parameters = profiles.RFC_9106_LOW_MEMORY

MIN_PASSWORD_CHARS = 8
MAX_PASSWORD_CHARS = 1024


@dataclass(frozen=True, slots=True)
class VerifyResult:
    ok: bool
    # The stored hash was made with other parameters: hash the password again and store that.
    needs_rehash: bool = False


class PasswordHasher:
    """argon2id hashing in a bounded executor; `close()` when done."""

    def __init__(self, parameters: Parameters = DEFAULT_PARAMETERS, *, max_workers: int | None = None) -> None:
        self._hasher = argon2.PasswordHasher.from_parameters(parameters)
        # One worker per core: more threads only add memory and queueing, not throughput.
        self._executor = ThreadPoolExecutor(
            max_workers=max_workers or max(1, os.cpu_count() or 1), thread_name_prefix="argon2"
        )
        self._dummy_hash: str | None = None

    @property
    def parameters(self) -> Parameters:
        h = self._hasher
        return Parameters(
            type=h.type,
            version=19,
            salt_len=h.salt_len,
            hash_len=h.hash_len,
            time_cost=h.time_cost,
            memory_cost=h.memory_cost,
            parallelism=h.parallelism,
        )

    async def start(self) -> None:
        """Make the dummy hash now, so the first unknown-email login is not cheaper than the rest."""
        if self._dummy_hash is None:
            self._dummy_hash = await self.hash(secrets.token_urlsafe(24))

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)

    async def hash(self, password: str) -> str:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._hasher.hash, password)

    async def verify(self, stored_hash: str, password: str) -> VerifyResult:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._verify_sync, stored_hash, password)

    async def verify_dummy(self, password: str) -> None:
        """Spend what a real verification costs, for an account that does not exist."""
        await self.start()
        assert self._dummy_hash is not None
        await self.verify(self._dummy_hash, password)

    def _verify_sync(self, stored_hash: str, password: str) -> VerifyResult:
        try:
            self._hasher.verify(stored_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return VerifyResult(ok=False)
        return VerifyResult(ok=True, needs_rehash=self._hasher.check_needs_rehash(stored_hash))
