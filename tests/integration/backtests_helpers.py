"""Helpers for the backtests and candle cache tests: deterministic candles, an app wired to the
simulator, and polling a backtest until it settles."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tests.integration.auth_helpers import Client
from tests.timing import eventually

MINUTE_MS = 60_000
# 2024-01-01T00:00:00Z: well in the past, so every candle of these tests is closed.
T0 = int(dt.datetime(2024, 1, 1, tzinfo=dt.UTC).timestamp() * 1000)


def iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def walk_candles(
    n: int, *, start_ms: int = T0, step_ms: int = MINUTE_MS, seed: int = 1, price: float = 100.0
) -> list[list[float]]:
    """A seeded random walk with trends long enough for EMA crosses; prices on a 0.01 grid so
    they survive every text round trip (JSON, the exchange's strings, CSV) exactly."""
    rng = random.Random(seed)
    out: list[list[float]] = []
    drift = 0.0
    for i in range(n):
        if i % 50 == 0:
            drift = rng.uniform(-0.3, 0.3)
        close = round(max(1.0, price + drift + rng.uniform(-0.5, 0.5)), 2)
        high = round(max(price, close) + rng.uniform(0, 0.3), 2)
        low = round(min(price, close) - rng.uniform(0, 0.3), 2)
        out.append([start_ms + i * step_ms, price, high, low, close, round(rng.uniform(1, 10), 3)])
        price = close
    return out


def write_csv(path: Path, candles: Sequence[Sequence[float]]) -> Path:
    lines = ["timestamp,open,high,low,close,volume"]
    lines += [f"{int(c[0])},{c[1]!r},{c[2]!r},{c[3]!r},{c[4]!r},{c[5]!r}" for c in candles]
    path.write_text("\n".join(lines) + "\n")
    return path


def backtest_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "symbol": "BTCUSDT",
        "timeframe": "1m",
        "start_time": iso(T0),
        "end_time": iso(T0 + 1500 * MINUTE_MS),
        "strategy": "ema_cross",
        "parameters": {"ema_period": 10},
        "initial_balance": 10_000,
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not ...}


async def settled(client: Client, headers: dict[str, str], backtest_id: int, *, within: float = 20.0) -> dict[str, Any]:
    """The backtest once it is done or failed."""
    seen: dict[str, Any] = {}

    async def finished() -> bool:
        r = await client.get(f"/api/v1/backtests/{backtest_id}", headers=headers)
        assert r.status == 200, await r.text()
        seen.update(await r.json())
        return seen["status"] in ("done", "failed")

    await eventually(finished, timeout=within, interval=0.05)
    return seen


async def submit(client: Client, headers: dict[str, str], **overrides: Any) -> int:
    r = await client.post("/api/v1/backtests", json=backtest_body(**overrides), headers=headers)
    assert r.status == 202, await r.text()
    body = await r.json()
    assert body["status"] == "pending"
    return int(body["id"])
