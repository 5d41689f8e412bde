"""`tradebot simulator`: the exchange simulator alone, until SIGINT or SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from decimal import Decimal, InvalidOperation
from pathlib import Path

from tradebot.argtypes import port
from tradebot.exchange.simulator.app import running_simulator
from tradebot.exchange.simulator.config import MODES, ConfigError, SimulatorConfig, load_accounts_file
from tradebot.exchange.simulator.markets import market_spec
from tradebot.exchange.simulator.replay import load_replay

log = logging.getLogger(__name__)


def _decimal(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value.is_finite() or value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number ≥ 0: {text!r}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.01 <= value <= 86_400:
        raise argparse.ArgumentTypeError("must be between 0.01 and 86400 seconds")
    return value


def _symbols(text: str) -> tuple[str, ...]:
    symbols = tuple(s.strip().upper() for s in text.split(",") if s.strip())
    if not symbols:
        raise argparse.ArgumentTypeError("give at least one symbol, e.g. BTCUSDT,ETHUSDT")
    for symbol in symbols:
        try:
            market_spec(symbol)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    return symbols


def configure_parser(p: argparse.ArgumentParser) -> None:
    defaults = SimulatorConfig()
    p.add_argument("--host", default=defaults.host, help="address to bind (default %(default)s)")
    p.add_argument("--port", type=port, default=defaults.port, help="port to bind, 0 for any (default %(default)s)")
    p.add_argument("--seed", type=int, default=defaults.seed, help="random-walk seed (default %(default)s)")
    p.add_argument(
        "--symbols",
        type=_symbols,
        default=defaults.symbols,
        help="comma-separated USDT perpetuals (default BTCUSDT,ETHUSDT)",
    )
    p.add_argument("--mode", choices=MODES, default=defaults.mode, help="price source (default %(default)s)")
    p.add_argument(
        "--candle-seconds",
        type=_positive_float,
        default=defaults.candle_seconds,
        help="real seconds per 1m candle in random-walk mode (default %(default)s)",
    )
    p.add_argument("--fee-rate", type=_decimal, default=defaults.fee_rate, help="fee per fill (default %(default)s)")
    p.add_argument(
        "--slippage-bps",
        type=_decimal,
        default=defaults.slippage_bps,
        help="market-order slippage in basis points (default %(default)s)",
    )
    p.add_argument("--accounts", type=Path, default=None, help="JSON list of {api_key, secret, balances}")
    p.add_argument(
        "--reuse-closed-client-ids",
        action="store_true",
        help="Binance's rule: refuse a reused client order id only while its order is open "
        "(default: refuse any id accepted before, with -4116)",
    )
    p.add_argument(
        "--replay-csv",
        type=Path,
        default=None,
        help="replay this timestamp,open,high,low,close,volume CSV in manual mode, one candle per --candle-seconds",
    )
    p.add_argument("--replay-symbol", default=None, help="symbol the replay feeds (default: the first of --symbols)")
    p.add_argument("--replay-interval", default="1m", help="interval of the replayed candles (default %(default)s)")
    p.add_argument(
        "--replay-warmup",
        type=int,
        default=200,
        help="how many of the replay's first candles are history at start (default %(default)s)",
    )


def run(args: argparse.Namespace) -> int:
    symbols = tuple(args.symbols)
    try:
        accounts = load_accounts_file(args.accounts) if args.accounts is not None else ()
        replay = None
        if args.replay_csv is not None:
            replay_symbol = (args.replay_symbol or symbols[0]).upper()
            if replay_symbol not in symbols:
                raise ConfigError(f"--replay-symbol {replay_symbol} is not among --symbols {','.join(symbols)}")
            replay = load_replay(args.replay_csv, replay_symbol, args.replay_interval, args.replay_warmup)
    except ConfigError as e:
        print(f"tradebot simulator: {e}", file=sys.stderr)
        return 2
    config = SimulatorConfig(
        host=args.host,
        port=args.port,
        seed=args.seed,
        symbols=symbols,
        # A replay is a stream of pushed candles: it runs in manual mode.
        mode="manual" if replay is not None else args.mode,
        candle_seconds=args.candle_seconds,
        fee_rate=args.fee_rate,
        slippage_bps=args.slippage_bps,
        accounts=accounts,
        reuse_closed_client_ids=args.reuse_closed_client_ids,
        replay=replay,
    )
    try:
        asyncio.run(_serve(config))
    except OSError as e:
        print(f"tradebot simulator: cannot listen on {config.host}:{config.port}: {e.strerror or e}", file=sys.stderr)
        return 2
    return 0


async def _serve(config: SimulatorConfig) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with running_simulator(config) as sim:
            print(f"simulator listening on {sim.base_url} (websockets at {sim.ws_url}/ws)", flush=True)
            log.info("simulator up: %s mode=%s symbols=%s", sim.base_url, config.mode, ",".join(config.symbols))
            await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
