"""Checks an exchange key with one signed, read-only call (the futures balance) through ccxt."""

from __future__ import annotations

import asyncio
import logging

from tradebot.accounts.api_keys import ExchangeCredentials
from tradebot.accounts.errors import ExchangeUnavailable
from tradebot.exchange import errors as exchange_errors
from tradebot.exchange.ccxt_factory import build_client

log = logging.getLogger(__name__)

VALIDATION_TIMEOUT_S = 20.0


class CcxtKeyValidator:
    def __init__(self, base_url: str | None) -> None:
        self._base_url = base_url

    async def check(self, credentials: ExchangeCredentials) -> bool:
        # A client of its own, closed right after: a key that may be wrong must not join the shared
        # per-key clients the bots use.
        client = build_client(
            credentials.exchange,
            base_url=self._base_url,
            api_key=credentials.api_key,
            secret=credentials.secret,
            streaming=False,
        )
        try:
            async with asyncio.timeout(VALIDATION_TIMEOUT_S):
                with exchange_errors.translated():
                    await client.fetch_balance()
        except exchange_errors.InvalidCredentials:
            return False
        except (exchange_errors.ExchangeError, TimeoutError) as e:
            # Network trouble or an answer that says nothing about the key: not "invalid".
            log.warning("api key validation inconclusive", extra={"error": type(e).__name__})
            raise ExchangeUnavailable(type(e).__name__) from e
        finally:
            await client.close()
        return True
