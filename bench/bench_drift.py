"""Drift report cost without I/O: the replay (strategy signals, engine, fills of the window) over a
drift request's largest window, and the fill-by-fill comparison, on synthetic 1-minute candles with
a bot that traded at every replay signal (5 bps worse, one extra fill in ten).

Run: .venv/bin/python bench/bench_drift.py [--size 50000] [--repeat 5]
Prints a markdown table of wall-clock medians after one warm-up run.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np

from tradebot.strategies import BacktestSettings, Candles, get_strategy, simulate
from tradebot.strategies.drift import Fill, compare, replay_fills


def timed(fn: Callable[[], object], repeat: int) -> float:
    fn()
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t0)
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(1)
    n = args.size
    close = 30_000 * np.exp(np.cumsum(rng.normal(0, 0.001, n)))
    open_ = np.concatenate(([close[0]], close[:-1]))
    candles = Candles.from_arrays(np.arange(n, dtype=np.int64) * 60_000, open_, np.maximum(open_, close) * 1.0005,
                                  np.minimum(open_, close) * 0.9995, close)
    impl = get_strategy("ema_cross")
    params = impl.parse_params({"ema_period": 20, "allow_short": True})
    settings = BacktestSettings(fee_rate=0.0004, order_size_pct=50, leverage=2)

    def replay() -> list[Fill]:
        signals = impl.signals(candles, params)
        return replay_fills(candles, simulate(candles, signals.target, settings), 0, n * 60_000)

    expected = replay()
    actual = []
    for i, f in enumerate(expected):
        price = f.price * (1 + 5e-4 if f.side == "buy" else 1 - 5e-4)
        actual.append(Fill(f.decided_at, f.side, price, f.amount / 3, 0.0004 * price * f.amount / 3,
                           f.realized_pnl / 3, i))
        if i % 10 == 0:
            actual.append(Fill(f.decided_at + 60_000, f.side, price, 0.01, 0.0, 0.0, None))
    t_replay = timed(replay, args.repeat)
    t_compare = timed(lambda: compare(expected, actual, 0.0004), args.repeat)
    print("| step | candles | fills (replay / bot) | median |")
    print("|---|---|---|---|")
    print(f"| replay (signals, engine, fills) | {n:,} | {len(expected):,} / - | {t_replay * 1000:.1f} ms |")
    print(f"| compare | - | {len(expected):,} / {len(actual):,} | {t_compare * 1000:.1f} ms |")


if __name__ == "__main__":
    main()
