"""Telegram against the tests' own Bot-API server (tests/telegram_server.py): linking a chat with a
one-time code, events told to the linked chat through the outbox, the commands' answers matching
the API's figures, and /stopbot only after its confirmation and only for the chat's own user."""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from pydantic import SecretStr
from pytest_aiohttp import AiohttpClient

from tests.integration.auth_helpers import bearer, problem, user_token
from tests.integration.runtime_helpers import create_bot
from tests.integration.webhook_helpers import claim_bot, set_status, write_fill
from tests.telegram_server import TelegramServer
from tests.timing import eventually
from tradebot.config import Secrets, Settings
from tradebot.http.app import create_app
from tradebot.http.appkeys import DB
from tradebot.notifications.telegram_text import money
from tradebot.runtime import bot_store
from tradebot.runtime.bot_store import NewOrder

Client = TestClient[web.Request, web.Application]
LINK = "/api/v1/notifications/telegram/link"


@pytest.fixture
def telegram() -> Iterator[TelegramServer]:
    server = TelegramServer().start()
    yield server
    server.stop()


@pytest.fixture
async def tg_client(telegram: TelegramServer, aiohttp_client: AiohttpClient, settings: Settings,
                    test_secrets: Secrets, clean_db: str, redis_url: str) -> Client:
    # `telegram` first: set up before the app and so stopped after it (the app's shutdown still reaches it).
    fast = settings.model_copy(update={
        "notifications_poll_s": 0.02, "telegram_bot_token": SecretStr(telegram.token),
        "telegram_api_url": telegram.url, "telegram_poll_timeout_s": 1})
    return await aiohttp_client(create_app(fast, test_secrets, database_url=clean_db, redis_url=redis_url,
                                           replica_id="test-replica"))


async def _user(client: Client, tag: str = "user") -> tuple[str, int]:
    _, token = await user_token(client, tag)
    user_id = int((await (await client.get("/api/v1/auth/me", headers=bearer(token))).json())["id"])
    return token, user_id


async def _answer(telegram: TelegramServer, chat: int, text: str, *, count: int | None = None) -> str:
    """Say `text` in `chat` and wait for the bot's next message there."""
    before = len(telegram.messages(chat)) if count is None else count
    telegram.say(chat, text)
    found = await eventually(lambda: telegram.texts(chat)[before:], timeout=20, what=f"an answer to {text}")
    return str(found[0])


async def _linked(client: Client, telegram: TelegramServer, token: str, chat: int) -> None:
    r = await client.post(LINK, headers=bearer(token))
    assert r.status == 201, await r.text()
    body = await r.json()
    assert body["command"] == f"/start {body['code']}" and r.headers["Cache-Control"] == "no-store"
    assert (await _answer(telegram, chat, body["command"])).startswith("Linked")


async def _exit_trade(pool: asyncpg.Pool, user_id: int, bot_id: int, fence: int, pnl: float) -> None:
    cid = f"x{bot_id}x{secrets.token_hex(4)}"
    async with bot_store.fenced(pool, bot_id, fence) as conn:
        order_id = await bot_store.insert_order(conn, NewOrder(bot_id, user_id, cid, "BTC/USDT:USDT",
                                                               "sell", 0.01, True, "close_long", 99, fence))
        assert order_id is not None
        await bot_store.insert_trade(conn, bot_id=bot_id, user_id=user_id, order_id=order_id,
                                     symbol="BTC/USDT:USDT", side="sell", price=110.0, amount=0.01,
                                     fee=0.0005, realized_pnl=pnl, client_order_id=cid)


async def test_a_code_links_once_and_not_after_it_expired(tg_client: Client, telegram: TelegramServer) -> None:
    token, _ = await _user(tg_client)
    r = await tg_client.get(LINK, headers=bearer(token))
    assert (await r.json())["linked"] is False and (await r.json())["enabled"] is True
    assert (await _answer(telegram, 500, "/status")).startswith("This chat is not linked")

    r = await tg_client.post(LINK, headers=bearer(token))
    code = (await r.json())["code"]
    telegram.say(-501, f"/start {code}", chat_type="group")  # a group's members could all command: refused
    await eventually(lambda: telegram.texts(-501), timeout=20, what="the group answered")
    assert telegram.texts(-501) == ["Link from a private chat with this bot, not from a group."]
    assert (await _answer(telegram, 501, f"/start {code}")).startswith("Linked")  # the code is still good
    status = await (await tg_client.get(LINK, headers=bearer(token))).json()
    assert status["linked"] is True and status["username"] == "trader"
    # Used once: the same code links no other chat.
    assert (await _answer(telegram, 502, f"/start {code}")).startswith("Unknown or already used code")

    other, _ = await _user(tg_client, "other")
    code = (await (await tg_client.post(LINK, headers=bearer(other))).json())["code"]
    await tg_client.app[DB].execute("UPDATE telegram_link_codes SET expires_at = now() - interval '1 second'")
    assert (await _answer(telegram, 503, f"/start {code}")).startswith("This code has expired")
    assert (await _answer(telegram, 503, "/status")).startswith("This chat is not linked")
    assert (await (await tg_client.get(LINK, headers=bearer(other))).json())["linked"] is False

    # Unlinked from the dashboard: the chat's commands act for nobody any more.
    assert (await tg_client.delete(LINK, headers=bearer(token))).status == 204
    assert (await (await tg_client.get(LINK, headers=bearer(token))).json())["linked"] is False
    assert (await _answer(telegram, 501, "/status")).startswith("This chat is not linked")


