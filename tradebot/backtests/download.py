"""Candles straight from the exchange for ``tradebot backtest --symbol S --start T --end T`` (no CSV).

The same loader as the API's backtests (closed candles only, paginated klines, gaps reported), with
an in-memory store instead of PostgreSQL: the command works on a laptop with nothing but network
access to the exchange (``TRADEBOT_EXCHANGE_URL`` points it at the simulator). Progress goes to
stderr as a one-line bar when stderr is a terminal and the output is not ``--json``; stdout stays
the report (or the JSON).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TextIO

import numpy as np

from tradebot.backtests.candle_cache import Range, subtract_ranges
from tradebot.backtests.errors import HistoryUnavailable
from tradebot.backtests.history import HistoryLoader
from tradebot.backtests.models import EXCHANGE, History, to_ms
from tradebot.exchange.ccxt_factory import build_client
from tradebot.exchange.errors import ExchangeError, translated
from tradebot.strategies import CandleDataError, Candles, ParameterError

__all__ = [
    "MemoryCandleStore",
    "ProgressBar",
    "candles_from_args",
    "download_history",
    "history_from_args",
    "progress_bar",
]


class MemoryCandleStore:
    """A :class:`~tradebot.backtests.candle_cache.CandleStore` in a dict, for one process."""

    def __init__(self) -> None:
        self._rows: dict[tuple[str, str, str], dict[int, tuple[float, ...]]] = {}
        self._covered: dict[tuple[str, str, str], list[Range]] = {}

    async def missing(self, exchange: str, symbol: str, timeframe: str, start: int, end: int) -> list[Range]:
        return subtract_ranges((start, end), sorted(self._covered.get((exchange, symbol, timeframe), [])))

    async def store(self, exchange: str, symbol: str, timeframe: str, rows: Sequence[Sequence[Any]]) -> None:
        series = self._rows.setdefault((exchange, symbol, timeframe), {})
        for r in rows:
            series.setdefault(int(r[0]), tuple(float(v) for v in r[1:6]))

    async def mark_covered(self, exchange: str, symbol: str, timeframe: str, start: int, end: int) -> None:
        self._covered.setdefault((exchange, symbol, timeframe), []).append((start, end))

    async def load(self, exchange: str, symbol: str, timeframe: str, start: int, end: int) -> Candles | None:
        series = self._rows.get((exchange, symbol, timeframe), {})
        times = sorted(t for t in series if start <= t < end)
        if not times:
            return None
        values = np.array([series[t] for t in times], dtype=np.float64)
        return Candles(np.array(times, dtype=np.int64), *(values[:, k].copy() for k in range(5)))


@dataclass
class ProgressBar:
    """``downloading BTC/USDT:USDT 1m [########------------]  40%  40,000/100,000 candles``."""

    label: str
    stream: TextIO
    width: int = 30
    _shown: bool = False

    def __call__(self, done: int, expected: int) -> None:
        fraction = min(1.0, done / expected) if expected else 1.0
        filled = int(fraction * self.width)
        bar = "#" * filled + "-" * (self.width - filled)
        self.stream.write(f"\rdownloading {self.label} [{bar}] {fraction:4.0%}  {done:,}/{expected:,} candles")
        self.stream.flush()
        self._shown = True

    def finish(self) -> None:
        if self._shown:
            self.stream.write("\n")
            self.stream.flush()


def progress_bar(args: argparse.Namespace, stream: TextIO) -> ProgressBar | None:
    """A bar for a person watching a terminal; none for a script (``--json``, or ``stream`` not a
    TTY: a log file or a pipe would keep every redraw)."""
    if getattr(args, "json", False) or not stream.isatty():
        return None
    return ProgressBar(f"{args.symbol} {args.timeframe}", stream)


def _time(text: str, option: str) -> int:
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ParameterError(option, f"{text!r} is not an ISO 8601 time") from None
    return to_ms(value)


def history_from_args(args: argparse.Namespace) -> tuple[History, str]:
    """The candles a download-mode command asks for, and the market's unified symbol.
    Raises ParameterError naming the option, or HistoryUnavailable."""
    missing = [name for name in ("symbol", "timeframe", "start", "end") if getattr(args, name, None) is None]
    if missing:
        raise ParameterError(
            missing[0], "is required to download candles from the exchange (or give --csv FILE instead)"
        )
    start, end = _time(args.start, "start"), _time(args.end, "end")
    if start >= end:
        raise ParameterError("end", "must be after --start")
    progress = progress_bar(args, sys.stderr)
    try:
        return asyncio.run(
            download_history(
                args.symbol,
                args.timeframe,
                start,
                end,
                exchange_url=os.environ.get("TRADEBOT_EXCHANGE_URL") or None,
                progress=progress,
            )
        )
    finally:
        if progress is not None:
            progress.finish()


async def download_history(
    symbol: str,
    timeframe: str,
    start_ms: int,
    end_ms: int,
    *,
    exchange_url: str | None,
    progress: ProgressBar | None = None,
) -> tuple[History, str]:
    """Closed candles of ``symbol`` (unified or the exchange's id) over ``[start_ms, end_ms)``."""
    client = build_client(EXCHANGE, base_url=exchange_url, streaming=False)
    try:
        try:
            with translated():
                markets = await client.load_markets()
        except ExchangeError as e:
            raise HistoryUnavailable(f"cannot load the exchange's markets: {e}") from e
        unified = _resolve(markets, client, symbol)
        loader = HistoryLoader(MemoryCandleStore(), lambda: client)
        history = await loader.load(EXCHANGE, unified, timeframe, start_ms, end_ms, progress=progress)
        return history, unified
    finally:
        await client.close()


def _resolve(markets: dict[str, Any], client: Any, text: str) -> str:
    if text in markets:
        return text
    for market in client.markets_by_id.get(text.strip().upper(), []):
        if market.get("linear") and market.get("swap"):
            return str(market["symbol"])
    raise ParameterError("symbol", f"unknown symbol {text!r} on {EXCHANGE}")


def candles_from_args(args: argparse.Namespace) -> tuple[Candles, str]:
    """For ``tradebot backtest`` without ``--csv``: the downloaded candles and their timeframe.
    Raises ParameterError naming the option, or CandleDataError with one readable line."""
    try:
        history, unified = history_from_args(args)
    except HistoryUnavailable as e:
        raise CandleDataError(str(e)) from e
    if history.candles is None:
        raise CandleDataError(f"the exchange has no closed candles for {unified} {args.timeframe} in that range")
    history.candles.validate()
    if history.missing:
        print(
            f"note: {history.missing:,} of {history.expected:,} candles are missing from the exchange's "
            "history; the backtest runs on the others",
            file=sys.stderr,
        )
    return history.candles, args.timeframe
