"""The paper trading API (CONTRACT.md "Paper trading"): bot fields, no key needed, 409s, the state's
virtual account, and the one-bot-per-key-and-market rule left to live bots."""

from __future__ import annotations

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from tests.integration.bots_helpers import MARKETS, create_bot, new_user, seed_fills
from tradebot.http.appkeys import SYMBOLS

Client = TestClient[web.Request, web.Application]


@pytest.fixture
async def app(app: web.Application) -> web.Application:
    app[SYMBOLS] = MARKETS
    return app


async def test_a_paper_bot_needs_no_key_and_shows_its_virtual_account(client: Client) -> None:
    user = await new_user(client, "paper")
    bot = await create_bot(client, user, api_key_id=..., mode="paper")
    assert bot["mode"] == "paper" and bot["api_key_id"] is None
    assert (bot["paper_balance"], bot["paper_fee_rate"], bot["paper_slippage_bps"]) == (10_000.0, 0.0004, 1.0)
    assert bot["state"]["paper_balance"] == 10_000.0 and bot["state"]["equity"] == 10_000.0
    custom = await create_bot(client, user, api_key_id=..., mode="paper", paper_balance=2500.5, paper_fee_rate=0,
                              paper_slippage_bps=2.5)
    assert (custom["paper_balance"], custom["paper_fee_rate"], custom["paper_slippage_bps"]) == (2500.5, 0.0, 2.5)
    r = await client.get(f"/api/v1/bots/{custom['id']}/state", headers=user.headers)
    assert (await r.json())["paper_balance"] == 2500.5
    live = await create_bot(client, user)
    assert live["mode"] == "live" and live["state"]["paper_balance"] is None and live["state"]["equity"] is None
    assert (await client.post(f"/api/v1/bots/{bot['id']}/start", headers=user.headers)).status == 202


@pytest.mark.parametrize(("body", "field"), [
    ({"mode": "live", "api_key_id": None}, "api_key_id"),
    ({"mode": "demo"}, "mode"),
    ({"mode": "paper", "paper_balance": 0}, "paper_balance"),
    ({"mode": "paper", "paper_balance": -5}, "paper_balance"),
    ({"mode": "paper", "paper_fee_rate": 0.5}, "paper_fee_rate"),
    ({"mode": "paper", "paper_slippage_bps": -1}, "paper_slippage_bps"),
])
async def test_bad_paper_settings_are_422s_naming_the_field(client: Client, body: dict[str, object], field: str) -> None:
    user = await new_user(client, "bad-paper")
    settings = {"api_key_id": user.key_id, "symbol": "BTCUSDT", "timeframe": "1m", **body}
    if settings["api_key_id"] is None:
        del settings["api_key_id"]
    r = await client.post("/api/v1/bots", json=settings, headers=user.headers)
    assert r.status == 422, await r.text()
    assert field in [e["field"] for e in (await r.json())["errors"]]


async def test_mode_and_balance_are_fixed_while_running_and_a_stopped_flat_bot_takes_a_new_balance(
    client: Client, pool: asyncpg.Pool
) -> None:
    user = await new_user(client, "paper-409")
    bot = await create_bot(client, user, api_key_id=..., mode="paper")
    url = f"/api/v1/bots/{bot['id']}"
    assert (await client.post(f"{url}/start", headers=user.headers)).status == 202
    for change in ({"mode": "live", "api_key_id": user.key_id}, {"paper_balance": 500}):
        r = await client.patch(url, json=change, headers=user.headers)
        assert r.status == 409, await r.text()
    r = await client.patch(url, json={"paper_fee_rate": 0.001}, headers=user.headers)  # picked up at the next decision
    assert r.status == 200 and (await r.json())["paper_fee_rate"] == 0.001
    assert (await client.post(f"{url}/stop", headers=user.headers)).status == 202
    # A virtual account that traded: a new balance resets it, since the bot is flat.
    await pool.execute("INSERT INTO paper_accounts (bot_id, balance) VALUES ($1, 9000.25)", bot["id"])
    r = await client.patch(url, json={"paper_balance": 500}, headers=user.headers)
    assert r.status == 200, await r.text()
    body = await r.json()
    assert body["paper_balance"] == 500.0 and body["state"]["paper_balance"] == 500.0
    assert await pool.fetchval("SELECT count(*) FROM paper_accounts WHERE bot_id = $1", bot["id"]) == 0
    # Holding a position, neither the balance nor the mode may change.
    await pool.execute("UPDATE bot_state SET in_position = true, position_side = 'long', position_size = 1, "
                       "entry_price = 100 WHERE bot_id = $1", bot["id"])
    for change in ({"mode": "live", "api_key_id": user.key_id}, {"paper_balance": 700}):
        r = await client.patch(url, json=change, headers=user.headers)
        assert r.status == 409 and "position" in (await r.json())["detail"]
    await pool.execute("UPDATE bot_state SET in_position = false, position_side = NULL, position_size = 0, "
                       "entry_price = NULL WHERE bot_id = $1", bot["id"])
    r = await client.patch(url, json={"mode": "live"}, headers=user.headers)
    assert r.status == 422  # going live needs the key that will trade
    r = await client.patch(url, json={"mode": "live", "api_key_id": user.key_id}, headers=user.headers)
    assert r.status == 200 and (await r.json())["state"]["paper_balance"] is None


async def test_paper_bots_are_not_bound_by_one_bot_per_key_and_market(client: Client) -> None:
    user = await new_user(client, "paper-many")
    live = await create_bot(client, user)
    papers = [await create_bot(client, user, mode="paper") for _ in range(2)]  # the same key and symbol
    for bot in (live, *papers):
        r = await client.post(f"/api/v1/bots/{bot['id']}/start", headers=user.headers)
        assert r.status == 202, await r.text()
    second_live = await create_bot(client, user)
    assert (await client.post(f"/api/v1/bots/{second_live['id']}/start", headers=user.headers)).status == 409


async def test_trades_and_stats_filter_on_paper(client: Client, pool: asyncpg.Pool) -> None:
    user = await new_user(client, "paper-filter")
    live = await create_bot(client, user)
    paper = await create_bot(client, user, api_key_id=..., mode="paper")
    await seed_fills(pool, user, live["id"], 2)
    await seed_fills(pool, user, paper["id"], 3)
    await pool.execute("UPDATE trades SET paper = true WHERE bot_id = $1", paper["id"])
    await pool.execute("UPDATE orders SET paper = true WHERE bot_id = $1", paper["id"])
    for flag, bot_id, count in (("true", paper["id"], 3), ("false", live["id"], 2)):
        r = await client.get(f"/api/v1/trades?paper={flag}", headers=user.headers)
        items = (await r.json())["items"]
        assert len(items) == count and {t["bot_id"] for t in items} == {bot_id}
        assert all(t["paper"] is (flag == "true") for t in items)
        r = await client.get(f"/api/v1/stats?group=all&paper={flag}", headers=user.headers)
        assert (await r.json())["totals"]["trades_count"] == count
    r = await client.get(f"/api/v1/bots/{paper['id']}/orders", headers=user.headers)
    assert [o["paper"] for o in (await r.json())["items"]] == [True, True, True]
