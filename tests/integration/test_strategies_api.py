# ruff: noqa: F811 (the fixtures imported from test_backtests_api are taken as arguments)
"""GET /api/v1/strategies and backtests of every registered strategy through the real app."""

from __future__ import annotations

from typing import Any

from tests.integration.auth_helpers import Client, problem
from tests.integration.backtests_helpers import MINUTE_MS, T0, backtest_body, iso, settled, submit, walk_candles
from tests.integration.test_backtests_api import (  # noqa: F401 (fixtures)
    backtest_settings,
    bt_client,
    exchange_app,
    headers_of,
    simulator_config,
)
from tests.simulator_helpers import SimControl
from tradebot.http.backtest_schemas import BacktestOut
from tradebot.strategies import get_strategy, strategy_names

pytest_plugins = ("tests.simulator_fixtures",)

SIZING = {"order_size_pct", "leverage", "allow_short", "stop_loss_pct", "take_profit_pct"}


async def test_strategies_lists_every_registered_one_with_its_schema(bt_client: Client) -> None:
    r = await bt_client.get("/api/v1/strategies")
    assert r.status == 401
    headers = await headers_of(bt_client)
    r = await bt_client.get("/api/v1/strategies", headers=headers)
    assert r.status == 200
    items = (await r.json())["items"]
    assert [i["name"] for i in items] == strategy_names()
    assert {"ema_cross", "ema_crossover", "macd_cross", "rsi_reversion", "bollinger_reversion"} <= set(strategy_names())
    for item in items:
        assert set(item) == {"name", "title", "description", "parameters", "defaults"}
        assert item["title"] and item["description"]
        schema = item["parameters"]
        assert schema["type"] == "object" and schema["additionalProperties"] is False
        assert isinstance(schema["required"], list)
        assert not SIZING & set(schema["properties"])
        for spec in schema["properties"].values():
            assert {"type", "minimum", "maximum", "default", "description"} <= set(spec)
        assert item["defaults"] == {k: v["default"] for k, v in schema["properties"].items()}
    ema = next(i for i in items if i["name"] == "ema_cross")
    assert ema["defaults"] == {"ema_period": 20}
    assert ema["parameters"]["properties"]["ema_period"]["minimum"] == 2


async def test_openapi_declares_the_strategies_route(bt_client: Client) -> None:
    doc = await (await bt_client.get("/api/openapi.json")).json()
    assert "get" in doc["paths"]["/api/v1/strategies"]


async def test_every_strategy_backtests_with_its_defaults_echoed(bt_client: Client, sim: SimControl) -> None:
    await sim.push_klines("BTCUSDT", "1m", walk_candles(400))
    headers = await headers_of(bt_client)
    for name in strategy_names():
        impl = get_strategy(name)
        backtest_id = await submit(
            bt_client, headers, strategy=name, parameters={"allow_short": True}, end_time=iso(T0 + 400 * MINUTE_MS)
        )
        api = await settled(bt_client, headers, backtest_id)
        assert api["status"] == "done", (name, api)
        assert api["strategy"] == name
        defaults = {k: v["default"] for k, v in impl.parameters_schema()["properties"].items()}
        assert api["parameters"] == {
            **defaults,
            "allow_short": True,
            "order_size_pct": 10.0,
            "leverage": 1.0,
            "stop_loss_pct": None,
            "take_profit_pct": None,
        }
        BacktestOut.model_validate(api)
        listed = await (await bt_client.get("/api/v1/backtests", headers=headers)).json()
        assert listed["items"][0]["strategy"] == name


async def test_strategy_errors_name_the_field(bt_client: Client) -> None:
    headers = await headers_of(bt_client)
    cases: list[tuple[dict[str, Any], str]] = [
        (backtest_body(strategy="no_such_strategy", parameters={}), "strategy"),
        (backtest_body(strategy="", parameters={}), "strategy"),
        (backtest_body(strategy="rsi_reversion", parameters={"rsi_period": 1}), "parameters.rsi_period"),
        (backtest_body(strategy="rsi_reversion", parameters={"rsi_period": 2.5}), "parameters.rsi_period"),
        (backtest_body(strategy="rsi_reversion", parameters={"ema_period": 10}), "parameters.ema_period"),
        (backtest_body(strategy="bollinger_reversion", parameters={"bb_std": "2"}), "parameters.bb_std"),
        (
            backtest_body(strategy="ema_crossover", parameters={"fast_period": 30, "slow_period": 20}),
            "parameters.fast_period",
        ),
    ]
    for body, field in cases:
        r = await bt_client.post("/api/v1/backtests", json=body, headers=headers)
        got = await problem(r, 422)
        assert field in [e["field"] for e in got["errors"]], (field, got)
    listed = await (await bt_client.get("/api/v1/backtests", headers=headers)).json()
    assert listed == {"items": [], "next_cursor": None}
