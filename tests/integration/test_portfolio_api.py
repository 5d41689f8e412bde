"""GET /portfolio against the simulator through ccxt: open positions at the last price, balances per
API key (cached), a key that fails as an error entry (never zero), and nothing of another user."""

from __future__ import annotations

import secrets
import time
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from tests.integration.auth_helpers import Client, bearer, problem, user_token
from tests.integration.bots_helpers import MARKETS, User, create_bot
from tests.simulator_helpers import Credentials, SimControl, flat_candles, minute_floor
from tradebot.config import Secrets, Settings
from tradebot.exchange.simulator import RunningSimulator
from tradebot.http.app import create_app
from tradebot.http.appkeys import SYMBOLS


@pytest.fixture
async def exchange_client(
    aiohttp_client: Any, settings: Settings, test_secrets: Secrets, clean_db: str, redis_url: str,
    simulator: RunningSimulator,
) -> TestClient:  # type: ignore[type-arg]
    """The API (no bot runtime) pointed at the in-process simulator."""
    settings = settings.model_copy(update={"exchange_url": simulator.base_url, "runtime_enabled": False})
    app: web.Application = create_app(settings, test_secrets, database_url=clean_db, redis_url=redis_url,
                                      replica_id="replica-p")
    app[SYMBOLS] = MARKETS
    return await aiohttp_client(app)  # type: ignore[no-any-return]


async def _user_with_key(client: Client, creds: Credentials, tag: str, label: str = "main") -> User:
    email, token = await user_token(client, tag)
    key_id = await _add_key(client, token, creds, label)
    me = await (await client.get("/api/v1/auth/me", headers=bearer(token))).json()
    return User(email, token, key_id, me["id"])


async def _add_key(client: Client, token: str, creds: Credentials, label: str) -> int:
    r = await client.post("/api/v1/api-keys", headers=bearer(token), json={
        "label": label, "exchange": "binanceusdm", "api_key": creds.api_key, "secret_key": creds.secret})
    assert r.status == 201, await r.text()
    key_id: int = (await r.json())["id"]
    return key_id


async def _hold(pool: asyncpg.Pool, bot_id: int, side: str, size: str, entry: str) -> None:
    await pool.execute(
        "UPDATE bot_state SET in_position = true, position_side = $2, position_size = $3::text::numeric, "
        "entry_price = $4::text::numeric WHERE bot_id = $1",
        bot_id, side, size, entry,
    )


async def _portfolio(client: Client, user: User) -> dict[str, Any]:
    r = await client.get("/api/v1/portfolio", headers=user.headers)
    assert r.status == 200, await r.text()
    assert r.headers["Cache-Control"] == "no-store"
    body: dict[str, Any] = await r.json()
    return body


def _balance_reads(requests: dict[str, int]) -> int:
    return sum(n for path, n in requests.items() if "/account" in path or "/balance" in path)


async def test_portfolio_values_positions_and_reads_balances(
    exchange_client: Client, sim: SimControl, pool: asyncpg.Pool
) -> None:
    client = exchange_client
    now = minute_floor(int(time.time() * 1000)) - 10 * 60_000
    await sim.push_klines("BTCUSDT", "1m", flat_candles(now, [104.0, 105.0]))
    await sim.push_klines("ETHUSDT", "1m", flat_candles(now, [1950.0, 1900.0]))

    funded = await sim.create_account({"USDT": 10_000})
    alice = await _user_with_key(client, funded, "alice")
    broken = await _add_key(client, alice.token, Credentials(secrets.token_hex(16), secrets.token_hex(32)), "broken")
    long_bot = await create_bot(client, alice, name="long one")
    short_bot = await create_bot(client, alice, symbol="ETHUSDT", allow_short=True)
    flat_bot = await create_bot(client, alice, symbol="ETHUSDT", api_key_id=broken)
    await _hold(pool, long_bot["id"], "long", "0.5", "100")
    await _hold(pool, short_bot["id"], "short", "2", "2000")

    bob = await _user_with_key(client, await sim.create_account({"USDT": 50}), "bob")
    bobs_bot = await create_bot(client, bob)
    await _hold(pool, bobs_bot["id"], "long", "1", "1")

    body = await _portfolio(client, alice)
    positions = {p["bot_id"]: p for p in body["positions"]}
    assert set(positions) == {long_bot["id"], short_bot["id"]}  # not flat_bot (flat), nor bob's
    assert flat_bot["id"] not in positions
    assert positions[long_bot["id"]] == {
        "bot_id": long_bot["id"], "bot_name": "long one", "api_key_id": alice.key_id, "symbol": "BTC/USDT:USDT",
        "side": "long", "size": 0.5, "entry_price": 100.0, "last_price": 105.0, "unrealized_pnl": 2.5,
        "paper": False,
    }
    assert positions[short_bot["id"]]["last_price"] == 1900.0
    assert positions[short_bot["id"]]["unrealized_pnl"] == 200.0  # short 2 from 2000 to 1900

    balances = {b["api_key_id"]: b for b in body["balances"]}
    assert set(balances) == {alice.key_id, broken}
    assert balances[alice.key_id]["error"] is None
    assert balances[alice.key_id]["assets"]["USDT"]["total"] == 10_000
    assert balances[alice.key_id]["read_at"].endswith("Z")
    # A key the exchange refuses is an error entry, never zero balances.
    assert balances[broken]["assets"] is None and balances[broken]["error"] == "the exchange refused this API key"

    totals = body["totals"]
    assert totals == {"positions_count": 2, "unrealized_pnl": 202.5,
                      "balances": {"USDT": balances[alice.key_id]["assets"]["USDT"]}, "complete": False}

    # Within the cache's 30 s the exchange is not asked again, however often the page is read.
    reads = _balance_reads(await sim.requests())
    for _ in range(3):
        again = await _portfolio(client, alice)
        assert again["balances"] == body["balances"]
    assert _balance_reads(await sim.requests()) == reads

    bobs = await _portfolio(client, bob)
    assert [p["bot_id"] for p in bobs["positions"]] == [bobs_bot["id"]]
    assert [b["api_key_id"] for b in bobs["balances"]] == [bob.key_id]
    assert bobs["totals"]["complete"] is True and bobs["totals"]["balances"]["USDT"]["total"] == 50
    await problem(await client.get("/api/v1/portfolio"), 401)


@pytest.fixture
async def app(app: web.Application) -> web.Application:
    app[SYMBOLS] = MARKETS
    return app


async def test_without_an_exchange_nothing_reads_as_zero(client: Client, pool: asyncpg.Pool) -> None:
    email, token = await user_token(client, "solo")
    key_id = await _add_key(client, token, Credentials(secrets.token_hex(16), secrets.token_hex(32)), "main")
    me = await (await client.get("/api/v1/auth/me", headers=bearer(token))).json()
    user = User(email, token, key_id, me["id"])
    bot = await create_bot(client, user)
    await _hold(pool, bot["id"], "long", "1", "100")
    body = await _portfolio(client, user)
    assert body["positions"][0]["last_price"] is None and body["positions"][0]["unrealized_pnl"] is None
    assert body["balances"][0]["assets"] is None and body["balances"][0]["error"]
    assert body["totals"] == {"positions_count": 1, "unrealized_pnl": 0.0, "balances": {}, "complete": False}
