"""EMA speed: the vectorised numpy EMA (ns/element on 10M elements) next to a plain Python loop
and the live, incremental EmaState.update (per candle).

Run: .venv/bin/python bench/bench_ema.py [--n 10000000] [--repeat 7]
Prints a markdown table. Timings are wall-clock medians (and the best run) of several runs.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from functools import partial

import numpy as np

from tradebot.strategies.ema import EmaState, ema


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, float, float]:
    """(median wall, best wall, median CPU) seconds over ``repeat`` runs after a warm-up run. CPU
    time (this process only) is what other load on the machine disturbs least."""
    fn()
    runs, cpu = [], []
    for _ in range(repeat):
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return statistics.median(runs), min(runs), statistics.median(cpu)


def python_loop_ema(x: list[float], period: int) -> list[float]:
    alpha = 2.0 / (period + 1)
    out = [float("nan")] * len(x)
    value = sum(x[:period]) / period
    out[period - 1] = value
    for i in range(period, len(x)):
        value += alpha * (x[i] - value)
        out[i] = value
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000_000)
    ap.add_argument("--loop-n", type=int, default=1_000_000, help="elements for the Python loop")
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()

    rng = np.random.default_rng(42)
    x = 30_000.0 * np.exp(np.cumsum(rng.normal(0.0, 1e-3, args.n)))
    xs = x[: args.loop_n].tolist()

    print(f"EMA on {args.n:,} float64 elements (median and best wall clock, median CPU of {args.repeat} runs)\n")
    print("| period | ns/element (median) | best | CPU | Python loop ns/element* | speed-up (median) |")
    print("|---:|---:|---:|---:|---:|---:|")
    for period in (2, 20, 200, 1000):
        med, best, cpu = timed(partial(ema, x, period), args.repeat)
        loop_med, _, _ = timed(partial(python_loop_ema, xs, period), 3)
        ns = med / args.n * 1e9
        loop_ns = loop_med / args.loop_n * 1e9
        print(
            f"| {period} | {ns:.2f} | {best / args.n * 1e9:.2f} | {cpu / args.n * 1e9:.2f} "
            f"| {loop_ns:.1f} | {loop_ns / ns:.0f}x |"
        )
    print(
        f"\n*The plain Python loop runs on the first {args.loop_n:,} elements (a Python list) in the same "
        "run; its time per element is extrapolated (it is linear in n)."
    )

    # The live path: one update per closed candle.
    n_live = 200_000
    state = EmaState.start(50)
    t0 = time.perf_counter()
    for v in xs[:n_live]:
        state = state.update(v)
    live = (time.perf_counter() - t0) / n_live
    print(f"\nIncremental EmaState.update (live, period 50): {live * 1e6:.2f} µs per candle.")
    print("Reference point: TA-Lib's C EMA is about 2 ns/element; the target is within 4x (8 ns).")


if __name__ == "__main__":
    main()
