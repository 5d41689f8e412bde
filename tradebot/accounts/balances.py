"""A user's exchange balances, per API key, read through ccxt (`fetch_balance`) and cached.

The exchange is reached the way `POST /api-keys/{id}/validate` reaches it: a client of its own per
read, closed right after, so a key that may be wrong never joins the clients the bots share. Each
key is read at most once per `ttl_s` on a replica (ReadCache), and at most `concurrency` reads run
at once, so a page view cannot spend a key's exchange rate limit. A key whose read fails gives an
error entry, never zero balances.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tradebot.accounts.api_keys import ApiKey, ApiKeyService, ExchangeCredentials
from tradebot.accounts.errors import ApiKeyNotFound
from tradebot.exchange import errors as exchange_errors
from tradebot.exchange.ccxt_factory import build_client
from tradebot.exchange.read_cache import ReadCache

log = logging.getLogger(__name__)

BALANCE_TTL_S = 30.0
ERROR_TTL_S = 10.0
READ_TIMEOUT_S = 15.0
CONCURRENT_READS = 8


@dataclass(frozen=True, slots=True)
class AssetBalance:
    free: float
    used: float
    total: float


@dataclass(frozen=True, slots=True)
class Balances:
    assets: dict[str, AssetBalance]
    read_at: dt.datetime


@dataclass(frozen=True, slots=True)
class KeyBalances:
    """One API key's balances, or why they could not be read (then `assets` is None)."""

    key: ApiKey
    assets: dict[str, AssetBalance] | None
    read_at: dt.datetime | None
    error: str | None


def _assets(balance: dict[str, Any]) -> dict[str, AssetBalance]:
    totals: dict[str, Any] = balance.get("total") or {}
    free: dict[str, Any] = balance.get("free") or {}
    used: dict[str, Any] = balance.get("used") or {}
    return {
        asset: AssetBalance(float(free.get(asset) or 0.0), float(used.get(asset) or 0.0), float(total))
        for asset, total in sorted(totals.items())
        if total
    }


def _reason(error: Exception) -> str:
    if isinstance(error, exchange_errors.InvalidCredentials):
        return "the exchange refused this API key"
    if isinstance(error, ApiKeyNotFound):
        return "the API key was deleted"
    if isinstance(error, TimeoutError):
        return "the exchange did not answer in time"
    return "the exchange is unavailable right now"


class BalanceReader:
    def __init__(
        self,
        api_keys: ApiKeyService,
        base_url: str | None,
        *,
        ttl_s: float = BALANCE_TTL_S,
        error_ttl_s: float = ERROR_TTL_S,
        concurrency: int = CONCURRENT_READS,
    ) -> None:
        self._api_keys = api_keys
        self._base_url = base_url
        self._cache: ReadCache[tuple[int, int], Balances] = ReadCache(ttl_s=ttl_s, error_ttl_s=error_ttl_s)
        self._slots = asyncio.Semaphore(concurrency)

    async def balances(self, user_id: int, keys: Sequence[ApiKey]) -> list[KeyBalances]:
        return list(await asyncio.gather(*(self._one(user_id, key) for key in keys)))

    async def _one(self, user_id: int, key: ApiKey) -> KeyBalances:
        # Keyed by (key id, updated_at's microseconds): a re-validated or rotated key is read afresh.
        cache_key = (key.id, int(key.updated_at.timestamp() * 1_000_000))
        entry = await self._cache.get(cache_key, lambda: self._read(user_id, key.id))
        if entry.error is not None or entry.value is None:
            return KeyBalances(key, None, None, _reason(entry.error or RuntimeError()))
        return KeyBalances(key, entry.value.assets, entry.value.read_at, None)

    async def _read(self, user_id: int, key_id: int) -> Balances:
        credentials = await self._api_keys.credentials(user_id, key_id)
        async with self._slots:
            balance = await self._fetch(credentials)
        return Balances(_assets(balance), dt.datetime.now(dt.UTC))

    async def _fetch(self, credentials: ExchangeCredentials) -> dict[str, Any]:
        client = build_client(
            credentials.exchange,
            base_url=self._base_url,
            api_key=credentials.api_key,
            secret=credentials.secret,
            streaming=False,
        )
        try:
            async with asyncio.timeout(READ_TIMEOUT_S):
                with exchange_errors.translated():
                    balance: dict[str, Any] = await client.fetch_balance()
                    return balance
        except (exchange_errors.ExchangeError, TimeoutError) as e:
            log.warning("balance read failed", extra={"error": type(e).__name__})
            raise
        finally:
            await client.close()
