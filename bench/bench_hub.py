"""Benchmark: closed candles through the market-data hub to many subscribers.

    .venv/bin/python bench/bench_hub.py [--symbols 50] [--subscribers 1000] [--rounds 10] [--burst 20]

The simulator runs in a child process (as a real exchange would be elsewhere), so this process's CPU
time is the hub's side only: aiohttp's websocket reader, ccxt's frame parsing, the hub's kline tap,
its stream tasks and the fan-out into the sinks (plus the small HTTP client cost of the pushes).
The child stamps `time.monotonic_ns()` (one system-wide clock on Linux) as it hands each final kline
to its websocket writers; sinks stamp on receipt, so latency is "simulator sends → subscriber has it".

Phases: a latency phase (one candle per symbol per round, waiting until every subscriber has it) and
a throughput phase (`--burst` candles per symbol per round, all symbols at once, waiting the same).
Bursts stay below the simulator's 2,048-message outbox per connection, which would otherwise
disconnect the hub as a slow consumer (the hub then backfills; correct, but not what is measured).
Prints a markdown table.
"""

# Blocking file reads and writes of a few bytes happen outside the measured sections.
# ruff: noqa: ASYNC240

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from tradebot.runtime.candles import Candle
from tradebot.runtime.market_data_hub import MarketDataHub, Subscription

ROOT = Path(__file__).resolve().parents[1]

MINUTE_MS = 60_000


# ---- the child: a simulator that stamps final klines ---------------------------------------------------


async def serve_simulator(symbols: list[str], port_file: Path, stamps_file: Path) -> None:
    from tradebot.exchange.simulator import SimulatorConfig, running_simulator

    config = SimulatorConfig(port=0, mode="manual", symbols=tuple(symbols), history_candles=10)
    async with running_simulator(config) as sim:
        hub = sim.state.hub
        original = hub.publish
        stamps: list[tuple[str, int, int]] = []

        def publish(stream: str, event: dict[str, Any]) -> None:
            k = event.get("k")
            if isinstance(k, dict) and k.get("x") is True:
                stamps.append((event["s"], k["t"], time.monotonic_ns()))
            original(stream, event)

        hub.publish = publish  # type: ignore[method-assign]  # a timing tap on the hub's own method
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        port_file.write_text(str(sim.port))
        await stop.wait()
        stamps_file.write_bytes(orjson.dumps(stamps))


# ---- the parent: hub and subscribers ------------------------------------------------------------------


class CountingSink:
    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0

    def offer(self, candle: Candle) -> None:
        self.count += 1


class TimingSink:
    __slots__ = ("count", "seen")

    def __init__(self) -> None:
        self.count = 0
        self.seen: list[tuple[int, int]] = []

    def offer(self, candle: Candle) -> None:
        self.seen.append((candle.open_time, time.monotonic_ns()))
        self.count += 1


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def wait_until(check: Any, within: float) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError("subscribers did not receive every candle in time")
        await asyncio.sleep(0.002)


