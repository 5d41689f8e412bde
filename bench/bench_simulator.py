"""Benchmark of the exchange simulator through ccxt: order round trips and kline fan-out.

Run: .venv/bin/python bench/bench_simulator.py [--orders N] [--watchers K] [--candles C]
Prints medians and 95th percentiles; not part of the pass/fail test run.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import aiohttp
from ccxt.async_support.base.exchange import Exchange

from tradebot.exchange.ccxt_factory import ExchangeClientFactory, build_client
from tradebot.exchange.simulator import SimulatorConfig, running_simulator

MINUTE_MS = 60_000


def summary(samples_ms: list[float]) -> str:
    ordered = sorted(samples_ms)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return f"median {statistics.median(ordered):.2f} ms, p95 {p95:.2f} ms, n={len(ordered)}"


async def bench_orders(base_url: str, session: aiohttp.ClientSession, orders: int) -> None:
    body = {"api_key": "bench", "secret": "bench-secret", "balances": {"USDT": 10_000_000}}
    async with session.post(base_url + "/_sim/accounts", json=body) as response:
        assert response.status == 201
    factory = ExchangeClientFactory(base_url)
    try:
        client = factory.private_client("binanceusdm", "bench", "bench-secret")
        client.enableRateLimit = False  # measure the simulator, not ccxt's throttle
        await client.load_markets()
        samples: list[float] = []
        for i in range(orders):
            side = "buy" if i % 2 == 0 else "sell"
            started = time.perf_counter()
            await client.create_order("ETH/USDT:USDT", "market", side, 0.1, params={"newClientOrderId": f"b-{i}"})
            samples.append((time.perf_counter() - started) * 1000)
        print(f"create_order (market, signed, through ccxt): {summary(samples)}")
    finally:
        await factory.close()


async def bench_fanout(base_url: str, session: aiohttp.ClientSession, watchers: int, candles: int) -> None:
    # One client per watcher, as separate replicas would have; each opens its own websocket.
    clients = [build_client("binanceusdm", base_url=base_url) for _ in range(watchers)]
    try:
        await asyncio.gather(*(c.load_markets() for c in clients))
        start = int(time.time() * 1000) // MINUTE_MS * MINUTE_MS
        received: list[float] = []
        target = watchers
        reached = asyncio.Event()

        async def watch(client: Exchange, expected: int) -> None:
            for _ in range(expected):
                await client.watch_ohlcv("BTC/USDT:USDT", "1m")
                received.append(time.perf_counter())
                if len(received) >= target:
                    reached.set()

        # Subscribe everyone first (one warm-up candle), then time each push to its last delivery.
        tasks = [asyncio.create_task(watch(c, candles + 1)) for c in clients]
        await asyncio.sleep(0.5)
        await _push(session, base_url, start, 0)
        await reached.wait()
        latencies: list[float] = []
        for n in range(1, candles + 1):
            target = len(received) + watchers
            reached.clear()
            sent = time.perf_counter()
            await _push(session, base_url, start, n)
            await reached.wait()
            latencies.append((received[-1] - sent) * 1000)
        await asyncio.gather(*tasks)
        print(f"pushed candle to the last of {watchers} ccxt.pro watchers: {summary(latencies)}")
    finally:
        await asyncio.gather(*(c.close() for c in clients))


async def _push(session: aiohttp.ClientSession, base_url: str, start: int, n: int) -> None:
    price = 60_000 + n
    candle = [start + n * MINUTE_MS, price, price + 10, price - 10, price, 1]
    body = {"symbol": "BTCUSDT", "interval": "1m", "candles": [candle]}
    async with session.post(base_url + "/_sim/klines", json=body) as response:
        assert response.status == 202


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--orders", type=int, default=300)
    parser.add_argument("--watchers", type=int, default=20)
    parser.add_argument("--candles", type=int, default=50)
    args = parser.parse_args()
    async with running_simulator(SimulatorConfig(port=0, mode="manual", history_candles=10)) as sim:
        async with aiohttp.ClientSession() as session:
            await bench_orders(sim.base_url, session, args.orders)
            await bench_fanout(sim.base_url, session, args.watchers, args.candles)


if __name__ == "__main__":
    asyncio.run(main())
