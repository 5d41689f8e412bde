"""Pure strategy code (EMA first) and the vectorised backtest engine.

No I/O here except the CSV loader and the ``tradebot backtest`` command; everything else is pure
functions over frozen dataclasses and numpy arrays, shared by the live bots and the backtests.
"""

from tradebot.strategies.backtest import BacktestSettings, ExitReason, Simulation, TradeLog, simulate
from tradebot.strategies.base import (
    NO_TARGET,
    Decision,
    ParameterError,
    Signals,
    Strategy,
    Target,
    UnknownStrategyError,
    get_strategy,
    register,
    signal_sequence,
    strategy_names,
    timeframe_minutes,
)
from tradebot.strategies.candles import Candle, CandleDataError, Candles, load_candles_csv, parse_candles_csv
from tradebot.strategies.ema import EmaState, ema
from tradebot.strategies.ema_cross import (
    EMA_CROSS,
    EmaCross,
    EmaCrossParams,
    EmaCrossState,
    StaleCandleError,
    decide,
    ema_cross_signals,
    warm_up,
)
from tradebot.strategies.render import format_report, result_to_dict, trades_to_records
from tradebot.strategies.report import (
    BacktestResult,
    downsample,
    max_drawdown_pct,
    run_backtest,
    sharpe_ratio,
    split_parameters,
)

__all__ = [
    "EMA_CROSS",
    "NO_TARGET",
    "BacktestResult",
    "BacktestSettings",
    "Candle",
    "CandleDataError",
    "Candles",
    "Decision",
    "EmaCross",
    "EmaCrossParams",
    "EmaCrossState",
    "EmaState",
    "ExitReason",
    "ParameterError",
    "Signals",
    "Simulation",
    "StaleCandleError",
    "Strategy",
    "Target",
    "TradeLog",
    "UnknownStrategyError",
    "decide",
    "downsample",
    "ema",
    "ema_cross_signals",
    "format_report",
    "get_strategy",
    "load_candles_csv",
    "max_drawdown_pct",
    "parse_candles_csv",
    "register",
    "result_to_dict",
    "run_backtest",
    "sharpe_ratio",
    "signal_sequence",
    "simulate",
    "split_parameters",
    "strategy_names",
    "timeframe_minutes",
    "trades_to_records",
    "warm_up",
]
