"""``tradebot backtest --csv FILE ...``: an offline backtest of a candle CSV.

The main CLI calls :func:`configure_parser` on its ``backtest`` sub-parser and :func:`run` with the
parsed arguments. Exit status: 0 done, 2 bad arguments or a bad CSV (one line on stderr).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import numpy as np
import orjson

from tradebot.backtests.candle_csv import load_candles_csv
from tradebot.backtests.plot import write_plot
from tradebot.strategies.backtest import BacktestSettings
from tradebot.strategies.base import ParameterError, UnknownStrategyError, get_strategy, strategy_names
from tradebot.strategies.candles import CandleDataError, Candles
from tradebot.strategies.render import format_report, result_to_dict
from tradebot.strategies.report import run_backtest
from tradebot.strategies.selection import DEFAULT_STRATEGY, SHORTHAND, shorthand_parameters
from tradebot.timeframes import MONTH, TIMEFRAMES, candle_open, spacing_matches

__all__ = ["configure_parser", "run"]

_DEFAULTS = BacktestSettings()



def configure_parser(p: argparse.ArgumentParser) -> None:
    """Adds the ``backtest`` options to ``p``."""
    p.description = (
        "Backtest a strategy on a CSV of candles (or the exchange's klines) "
        "(columns timestamp,open,high,low,close,volume; timestamp in ms or ISO 8601 UTC)."
    )
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--csv", metavar="FILE", help="candle CSV file")
    source.add_argument("--start", metavar="T", help="instead of --csv: download from the exchange from this time")
    p.add_argument("--end", metavar="T", help="with --start: download up to this time (ISO 8601, exclusive)")
    p.add_argument("--symbol", default=None, help="symbol to show in the report (default: none)")
    p.add_argument(
        "--timeframe",
        default=None,
        choices=list(TIMEFRAMES),
        metavar="TF",
        help=f"candle interval, one of {' '.join(TIMEFRAMES)} (default: inferred from the CSV's candle spacing)",
    )
    p.add_argument(
        "--strategy",
        default=DEFAULT_STRATEGY,
        metavar="NAME",
        help=f"strategy, one of {', '.join(strategy_names())} (default {DEFAULT_STRATEGY})",
    )
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a strategy parameter (repeatable); VALUE is read as a JSON number or boolean, else a string",
    )
    p.add_argument(
        "--ema-period",
        type=int,
        default=None,
        metavar="N",
        help=_shorthand_help(),
    )
    p.add_argument(
        "--initial-balance",
        type=float,
        default=_DEFAULTS.initial_balance,
        metavar="X",
        help=f"starting balance in quote currency (default {_DEFAULTS.initial_balance:g})",
    )
    p.add_argument(
        "--fee-rate",
        type=float,
        default=_DEFAULTS.fee_rate,
        metavar="F",
        help=f"fee as a fraction of notional per fill (default {_DEFAULTS.fee_rate:g})",
    )
    p.add_argument(
        "--slippage-bps",
        type=float,
        default=_DEFAULTS.slippage_bps,
        metavar="B",
        help=f"slippage per fill in basis points (default {_DEFAULTS.slippage_bps:g})",
    )
    p.add_argument(
        "--order-size-pct",
        type=float,
        default=_DEFAULTS.order_size_pct,
        metavar="P",
        help=f"percent of the balance per position, before leverage (default {_DEFAULTS.order_size_pct:g})",
    )
    p.add_argument(
        "--leverage",
        type=float,
        default=_DEFAULTS.leverage,
        metavar="L",
        help=f"leverage, 1-125 (default {_DEFAULTS.leverage:g})",
    )
    p.add_argument("--allow-short", action="store_true", help="go short when the strategy's target is short")
    p.add_argument("--stop-loss-pct", type=float, default=None, metavar="X", help="stop loss, percent of entry price")
    p.add_argument(
        "--take-profit-pct", type=float, default=None, metavar="X", help="take profit, percent of entry price"
    )
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument(
        "--plot",
        metavar="FILE.html",
        default=None,
        help="also write one self-contained HTML page: candles, indicators, entries and exits, equity, drawdown",
    )


def run(args: argparse.Namespace) -> int:
    """Runs the backtest described by ``args``; prints the report (or JSON) and returns 0, or prints
    one line to stderr and returns 2."""
    params: dict[str, Any] = {}
    try:
        settings = BacktestSettings(
            initial_balance=args.initial_balance,
            fee_rate=args.fee_rate,
            slippage_bps=args.slippage_bps,
            order_size_pct=args.order_size_pct,
            leverage=args.leverage,
            stop_loss_pct=args.stop_loss_pct,
            take_profit_pct=args.take_profit_pct,
        )
        strategy = str(args.strategy)
        params = strategy_params(strategy, list(args.param), args.ema_period)
        params["allow_short"] = bool(args.allow_short)
        get_strategy(strategy).parse_params(params)  # refuse bad parameters before reading the file
        if args.csv is not None:
            candles = load_candles_csv(args.csv)
            timeframe = args.timeframe or infer_timeframe(candles)
            check_spacing(candles, timeframe)
        else:  # the exchange's klines (needs --symbol, --timeframe), a progress bar on a terminal's stderr
            from tradebot.backtests.download import candles_from_args  # here: only a download needs ccxt

            candles, timeframe = candles_from_args(args)
        result = run_backtest(candles, settings, strategy=strategy, params=params, timeframe=timeframe)
    except ParameterError as e:
        if e.field in params and e.field != "allow_short" and e.field not in _SHORTHANDS:
            return _fail(f"--param {e.field}: {e.message}")
        return _fail(f"--{e.field.replace('_', '-')}: {e.message}")
    except (CandleDataError, UnknownStrategyError) as e:
        return _fail(str(e))
    if args.plot is not None:
        try:
            write_plot(args.plot, candles, result, strategy=strategy, params=params, symbol=args.symbol)
        except OSError as e:
            return _fail(f"--plot: cannot write {args.plot}: {e.strerror or e}")
    if args.json:
        out: dict[str, Any] = {"symbol": args.symbol, **result_to_dict(result)}
        sys.stdout.buffer.write(orjson.dumps(out, option=orjson.OPT_APPEND_NEWLINE))
        sys.stdout.flush()
    else:
        print(format_report(result, symbol=args.symbol))
    return 0


_SHORTHANDS = (SHORTHAND[1],)


def _shorthand_help() -> str:
    """--ema-period's help, with the range and default its strategy declares."""
    strategy, key = SHORTHAND
    prop = get_strategy(strategy).parameters_schema()["properties"][key]
    return (
        f"shorthand for --param {key}=N of {strategy}, {prop['minimum']}-{prop['maximum']} "
        f"(default {prop['default']})"
    )


