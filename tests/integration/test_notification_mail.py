"""Mail for a bot gone to error or paused by a daily limit, and the preferences that choose which
events go to which channel (GET/PUT /api/v1/notifications/preferences)."""

from __future__ import annotations

from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient

from tests.integration.auth_helpers import bearer, problem, user_token
from tests.integration.runtime_helpers import create_bot
from tests.integration.webhook_helpers import add_webhook, claim_bot, set_status, wait_delivered, write_fill
from tests.timing import eventually
from tests.webhook_receiver import Receiver
from tradebot.config import Secrets, Settings
from tradebot.http.app import create_app
from tradebot.http.appkeys import DB

Client = TestClient[web.Request, web.Application]
PREFS = "/api/v1/notifications/preferences"
ALL_TELEGRAM = {"telegram": ["trade", "state", "error"]}


@pytest.fixture
async def mail_client(aiohttp_client: AiohttpClient, settings: Settings, test_secrets: Secrets, clean_db: str,
                      redis_url: str) -> Client:
    fast = settings.model_copy(update={"notifications_poll_s": 0.02})
    return await aiohttp_client(create_app(fast, test_secrets, database_url=clean_db, redis_url=redis_url,
                                           replica_id="test-replica"))


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


def _mails(folder: Path) -> list[EmailMessage]:
    return [message_from_bytes(p.read_bytes(), policy=policy.default) for p in sorted(folder.glob("*.eml"))]


async def _user_and_bot(client: Client) -> tuple[str, str, int, int]:
    email, token = await user_token(client)
    user_id = int((await (await client.get("/api/v1/auth/me", headers=bearer(token))).json())["id"])
    pool = client.app[DB]
    bot = await create_bot(pool, user_id, None, active=False, name="Night owl")
    return email, token, bot, await claim_bot(pool, bot)


async def test_a_bot_gone_to_error_or_paused_by_a_daily_limit_is_mailed_once(
    mail_client: Client, settings: Settings
) -> None:
    outbox = settings.outbox_dir
    assert outbox is not None
    email, _, bot, fence = await _user_and_bot(mail_client)
    pool = mail_client.app[DB]
    await set_status(pool, bot, fence, "starting")
    await set_status(pool, bot, fence, "paused", "daily loss limit of 5% reached")  # a paused bot resumed: no mail
    await set_status(pool, bot, fence, "running")
    await set_status(pool, bot, fence, "paused", "daily loss limit of 5% reached")
    await set_status(pool, bot, fence, "paused", "daily loss limit of 5% reached")  # unchanged: no second mail
    await set_status(pool, bot, fence, "error", "the exchange refused the API key")

    def two_mails() -> list[EmailMessage]:
        found = _mails(outbox)
        return found if len(found) >= 2 else []

    mails = await eventually(two_mails, what="two mails")
    assert [m["To"] for m in mails] == [email, email]
    subjects = sorted(str(m["Subject"]) for m in mails)
    assert subjects == [f"tradebot: Night owl (#{bot}, BTC/USDT:USDT) paused by a daily limit",
                        f"tradebot: Night owl (#{bot}, BTC/USDT:USDT) stopped with an error"]
    bodies = " ".join(m.get_content() for m in mails)
    assert "daily loss limit of 5% reached" in bodies and "the exchange refused the API key" in bodies

    async def recorded() -> bool:
        rows = await pool.fetch("SELECT kind, status, attempts FROM mail_deliveries ORDER BY id")
        return [(r["kind"], r["status"], r["attempts"]) for r in rows] == [("paused", "delivered", 1),
                                                                           ("error", "delivered", 1)]

    await eventually(recorded, what="both mails recorded as delivered")
    assert len(_mails(outbox)) == 2


async def test_preferences_default_to_everything_and_turn_mail_off(mail_client: Client) -> None:
    _, token, bot, fence = await _user_and_bot(mail_client)
    r = await mail_client.get(PREFS, headers=bearer(token))
    assert await r.json() == {"webhook": ["trade", "state", "error"], "mail": ["error", "paused"], **ALL_TELEGRAM}
    r = await mail_client.put(PREFS, json={"mail": ["error"]}, headers=bearer(token))
    assert r.status == 200 and await r.json() == {"webhook": ["trade", "state", "error"], "mail": ["error"],
                                                  **ALL_TELEGRAM}
    r = await mail_client.put(PREFS, json={"webhook": ["error", "trade"]}, headers=bearer(token))
    assert await r.json() == {"webhook": ["trade", "error"], "mail": ["error"], **ALL_TELEGRAM}  # mail kept as it was
    assert await (await mail_client.get(PREFS, headers=bearer(token))).json() == {
        "webhook": ["trade", "error"], "mail": ["error"], **ALL_TELEGRAM}
    pool = mail_client.app[DB]
    await set_status(pool, bot, fence, "running")
    await set_status(pool, bot, fence, "paused", "daily trade limit reached")
    assert await pool.fetchval("SELECT count(*) FROM mail_deliveries") == 0  # paused is off: nothing queued
    await mail_client.put(PREFS, json={"mail": []}, headers=bearer(token))
    await set_status(pool, bot, fence, "error", "boom")
    assert await pool.fetchval("SELECT count(*) FROM mail_deliveries") == 0


async def test_bad_preferences_are_422_naming_the_field(mail_client: Client) -> None:
    _, token = await user_token(mail_client)
    for body, field in (({"mail": ["trade"]}, "mail.0"), ({"webhook": ["state", "ping"]}, "webhook.1"),
                        ({"telegram": ["paused"]}, "telegram.0"), ({"sms": ["error"]}, "sms"),
                        ({"mail": "error"}, "mail")):
        got = await problem(await mail_client.put(PREFS, json=body, headers=bearer(token)), 422)
        assert [e["field"] for e in got["errors"]] == [field], body
    assert await (await mail_client.get(PREFS, headers=bearer(token))).json() == {
        "webhook": ["trade", "state", "error"], "mail": ["error", "paused"], **ALL_TELEGRAM}


async def test_the_webhook_preference_holds_back_events_the_user_turned_off(
    mail_client: Client, receiver: Receiver
) -> None:
    _, token, bot, fence = await _user_and_bot(mail_client)
    user_id = int((await (await mail_client.get("/api/v1/auth/me", headers=bearer(token))).json())["id"])
    hook = await add_webhook(mail_client, token, receiver.url("p"))
    await mail_client.put(PREFS, json={"webhook": ["trade"]}, headers=bearer(token))
    await write_fill(mail_client.app[DB], user_id, bot, fence, 1)
    [d] = await wait_delivered(mail_client, token, hook["id"], 1)
    assert d["event"] == "trade"
    assert [r.event for r in receiver.received("p")] == ["trade"]
