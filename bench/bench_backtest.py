"""Backtest speed: bars per second of the EMA-cross backtest with fees (signals, engine and report,
from candle arrays in memory to the finished result) on 1M and 10M synthetic candles, next to a
plain per-bar Python loop doing the same work.

Run: .venv/bin/python bench/bench_backtest.py [--sizes 1000000 10000000] [--repeat 5]
Prints a markdown table. Timings are wall-clock medians (and the best run) of several runs; the
machine's other load shows up in the medians, so both are printed.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable
from functools import partial

import numpy as np

from tradebot.strategies import (
    BacktestSettings,
    Candles,
    EmaCrossParams,
    Target,
    ema_cross_signals,
    get_strategy,
    run_backtest,
    strategy_names,
)
from tradebot.strategies.plugins import load_plugins


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


def synthetic(n: int, seed: int = 1) -> Candles:
    """A geometric random walk of 1-minute candles (0.1 % per bar), with gaps between opens and
    previous closes and wicks on both sides."""
    rng = np.random.default_rng(seed)
    close = 30_000.0 * np.exp(np.cumsum(rng.normal(0.0, 1e-3, n)))
    open_ = np.empty(n)
    open_[0] = 30_000.0
    open_[1:] = close[:-1] * np.exp(rng.normal(0.0, 1e-4, n - 1))
    wick = np.abs(rng.normal(0.0, 5e-4, (2, n)))
    high = np.maximum(open_, close) * (1.0 + wick[0])
    low = np.minimum(open_, close) * (1.0 - wick[1])
    ts = 1_600_000_000_000 + np.arange(n, dtype=np.int64) * 60_000
    return Candles.from_arrays(ts, open_, high, low, close, np.ones(n))


def python_loop_backtest(o: list[float], c: list[float], period: int, s: BacktestSettings) -> float:
    """The same work bar by bar: EMA, decision, next-open fills with slippage and fees, marked-to-
    market equity, drawdown and Sharpe sums. Returns the final balance."""
    alpha = 2.0 / (period + 1)
    slip = s.slippage_bps / 1e4
    phi = s.order_size_pct / 100.0 * s.leverage
    balance = s.initial_balance
    pos = 0
    amount = entry = 0.0
    value = 0.0
    target = 0
    peak = balance
    worst = 0.0
    prev_eq = balance
    sum_r = sum_r2 = 0.0
    for t in range(len(c)):
        if t >= 1 and target != pos:
            if pos:
                px = o[t] * (1 - slip) if pos > 0 else o[t] * (1 + slip)
                balance += pos * amount * (px - entry) - s.fee_rate * amount * px
                pos = 0
            if target:
                pos = target
                entry = o[t] * (1 + slip) if pos > 0 else o[t] * (1 - slip)
                amount = balance * phi / entry
                balance -= s.fee_rate * amount * entry
        eq = balance + (pos * amount * (c[t] - entry) if pos else 0.0)
        peak = max(peak, eq)
        worst = max(worst, 1.0 - eq / peak)
        r = eq / prev_eq - 1.0
        sum_r += r
        sum_r2 += r * r
        prev_eq = eq
        if t < period - 1:
            value += c[t]
        elif t == period - 1:
            value = (value + c[t]) / period
        else:
            value += alpha * (c[t] - value)
        if t >= period - 1:
            if c[t] > value:
                target = 1
            elif c[t] < value:
                target = 0
    if pos:
        balance += pos * amount * (c[-1] - entry) - s.fee_rate * amount * c[-1]
    return balance


def vectorbt_from_signals(candles: Candles, target: np.ndarray, s: BacktestSettings) -> Callable[[], object] | None:
    """vectorbt's ``Portfolio.from_signals`` on the same (long-only) signals, filled at the next
    open like ours, with the same fee and slippage; None when vectorbt is not installed (the
    ``bench`` extra)."""
    try:
        import vectorbt as vbt
    except ImportError:
        return None
    long = target == int(Target.LONG)
    entries = np.zeros_like(long)
    exits = np.zeros_like(long)
    entries[1:] = long[:-1]  # decided on candle t's close, filled at t+1's open
    exits[1:] = ~long[:-1]

    def run() -> object:
        pf = vbt.Portfolio.from_signals(
            candles.close,
            entries,
            exits,
            price=candles.open,
            fees=s.fee_rate,
            slippage=s.slippage_bps / 1e4,
            init_cash=s.initial_balance,
            size=s.order_size_pct / 100.0,
            size_type="percent",
        )
        return pf.total_return()

    return run


def strategies_table(n: int, repeat: int) -> None:
    """Every registered strategy at its default parameters on ``n`` bars: our signals + engine +
    report, and vectorbt's ``from_signals`` given our signals, in the same run."""
    settings = BacktestSettings(fee_rate=0.0004, slippage_bps=1.0)
    candles = synthetic(n)
    print(f"\nEvery registered strategy, defaults, {n:,} bars (median of {repeat} runs; target >= 20 M bars/s):\n")
    print("The 20 M check reads the CPU-time rate (this process only), which other load on a shared machine")
    print("disturbs least; the ratio compares medians of wall clock measured side by side.\n")
    print("| strategy | trades | tradebot bars/s (signals + engine + report: median / best / CPU) | >= 20 M "
          "| vectorbt from_signals bars/s (median / CPU) | tradebot / vectorbt |")
    print("|---|---:|---:|:---:|---:|---:|")
    for name in strategy_names():
        impl = get_strategy(name)
        result = run_backtest(candles, settings, strategy=name, params={}, timeframe="1m")
        med, best, cpu = timed(partial(run_backtest, candles, settings, strategy=name, params={}, timeframe="1m"), repeat)
        ours = n / med
        target = impl.signals(candles, impl.parse_params({})).target
        vbt_run = vectorbt_from_signals(candles, target, settings)
        if vbt_run is None:
            theirs = "vectorbt not installed (pip install -e '.[bench]')"
            ratio = "-"
        else:
            vmed, _, vcpu = timed(vbt_run, repeat)
            theirs = f"{n / vmed / 1e6:.1f} M / {n / vcpu / 1e6:.1f} M"
            ratio = f"{vmed / med:.1f}x"  # how many times faster than vectorbt
        meets = "yes" if n / cpu >= 20e6 else "**no**"
        print(f"| {name} | {result.trades_count:,} | {ours / 1e6:.1f} M / {n / best / 1e6:.1f} M / {n / cpu / 1e6:.1f} M "
              f"| {meets} | {theirs} | {ratio} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    ap.add_argument("--periods", type=int, nargs="+", default=[20, 200])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--loop-n", type=int, default=200_000, help="bars for the plain Python loop")
    ap.add_argument("--strategies-only", action="store_true", help="only the every-strategy table (1M bars)")
    args = ap.parse_args()
    load_plugins()
    if args.strategies_only:
        strategies_table(1_000_000, args.repeat)
        return

    settings = BacktestSettings(fee_rate=0.0004, slippage_bps=1.0)
    stops = BacktestSettings(fee_rate=0.0004, slippage_bps=1.0, stop_loss_pct=1.0, take_profit_pct=2.0)
    print("EMA-cross backtest, fee 0.04 %, slippage 1 bp, from candle arrays to the finished result")
    print(f"(signals + engine + statistics; median and best wall clock, median CPU of {args.repeat} runs)\n")
    print("| bars | EMA period | trades | stops | bars/s (median) | bars/s (best) | bars/s (CPU) | ns/bar | signals |")
    print("|---:|---:|---:|:---:|---:|---:|---:|---:|---:|")
    engine_rate: dict[int, float] = {}
    for n in args.sizes:
        candles = synthetic(n)
        for period in args.periods:
            params = {"ema_period": period}
            for label, s in (("no", settings), ("yes", stops)):
                result = run_backtest(candles, s, params=params, timeframe="1m")
                med, best, cpu = timed(partial(run_backtest, candles, s, params=params, timeframe="1m"), args.repeat)

                def signals(c: Candles = candles, p: int = period) -> object:
                    return ema_cross_signals(c.close, EmaCrossParams(p))

                sig_med, _, _ = timed(signals, args.repeat)
                if label == "no":
                    engine_rate[period] = n / med
                print(
                    f"| {n:,} | {period} | {result.trades_count:,} | {label} | {n / med / 1e6:.1f} M "
                    f"| {n / best / 1e6:.1f} M | {n / cpu / 1e6:.1f} M | {med / n * 1e9:.1f} "
                    f"| {sig_med / n * 1e9:.1f} ns |"
                )
        del candles

    candles = synthetic(args.loop_n)
    o, c = candles.open.tolist(), candles.close.tolist()
    print(
        f"\nPlain per-bar Python loop doing the same work (EMA, decisions, fills, slippage, fees, equity, "
        f"drawdown, Sharpe sums), measured on {args.loop_n:,} bars in this run; bars/s is a rate, so it "
        "extrapolates to any size (the loop is linear in n):\n"
    )
    print(f"| EMA period | loop bars/s | engine bars/s ({args.sizes[-1]:,} bars, median) | speed-up |")
    print("|---:|---:|---:|---:|")
    for period in args.periods:
        med, _, _ = timed(partial(python_loop_backtest, o, c, period, settings), 3)
        loop_rate = args.loop_n / med
        # Same final balance as the engine (no stops): the loop is a faithful comparison.
        engine = run_backtest(candles, settings, params={"ema_period": period}, timeframe="1m").final_balance
        loop = python_loop_backtest(o, c, period, settings)
        assert math.isclose(engine, loop, rel_tol=1e-9), (engine, loop)
        rate = engine_rate[period]
        print(f"| {period} | {loop_rate / 1e6:.2f} M | {rate / 1e6:.1f} M | {rate / loop_rate:.0f}x |")
    print("\nTarget: 50 million bars/second on this 2-core machine.")
    strategies_table(1_000_000, args.repeat)


if __name__ == "__main__":
    main()
