"""Backtests as a service: requests checked and queued, candle history downloaded and cached in
PostgreSQL, the engine (tradebot.strategies) run in a thread pool by a bounded job runner."""

from tradebot.backtests.candle_cache import CandleCache, subtract_ranges
from tradebot.backtests.errors import (
    BacktestError,
    BacktestNotFound,
    BacktestQueueFull,
    HistoryUnavailable,
    InvalidBacktest,
    MarketsUnavailable,
    TooManyBacktests,
)
from tradebot.backtests.history import HistoryLoader, LoaderStats
from tradebot.backtests.models import BacktestRequest, BacktestSpec, History
from tradebot.backtests.repository import BacktestsRepo
from tradebot.backtests.runner import BacktestRunner, RunnerConfig, compute_result
from tradebot.backtests.service import BacktestService, candles_in_range

__all__ = [
    "BacktestError",
    "BacktestNotFound",
    "BacktestQueueFull",
    "BacktestRequest",
    "BacktestRunner",
    "BacktestService",
    "BacktestSpec",
    "BacktestsRepo",
    "CandleCache",
    "History",
    "HistoryLoader",
    "HistoryUnavailable",
    "InvalidBacktest",
    "LoaderStats",
    "MarketsUnavailable",
    "RunnerConfig",
    "TooManyBacktests",
    "candles_in_range",
    "compute_result",
    "subtract_ranges",
]
