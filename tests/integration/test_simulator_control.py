"""The simulator's `/_sim/` control API (validation, modes) and the `tradebot simulator` command."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from ccxt.async_support.base.exchange import Exchange

from tests.simulator_helpers import MINUTE_MS, Credentials, SimControl, flat_candles, minute_floor
from tests.timing import eventually
from tradebot.exchange.simulator import SimulatorConfig
from tradebot.exchange.simulator.replay import load_replay

pytest_plugins = ("tests.simulator_fixtures",)

ETH = "ETH/USDT:USDT"
# `tradebot simulator` as tradebot.cli runs it, without depending on the CLI module.
COMMAND = (
    "import argparse, sys\n"
    "from tradebot.exchange.simulator.command import configure_parser, run\n"
    "p = argparse.ArgumentParser(); configure_parser(p)\n"
    "sys.exit(run(p.parse_args(sys.argv[1:])))\n"
)


@pytest.mark.parametrize(
    ("path", "body", "fragment"),
    [
        ("/_sim/accounts", {"api_key": "k", "secret": "s"}, "balances"),
        ("/_sim/accounts", {"api_key": "", "secret": "s", "balances": {"USDT": 1}}, "api_key"),
        ("/_sim/accounts", {"api_key": "k", "secret": "s", "balances": {"USDT": -1}}, "USDT"),
        ("/_sim/accounts", [1, 2], "JSON object"),
        ("/_sim/klines", {"symbol": "DOGEUSDT", "interval": "1m", "candles": [[0, 1, 1, 1, 1, 1]]}, "symbol"),
        (
            "/_sim/klines",
            {"symbol": "BTCUSDT", "interval": "7m", "candles": [[0, 1, 1, 1, 1, 1]]},
            "interval",
        ),
        ("/_sim/klines", {"symbol": "BTCUSDT", "interval": "1m", "candles": []}, "candles"),
        ("/_sim/klines", {"symbol": "BTCUSDT", "interval": "1m", "candles": [[0, 1, 1, 1]]}, "candles[0]"),
        ("/_sim/klines", {"symbol": "BTCUSDT", "interval": "1m", "candles": [[0, 1, 0.5, 1, 1, 1]]}, "high"),
        (
            "/_sim/klines",
            {"symbol": "BTCUSDT", "interval": "1m", "candles": [[1.5, 1, 1, 1, 1, 1]]},
            "open_time",
        ),
        ("/_sim/klines", {"symbol": "BTCUSDT", "interval": "1m", "candles": [[0, "x", 1, 1, 1, 1]]}, "[1]"),
        ("/_sim/mode", {"mode": "fast"}, "mode"),
        ("/_sim/mode", {"mode": "manual", "candle_seconds": 0}, "candle_seconds"),
        ("/_sim/faults", {"fail_next_requests": -1}, "fail_next_requests"),
        ("/_sim/faults", {"latency_ms": "1"}, "latency_ms"),
        ("/_sim/faults", {"drop_websocket": True}, "unknown"),
    ],
)
async def test_bad_control_bodies_get_a_clear_400(sim: SimControl, path: str, body: Any, fragment: str) -> None:
    status, payload = await sim.post_raw(path, body)
    assert status == 400
    assert fragment in payload["error"]


async def test_a_rejected_push_changes_nothing(public_exchange: Exchange, sim: SimControl) -> None:
    start = minute_floor(int(time.time() * 1000))
    good = [start, 10, 11, 9, 10, 1]
    status, _ = await sim.post_raw(
        "/_sim/klines", {"symbol": "ETHUSDT", "interval": "1m", "candles": [good, [start, 10, 9, 11, 10, 1]]}
    )
    assert status == 400
    assert await public_exchange.fetch_ohlcv(ETH, "1m") == []


async def test_orders_and_positions_need_a_known_api_key(sim: SimControl) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(sim.base_url + "/_sim/orders") as response:
            assert response.status == 400
        async with session.get(sim.base_url + "/_sim/positions", params={"api_key": "nobody"}) as response:
            assert response.status == 404
            assert "api_key" in (await response.json())["error"]


async def test_recreating_an_account_starts_it_afresh(sim: SimControl, account: Credentials) -> None:
    async with aiohttp.ClientSession() as session:
        body = {"api_key": account.api_key, "secret": account.secret, "balances": {"USDT": 5}}
        async with session.post(sim.base_url + "/_sim/accounts", json=body) as response:
            assert response.status == 201
    assert sim.running.state.engine.accounts[account.api_key].balances == {"USDT": 5}


async def test_switching_modes_changes_what_klines_serve(public_exchange: Exchange, sim: SimControl) -> None:
    start = minute_floor(int(time.time() * 1000))
    await sim.push_klines("ETHUSDT", "1m", flat_candles(start, [2000.0, 2001.0]))
    assert len(await public_exchange.fetch_ohlcv(ETH, "1m", limit=1000)) == 2

    await sim.set_mode("random_walk", candle_seconds=0.2)
    walk = await public_exchange.fetch_ohlcv(ETH, "1m", limit=1000)
    assert len(walk) > 100  # the pre-generated history, forming candle last
    forming = int(walk[-1][0])

    async def rolled() -> bool:
        return sim.running.state.walk.forming("ETHUSDT").open_time > forming

    await eventually(rolled)

    await sim.set_mode("manual")
    assert [c[4] for c in await public_exchange.fetch_ohlcv(ETH, "1m")] == [2000.0, 2001.0]
    assert sim.running.state.current_price("ETHUSDT") == 2001
    frozen = sim.running.state.walk.forming("ETHUSDT")
    await asyncio.sleep(0.15)  # longer than one random-walk step at 0.2 s per candle
    assert sim.running.state.walk.forming("ETHUSDT") == frozen


async def test_ticker_and_premium_index(public_exchange: Exchange, sim: SimControl) -> None:
    start = minute_floor(int(time.time() * 1000))
    await sim.push_klines("ETHUSDT", "1m", flat_candles(start, [2000.0, 2050.5]))
    ticker = await public_exchange.fetch_ticker(ETH)
    assert ticker["last"] == 2050.5
    assert ticker["open"] == 2000.0 and ticker["change"] == 50.5 and ticker["baseVolume"] == 2.0
    mark = await public_exchange.fapiPublicGetPremiumIndex({"symbol": "ETHUSDT"})
    assert mark["markPrice"] == "2050.5"


def test_command_parser_defaults() -> None:
    import argparse

    from tradebot.exchange.simulator.command import configure_parser

    parser = argparse.ArgumentParser()
    configure_parser(parser)
    args = parser.parse_args([])
    assert (args.host, args.port, args.symbols, args.mode) == (
        "127.0.0.1",
        8090,
        ("BTCUSDT", "ETHUSDT"),
        "random_walk",
    )
    assert str(args.fee_rate) == "0.0004" and args.reuse_closed_client_ids is False
    with pytest.raises(SystemExit):
        parser.parse_args(["--symbols", "BTCEUR"])


async def test_command_serves_until_sigterm(tmp_path: Path) -> None:
    accounts = tmp_path / "accounts.json"
    accounts.write_text(json.dumps([{"api_key": "demo", "secret": "demo-secret", "balances": {"USDT": 1000}}]))
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        COMMAND,
        "--port",
        "0",
        "--mode",
        "manual",
        "--accounts",
        str(accounts),
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), 20)).decode()
        base_url = line.split()[3]
        async with aiohttp.ClientSession() as session:
            async with session.get(base_url + "/fapi/v1/ping") as response:
                assert response.status == 200 and await response.json() == {}
            async with session.get(base_url + "/_sim/positions", params={"api_key": "demo"}) as response:
                assert response.status == 200
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 10) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_command_rejects_a_bad_accounts_file(tmp_path: Path) -> None:
    bad = tmp_path / "accounts.json"
    bad.write_text("{not json")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", COMMAND, "--accounts", str(bad), stderr=asyncio.subprocess.PIPE
    )
    _, stderr = await asyncio.wait_for(process.communicate(), 20)
    assert process.returncode == 2
    assert b"not valid JSON" in stderr and stderr.count(b"\n") == 1


class TestReplay:
    @pytest.fixture
    def simulator_config(self, tmp_path: Path) -> SimulatorConfig:
        start = 1_700_000_040_000 - 1_700_000_040_000 % MINUTE_MS
        rows = ["timestamp,open,high,low,close,volume"] + [
            f"{start + i * MINUTE_MS},{100 + i},{101 + i},{99 + i},{100.5 + i},{i + 1}" for i in range(5)
        ]
        csv_path = tmp_path / "replay.csv"
        csv_path.write_text("\n".join(rows) + "\n")
        replay = load_replay(csv_path, "ETHUSDT", "1m", warmup=2)
        return SimulatorConfig(port=0, mode="manual", history_candles=10, candle_seconds=0.05, replay=replay)

    async def test_a_csv_replays_warmup_at_once_then_one_candle_at_a_time(
        self, public_exchange: Exchange, sim: SimControl
    ) -> None:
        async def all_replayed() -> bool:
            return len(await public_exchange.fetch_ohlcv(ETH, "1m")) == 5

        await eventually(all_replayed)
        rows = await public_exchange.fetch_ohlcv(ETH, "1m")
        assert [r[4] for r in rows] == [100.5, 101.5, 102.5, 103.5, 104.5]
        assert sim.running.state.current_price("ETHUSDT") == Decimal("104.5")


async def test_command_refuses_a_replay_for_an_unlisted_symbol(tmp_path: Path) -> None:
    csv_path = tmp_path / "replay.csv"
    csv_path.write_text("1700000040000,1,1,1,1,1\n")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        COMMAND,
        "--replay-csv",
        str(csv_path),
        "--replay-symbol",
        "SOLUSDT",
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(process.communicate(), 20)
    assert process.returncode == 2
    assert b"SOLUSDT is not among --symbols" in stderr
