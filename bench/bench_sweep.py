"""Parameter sweeps: trials per second of a grid over ema_cross and ema_crossover on 1M bars, the
optimiser's engine (tradebot.strategies.sweep: the EMAs of a batch as one 2-D array, the backtest
engine per trial, the full figures) next to vectorbt's own parameter sweep of the same strategy in
the same run (``vbt.MA.run`` over every window at once, ``Portfolio.from_signals`` over all columns,
then total return, Sharpe and max drawdown), with the same fills (next open), fee and slippage.

Run: .venv/bin/python bench/bench_sweep.py [--bars 1000000] [--repeat 3]
vectorbt is in the ``bench`` extra. Its EMA seeds differently (pandas' ewm, adjust=False) from
ours (TA-Lib's mean seed), so trades differ slightly; the work per trial is the same.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_backtest import synthetic
from tradebot.strategies import Candles
from tradebot.strategies.sweep import sweep

FEE, SLIP = 0.0004, 1.0


def timed(fn: Callable[[], object], repeat: int) -> float:
    """Median wall seconds over ``repeat`` runs after a warm-up run."""
    fn()
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t0)
    return statistics.median(runs)


def ours(candles: Candles, strategy: str, trials: list[dict[str, Any]]) -> Callable[[], object]:
    def run() -> object:
        return sweep(candles, strategy, trials, timeframe="1m", initial_balance=10_000.0, fee_rate=FEE,
                     slippage_bps=SLIP)  # fmt: skip

    return run


def vectorbt_sweep(candles: Candles, fast: list[int], slow: list[int] | None) -> Callable[[], object] | None:
    """vectorbt's sweep: long while close > EMA(w) (``slow`` None) or EMA(fast) > EMA(slow), filled
    at the next open; None when vectorbt is not installed."""
    try:
        import vectorbt as vbt
    except ImportError:
        return None
    close = candles.close
    price = candles.open[:, None]

    def run() -> object:
        if slow is None:
            ma = vbt.MA.run(close, fast, ewm=True).ma.to_numpy()
            long = close[:, None] > ma
        else:
            f = vbt.MA.run(close, fast, ewm=True).ma.to_numpy()
            s = vbt.MA.run(close, slow, ewm=True).ma.to_numpy()
            long = f > s
        entries = np.zeros_like(long)
        exits = np.zeros_like(long)
        entries[1:] = long[:-1]  # decided at t's close, filled at t+1's open, as ours
        exits[1:] = ~long[:-1]
        pf = vbt.Portfolio.from_signals(close[:, None], entries, exits, price=price, fees=FEE, slippage=SLIP / 1e4,
                                        init_cash=10_000.0, size=0.1, size_type="percent", freq="1min")  # fmt: skip
        return pf.total_return(), pf.sharpe_ratio(), pf.max_drawdown()

    return run


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bars", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    # vectorbt holds several (bars x trials) arrays at once: 12 trials of 1M bars take it ~4 GB.
    ap.add_argument("--trials", type=int, default=12)
    args = ap.parse_args()
    candles = synthetic(args.bars)
    windows = list(range(10, 201, 10))[: args.trials]
    pairs = [(f, s) for f in (5, 10, 15, 20) for s in (30, 60, 90, 120, 150)][: args.trials]
    cases = [
        ("ema_cross", [{"ema_period": w} for w in windows], (windows, None)),
        ("ema_crossover", [{"fast_period": f, "slow_period": s} for f, s in pairs],
         ([f for f, _ in pairs], [s for _, s in pairs])),
    ]  # fmt: skip
    print(f"Grid sweeps on {args.bars:,} 1-minute bars, fee 0.04 %, slippage 1 bp (median of {args.repeat} runs)\n")
    print("| strategy | trials | tradebot trials/s | vectorbt trials/s | tradebot / vectorbt |")
    print("|---|---:|---:|---:|---:|")
    for name, trials, (fast, slow) in cases:
        t_ours = timed(ours(candles, name, trials), args.repeat)
        vbt_run = vectorbt_sweep(candles, fast, slow)
        if vbt_run is None:
            theirs, ratio = "vectorbt not installed (pip install -e '.[bench]')", "-"
        else:
            t_vbt = timed(vbt_run, args.repeat)
            theirs, ratio = f"{len(trials) / t_vbt:.1f}", f"{t_vbt / t_ours:.1f}x"
        print(f"| {name} | {len(trials)} | {len(trials) / t_ours:.1f} | {theirs} | {ratio} |")
    print("\nGoal: at least 5x vectorbt's trials per second.")


if __name__ == "__main__":
    main()
