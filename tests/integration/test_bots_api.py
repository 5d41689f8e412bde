"""The bots API (CONTRACT.md "Bots") through the real app, PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis
from aiohttp import web

from tests.integration.auth_helpers import Client, problem
from tests.integration.bots_helpers import MARKETS, User, create_bot, new_user, settings_for
from tests.timing import eventually
from tradebot.config import Settings
from tradebot.http.appkeys import SYMBOLS
from tradebot.runtime.commands import command_channel, decode_command
from tradebot.runtime.events import BotEvents

BOTS = "/api/v1/bots"


@pytest.fixture
async def app(app: web.Application) -> web.Application:
    app[SYMBOLS] = MARKETS
    return app


@pytest.fixture
async def alice(client: Client) -> User:
    return await new_user(client, "alice")


@pytest.fixture
async def commands(redis_client: aioredis.Redis, settings: Settings) -> AsyncIterator[list[tuple[int, str, bool]]]:
    """Every bot command published while the test runs, as (bot_id, kind, close_position)."""
    seen: list[tuple[int, str, bool]] = []
    pubsub = redis_client.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(command_channel(settings.redis_prefix))

    async def collect() -> None:
        async for message in pubsub.listen():
            cmd = decode_command(message["data"])
            if cmd is not None:
                seen.append((cmd.bot_id, cmd.kind, cmd.close_position))

    task = asyncio.create_task(collect())
    yield seen
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await pubsub.aclose()


# -- create / read ------------------------------------------------------------------------------


async def test_create_returns_a_stopped_bot_with_defaults_and_a_normalised_symbol(client: Client, alice: User) -> None:
    r = await client.post(BOTS, json=settings_for(alice, name="my bot"), headers=alice.headers)
    assert r.status == 201, await r.text()
    bot = await r.json()
    assert bot["symbol"] == "BTC/USDT:USDT"
    assert bot["name"] == "my bot"
    assert bot["is_active"] is False
    assert bot["state"]["status"] == "stopped"
    assert bot["state"]["in_position"] is False
    assert {k: bot[k] for k in ("leverage", "order_size_pct", "allow_short", "max_daily_trades",
                                "max_daily_loss_pct", "stop_loss_pct", "take_profit_pct", "strategy")} == {
        "leverage": 1, "order_size_pct": 10, "allow_short": False, "max_daily_trades": 50,
        "max_daily_loss_pct": 5, "stop_loss_pct": None, "take_profit_pct": None, "strategy": "ema_cross",
    }
    assert isinstance(bot["id"], int)
    assert bot["created_at"].endswith("Z") and bot["updated_at"].endswith("Z")
    assert "user_id" not in bot

    got = await client.get(f"{BOTS}/{bot['id']}", headers=alice.headers)
    assert got.status == 200
    assert await got.json() == bot


async def test_create_accepts_the_unified_symbol_and_every_setting(client: Client, alice: User) -> None:
    bot = await create_bot(
        client, alice, symbol="ETH/USDT:USDT", timeframe="4h", ema_period=1000, leverage=50, order_size_pct=100,
        allow_short=True, max_daily_trades=3, max_daily_loss_pct=2.5, stop_loss_pct=1.5, take_profit_pct=3,
        trailing_stop_pct=1.5,
    )
    assert bot["symbol"] == "ETH/USDT:USDT"
    assert (bot["timeframe"], bot["ema_period"], bot["leverage"]) == ("4h", 1000, 50)
    assert (bot["order_size_pct"], bot["allow_short"], bot["max_daily_trades"]) == (100, True, 3)
    assert (bot["max_daily_loss_pct"], bot["stop_loss_pct"], bot["take_profit_pct"]) == (2.5, 1.5, 3)
    assert bot["trailing_stop_pct"] == 1.5


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("ema_period", 1),
        ("ema_period", 1001),
        ("ema_period", "20"),
        ("leverage", 0),
        ("leverage", 126),
        ("leverage", 2.5),
        ("order_size_pct", 0),
        ("order_size_pct", 100.5),
        ("order_size_pct", -1),
        ("timeframe", "2m"),
        ("strategy", "rsi"),
        ("allow_short", "yes"),
        ("max_daily_trades", 0),
        ("max_daily_loss_pct", 0),
        ("max_daily_loss_pct", 101),
        ("stop_loss_pct", 0),
        ("stop_loss_pct", 100),
        ("take_profit_pct", 1001),
        ("trailing_stop_pct", 0.05),
        ("trailing_stop_pct", 10.5),
        ("name", "x" * 101),
        ("symbol", ""),
        ("api_key_id", 0),
        ("api_key_id", None),
    ],
)
async def test_create_rejects_a_bad_setting_naming_the_field(
    client: Client, alice: User, pool: asyncpg.Pool, field: str, value: Any
) -> None:
    r = await client.post(BOTS, json=settings_for(alice, **{field: value}), headers=alice.headers)
    body = await problem(r, 422)
    assert [e["field"] for e in body["errors"]] == [field]
    assert await pool.fetchval("SELECT count(*) FROM bot_configs") == 0


# ema_period is no longer one: omitted, ema_cross takes its default (CONTRACT.md, Strategies).
@pytest.mark.parametrize("missing", ["api_key_id", "symbol", "timeframe"])
async def test_create_requires_the_settings_without_defaults(client: Client, alice: User, missing: str) -> None:
    r = await client.post(BOTS, json=settings_for(alice, **{missing: ...}), headers=alice.headers)
    body = await problem(r, 422)
    assert [e["field"] for e in body["errors"]] == [missing]


async def test_unknown_symbol_and_leverage_above_the_market_maximum_are_422(client: Client, alice: User) -> None:
    body = await problem(await client.post(BOTS, json=settings_for(alice, symbol="NOPEUSDT"), headers=alice.headers), 422)
    assert [e["field"] for e in body["errors"]] == ["symbol"]
    # ETH allows 50 in the market list.
    r = await client.post(BOTS, json=settings_for(alice, symbol="ETHUSDT", leverage=51), headers=alice.headers)
    body = await problem(r, 422)
    assert [e["field"] for e in body["errors"]] == ["leverage"]
    assert "50" in body["errors"][0]["message"]


async def test_someone_elses_or_a_missing_api_key_is_422_on_api_key_id(client: Client, alice: User) -> None:
    bob = await new_user(client, "bob")
    for key_id in (bob.key_id, 2**62):
        r = await client.post(BOTS, json=settings_for(alice, api_key_id=key_id), headers=alice.headers)
        body = await problem(r, 422)
        assert [e["field"] for e in body["errors"]] == ["api_key_id"]


@pytest.mark.parametrize(
    ("field", "value"),
    [("id", 123), ("user_id", 1), ("is_active", True), ("state", {"status": "running"}),
     ("created_at", "2020-01-01T00:00:00Z"), ("updated_at", "2020-01-01T00:00:00Z")],
)
async def test_the_objects_own_fields_are_never_taken_from_a_body(
    client: Client, alice: User, pool: asyncpg.Pool, field: str, value: Any
) -> None:
    alice_id = (await (await client.get("/api/v1/auth/me", headers=alice.headers)).json())["id"]
    other = await new_user(client, "other")  # so that user_id 1 is not alice's own id by chance
    if field == "user_id":
        value = (await (await client.get("/api/v1/auth/me", headers=other.headers)).json())["id"]
    r = await client.post(BOTS, json={**settings_for(alice), field: value}, headers=alice.headers)
    assert r.status == 201, await r.text()
    bot = await r.json()
    assert bot["id"] != 123 and bot["is_active"] is False and bot["state"]["status"] == "stopped"
    assert bot["created_at"] != value
    assert await pool.fetchval("SELECT user_id FROM bot_configs WHERE id = $1", bot["id"]) == alice_id

    r = await client.patch(f"{BOTS}/{bot['id']}", json={field: value, "ema_period": 7}, headers=alice.headers)
    assert r.status == 200, await r.text()
    assert (await r.json())["ema_period"] == 7
    assert await pool.fetchval("SELECT is_active FROM bot_configs WHERE id = $1", bot["id"]) is False
    assert await pool.fetchval("SELECT user_id FROM bot_configs WHERE id = $1", bot["id"]) == alice_id


async def test_a_bot_read_back_can_be_sent_back(client: Client, alice: User) -> None:
    bot = await create_bot(client, alice)
    r = await client.patch(f"{BOTS}/{bot['id']}", json={**bot, "ema_period": 9}, headers=alice.headers)
    assert r.status == 200, await r.text()
    assert (await r.json())["ema_period"] == 9


async def test_unknown_fields_are_refused_naming_the_field(client: Client, alice: User, pool: asyncpg.Pool) -> None:
    for field in ("deleted_at", "ema_perod"):
        body = await problem(await client.post(BOTS, json={**settings_for(alice), field: 1}, headers=alice.headers),
                             422)
        assert [e["field"] for e in body["errors"]] == [field]
    assert await pool.fetchval("SELECT count(*) FROM bot_configs") == 0
    bot = await create_bot(client, alice)
    body = await problem(await client.patch(f"{BOTS}/{bot['id']}", json={"ema_perod": 7}, headers=alice.headers),
                         422)
    assert [e["field"] for e in body["errors"]] == ["ema_perod"]


async def test_malformed_bodies(client: Client, alice: User) -> None:
    await problem(await client.post(BOTS, data=b"{not json", headers={**alice.headers,
                                                                       "Content-Type": "application/json"}), 400)
    await problem(await client.post(BOTS, json=[1, 2], headers=alice.headers), 422)
    await problem(await client.post(BOTS, data=b"", headers=alice.headers), 400)


async def test_unknown_or_non_numeric_ids_are_404(client: Client, alice: User) -> None:
    for bot_id in ("999999", "abc", "0", "-1", str(2**64)):
        await problem(await client.get(f"{BOTS}/{bot_id}", headers=alice.headers), 404)


# -- list ---------------------------------------------------------------------------------------


async def test_list_pages_with_a_cursor_chain(client: Client, alice: User) -> None:
    ids = [(await create_bot(client, alice, name=f"b{i}"))["id"] for i in range(5)]
    bob = await new_user(client, "bob")
    await create_bot(client, bob)  # never in alice's list

    seen: list[int] = []
    url = f"{BOTS}?limit=2"
    pages = 0
    while True:
        r = await client.get(url, headers=alice.headers)
        assert r.status == 200
        page = await r.json()
        assert set(page) == {"items", "next_cursor"}
        assert len(page["items"]) <= 2
        seen += [b["id"] for b in page["items"]]
        assert all("state" in b for b in page["items"])
        pages += 1
        if page["next_cursor"] is None:
            break
        url = f"{BOTS}?limit=2&cursor={page['next_cursor']}"
    assert seen == ids
    assert pages == 3

    everything = await (await client.get(BOTS, headers=alice.headers)).json()
    assert [b["id"] for b in everything["items"]] == ids and everything["next_cursor"] is None


async def test_list_default_limit_is_50_and_max_500(client: Client, alice: User, pool: asyncpg.Pool) -> None:
    # Seeded in SQL: the limits are about the list, not about creation.
    await pool.execute(
        "INSERT INTO bot_configs (user_id, api_key_id, symbol, timeframe, ema_period) "
        "SELECT $1, $2, 'BTC/USDT:USDT', '1m', 20 FROM generate_series(1, 501)",
        alice.id, alice.key_id,
    )
    page = await (await client.get(BOTS, headers=alice.headers)).json()
    assert len(page["items"]) == 50 and page["next_cursor"] is not None
    assert page["items"][0]["state"]["status"] == "stopped"  # no state row yet: shown as stopped
    page = await (await client.get(f"{BOTS}?limit=500", headers=alice.headers)).json()
    assert len(page["items"]) == 500 and page["next_cursor"] is not None
    last = await (await client.get(f"{BOTS}?limit=500&cursor={page['next_cursor']}", headers=alice.headers)).json()
    assert len(last["items"]) == 1 and last["next_cursor"] is None
    for bad in ("limit=501", "limit=0", "limit=abc"):
        body = await problem(await client.get(f"{BOTS}?{bad}", headers=alice.headers), 422)
        assert body["errors"][0]["field"] == "limit"


@pytest.mark.parametrize("cursor", ["garbage!", "WzEsMiwzXQ", "eyJhIjoxfQ", "WyJ4Il0", "W10"])
async def test_a_bad_cursor_is_422(client: Client, alice: User, cursor: str) -> None:
    for url in (BOTS, "/api/v1/trades"):
        body = await problem(await client.get(f"{url}?cursor={cursor}", headers=alice.headers), 422)
        assert body["errors"][0]["field"] == "cursor"


# -- patch --------------------------------------------------------------------------------------


async def test_patch_changes_a_subset_and_prompts_the_runtime(
    client: Client, alice: User, commands: list[tuple[int, str, bool]]
) -> None:
    bot = await create_bot(client, alice, stop_loss_pct=2)
    r = await client.patch(f"{BOTS}/{bot['id']}", json={"ema_period": 50, "name": "renamed", "stop_loss_pct": None},
                           headers=alice.headers)
    assert r.status == 200, await r.text()
    patched = await r.json()
    assert (patched["ema_period"], patched["name"], patched["stop_loss_pct"]) == (50, "renamed", None)
    assert patched["symbol"] == bot["symbol"] and patched["timeframe"] == bot["timeframe"]
    assert patched["updated_at"] >= bot["updated_at"]
    assert await (await client.get(f"{BOTS}/{bot['id']}", headers=alice.headers)).json() == patched
    await eventually(lambda: (bot["id"], "reconfigure", False) in commands)

    # An empty patch changes nothing and is still a 200 with the bot.
    r = await client.patch(f"{BOTS}/{bot['id']}", json={}, headers=alice.headers)
    assert r.status == 200 and (await r.json())["ema_period"] == 50


async def test_patch_validates_each_field_and_the_merged_result(client: Client, alice: User) -> None:
    bot = await create_bot(client, alice, leverage=100)
    url = f"{BOTS}/{bot['id']}"
    for body, field in [
        ({"ema_period": 1}, "ema_period"),
        ({"ema_period": None}, "ema_period"),
        ({"symbol": None}, "symbol"),
        ({"timeframe": "7m"}, "timeframe"),
        ({"api_key_id": None}, "api_key_id"),
        ({"symbol": "DOGEUSDT"}, "symbol"),
        # ETH's ceiling is 50: the bot's leverage of 100 does not fit the new symbol.
        ({"symbol": "ETHUSDT"}, "leverage"),
        ({"leverage": 126}, "leverage"),
    ]:
        got = await problem(await client.patch(url, json=body, headers=alice.headers), 422)
        assert [e["field"] for e in got["errors"]] == [field], body
    bob = await new_user(client, "bob")
    got = await problem(await client.patch(url, json={"api_key_id": bob.key_id}, headers=alice.headers), 422)
    assert [e["field"] for e in got["errors"]] == ["api_key_id"]
    unchanged = await (await client.get(url, headers=alice.headers)).json()
    assert unchanged == {**bot}
    # Both together fit.
    r = await client.patch(url, json={"symbol": "ETHUSDT", "leverage": 20}, headers=alice.headers)
    assert r.status == 200
    assert ((await r.json())["symbol"], (await r.json())["leverage"]) == ("ETH/USDT:USDT", 20)
    await problem(await client.patch(url, data=b"", headers=alice.headers), 400)


async def test_patch_of_a_running_bot_keeps_its_market_and_key(client: Client, alice: User) -> None:
    bot = await create_bot(client, alice)
    url = f"{BOTS}/{bot['id']}"
    assert (await client.post(f"{url}/start", headers=alice.headers)).status == 202
    r = await client.patch(url, json={"ema_period": 30, "symbol": "BTCUSDT"}, headers=alice.headers)
    assert r.status == 200 and (await r.json())["ema_period"] == 30  # same symbol, normalised: no change
    await problem(await client.patch(url, json={"symbol": "ETHUSDT", "leverage": 2}, headers=alice.headers), 409)
    await new_user(client, "other")
    second_key = await client.post(
        "/api/v1/api-keys", json={"label": "b", "exchange": "binanceusdm", "api_key": "k" * 16, "secret_key": "s" * 32},
        headers=alice.headers,
    )
    key_id = (await second_key.json())["id"]
    await problem(await client.patch(url, json={"api_key_id": key_id}, headers=alice.headers), 409)
    assert (await client.post(f"{url}/stop", headers=alice.headers)).status == 202
    r = await client.patch(url, json={"api_key_id": key_id}, headers=alice.headers)
    assert r.status == 200 and (await r.json())["api_key_id"] == key_id


# -- start / stop -------------------------------------------------------------------------------


async def test_start_then_stop(
    client: Client, alice: User, pool: asyncpg.Pool, redis_client: aioredis.Redis, settings: Settings,
    commands: list[tuple[int, str, bool]],
) -> None:
    bot = await create_bot(client, alice)
    url = f"{BOTS}/{bot['id']}"
    await pool.execute("UPDATE bot_state SET last_error_message = 'old', pause_reason = 'daily_loss' "
                       "WHERE bot_id = $1", bot["id"])

    r = await client.post(f"{url}/start", headers=alice.headers)
    assert r.status == 202
    assert await r.json() == {"status": "starting"}
    got = await (await client.get(url, headers=alice.headers)).json()
    assert got["is_active"] is True and got["state"]["status"] == "starting"
    assert got["state"]["last_error_message"] is None
    assert await pool.fetchval("SELECT pause_reason FROM bot_state WHERE bot_id = $1", bot["id"]) is None
    await eventually(lambda: (bot["id"], "start", False) in commands)

    body = await problem(await client.post(f"{url}/start", headers=alice.headers), 409)
    assert "running" in body["detail"]

    r = await client.post(f"{url}/stop", json={"close_position": True}, headers=alice.headers)
    assert r.status == 202 and await r.json() == {"status": "stopping"}
    got = await (await client.get(url, headers=alice.headers)).json()
    assert got["is_active"] is False and got["state"]["status"] == "stopping"
    assert await pool.fetchval("SELECT stop_close_position FROM bot_state WHERE bot_id = $1", bot["id"]) is True
    await eventually(lambda: (bot["id"], "stop", True) in commands)

    # Each change was announced to SSE clients as a state event, in order.
    events = BotEvents(redis_client, settings.redis_prefix)
    states = [e.data["status"] for e in await events.replay(bot["id"], None) if e.event == "state"]
    assert states == ["starting", "stopping"]
    await events.close()

    # The runtime finishes the stop; then it can start again.
    await pool.execute("UPDATE bot_state SET status = 'stopped' WHERE bot_id = $1", bot["id"])
    assert (await client.post(f"{url}/start", headers=alice.headers)).status == 202
    state = await (await client.get(f"{url}/state", headers=alice.headers)).json()
    assert state["status"] == "starting"


async def test_stop_of_a_bot_that_is_not_running_settles_at_once(
    client: Client, alice: User, pool: asyncpg.Pool
) -> None:
    bot = await create_bot(client, alice)
    url = f"{BOTS}/{bot['id']}"
    for body in (None, {}, {"close_position": False}, {"close_position": True}):
        r = await client.post(f"{url}/stop", json=body, headers=alice.headers)
        assert r.status == 202 and await r.json() == {"status": "stopping"}
        state = await (await client.get(f"{url}/state", headers=alice.headers)).json()
        # Nothing runs it, so nothing would ever finish a "stopping": it is stopped right away.
        assert state["status"] == "stopped"
    assert await pool.fetchval("SELECT stop_close_position FROM bot_state WHERE bot_id = $1", bot["id"]) is False


async def test_stop_body_is_validated(client: Client, alice: User) -> None:
    bot = await create_bot(client, alice)
    url = f"{BOTS}/{bot['id']}/stop"
    for body, field in [({"close_position": "yes"}, "close_position"), ({"force": True}, "force")]:
        got = await problem(await client.post(url, json=body, headers=alice.headers), 422)
        assert [e["field"] for e in got["errors"]] == [field]


async def test_start_without_an_api_key_is_409(client: Client, alice: User, pool: asyncpg.Pool) -> None:
    bot = await create_bot(client, alice)
    # What deleting the key does to its bots (ON DELETE SET NULL).
    assert (await client.delete(f"/api/v1/api-keys/{alice.key_id}", headers=alice.headers)).status == 204
    got = await (await client.get(f"{BOTS}/{bot['id']}", headers=alice.headers)).json()
    assert got["api_key_id"] is None
    body = await problem(await client.post(f"{BOTS}/{bot['id']}/start", headers=alice.headers), 409)
    assert "api key" in body["detail"]
    assert await pool.fetchval("SELECT is_active FROM bot_configs WHERE id = $1", bot["id"]) is False


async def test_concurrent_starts_have_one_winner(client: Client, alice: User) -> None:
    bot = await create_bot(client, alice)
    url = f"{BOTS}/{bot['id']}/start"
    responses = await asyncio.gather(*(client.post(url, headers=alice.headers) for _ in range(8)))
    assert sorted(r.status for r in responses) == [202] + [409] * 7


# -- delete -------------------------------------------------------------------------------------


async def test_delete_soft_deletes_and_hides_the_bot(client: Client, alice: User, pool: asyncpg.Pool) -> None:
    keep = await create_bot(client, alice)
    bot = await create_bot(client, alice)
    url = f"{BOTS}/{bot['id']}"
    r = await client.delete(url, headers=alice.headers)
    assert r.status == 204 and await r.read() == b""
    await problem(await client.get(url, headers=alice.headers), 404)
    await problem(await client.delete(url, headers=alice.headers), 404)
    for sub in ("state", "trades", "orders"):
        await problem(await client.get(f"{url}/{sub}", headers=alice.headers), 404)
    await problem(await client.post(f"{url}/start", headers=alice.headers), 404)
    await problem(await client.patch(url, json={"ema_period": 3}, headers=alice.headers), 404)
    listed = await (await client.get(BOTS, headers=alice.headers)).json()
    assert [b["id"] for b in listed["items"]] == [keep["id"]]
    assert await pool.fetchval("SELECT deleted_at IS NOT NULL FROM bot_configs WHERE id = $1", bot["id"]) is True


async def test_delete_of_an_active_bot_stops_it_first(
    client: Client, alice: User, pool: asyncpg.Pool, commands: list[tuple[int, str, bool]]
) -> None:
    bot = await create_bot(client, alice)
    url = f"{BOTS}/{bot['id']}"
    assert (await client.post(f"{url}/start", headers=alice.headers)).status == 202
    assert (await client.delete(url, headers=alice.headers)).status == 204
    row = await pool.fetchrow(
        "SELECT c.is_active, c.deleted_at, s.status FROM bot_configs c JOIN bot_state s ON s.bot_id = c.id "
        "WHERE c.id = $1", bot["id"],
    )
    assert row["is_active"] is False and row["deleted_at"] is not None and row["status"] == "stopping"
    await eventually(lambda: [c for c in commands if c[0] == bot["id"]][-2:] == [
        (bot["id"], "stop", False), (bot["id"], "delete", False)])
    # Its API key is free again.
    assert (await client.delete(f"/api/v1/api-keys/{alice.key_id}", headers=alice.headers)).status == 204


# -- isolation and authentication ---------------------------------------------------------------


async def test_another_users_bot_is_404_on_every_route(client: Client, alice: User, pool: asyncpg.Pool) -> None:
    bot = await create_bot(client, alice)
    bob = await new_user(client, "bob")
    url = f"{BOTS}/{bot['id']}"
    attempts = [
        ("GET", url, None),
        ("PATCH", url, {"ema_period": 3}),
        ("DELETE", url, None),
        ("POST", f"{url}/start", None),
        ("POST", f"{url}/stop", {"close_position": True}),
        ("GET", f"{url}/state", None),
        ("GET", f"{url}/trades", None),
        ("GET", f"{url}/orders", None),
        ("GET", f"{url}/status-stream", None),
    ]
    for method, path, body in attempts:
        r = await client.request(method, path, json=body, headers=bob.headers)
        got = await problem(r, 404)
        assert "bot" in got["detail"]
    r = await client.get(f"{url}/status-stream?access_token={bob.token}")
    await problem(r, 404)
    # Nothing of alice's bot changed, and bob's lists do not show it.
    row = await pool.fetchrow("SELECT is_active, ema_period, deleted_at FROM bot_configs WHERE id = $1", bot["id"])
    assert (row["is_active"], row["ema_period"], row["deleted_at"]) == (False, 20, None)
    assert (await (await client.get(BOTS, headers=bob.headers)).json())["items"] == []
    trades = await (await client.get(f"/api/v1/trades?bot_id={bot['id']}", headers=bob.headers)).json()
    assert trades == {"items": [], "next_cursor": None}


async def test_every_route_needs_a_token(client: Client, alice: User) -> None:
    bot = await create_bot(client, alice)
    url = f"{BOTS}/{bot['id']}"
    for method, path in [
        ("POST", BOTS), ("GET", BOTS), ("GET", url), ("PATCH", url), ("DELETE", url), ("POST", f"{url}/start"),
        ("POST", f"{url}/stop"), ("GET", f"{url}/state"), ("GET", f"{url}/trades"), ("GET", f"{url}/orders"),
        ("GET", f"{url}/status-stream"), ("GET", "/api/v1/trades"),
    ]:
        await problem(await client.request(method, path), 401)
        await problem(await client.request(method, path, headers={"Authorization": "Bearer nope"}), 401)
    # ?access_token= only counts on the event stream.
    await problem(await client.get(f"{url}?access_token={alice.token}"), 401)
    await problem(await client.get(f"{url}/state?access_token={alice.token}"), 401)


async def test_openapi_describes_the_bots_api(client: Client) -> None:
    doc = await (await client.get("/api/openapi.json")).json()
    for path, methods in {
        "/api/v1/bots": {"get", "post"},
        "/api/v1/bots/{id}": {"get", "patch", "delete"},
        "/api/v1/bots/{id}/start": {"post"},
        "/api/v1/bots/{id}/stop": {"post"},
        "/api/v1/bots/{id}/state": {"get"},
        "/api/v1/bots/{id}/status-stream": {"get"},
        "/api/v1/bots/{id}/trades": {"get"},
        "/api/v1/bots/{id}/orders": {"get"},
        "/api/v1/trades": {"get"},
    }.items():
        assert set(doc["paths"][path]) == methods, path
    create = doc["paths"]["/api/v1/bots"]["post"]
    assert {"201", "401", "422"} <= set(create["responses"])
    stream = doc["paths"]["/api/v1/bots/{id}/status-stream"]["get"]
    assert "text/event-stream" in stream["responses"]["200"]["content"]


async def test_created_resources_carry_their_location(client: Client, alice: User) -> None:
    r = await client.post(BOTS, json=settings_for(alice), headers=alice.headers)
    assert r.status == 201
    bot = await r.json()
    assert r.headers["Location"] == f"{BOTS}/{bot['id']}"
    assert (await client.get(r.headers["Location"], headers=alice.headers)).status == 200
    r = await client.post("/api/v1/api-keys", headers=alice.headers,
                          json={"label": "second", "exchange": "binanceusdm", "api_key": "k" * 32, "secret_key": "s" * 64})
    assert r.status == 201
    assert r.headers["Location"] == f"/api/v1/api-keys/{(await r.json())['id']}"


async def test_every_binance_timeframe_is_accepted(client: Client, alice: User) -> None:
    timeframes = "1m 3m 5m 15m 30m 1h 2h 4h 6h 8h 12h 1d 3d 1w 1M".split()
    for timeframe in timeframes:
        bot = await create_bot(client, alice, timeframe=timeframe)
        assert bot["timeframe"] == timeframe
        got = await client.get(f"{BOTS}/{bot['id']}", headers=alice.headers)
        assert (await got.json())["timeframe"] == timeframe
    r = await client.post(BOTS, json=settings_for(alice, timeframe="1mo"), headers=alice.headers)
    assert r.status == 422
