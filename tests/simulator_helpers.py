"""Helpers for tests that drive the exchange simulator: its control API, candle builders, polling."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp

from tradebot.exchange.simulator import RunningSimulator

MINUTE_MS = 60_000


@dataclass(frozen=True, slots=True)
class Credentials:
    api_key: str
    secret: str


class SimControl:
    """The `/_sim/` control API, as a test calls it."""

    def __init__(self, running: RunningSimulator, session: aiohttp.ClientSession) -> None:
        self.running = running
        self.base_url = running.base_url
        self._session = session

    async def _post(self, path: str, body: object, expected: int) -> Any:
        async with self._session.post(self.base_url + path, json=body) as response:
            assert response.status == expected, f"{path}: {response.status} {await response.text()}"
            return await response.json() if response.content_type == "application/json" else None

    async def _get(self, path: str, **params: str) -> Any:
        async with self._session.get(self.base_url + path, params=params) as response:
            assert response.status == 200, f"{path}: {response.status} {await response.text()}"
            return await response.json()

    async def post_raw(self, path: str, body: object) -> tuple[int, Any]:
        async with self._session.post(self.base_url + path, json=body) as response:
            payload = await response.json() if response.content_type == "application/json" else None
            return response.status, payload

    async def create_account(self, balances: dict[str, float] | None = None) -> Credentials:
        creds = Credentials(f"key-{secrets.token_hex(8)}", secrets.token_hex(32))
        body = {"api_key": creds.api_key, "secret": creds.secret, "balances": balances or {"USDT": 10_000}}
        await self._post("/_sim/accounts", body, 201)
        return creds

    async def push_klines(self, symbol: str, interval: str, candles: Sequence[Sequence[float]]) -> None:
        await self._post("/_sim/klines", {"symbol": symbol, "interval": interval, "candles": candles}, 202)

    async def set_mode(self, mode: str, candle_seconds: float | None = None) -> None:
        body: dict[str, Any] = {"mode": mode}
        if candle_seconds is not None:
            body["candle_seconds"] = candle_seconds
        await self._post("/_sim/mode", body, 204)

    async def faults(self, **faults: object) -> None:
        await self._post("/_sim/faults", faults, 204)

    async def orders(self, api_key: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self._get("/_sim/orders", api_key=api_key)
        return result

    async def positions(self, api_key: str) -> dict[str, dict[str, Any]]:
        result: dict[str, dict[str, Any]] = await self._get("/_sim/positions", api_key=api_key)
        return result

    async def requests(self) -> dict[str, int]:
        """Exchange REST requests received so far, by "METHOD /path"."""
        result: dict[str, int] = await self._get("/_sim/requests")
        return result


def flat_candles(start_ms: int, closes: Sequence[float], interval_ms: int = MINUTE_MS) -> list[list[float]]:
    """Candles with open = previous close, a small range around the body, volume 1."""
    out: list[list[float]] = []
    previous = closes[0]
    for i, close in enumerate(closes):
        high, low = max(previous, close) * 1.001, min(previous, close) * 0.999
        out.append([start_ms + i * interval_ms, previous, high, low, close, 1.0])
        previous = close
    return out


def minute_floor(ms: int) -> int:
    return ms - ms % MINUTE_MS