async def run(args: argparse.Namespace) -> None:
    symbols = [f"B{i:02d}USDT" for i in range(args.symbols)]
    per_symbol = args.subscribers // args.symbols
    tmp = Path(tempfile.mkdtemp(prefix="bench-hub-"))
    port_file, stamps_file = tmp / "port", tmp / "stamps.json"
    child = await asyncio.create_subprocess_exec(
        *(sys.executable, __file__, "--serve-simulator", str(port_file), str(stamps_file), ",".join(symbols)),
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        deadline = time.monotonic() + 30
        while not port_file.exists() or not port_file.read_text():
            if time.monotonic() > deadline or child.returncode is not None:
                raise RuntimeError("simulator did not start")
            await asyncio.sleep(0.05)
        base_url = f"http://127.0.0.1:{port_file.read_text()}"
        await measure(args, symbols, per_symbol, base_url, child, stamps_file)
    finally:
        if child.returncode is None:
            child.terminate()
            await asyncio.wait_for(child.wait(), 10)


async def measure(
    args: argparse.Namespace,
    symbols: list[str],
    per_symbol: int,
    base_url: str,
    child: asyncio.subprocess.Process,
    stamps_file: Path,
) -> None:
    hub = MarketDataHub(base_url=base_url)
    first: dict[str, TimingSink] = {}
    last: dict[str, TimingSink] = {}
    counters: list[CountingSink | TimingSink] = []
    subs: list[Subscription] = []
    unified = {s: f"{s[:-4]}/USDT:USDT" for s in symbols}
    # Interleave symbols so that each stream's subscribers are not added in one block.
    for i in range(per_symbol):
        for s in symbols:
            sink: CountingSink | TimingSink
            if i == 0:
                sink = first[s] = TimingSink()
            elif i == per_symbol - 1:
                sink = last[s] = TimingSink()
            else:
                sink = CountingSink()
            counters.append(sink)
            subs.append(hub.subscribe(unified[s], "1m", sink))
    started = time.perf_counter()
    await wait_until(lambda: all(s.live.is_set() for s in subs), within=120)
    subscribe_s = time.perf_counter() - started

    start_ms = (time.time_ns() // 1_000_000) // MINUTE_MS * MINUTE_MS - 100_000 * MINUTE_MS
    next_index = {s: 0 for s in symbols}
    pushed = 0

    async with aiohttp.ClientSession() as session:

        async def push(symbol: str, count: int) -> None:
            i = next_index[symbol]
            candles = [[start_ms + (i + j) * MINUTE_MS, 100.0, 101.0, 99.0, 100.5, 1.0] for j in range(count)]
            next_index[symbol] = i + count
            async with session.post(
                f"{base_url}/_sim/klines", json={"symbol": symbol, "interval": "1m", "candles": candles}
            ) as r:
                assert r.status == 202, await r.text()

        def all_delivered() -> bool:
            # The hub offers a candle to every subscriber of its stream in one pass, so the last
            # subscriber of each stream having it means all have it (checked in full at the end).
            return all(sink.count == next_index[s] for s, sink in last.items())

        sink_symbol = {}
        for i, c in enumerate(counters):
            sink_symbol[id(c)] = symbols[i % len(symbols)]
        next_index_total_for: dict[int, int] = {}

        def expect() -> None:
            for c in counters:
                next_index_total_for[id(c)] = next_index[sink_symbol[id(c)]]

        # Latency, alone: one candle of one symbol at a time (the pipeline with nothing else going on).
        for _ in range(args.single_rounds):
            for s in symbols:
                await push(s, 1)
                pushed += 1
                await wait_until(lambda s=s: last[s].count == next_index[s], within=30)

        # Latency phase: one candle per symbol per round, all symbols at once.
        for _ in range(args.latency_rounds):
            await asyncio.gather(*(push(s, 1) for s in symbols))
            pushed += len(symbols)
            await wait_until(all_delivered, within=30)

        # Throughput phase.
        delivered_before, candles_before = hub.delivered, hub.candles
        cpu0, wall0 = time.process_time(), time.perf_counter()
        for _ in range(args.rounds):
            await asyncio.gather(*(push(s, args.burst) for s in symbols))
            pushed += len(symbols) * args.burst
            await wait_until(all_delivered, within=60)
        cpu = time.process_time() - cpu0
        wall = time.perf_counter() - wall0
        deliveries = hub.delivered - delivered_before
        candles = hub.candles - candles_before

        # Recovery: every websocket dropped, one candle per symbol pushed during the outage; how long
        # until every subscriber has it (reconnect, resubscribe, ack, REST backfill).
        backfilled_before = hub.backfilled
        t0 = time.perf_counter()
        async with session.post(f"{base_url}/_sim/faults", json={"drop_websockets": True}) as r:
            assert r.status == 204
        await asyncio.gather(*(push(s, 1) for s in symbols))
        pushed += len(symbols)
        await wait_until(all_delivered, within=120)
        recovery_s = time.perf_counter() - t0
        recovered_by_rest = hub.backfilled - backfilled_before

    expect()
    assert all(c.count == next_index_total_for[id(c)] for c in counters), "a subscriber missed a candle"
    stats = dict(reconnects=hub.reconnects, backfilled=hub.backfilled, dropped=hub.dropped)
    await hub.close()
    child.terminate()
    await asyncio.wait_for(child.wait(), 10)
    sent = {(s, t): ns for s, t, ns in orjson.loads(stamps_file.read_bytes())}

    # The recovery phase's candles are not part of the latency figures.
    for sink in (*first.values(), *last.values()):
        del sink.seen[-1:]

    def latencies(sinks: dict[str, TimingSink], start: int, stop: int | None) -> list[float]:
        """Milliseconds from the simulator's send to the sink, for each sink's candles [start:stop]."""
        out = []
        for s, sink in sinks.items():
            for open_time, ns in sink.seen[start:stop]:
                out.append((ns - sent[(s, open_time)]) / 1e6)
        return out

    spread_us = [(b[1] - a[1]) / 1e3 for s in symbols for a, b in zip(first[s].seen, last[s].seen, strict=True)]
    single, rounds_end = args.single_rounds, args.single_rounds + args.latency_rounds
    lat_single = latencies(last, 0, single)
    lat_first = latencies(first, single, rounds_end)
    lat_last = latencies(last, single, rounds_end)
    burst_last = latencies(last, rounds_end, None)

    # The reference: parsing one raw kline message with orjson, as ccxt's websocket client does first.
    sample = json.dumps(
        {
            "e": "kline",
            "E": 1795625487770,
            "s": "B00USDT",
            "k": {
                "t": 1795625460000,
                "T": 1795625519999,
                "s": "B00USDT",
                "i": "1m",
                "f": 0,
                "L": 0,
                "o": "100",
                "c": "100.5",
                "h": "101",
                "l": "99",
                "v": "1",
                "n": 1,
                "x": True,
                "q": "100.5",
                "V": "0.5",
                "Q": "50.25",
                "B": "0",
            },
        }
    )
    n = 200_000
    t0 = time.process_time()
    for _ in range(n):
        orjson.loads(sample)
    orjson_us = (time.process_time() - t0) / n * 1e6

    cpu_per_candle_us = cpu / candles * 1e6
    cpu_per_delivery_us = cpu / deliveries * 1e6
    rows = [
        ("symbols (streams) / subscribers", f"{len(symbols)} / {len(counters)} ({per_symbol} per stream)"),
        ("time to subscribe all streams (acked + baseline)", f"{subscribe_s:.2f} s"),
        ("closed candles pushed (both phases)", f"{pushed:,}"),
        ("throughput phase: closed candles", f"{candles:,} in {wall:.2f} s"),
        ("throughput: closed candles/s (per stream, summed)", f"{candles / wall:,.0f}"),
        ("throughput: deliveries/s (candle × subscriber)", f"{deliveries / wall:,.0f}"),
        (
            f"latency sim → {per_symbol}th (last) subscriber, p50 / p99 (one candle at a time)",
            f"{statistics.median(lat_single):.2f} / {percentile(lat_single, 0.99):.2f} ms",
        ),
        (
            f"latency sim → 1st subscriber, p50 / p99 (1 candle × {len(symbols)} symbols per round)",
            f"{statistics.median(lat_first):.2f} / {percentile(lat_first, 0.99):.2f} ms",
        ),
        (
            f"latency sim → {per_symbol}th (last) subscriber, p50 / p99 (same rounds)",
            f"{statistics.median(lat_last):.2f} / {percentile(lat_last, 0.99):.2f} ms",
        ),
        (
            f"fan-out spread, 1st → {per_symbol}th subscriber of a candle, p50 / p99",
            f"{statistics.median(spread_us):.1f} / {percentile(spread_us, 0.99):.1f} µs",
        ),
        (
            f"latency sim → last subscriber during {args.burst}×{len(symbols)} bursts, p50 / p99",
            f"{statistics.median(burst_last):.2f} / {percentile(burst_last, 0.99):.2f} ms",
        ),
        ("hub process CPU busy during the throughput phase", f"{cpu / wall:.0%} of one core"),
        ("hub process CPU per closed candle (incl. its fan-out)", f"{cpu_per_candle_us:.1f} µs"),
        ("hub process CPU per delivery", f"{cpu_per_delivery_us:.2f} µs"),
        ("orjson.loads of one raw kline message", f"{orjson_us:.2f} µs"),
        ("CPU per closed candle / orjson parse", f"{cpu_per_candle_us / orjson_us:.0f}×"),
        (
            f"recovery after dropping every websocket ({len(symbols)} streams resubscribe, then backfill)",
            f"{recovery_s:.2f} s ({recovered_by_rest} of {len(symbols)} outage candles came over REST)",
        ),
        ("reconnects / backfilled / dropped during the run", "{reconnects} / {backfilled} / {dropped}".format(**stats)),
    ]
    print("| metric | value |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--serve-simulator":
        port_file, stamps_file, symbols = Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4].split(",")
        asyncio.run(serve_simulator(symbols, port_file, stamps_file))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--symbols", type=int, default=50)
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=10, help="throughput rounds")
    parser.add_argument("--burst", type=int, default=20, help="candles per symbol per throughput round")
    parser.add_argument("--latency-rounds", type=int, default=20)
    parser.add_argument("--single-rounds", type=int, default=2, help="rounds of one candle at a time per symbol")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
