"""The `tradebot` command line. Bad arguments or configuration: one line on stderr, exit status 2."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable, Sequence

from tradebot.argtypes import port
from tradebot.config import ConfigError, Settings, load_settings
from tradebot.logs import setup_logging

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        # argparse prints the whole usage block; the contract asks for one clear line.
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"{number} is not a positive number")
    return number


def _settings() -> Settings:
    settings = load_settings()
    setup_logging(json_lines=settings.log_json, level=settings.log_level)
    return settings


def cmd_migrate(args: argparse.Namespace) -> int:
    from tradebot import db
    from tradebot.services import resolve_services

    settings = _settings()

    async def go() -> None:
        services = await resolve_services(settings)
        try:
            applied = await db.apply_migrations(services.database_url)
            print(f"applied {len(applied)} migration(s)" + (f": {', '.join(applied)}" if applied else ""))
        finally:
            services.close()

    asyncio.run(go())
    return 0


def cmd_rotate_keys(args: argparse.Namespace) -> int:
    from tradebot import db
    from tradebot.accounts.key_rotation import rotate_all_keys
    from tradebot.config import resolve_secrets
    from tradebot.security.secrets_box import SecretBox, SecretDecryptError
    from tradebot.services import resolve_services

    settings = _settings()
    box = SecretBox(resolve_secrets(settings).fernet_keys)

    async def go() -> None:
        services = await resolve_services(settings)
        try:
            pool = await db.create_pool(services.database_url, min_size=1, max_size=2)
            try:
                report = await rotate_all_keys(pool, box, batch_size=args.batch_size)
            except SecretDecryptError as e:
                raise ConfigError(f"TRADEBOT_FERNET_KEYS: {e}") from e
            finally:
                await pool.close()
            print(f"re-encrypted {report.rotated} of {report.examined} api key(s) with the newest key")
        finally:
            services.close()

    asyncio.run(go())
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from tradebot.server import serve

    settings = _settings()
    asyncio.run(serve(settings, host=args.host, port=args.port, migrate=not args.no_migrate))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from tradebot.demo import run_demo

    settings = _settings()
    asyncio.run(run_demo(settings, host=args.host, port=args.port))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="tradebot", description="EMA-strategy crypto trading bots")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("migrate", help="apply every pending database migration")
    p.set_defaults(func=cmd_migrate)

    p = sub.add_parser("run", help="run one replica: the API and the bot runtime")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=port, default=8080)
    p.add_argument("--no-migrate", action="store_true", help="do not apply migrations first")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("demo", help="everything on one machine with no configuration")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=port, default=8080)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("rotate-keys", help="re-encrypt every stored exchange key with the newest Fernet key")
    p.add_argument("--batch-size", type=_positive_int, default=200, help="rows per transaction (default 200)")
    p.set_defaults(func=cmd_rotate_keys)

    _add_optional(sub, "simulator", "tradebot.exchange.simulator.command", "run the Binance-compatible exchange simulator")
    _add_optional(sub, "backtest", "tradebot.backtests.command", "backtest the EMA strategy on a CSV of candles")
    return parser


def _add_optional(sub: argparse._SubParsersAction[_Parser], name: str, module: str, help_text: str) -> None:
    """Commands whose module may be absent from a partial install are only listed when importable."""
    import importlib

    try:
        mod = importlib.import_module(module)
    except ImportError:
        return
    p = sub.add_parser(name, help=help_text)
    mod.configure_parser(p)
    p.set_defaults(func=mod.run)


def main(argv: Sequence[str] | None = None) -> int:
    # The composition root: plugins join the registry once, before any command resolves a strategy.
    from tradebot.strategies.plugins import load_plugins

    load_plugins()
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except ConfigError as e:
        print(f"tradebot: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        logging.getLogger(__name__).info("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