async def test_linking_without_a_platform_bot_is_refused(aiohttp_client: AiohttpClient, settings: Settings,
                                                         test_secrets: Secrets, clean_db: str, redis_url: str) -> None:
    client = await aiohttp_client(create_app(settings, test_secrets, database_url=clean_db, redis_url=redis_url,
                                             replica_id="test-replica"))
    token, _ = await _user(client)
    await problem(await client.post(LINK, headers=bearer(token)), 409)
    assert (await (await client.get(LINK, headers=bearer(token))).json())["enabled"] is False


async def test_trades_pauses_errors_and_failovers_arrive_in_the_linked_chat(
    tg_client: Client, telegram: TelegramServer
) -> None:
    token, user_id = await _user(tg_client)
    pool = tg_client.app[DB]
    bot = await create_bot(pool, user_id, None, active=False, name="Night owl")
    fence = await claim_bot(pool, bot)
    await _linked(tg_client, telegram, token, 600)
    start = len(telegram.messages(600))
    label = f"Night owl (#{bot}, BTC/USDT:USDT)"

    await set_status(pool, bot, fence, "running")
    await write_fill(pool, user_id, bot, fence, 1)  # an entry; its state rewrite is no message
    await _exit_trade(pool, user_id, bot, fence, 1.25)
    await set_status(pool, bot, fence, "paused", "daily loss limit of 5% reached")
    await set_status(pool, bot, fence, "paused", "daily loss limit of 5% reached")  # unchanged: no message
    await set_status(pool, bot, fence, "running")  # resumed (a failover shows so, on its new replica)
    await set_status(pool, bot, fence, "error", "the exchange refused the API key")
    expected = [
        f"Running - {label} on replica test-replica",
        f"Entry - {label}: BUY 0.01 @ 100, fee 0.00",
        f"Exit - {label}: SELL 0.01 @ 110, PnL 1.25, fee 0.00",
        f"Paused - {label}: daily loss limit of 5% reached",
        f"Running - {label} on replica test-replica",
        f"Error - {label} stopped: the exchange refused the API key",
    ]
    got = await eventually(lambda: len(telegram.texts(600)) >= start + len(expected) and telegram.texts(600)[start:],
                           timeout=20, what="six messages")
    assert got == expected

    async def recorded() -> bool:  # sent before the batch's transaction records it
        rows = await pool.fetch("SELECT status, attempts FROM telegram_deliveries ORDER BY id")
        return [(r["status"], r["attempts"]) for r in rows] == [("delivered", 1)] * len(expected)

    await eventually(recorded, timeout=20, what="every message recorded as delivered once")

    # The telegram preference holds back what the user turned off.
    r = await tg_client.put("/api/v1/notifications/preferences", json={"telegram": ["error"]}, headers=bearer(token))
    assert (await r.json())["telegram"] == ["error"]
    await write_fill(pool, user_id, bot, fence, 2)
    assert await pool.fetchval("SELECT count(*) FROM telegram_deliveries") == len(expected)


async def test_status_profit_daily_and_balance_answer_the_apis_figures(
    tg_client: Client, telegram: TelegramServer
) -> None:
    token, user_id = await _user(tg_client)
    pool = tg_client.app[DB]
    bot = await create_bot(pool, user_id, None, active=False, name="Lark")
    fence = await claim_bot(pool, bot)
    await write_fill(pool, user_id, bot, fence, 1)
    await _exit_trade(pool, user_id, bot, fence, 3.5)
    await _exit_trade(pool, user_id, bot, fence, -1.0)
    await _linked(tg_client, telegram, token, 700)

    status = await _answer(telegram, 700, "/status")
    view: dict[str, Any] = await (await tg_client.get(f"/api/v1/bots/{bot}", headers=bearer(token))).json()
    assert status == f"Lark (#{bot}, BTC/USDT:USDT): {view['state']['status']}, flat, " \
                     f"today {money(view['state']['daily_pnl'])}"

    totals = (await (await tg_client.get("/api/v1/stats?group=all", headers=bearer(token))).json())["totals"]
    profit = await _answer(telegram, 700, "/profit")
    assert profit == (f"Profit, all time: net {money(totals['net_pnl'])} (realised {money(totals['realized_pnl'])}, "
                      f"fees {money(totals['fees'])}), 3 trades, 1 wins, 1 losses")
    assert (await _answer(telegram, 700, "/profit 7")).startswith(f"Profit, last 7 days: net {money(totals['net_pnl'])}")
    assert (await _answer(telegram, 700, "/profit soon")).startswith("Usage: /profit [days]")

    day = (await (await tg_client.get("/api/v1/stats?group=day", headers=bearer(token))).json())["items"]
    daily = await _answer(telegram, 700, "/daily")
    assert daily == f"{day[0]['period_start'][:10]}: net {money(day[0]['net_pnl'])}" + profit.split(": net " +
                                                                                                      money(totals['net_pnl']))[1]
    assert day[0]["period_start"][:10] == dt.datetime.now(dt.UTC).date().isoformat()
    # No API key (the test app reads no exchange): the portfolio has no balance, and /balance says so.
    portfolio = await (await tg_client.get("/api/v1/portfolio", headers=bearer(token))).json()
    assert portfolio["totals"]["balances"] == {}
    assert (await _answer(telegram, 700, "/balance")).startswith("No exchange balance")


