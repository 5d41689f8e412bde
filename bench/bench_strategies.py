"""Strategy speed: bars per second of every registered strategy's vectorised face (``signals``) and
of a whole backtest with it (signals, engine and report), on synthetic 1-minute candles, with the
default parameters and with the longest periods.

Run: .venv/bin/python bench/bench_strategies.py [--size 1000000] [--repeat 5]
Prints a markdown table. Timings are wall-clock medians, the best run and the median CPU time of
this process (what other load on the machine disturbs least) after one warm-up run.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np

from tradebot.strategies import BacktestSettings, Candles, get_strategy, run_backtest, strategy_names

LONGEST: dict[str, dict[str, Any]] = {
    "ema_cross": {"ema_period": 1000},
    "ema_crossover": {"fast_period": 999, "slow_period": 1000},
    "macd_cross": {"fast_period": 999, "slow_period": 1000, "signal_period": 1000},
    "rsi_reversion": {"rsi_period": 100},
    "bollinger_reversion": {"bb_period": 1000},
}
DEFAULTS: dict[str, dict[str, Any]] = {"ema_cross": {"ema_period": 20}}


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, float, float]:
    fn()
    runs, cpu = [], []
    for _ in range(repeat):
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return statistics.median(runs), min(runs), statistics.median(cpu)


def synthetic(n: int, seed: int = 1) -> Candles:
    rng = np.random.default_rng(seed)
    close = 30_000.0 * np.exp(np.cumsum(rng.normal(0.0, 1e-3, n)))
    open_ = np.empty(n)
    open_[0] = 30_000.0
    open_[1:] = close[:-1]
    wick = np.abs(rng.normal(0.0, 5e-4, (2, n)))
    high = np.maximum(open_, close) * (1.0 + wick[0])
    low = np.minimum(open_, close) * (1.0 - wick[1])
    ts = 1_600_000_000_000 + np.arange(n, dtype=np.int64) * 60_000
    return Candles.from_arrays(ts, open_, high, low, close, np.ones(n))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    n = args.size
    candles = synthetic(n)
    settings = BacktestSettings(fee_rate=0.0004, slippage_bps=1.0)
    print(f"Vectorised strategies on {n:,} synthetic 1-minute candles (allow_short on; {args.repeat} runs)\n")
    print(
        "| strategy | parameters | signals bars/s (median) | (best) | (CPU) | backtest bars/s (median) | (CPU) | trades |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for name in strategy_names():
        strategy = get_strategy(name)
        for raw in (DEFAULTS.get(name, {}), LONGEST.get(name)):
            if raw is None:
                continue
            full = {**raw, "allow_short": True}
            params = strategy.parse_params(full)
            med, best, cpu = timed(partial(strategy.signals, candles, params), args.repeat)
            backtest = partial(run_backtest, candles, settings, strategy=name, params=full, timeframe="1m")
            result = backtest()
            b_med, _, b_cpu = timed(backtest, args.repeat)
            shown = ", ".join(f"{k}={v}" for k, v in params.to_dict().items() if k != "allow_short")
            print(
                f"| {name} | {shown} | {n / med / 1e6:.1f} M | {n / best / 1e6:.1f} M | {n / cpu / 1e6:.1f} M "
                f"| {n / b_med / 1e6:.1f} M | {n / b_cpu / 1e6:.1f} M | {result.trades_count:,} |"
            )


if __name__ == "__main__":
    main()