def param_value(text: str) -> Any:
    """A ``--param`` value: a JSON number or boolean, else the text itself."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return text
    return value if isinstance(value, bool | int | float) else text


def strategy_params(strategy: str, pairs: list[str], ema_period: int | None) -> dict[str, Any]:
    """The strategy's raw parameters from ``--param NAME=VALUE`` and the ``--ema-period`` shorthand;
    raises ParameterError / UnknownStrategyError (checked before any candle is read)."""
    get_strategy(strategy)
    params: dict[str, Any] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name.strip():
            raise ParameterError("param", f"expected NAME=VALUE, got {pair!r}")
        params[name.strip()] = param_value(text)
    return shorthand_parameters(strategy, params, ema_period)


def _fail(message: str) -> int:
    print(f"tradebot backtest: error: {message}", file=sys.stderr)
    return 2


def _median_spacing_ms(candles: Candles) -> float | None:
    if len(candles) < 2:
        return None
    return float(np.median(np.diff(candles.ts)))


def infer_timeframe(candles: Candles) -> str:
    """The timeframe that the median spacing of the candles shows (28 to 31 days: ``1M``)."""
    spacing = _median_spacing_ms(candles)
    if spacing is None:
        raise ParameterError("timeframe", "cannot be inferred from a single candle; pass --timeframe")
    for name in TIMEFRAMES:
        if spacing_matches(name, spacing):
            return name
    raise ParameterError(
        "timeframe",
        f"the candles are {spacing / 60_000:g} minutes apart, which is no known timeframe; pass --timeframe",
    )


def check_spacing(candles: Candles, timeframe: str) -> None:
    """Refuses a timeframe that contradicts the CSV (it would mis-annualise the Sharpe ratio)."""
    spacing = _median_spacing_ms(candles)
    if spacing is not None and not spacing_matches(timeframe, spacing):
        raise ParameterError(
            "timeframe", f"is {timeframe} but the CSV's candles are {spacing / 60_000:g} minutes apart"
        )
    if timeframe == MONTH:
        stray = next((int(t) for t in candles.ts.tolist() if candle_open(MONTH, int(t)) != t), None)
        if stray is not None:
            raise ParameterError("timeframe", f"is 1M but the candle at {stray} ms does not open on the 1st of a month")
