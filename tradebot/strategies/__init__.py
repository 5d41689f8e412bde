"""Pure strategy code (the built-ins: ema_cross, ema_crossover, macd_cross, rsi_reversion,
bollinger_reversion) and the vectorised backtest engine.

No I/O here: pure functions over frozen dataclasses and numpy arrays, shared by the live bots and
the backtests (reading candles from files and the ``tradebot backtest`` command live in
tradebot.backtests).

Live face (one closed candle at a time, O(1), no I/O)::

    params = EmaCrossParams(ema_period=50, allow_short=True)   # or get_strategy("ema_cross").parse_params(raw)
    state = EmaCrossState.start(params)                        # or EmaCrossState.from_dict(saved)
    decision, state = decide(Candle(ts, o, h, l, c, v), state, params)
    decision.target  # Target.LONG / FLAT / SHORT, or None before the first decision
    decision.seq     # +1 on every target change: deterministic client order ids
    state.to_dict()  # JSON-safe; resumes bit-identically

Vectorised face and backtest::

    candles = Candles.from_arrays(ts, open, high, low, close, volume)  # or backtests.candle_csv
    signals = ema_cross_signals(candles.close, params)         # same EMA (bit for bit) and targets
    indicators_of(EMA_CROSS, candles, params).lines            # the series to chart, how to draw them
    result = run_backtest(candles, BacktestSettings(...), params={"ema_period": 50}, timeframe="1h")
    result_to_dict(result)                                     # the API's finished-backtest fields
"""

from tradebot.strategies.backtest import BacktestSettings, ExitReason, Simulation, TradeLog, simulate
from tradebot.strategies.base import (
    NO_INDICATORS,
    NO_TARGET,
    PRICE_PANE,
    Decision,
    IndicatorLine,
    IndicatorPane,
    Indicators,
    ParameterError,
    Signals,
    Strategy,
    Target,
    UnknownStrategyError,
    check_timeframe,
    get_strategy,
    indicators_of,
    register,
    signal_sequence,
    strategy_names,
)
from tradebot.strategies.bollinger_reversion import BOLLINGER_REVERSION, BollingerReversionParams
from tradebot.strategies.candles import Candle, CandleDataError, Candles
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
from tradebot.strategies.ema_crossover import EMA_CROSSOVER, EmaCrossoverParams
from tradebot.strategies.macd_cross import MACD_CROSS, MacdCrossParams
from tradebot.strategies.render import format_report, result_to_dict, trades_to_records
from tradebot.strategies.report import (
    BacktestResult,
    downsample,
    max_drawdown_pct,
    run_backtest,
    sharpe_ratio,
    split_parameters,
)
from tradebot.strategies.rsi_reversion import RSI_REVERSION, RsiReversionParams

__all__ = [
    "BOLLINGER_REVERSION",
    "EMA_CROSS",
    "EMA_CROSSOVER",
    "MACD_CROSS",
    "NO_INDICATORS",
    "NO_TARGET",
    "PRICE_PANE",
    "RSI_REVERSION",
    "BacktestResult",
    "BacktestSettings",
    "BollingerReversionParams",
    "Candle",
    "CandleDataError",
    "Candles",
    "Decision",
    "EmaCross",
    "EmaCrossParams",
    "EmaCrossState",
    "EmaCrossoverParams",
    "EmaState",
    "ExitReason",
    "IndicatorLine",
    "IndicatorPane",
    "Indicators",
    "MacdCrossParams",
    "ParameterError",
    "RsiReversionParams",
    "Signals",
    "Simulation",
    "StaleCandleError",
    "Strategy",
    "Target",
    "TradeLog",
    "UnknownStrategyError",
    "check_timeframe",
    "decide",
    "downsample",
    "ema",
    "ema_cross_signals",
    "format_report",
    "get_strategy",
    "indicators_of",
    "max_drawdown_pct",
    "register",
    "result_to_dict",
    "run_backtest",
    "sharpe_ratio",
    "signal_sequence",
    "simulate",
    "split_parameters",
    "strategy_names",
    "trades_to_records",
    "warm_up",
]
