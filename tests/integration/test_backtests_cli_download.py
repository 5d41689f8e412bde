"""``tradebot backtest`` without --csv: candles downloaded from the exchange (the simulator here)."""

from __future__ import annotations

import argparse
import asyncio
import functools
import io
from collections.abc import Awaitable, Callable
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.integration.backtests_helpers import MINUTE_MS, T0, iso, walk_candles, write_csv
from tests.simulator_helpers import SimControl
from tradebot.backtests import command
from tradebot.backtests.download import MemoryCandleStore, ProgressBar
from tradebot.exchange.simulator import RunningSimulator, SimulatorConfig

pytest_plugins = ("tests.simulator_fixtures",)


@pytest.fixture
def simulator_config() -> SimulatorConfig:
    return SimulatorConfig(port=0, mode="manual", history_candles=10)


class Terminal(io.StringIO):
    """A stderr that says it is a terminal, as a person's would."""

    def isatty(self) -> bool:
        return True


def run_cli(argv: list[str], *, tty: bool = False) -> tuple[int, str, str]:
    """command.run in-process: its exit status, stdout (--json writes to sys.stdout.buffer) and stderr."""
    parser = argparse.ArgumentParser()
    command.configure_parser(parser)
    args = parser.parse_args(argv)
    out, err = io.TextIOWrapper(io.BytesIO(), encoding="utf-8"), Terminal() if tty else io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = command.run(args)
    out.flush()
    return code, out.buffer.getvalue().decode(), err.getvalue()


@pytest.fixture
def cli(
    simulator: RunningSimulator, monkeypatch: pytest.MonkeyPatch
) -> Callable[[list[str]], Awaitable[tuple[int, str, str]]]:
    monkeypatch.setenv("TRADEBOT_EXCHANGE_URL", simulator.base_url)

    async def call(argv: list[str], tty: bool = False) -> tuple[int, str, str]:
        # The command runs its own event loop (asyncio.run): it gets a thread of its own.
        return await asyncio.to_thread(functools.partial(run_cli, argv, tty=tty))

    return call


Cli = Callable[..., Awaitable[tuple[int, str, str]]]


async def test_a_download_shows_a_progress_bar_on_a_terminal_only(cli: Cli, sim: SimControl) -> None:
    await sim.push_klines("BTCUSDT", "1m", walk_candles(2300, seed=7))
    argv = ["--symbol", "BTCUSDT", "--timeframe", "1m", "--start", iso(T0), "--end", iso(T0 + 2300 * MINUTE_MS),
            "--ema-period", "15"]
    code, out, err = await cli(argv, tty=True)
    assert code == 0, err
    # Redrawn in place page by page (1,000 candles a page), ending on a full bar and a newline.
    frames = err.split("\r")[1:]
    assert len(frames) == 3 and frames[0].startswith("downloading BTCUSDT 1m [") and "1,000/2,300" in frames[0]
    assert frames[-1].endswith("100%  2,300/2,300 candles\n") and "final balance" in out
    code, out, err = await cli([*argv, "--json"], tty=True)  # a script's output: quiet
    assert code == 0 and err == "" and orjson.loads(out)["candles_count"] == 2300
    code, out, err = await cli(argv, tty=False)  # a pipe or a log file: quiet
    assert code == 0 and err == "" and "final balance" in out


async def test_download_mode_matches_the_csv_mode(cli: Cli, sim: SimControl, tmp_path: Path) -> None:
    candles = walk_candles(2300, seed=5)
    await sim.push_klines("BTCUSDT", "1m", candles[:1000] + candles[1050:])  # a 50-candle hole
    options = ["--ema-period", "15", "--allow-short", "--fee-rate", "0.0004", "--json"]
    code, out, err = await cli(
        ["--symbol", "BTCUSDT", "--timeframe", "1m", "--start", iso(T0), "--end", iso(T0 + 2300 * MINUTE_MS), *options],
    )
    assert code == 0, err
    downloaded: dict[str, Any] = orjson.loads(out)
    assert "50 of 2,300 candles are missing" in err
    code, out, err = await asyncio.to_thread(
        run_cli, ["--csv", str(write_csv(tmp_path / "c.csv", candles[:1000] + candles[1050:])), *options]
    )
    assert code == 0, err
    from_csv: dict[str, Any] = orjson.loads(out)
    assert downloaded["candles_count"] == 2250
    for field in ("final_balance", "trades_count", "fees_paid", "sharpe"):
        assert downloaded[field] == from_csv[field], field


async def test_download_mode_refuses_bad_options_with_one_line(cli: Cli, sim: SimControl) -> None:
    await sim.push_klines("BTCUSDT", "1m", walk_candles(10))
    cases = [
        (["--symbol", "BTCUSDT", "--timeframe", "1m", "--start", iso(T0)], "--end: is required"),
        (["--timeframe", "1m", "--start", iso(T0), "--end", iso(T0 + MINUTE_MS)], "--symbol: is required"),
        (["--symbol", "BTCUSDT", "--start", iso(T0), "--end", iso(T0 + MINUTE_MS)], "--timeframe: is required"),
        (["--symbol", "BTCUSDT", "--timeframe", "1m", "--start", "soon", "--end", iso(T0)], "--start:"),
        (["--symbol", "BTCUSDT", "--timeframe", "1m", "--start", iso(T0), "--end", iso(T0)], "--end: must be after"),
        (
            ["--symbol", "DOGEUSDT", "--timeframe", "1m", "--start", iso(T0), "--end", iso(T0 + 5 * MINUTE_MS)],
            "unknown",
        ),
        (
            [
                "--symbol",
                "BTCUSDT",
                "--timeframe",
                "1m",
                "--start",
                iso(T0 + 999 * MINUTE_MS),
                "--end",
                iso(T0 + 1999 * MINUTE_MS),
            ],
            "no closed candles",
        ),
    ]
    for argv, expected in cases:
        code, out, err = await cli(argv)
        assert code == 2 and out == "", (argv, out)
        assert expected in err and len(err.strip().splitlines()) == 1, (argv, err)


async def test_memory_store_and_progress_bar() -> None:
    store = MemoryCandleStore()
    await store.store("x", "S", "1m", [[60_000, 1, 2, 0.5, 1.5, 3], [0, 1, 1, 1, 1, 0]])
    await store.mark_covered("x", "S", "1m", 0, 120_000)
    assert await store.missing("x", "S", "1m", 0, 180_000) == [(120_000, 180_000)]
    got = await store.load("x", "S", "1m", 0, 120_000)
    assert got is not None and got.ts.tolist() == [0, 60_000] and got.close.tolist() == [1.0, 1.5]
    stream = io.StringIO()
    bar = ProgressBar("BTC/USDT:USDT 1m", stream, width=10)
    bar(250, 1000)
    bar(1000, 1000)
    bar.finish()
    assert stream.getvalue().endswith("[##########] 100%  1,000/1,000 candles\n")
    assert "[##--------]  25%  250/1,000 candles" in stream.getvalue()
