"""A small cache for exchange reads: one request in flight per key, answers kept for a while.

Reads the API shows (balances, tickers) would otherwise cost one exchange request per page view;
with this, a key is asked at most once per `ttl_s` on each replica, however many requests want it,
which keeps a user's page views from spending the key's exchange rate limit. A failure is kept
too, for a shorter `error_ttl_s`, so a broken key is not retried on every view either; the caller
sees the failure (never a default value in its place).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class Cached(Generic[V]):
    """An answer (or the exception it raised) and the clock reading it was taken at."""

    value: V | None
    error: Exception | None
    taken_at: float


class ReadCache(Generic[K, V]):
    def __init__(
        self,
        *,
        ttl_s: float,
        error_ttl_s: float,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl = ttl_s
        self._error_ttl = error_ttl_s
        self._max = max_entries
        self._clock = clock
        self._entries: dict[K, Cached[V]] = {}
        self._in_flight: dict[K, asyncio.Future[Cached[V]]] = {}

    async def get(self, key: K, read: Callable[[], Awaitable[V]]) -> Cached[V]:
        """The cached answer while fresh, else the answer of one `read()` shared by all callers."""
        entry = self._entries.get(key)
        now = self._clock()
        if entry is not None and now - entry.taken_at < (self._ttl if entry.error is None else self._error_ttl):
            return entry
        pending = self._in_flight.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Cached[V]] = asyncio.get_running_loop().create_future()
        self._in_flight[key] = future
        try:
            try:
                entry = Cached(await read(), None, self._clock())
            except asyncio.CancelledError:
                raise
            except Exception as e:
                entry = Cached(None, e, self._clock())
            self._store(key, entry)
            future.set_result(entry)
            return entry
        except BaseException:
            # Cancelled mid-read: the waiters must not hang; they read it as a failed read (not stored).
            if not future.done():
                future.set_result(Cached(None, RuntimeError("the read was cancelled"), self._clock()))
            raise
        finally:
            self._in_flight.pop(key, None)

    def _store(self, key: K, entry: Cached[V]) -> None:
        if len(self._entries) >= self._max and key not in self._entries:
            # Bounded memory: the oldest entry goes (dicts keep insertion order).
            self._entries.pop(next(iter(self._entries)))
        self._entries.pop(key, None)
        self._entries[key] = entry
