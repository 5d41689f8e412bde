"""Bot settings name a strategy and its parameters (CONTRACT.md, Bots and Strategies)."""

from __future__ import annotations

import asyncpg
import pytest
from aiohttp import web

from tests.integration.auth_helpers import Client, problem
from tests.integration.bots_helpers import MARKETS, User, create_bot, new_user, settings_for
from tradebot.http.appkeys import SYMBOLS

BOTS = "/api/v1/bots"


@pytest.fixture
async def app(app: web.Application) -> web.Application:
    app[SYMBOLS] = MARKETS
    return app


@pytest.fixture
async def alice(client: Client) -> User:
    return await new_user(client, "alice")


async def test_defaults_are_echoed_and_ema_period_is_shorthand(client: Client, alice: User) -> None:
    bot = await create_bot(client, alice, ema_period=...)
    assert bot["strategy"] == "ema_cross" and bot["parameters"] == {"ema_period": 20} and bot["ema_period"] == 20
    bot = await create_bot(client, alice, ema_period=7)
    assert bot["parameters"] == {"ema_period": 7} and bot["ema_period"] == 7
    bot = await create_bot(client, alice, ema_period=..., parameters={"ema_period": 9})
    assert bot["parameters"] == {"ema_period": 9} and bot["ema_period"] == 9
    bot = await create_bot(client, alice, strategy="macd_cross", ema_period=..., parameters={"signal_period": 5})
    assert bot["parameters"] == {"fast_period": 12, "slow_period": 26, "signal_period": 5}
    assert bot["ema_period"] is None
    got = await (await client.get(f"{BOTS}/{bot['id']}", headers=alice.headers)).json()
    assert got["strategy"] == "macd_cross" and got["parameters"] == bot["parameters"]


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"strategy": "no_such_strategy"}, "strategy"),
        ({"strategy": "rsi_reversion", "ema_period": ...}, None),  # valid: every default
        ({"strategy": "rsi_reversion"}, "ema_period"),  # the shorthand belongs to ema_cross
        ({"strategy": "rsi_reversion", "ema_period": ..., "parameters": {"rsi_period": 1}}, "parameters.rsi_period"),
        ({"strategy": "rsi_reversion", "ema_period": ..., "parameters": {"rsi_period": "14"}}, "parameters.rsi_period"),
        ({"strategy": "rsi_reversion", "ema_period": ..., "parameters": {"colour": 1}}, "parameters.colour"),
        ({"ema_period": ..., "parameters": {"allow_short": True}}, "parameters.allow_short"),
        ({"ema_period": ..., "parameters": {"ema_period": 1}}, "parameters.ema_period"),
        (
            {"strategy": "ema_crossover", "ema_period": ..., "parameters": {"fast_period": 30, "slow_period": 20}},
            "parameters.fast_period",
        ),
    ],
)
async def test_bad_strategy_settings_are_422_naming_the_field(
    client: Client, alice: User, pool: asyncpg.Pool, overrides: dict[str, object], field: str | None
) -> None:
    r = await client.post(BOTS, json=settings_for(alice, **overrides), headers=alice.headers)
    if field is None:
        assert r.status == 201, await r.text()
        return
    body = await problem(r, 422)
    assert [e["field"] for e in body["errors"]] == [field]
    assert await pool.fetchval("SELECT count(*) FROM bot_configs") == 0


async def test_patch_merges_parameters_and_a_new_strategy_starts_from_its_defaults(client: Client, alice: User) -> None:
    bot = await create_bot(client, alice, strategy="macd_cross", ema_period=..., parameters={"signal_period": 5})
    url = f"{BOTS}/{bot['id']}"
    r = await client.patch(url, json={"parameters": {"fast_period": 10}}, headers=alice.headers)
    assert r.status == 200, await r.text()
    assert (await r.json())["parameters"] == {"fast_period": 10, "slow_period": 26, "signal_period": 5}
    r = await client.patch(url, json={"strategy": "bollinger_reversion", "parameters": {"bb_std": 1.5}}, headers=alice.headers)
    assert r.status == 200, await r.text()
    assert (await r.json())["parameters"] == {"bb_period": 20, "bb_std": 1.5}
    r = await client.patch(url, json={"strategy": "ema_cross"}, headers=alice.headers)
    got = await r.json()
    assert got["parameters"] == {"ema_period": 20} and got["ema_period"] == 20
    r = await client.patch(url, json={"ema_period": 33}, headers=alice.headers)
    got = await r.json()
    assert got["parameters"] == {"ema_period": 33} and got["ema_period"] == 33
    r = await client.patch(url, json={"parameters": {"ema_period": 44}}, headers=alice.headers)
    assert (await r.json())["ema_period"] == 44
    body = await problem(await client.patch(url, json={"parameters": {"ema_period": 0}}, headers=alice.headers), 422)
    assert [e["field"] for e in body["errors"]] == ["parameters.ema_period"]
    body = await problem(await client.patch(url, json={"strategy": "nope"}, headers=alice.headers), 422)
    assert [e["field"] for e in body["errors"]] == ["strategy"]


@pytest.mark.parametrize("strategy", ["ema_crossover", "macd_cross", "rsi_reversion", "bollinger_reversion"])
async def test_a_bot_of_any_registered_strategy_starts(
    client: Client, alice: User, pool: asyncpg.Pool, strategy: str
) -> None:
    bot = await create_bot(client, alice, strategy=strategy, ema_period=...)
    r = await client.post(f"{BOTS}/{bot['id']}/start", headers=alice.headers)
    assert r.status == 202, await r.text()
    assert await pool.fetchval("SELECT is_active FROM bot_configs WHERE id = $1", bot["id"]) is True


async def test_a_running_bot_keeps_its_strategy(client: Client, alice: User) -> None:
    bot = await create_bot(client, alice)
    url = f"{BOTS}/{bot['id']}"
    assert (await client.post(f"{url}/start", headers=alice.headers)).status == 202
    body = await problem(await client.patch(url, json={"strategy": "macd_cross"}, headers=alice.headers), 409)
    assert "strategy" in body["detail"]
    r = await client.patch(url, json={"parameters": {"ema_period": 15}}, headers=alice.headers)
    assert r.status == 200 and (await r.json())["ema_period"] == 15


async def test_old_sql_writers_keep_parameters_in_step(client: Client, alice: User, pool: asyncpg.Pool) -> None:
    bot = await create_bot(client, alice)
    await pool.execute("UPDATE bot_configs SET ema_period = 12 WHERE id = $1", bot["id"])
    got = await (await client.get(f"{BOTS}/{bot['id']}", headers=alice.headers)).json()
    assert got["parameters"] == {"ema_period": 12} and got["ema_period"] == 12
    with pytest.raises(asyncpg.CheckViolationError):  # the mirror never disagrees
        await pool.execute("UPDATE bot_configs SET ema_period = 13, parameters = '{\"ema_period\": 14}' WHERE id = $1", bot["id"])
