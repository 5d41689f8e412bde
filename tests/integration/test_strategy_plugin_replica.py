"""End to end: a replica started with the example plugin installed lists ``sma_cross`` in
GET /strategies and backtests it; without the plugin the name is a 422. Live trading of a plugin
waits for the actor to read the registry (skipped below until then)."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest

from tests.api_client import Api
from tests.integration.backtests_helpers import MINUTE_MS, T0, walk_candles
from tests.plugin_helpers import fake_install, plugin_env
from tests.processes import tradebot_run, wait_until
from tests.simulator_process import simulator_process


def _iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _env(database_url: str, redis_url: str, sim_url: str, tmp_path: Path, site: Path) -> dict[str, str]:
    return {
        **plugin_env(site),
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "TRADEBOT_EXCHANGE_URL": sim_url,
        "TRADEBOT_REDIS_PREFIX": f"plugin-{tmp_path.name}",
        "TRADEBOT_DATA_DIR": str(tmp_path / "var"),
        "TRADEBOT_JWT_SECRET": "p" * 48,
        "TRADEBOT_FERNET_KEYS": "ZmDfcTF7_60GrrY167zsiPd67pEvs0aGOv2oasOM1Pg=",
    }


def _body() -> dict[str, object]:
    return {
        "symbol": "BTCUSDT",
        "timeframe": "1m",
        "start_time": _iso(T0),
        "end_time": _iso(T0 + 300 * MINUTE_MS),
        "strategy": "sma_cross",
        "parameters": {"sma_period": 5, "allow_short": True},
        "initial_balance": 10_000,
    }


def test_an_installed_plugin_is_listed_and_backtested(clean_db: str, redis_url: str, tmp_path: Path) -> None:
    site = fake_install(tmp_path / "site", {"sma_cross": "tradebot_sma_cross:SMA_CROSS"})
    with simulator_process(tmp_path) as sim:
        sim.push(walk_candles(300))
        env = _env(clean_db, redis_url, sim.url, tmp_path, site)
        with tradebot_run(env, tmp_path) as replica:
            api = Api(replica.url).sign_up()
            items = api.call("GET", "/strategies", expect=200)["items"]
            sma = next(i for i in items if i["name"] == "sma_cross")
            assert sma["defaults"] == {"sma_period": 20} and sma["title"] == "SMA cross"
            assert sma["parameters"]["properties"]["sma_period"]["maximum"] == 1000
            backtest_id = api.call("POST", "/backtests", _body(), expect=202)["id"]

            def done() -> bool:
                return bool(api.call("GET", f"/backtests/{backtest_id}", expect=200)["status"] in ("done", "failed"))

            wait_until(done, 60, "the sma_cross backtest to finish")
            got = api.call("GET", f"/backtests/{backtest_id}", expect=200)
            assert got["status"] == "done", got
            assert got["strategy"] == "sma_cross" and got["parameters"]["sma_period"] == 5
            assert got["trades_count"] > 0
            bad = api.call("POST", "/backtests", {**_body(), "parameters": {"sma_period": 1}}, expect=422)
            assert [e["field"] for e in bad["errors"]] == ["parameters.sma_period"]
            assert "Traceback" not in replica.log()

        # Restarted without the plugin: the name is unknown again.
        without = {**env, "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
        with tradebot_run(without, tmp_path) as replica:
            api.base = replica.url
            names = [i["name"] for i in api.call("GET", "/strategies", expect=200)["items"]]
            assert "sma_cross" not in names
            bad = api.call("POST", "/backtests", _body(), expect=422)
            assert [e["field"] for e in bad["errors"]] == ["strategy"]


@pytest.mark.skip(reason="the live actor does not read the strategy registry yet (runtime/bot_actor.py refactor)")
def test_an_installed_plugin_runs_live() -> None:
    raise AssertionError("to be written when the actor resolves bots' strategies through the registry")
