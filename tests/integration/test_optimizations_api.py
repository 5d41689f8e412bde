"""POST/GET/DELETE /api/v1/optimizations and the progress stream, against the real app, PostgreSQL,
Redis and the exchange simulator: every trial's train figures equal POST /backtests over the train
window; tpe reruns identically with its seed; another user's optimisation is a 404."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from aiohttp import web
from pytest_aiohttp import AiohttpClient

from tests.integration.auth_helpers import Client, bearer, problem, user_token
from tests.integration.backtests_helpers import MINUTE_MS, T0, iso, settled, walk_candles
from tests.simulator_helpers import SimControl
from tests.timing import eventually
from tradebot.config import Secrets, Settings
from tradebot.exchange.simulator import RunningSimulator, SimulatorConfig
from tradebot.http.app import create_app

pytest_plugins = ("tests.simulator_fixtures",)

BARS = 1200


@pytest.fixture
def simulator_config() -> SimulatorConfig:
    return SimulatorConfig(port=0, mode="manual", history_candles=10, symbols=("BTCUSDT", "ETHUSDT"))


@pytest.fixture
def opt_settings(settings: Settings, simulator: RunningSimulator) -> Settings:
    return settings.model_copy(update={"exchange_url": simulator.base_url, "runtime_enabled": False,
                                       "optimizer_workers": 2, "optimizer_poll_s": 0.2,
                                       "optimizer_max_live_per_user": 2})  # fmt: skip


@pytest.fixture
async def opt_app(opt_settings: Settings, test_secrets: Secrets, clean_db: str, redis_url: str) -> web.Application:
    return create_app(opt_settings, test_secrets, database_url=clean_db, redis_url=redis_url, replica_id="t")


@pytest.fixture
async def oc(aiohttp_client: AiohttpClient, opt_app: web.Application) -> Client:
    return await aiohttp_client(opt_app)


@pytest.fixture
async def pushed(sim: SimControl) -> list[list[float]]:
    candles = walk_candles(BARS)
    await sim.push_klines("BTCUSDT", "1m", candles)
    return candles


async def headers_of(client: Client, tag: str = "user") -> dict[str, str]:
    _, token = await user_token(client, tag)
    return bearer(token)


def body(**overrides: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "symbol": "BTCUSDT",
        "timeframe": "1m",
        "start_time": iso(T0),
        "end_time": iso(T0 + BARS * MINUTE_MS),
        "strategy": "ema_cross",
        "space": {"ema_period": {"min": 4, "max": 30, "step": 2}},
        "fixed": {"allow_short": True, "order_size_pct": 50},
        "objective": "sharpe",
        "method": "grid",
        "max_trials": 100,
        "initial_balance": 5000,
        "fee_rate": 0.0004,
        "slippage_bps": 2,
    }
    out.update(overrides)
    return out


async def start(client: Client, headers: dict[str, str], **overrides: Any) -> int:
    r = await client.post("/api/v1/optimizations", json=body(**overrides), headers=headers)
    assert r.status == 202, await r.text()
    accepted = await r.json()
    assert accepted["status"] == "pending"
    assert r.headers["Location"] == f"/api/v1/optimizations/{accepted['id']}"
    return int(accepted["id"])


async def finished(client: Client, headers: dict[str, str], opt_id: int, within: float = 60.0) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    async def settled_() -> bool:
        r = await client.get(f"/api/v1/optimizations/{opt_id}", headers=headers)
        assert r.status == 200, await r.text()
        seen.clear()
        seen.update(await r.json())
        return seen["status"] in ("done", "failed", "cancelled")

    await eventually(settled_, timeout=within, interval=0.1)
    return seen


async def test_grid_trials_equal_the_backtest_api(oc: Client, pushed: list[list[float]]) -> None:
    headers = await headers_of(oc)
    opt = await finished(oc, headers, await start(oc, headers))
    assert opt["status"] == "done", opt
    periods = list(range(4, 31, 2))
    assert opt["progress"] == {"done": len(periods), "total": len(periods)}
    assert sorted(t["parameters"]["ema_period"] for t in opt["trials"]) == periods
    scores = [t["score"] for t in opt["trials"]]
    assert scores == sorted(scores, reverse=True) and opt["best"] == opt["trials"][0]
    split = BARS - int(BARS * 0.3)
    assert opt["candles_count"] == BARS
    train = {k: dt.datetime.fromisoformat(v) for k, v in opt["train_window"].items()}
    assert train == {"start_time": dt.datetime.fromtimestamp(T0 / 1000, dt.UTC),
                      "end_time": dt.datetime.fromtimestamp((T0 + split * MINUTE_MS) / 1000, dt.UTC)}  # fmt: skip
    for trial in opt["trials"]:
        for window, figures in (("train_window", trial["train"]), ("test_window", trial["test"])):
            r = await oc.post("/api/v1/backtests", headers=headers, json={
                "symbol": "BTCUSDT", "timeframe": "1m", "strategy": "ema_cross", "parameters": trial["parameters"],
                "start_time": opt[window]["start_time"], "end_time": opt[window]["end_time"],
                "initial_balance": 5000, "fee_rate": 0.0004, "slippage_bps": 2,
            })  # fmt: skip
            assert r.status == 202, await r.text()
            bt = await settled(oc, headers, int((await r.json())["id"]))
            assert bt["status"] == "done", bt
            for key in ("return_pct", "sharpe", "max_drawdown_pct", "trades_count", "win_rate", "final_balance"):
                assert figures[key] == pytest.approx(bt[key], rel=1e-12, abs=1e-12), (trial["parameters"], window, key)
        assert trial["score"] == trial["train"]["sharpe"]


async def test_tpe_is_reproducible_with_its_seed(oc: Client, pushed: list[list[float]]) -> None:
    headers = await headers_of(oc)
    tpe = {"method": "tpe", "max_trials": 20, "seed": 7, "objective": "return_pct", "strategy": "ema_crossover",
           "space": {"fast_period": {"min": 2, "max": 20}, "slow_period": {"min": 10, "max": 60, "step": 5}},
           "fixed": {}}  # fmt: skip
    first = await finished(oc, headers, await start(oc, headers, **tpe))
    second = await finished(oc, headers, await start(oc, headers, **tpe))
    other = await finished(oc, headers, await start(oc, headers, **{**tpe, "seed": 8}))
    for run in (first, second, other):
        assert run["status"] == "done" and run["progress"] == {"done": 20, "total": 20}, run

    def in_order(run: dict[str, Any]) -> list[Any]:
        return [(t["parameters"], t["train"]) for t in sorted(run["trials"], key=lambda t: t["trial"])]

    assert in_order(first) == in_order(second)
    assert in_order(first) != in_order(other)
    assert all(t["parameters"]["fast_period"] < t["parameters"]["slow_period"] for t in first["trials"])


async def test_another_users_optimization_is_404(oc: Client, pushed: list[list[float]]) -> None:
    owner, stranger = await headers_of(oc, "owner"), await headers_of(oc, "stranger")
    opt_id = await start(oc, owner)
    for method, path in (("GET", ""), ("DELETE", ""), ("GET", "/stream")):
        r = await oc.request(method, f"/api/v1/optimizations/{opt_id}{path}", headers=stranger)
        await problem(r, 404)
    r = await oc.get("/api/v1/optimizations", headers=stranger)
    assert (await r.json())["items"] == []
    r = await oc.get("/api/v1/optimizations", headers=owner)
    assert [o["id"] for o in (await r.json())["items"]] == [opt_id]
    await problem(await oc.get("/api/v1/optimizations/999999999", headers=owner), 404)
    await problem(await oc.get("/api/v1/optimizations/abc", headers=owner), 404)


async def test_bad_requests_name_the_field(oc: Client, pushed: list[list[float]]) -> None:
    headers = await headers_of(oc)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"space": {"nope": {"values": [1]}}}, "space.nope"),
        ({"space": {"ema_period": {"min": 1, "max": 5, "step": 1}}}, "space.ema_period.min"),
        ({"space": {"ema_period": {"min": 5, "max": 50}}}, "space.ema_period.step"),
        ({"space": {"ema_period": {"values": [5, 5]}}}, "space.ema_period.values"),
        ({"fixed": {"ema_period": 5}}, "space.ema_period"),
        ({"fixed": {"leverage": 0.5}}, "fixed.leverage"),
        ({"max_trials": 3}, "max_trials"),
        ({"strategy": "ema_crossover", "space": {"fast_period": {"values": [30, 40]}},
          "fixed": {"slow_period": 20}}, "space"),
        ({"strategy": "nope"}, "strategy"),
        ({"symbol": "NOPEUSDT"}, "symbol"),
        ({"objective": "luck"}, "objective"),
        ({"test_fraction": 1.5}, "test_fraction"),
    ]  # fmt: skip
    for overrides, field in cases:
        r = await oc.post("/api/v1/optimizations", json=body(**overrides), headers=headers)
        p = await problem(r, 422)
        assert field in [e["field"] for e in p["errors"]], (overrides, p)
    r = await oc.get("/api/v1/optimizations", headers=headers)
    assert (await r.json())["items"] == []  # nothing half-written


async def test_cancel_and_the_per_user_limit(oc: Client, opt_app: web.Application, pushed: list[list[float]]) -> None:
    headers = await headers_of(oc)
    big = {"space": {"ema_period": {"min": 2, "max": 1000, "step": 1}}, "max_trials": 1000}
    first, second = await start(oc, headers, **big), await start(oc, headers, **big)
    r = await oc.post("/api/v1/optimizations", json=body(**big), headers=headers)
    await problem(r, 429)
    r = await oc.delete(f"/api/v1/optimizations/{first}", headers=headers)
    assert r.status == 204
    cancelled = await finished(oc, headers, first)
    assert cancelled["status"] == "cancelled" and cancelled["progress"]["done"] < 999
    await start(oc, headers)  # a place is free again
    r = await oc.delete(f"/api/v1/optimizations/{second}", headers=headers)
    assert r.status == 204


async def test_progress_stream_ends_with_the_final_status(oc: Client, pushed: list[list[float]]) -> None:
    headers = await headers_of(oc)
    opt_id = await start(oc, headers)
    r = await oc.get(f"/api/v1/optimizations/{opt_id}/stream", headers=headers)
    assert r.status == 200 and r.headers["Content-Type"].startswith("text/event-stream")
    text = await r.text()  # the stream ends by itself after the final event
    events = [block for block in text.split("\r\n\r\n") if "event: progress" in block]
    assert events, text
    assert '"status":"done"' in events[-1] and '"done":14' in events[-1]
    metrics = await (await oc.get("/metrics")).text()
    assert 'tradebot_optimizer_chunks_total{outcome="done"} 2.0' in metrics  # 14 trials: chunks of 8 and 6