async def test_stopbot_stops_only_after_the_confirmation(tg_client: Client, telegram: TelegramServer) -> None:
    token, user_id = await _user(tg_client)
    pool = tg_client.app[DB]
    bot = await create_bot(pool, user_id, None, active=True, name="Heron")
    await _linked(tg_client, telegram, token, 800)

    question = await _answer(telegram, 800, f"/stopbot {bot}")
    assert question == f"Stop Heron (#{bot}, BTC/USDT:USDT)?"
    [asked] = [m for m in telegram.messages(800) if m.text == question]
    assert asked.callback_data() == [f"stop:{bot}", "cancel"]
    assert await pool.fetchval("SELECT is_active FROM bot_configs WHERE id = $1", bot) is True  # asking stops nothing

    telegram.press(800, asked.message_id, "cancel")
    await eventually(lambda: [m for m in telegram.messages(800) if m.message_id == asked.message_id
                              and m.text == "Cancelled." and not m.buttons], timeout=20, what="cancelled")
    assert await pool.fetchval("SELECT is_active FROM bot_configs WHERE id = $1", bot) is True

    question = await _answer(telegram, 800, f"/stopbot {bot}")
    [asked] = [m for m in telegram.messages(800) if m.text == question]
    telegram.press(800, asked.message_id, f"stop:{bot}")
    await eventually(lambda: [m for m in telegram.messages(800) if m.message_id == asked.message_id
                              and m.text == f"Stopping bot #{bot}."], timeout=20, what="the stop's answer")
    assert await pool.fetchval("SELECT is_active FROM bot_configs WHERE id = $1", bot) is False
    assert (f"cb{asked.message_id}" or True) and telegram.callback_answers[-1][1] == f"Stopping bot #{bot}."

    # A force exit is asked, confirmed, and refused readably: the bot is stopped now.
    question = await _answer(telegram, 800, f"/forceexit {bot}")
    assert question == f"Close the position of Heron (#{bot}, BTC/USDT:USDT) at market?"
    [asked] = [m for m in telegram.messages(800) if m.text == question]
    telegram.press(800, asked.message_id, f"exit:{bot}")
    await eventually(lambda: [m for m in telegram.messages(800) if m.message_id == asked.message_id
                              and m.text.startswith("Not done: the bot is not running")],
                     timeout=20, what="the force exit's refusal")
    assert (await _answer(telegram, 800, "/stopbot")).startswith("Usage: /stopbot <bot id>")


async def test_a_chat_cannot_reach_another_users_bot(tg_client: Client, telegram: TelegramServer) -> None:
    mine, _ = await _user(tg_client, "mine")
    _, theirs_id = await _user(tg_client, "theirs")
    pool = tg_client.app[DB]
    theirs = await create_bot(pool, theirs_id, None, active=True, name="Not yours")
    await _linked(tg_client, telegram, mine, 900)

    assert await _answer(telegram, 900, f"/stopbot {theirs}") == f"You have no bot #{theirs}."
    assert "Not yours" not in await _answer(telegram, 900, "/status")
    # A crafted button press naming their bot: the chat acts for its own user only.
    [any_message] = telegram.messages(900)[-1:]
    telegram.press(900, any_message.message_id, f"stop:{theirs}", forged=True)
    await eventually(lambda: telegram.callback_answers, timeout=20, what="the press answered")
    assert telegram.callback_answers[-1][1] == f"You have no bot #{theirs}."
    assert await pool.fetchval("SELECT is_active FROM bot_configs WHERE id = $1", theirs) is True


async def test_unlink_from_the_chat_stops_the_messages(tg_client: Client, telegram: TelegramServer) -> None:
    token, user_id = await _user(tg_client)
    pool = tg_client.app[DB]
    bot = await create_bot(pool, user_id, None, active=False, name="Wren")
    fence = await claim_bot(pool, bot)
    await _linked(tg_client, telegram, token, 1000)
    assert (await _answer(telegram, 1000, "/unlink")).startswith("Unlinked")
    assert (await (await tg_client.get(LINK, headers=bearer(token))).json())["linked"] is False
    await set_status(pool, bot, fence, "error", "boom")
    assert await pool.fetchval("SELECT count(*) FROM telegram_deliveries") == 0
