"""Webhooks end to end (CONTRACT.md "Webhooks"): the real app, PostgreSQL, Redis, the delivery
worker and a receiver of the tests' own that checks every signature independently."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from pytest_aiohttp import AiohttpClient

from tests.integration.auth_helpers import Client, bearer, problem, user_token
from tests.integration.bots_helpers import MARKETS, new_user
from tests.integration.bots_helpers import create_bot as create_api_bot
from tests.integration.runtime_helpers import create_bot
from tests.integration.webhook_helpers import (
    add_webhook,
    claim_bot,
    deliveries,
    set_status,
    wait_delivered,
    write_fill,
)
from tests.timing import eventually
from tests.webhook_receiver import Receiver
from tradebot.config import Secrets, Settings
from tradebot.http.app import create_app
from tradebot.http.appkeys import DB, DELIVERY_WORKER, SYMBOLS


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


@pytest.fixture
async def hooks_client(aiohttp_client: AiohttpClient, settings: Settings, test_secrets: Secrets, clean_db: str,
                       redis_url: str) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    fast = settings.model_copy(update={"notifications_poll_s": 0.02, "webhook_retry_s": 0.2})
    app = create_app(fast, test_secrets, database_url=clean_db, redis_url=redis_url, replica_id="test-replica")
    yield await aiohttp_client(app)


async def _me(client: Client, token: str) -> int:
    r = await client.get("/api/v1/auth/me", headers=bearer(token))
    return int((await r.json())["id"])


async def test_a_webhook_is_created_listed_and_deleted_and_its_secret_is_shown_once(
    hooks_client: Client, receiver: Receiver
) -> None:
    _, token = await user_token(hooks_client)
    created = await add_webhook(hooks_client, token, receiver.url("a"), description="mine")
    assert created["events"] == ["trade", "state", "error"]
    assert created["secret"].startswith("whsec_") and len(created["secret"]) > 30
    assert set(created) == {"id", "url", "events", "description", "secret", "created_at"}
    r = await hooks_client.get(f"/api/v1/webhooks/{created['id']}", headers=bearer(token))
    one = await r.json()
    assert "secret" not in one and one["url"] == receiver.url("a") and one["description"] == "mine"
    listed = await (await hooks_client.get("/api/v1/webhooks", headers=bearer(token))).json()
    assert [h["id"] for h in listed["items"]] == [created["id"]] and "secret" not in listed["items"][0]
    r = await hooks_client.delete(f"/api/v1/webhooks/{created['id']}", headers=bearer(token))
    assert r.status == 204
    await problem(await hooks_client.get(f"/api/v1/webhooks/{created['id']}", headers=bearer(token)), 404)


async def test_bad_webhooks_are_422_naming_the_field_and_a_user_has_at_most_20(hooks_client: Client) -> None:
    _, token = await user_token(hooks_client)
    body = await problem(await hooks_client.post("/api/v1/webhooks", json={"url": "http://x.example/",
                                                                            "events": ["trade", "trades"]},
                                                 headers=bearer(token)), 422)
    assert [e["field"] for e in body["errors"]] == ["events"]
    for url in ("ftp://x.example/", "not a url", "http:///nohost"):
        body = await problem(await hooks_client.post("/api/v1/webhooks", json={"url": url}, headers=bearer(token)),
                             422)
        assert [e["field"] for e in body["errors"]] == ["url"], url
    for i in range(20):
        await add_webhook(hooks_client, token, f"http://hooks.example/{i}")
    await problem(await hooks_client.post("/api/v1/webhooks", json={"url": "http://hooks.example/21"},
                                          headers=bearer(token)), 409)
    count = await hooks_client.app[DB].fetchval("SELECT count(*) FROM webhooks")
    assert count == 20


async def test_another_users_webhooks_and_deliveries_are_never_reachable(
    hooks_client: Client, receiver: Receiver
) -> None:
    _, owner = await user_token(hooks_client, "owner")
    _, other = await user_token(hooks_client, "other")
    hook = await add_webhook(hooks_client, owner, receiver.url("owned"))
    receiver.secrets["owned"] = hook["secret"]
    r = await hooks_client.post(f"/api/v1/webhooks/{hook['id']}/test", headers=bearer(owner))
    assert r.status == 202
    delivery_id = (await r.json())["delivery_id"]
    base = f"/api/v1/webhooks/{hook['id']}"
    for method, path in (("GET", base), ("DELETE", base), ("POST", base + "/test"), ("GET", base + "/deliveries"),
                         ("POST", f"{base}/deliveries/{delivery_id}/retry")):
        await problem(await hooks_client.request(method, path, headers=bearer(other)), 404)
    listed = await (await hooks_client.get("/api/v1/webhooks", headers=bearer(other))).json()
    assert listed["items"] == []
    # and nothing of it happened: still there, one ping only
    await wait_delivered(hooks_client, owner, hook["id"], 1)
    assert receiver.delivered_ids("owned") == [delivery_id]


async def test_a_ping_is_posted_signed_with_the_contracts_headers_and_body(
    hooks_client: Client, receiver: Receiver
) -> None:
    _, token = await user_token(hooks_client)
    hook = await add_webhook(hooks_client, token, receiver.url("ping"))
    receiver.secrets["ping"] = hook["secret"]
    r = await hooks_client.post(f"/api/v1/webhooks/{hook['id']}/test", headers=bearer(token))
    delivery_id = (await r.json())["delivery_id"]
    [log] = await wait_delivered(hooks_client, token, hook["id"], 1)
    assert log["id"] == delivery_id and log["event"] == "ping" and log["attempts"] == 1
    assert log["last_status_code"] == 204 and log["delivered_at"] is not None
    [got] = receiver.received("ping")
    assert got.signature_ok
    assert got.delivery == str(delivery_id) and got.event == "ping"
    assert set(got.body) == {"id", "event", "created_at", "bot_id", "data"}
    assert got.body["id"] == delivery_id and got.body["event"] == "ping" and got.body["bot_id"] is None
    # a wrong secret would not verify: the check is real
    receiver.secrets["ping"] = "whsec_wrong"
    await hooks_client.post(f"/api/v1/webhooks/{hook['id']}/test", headers=bearer(token))
    await wait_delivered(hooks_client, token, hook["id"], 2)
    assert [r.signature_ok for r in receiver.received("ping")] == [True, False]
    metrics = await (await hooks_client.get("/metrics")).text()
    assert 'tradebot_webhook_attempts_total{outcome="delivered"} 2.0' in metrics


async def test_trades_and_states_of_the_users_bots_arrive_in_order_with_one_id_per_event_and_webhook(
    hooks_client: Client, receiver: Receiver
) -> None:
    pool = hooks_client.app[DB]
    _, token = await user_token(hooks_client)
    user_id = await _me(hooks_client, token)
    everything = await add_webhook(hooks_client, token, receiver.url("all"))
    trades_only = await add_webhook(hooks_client, token, receiver.url("trades"), events=["trade"])
    receiver.secrets.update({"all": everything["secret"], "trades": trades_only["secret"]})
    # Another user's bot trades too: none of it reaches this user's webhooks.
    _, stranger = await user_token(hooks_client, "stranger")
    stranger_bot = await create_bot(pool, await _me(hooks_client, stranger), None, active=False)
    bot = await create_bot(pool, user_id, None, active=False)
    fence = await claim_bot(pool, bot)
    other_fence = await claim_bot(pool, stranger_bot)
    stranger_id = await _me(hooks_client, stranger)
    trade_ids = []
    for i in range(5):
        trade_ids.append(await write_fill(pool, user_id, bot, fence, i + 1, price=100.0 + i))
        await write_fill(pool, stranger_id, stranger_bot, other_fence, i + 1)
    await wait_delivered(hooks_client, token, everything["id"], 10)
    await wait_delivered(hooks_client, token, trades_only["id"], 5)
    got = receiver.received("all")
    assert all(r.signature_ok for r in got)
    assert [r.event for r in got] == ["trade", "state"] * 5
    assert [r.body["data"]["id"] for r in got if r.event == "trade"] == trade_ids
    assert all(r.body["bot_id"] == bot for r in got)
    assert [r.body["data"]["daily_trades_count"] for r in got if r.event == "state"] == [1, 2, 3, 4, 5]
    assert receiver.delivered_ids("all") == sorted(receiver.delivered_ids("all"))
    trades = receiver.received("trades")
    assert [r.event for r in trades] == ["trade"] * 5 and [r.body["data"]["id"] for r in trades] == trade_ids
    # one id per event and webhook: the two webhooks never share one
    assert not set(receiver.delivered_ids("all")) & set(receiver.delivered_ids("trades"))
    # the data is the SSE stream's: the trade object of GET /trades
    listed = await (await hooks_client.get(f"/api/v1/trades?bot_id={bot}", headers=bearer(token))).json()
    newest = {t["id"]: t for t in listed["items"]}
    for r in trades:
        assert r.body["data"] == newest[r.body["data"]["id"]]


async def test_a_5xx_is_retried_with_the_same_id_and_holds_back_the_webhooks_later_deliveries(
    hooks_client: Client, receiver: Receiver
) -> None:
    _, token = await user_token(hooks_client)
    hook = await add_webhook(hooks_client, token, receiver.url("flaky"))
    receiver.secrets["flaky"] = hook["secret"]
    receiver.fail_next = 2
    ids = []
    for _ in range(3):
        r = await hooks_client.post(f"/api/v1/webhooks/{hook['id']}/test", headers=bearer(token))
        ids.append((await r.json())["delivery_id"])
    log = await wait_delivered(hooks_client, token, hook["id"], 3)
    by_id = {d["id"]: d for d in log}
    assert by_id[ids[0]]["attempts"] == 3 and by_id[ids[1]]["attempts"] == 1 and by_id[ids[2]]["attempts"] == 1
    got = receiver.received("flaky")
    # the first one three times (503, 503, 2xx), and nothing after it until it went through
    assert [int(r.delivery) for r in got] == [ids[0], ids[0], ids[0], ids[1], ids[2]]
    assert all(r.signature_ok for r in got)


async def test_a_delivery_fails_after_eight_attempts_and_a_retry_sends_it_again(
    aiohttp_client: AiohttpClient, settings: Settings, test_secrets: Secrets, clean_db: str, redis_url: str,
    receiver: Receiver,
) -> None:
    fast = settings.model_copy(update={"notifications_poll_s": 0.02, "webhook_retry_s": 0.01})
    client = await aiohttp_client(create_app(fast, test_secrets, database_url=clean_db, redis_url=redis_url,
                                             replica_id="test-replica"))
    _, token = await user_token(client)
    hook = await add_webhook(client, token, receiver.url("down"))
    receiver.secrets["down"] = hook["secret"]
    receiver.fail_next = 8
    r = await client.post(f"/api/v1/webhooks/{hook['id']}/test", headers=bearer(token))
    delivery_id = (await r.json())["delivery_id"]

    async def failed() -> dict[str, Any] | None:
        [d] = await deliveries(client, token, hook["id"])
        return d if d["status"] == "failed" else None

    d = await eventually(failed, timeout=30, what="the delivery to fail")
    assert d["attempts"] == 8 and d["last_status_code"] == 503 and d["delivered_at"] is None
    r = await client.post(f"/api/v1/webhooks/{hook['id']}/deliveries/{delivery_id}/retry", headers=bearer(token))
    assert r.status == 202 and (await r.json())["status"] == "pending"
    [d] = await wait_delivered(client, token, hook["id"], 1)
    assert d["attempts"] == 9 and d["last_status_code"] == 204
    assert receiver.delivered_ids("down") == [delivery_id] and len(receiver.received("down")) == 9
    await problem(await client.post(f"/api/v1/webhooks/{hook['id']}/deliveries/{delivery_id}/retry",
                                    headers=bearer(token)), 409)


async def test_a_redirect_is_never_followed(hooks_client: Client, receiver: Receiver) -> None:
    _, token = await user_token(hooks_client)
    hook = await add_webhook(hooks_client, token, receiver.url("moved"))
    receiver.behaviour = "redirect"
    await hooks_client.post(f"/api/v1/webhooks/{hook['id']}/test", headers=bearer(token))

    async def attempted() -> dict[str, Any] | None:
        [d] = await deliveries(hooks_client, token, hook["id"])
        return d if d["attempts"] >= 1 else None

    d = await eventually(attempted, what="an attempt")
    assert d["status"] == "pending" and d["last_status_code"] == 302
    assert receiver.internal_hits == 0


async def test_a_bot_going_to_error_is_an_error_event_once(hooks_client: Client, receiver: Receiver) -> None:
    pool = hooks_client.app[DB]
    _, token = await user_token(hooks_client)
    user_id = await _me(hooks_client, token)
    hook = await add_webhook(hooks_client, token, receiver.url("errors"), events=["error"])
    receiver.secrets["errors"] = hook["secret"]
    bot = await create_bot(pool, user_id, None, active=False)
    fence = await claim_bot(pool, bot)
    await set_status(pool, bot, fence, "running")
    await set_status(pool, bot, fence, "error", "the exchange refused the API key")
    await set_status(pool, bot, fence, "error", "the exchange refused the API key")  # unchanged: no new event
    [d] = await wait_delivered(hooks_client, token, hook["id"], 1)
    assert d["event"] == "error"
    [got] = receiver.received("errors")
    assert got.event == "error" and got.body["data"]["status"] == "error"
    assert got.body["data"]["last_error_message"] == "the exchange refused the API key"


async def test_the_delivery_log_keeps_pending_rows_and_drops_finished_ones_past_the_kept_days(
    hooks_client: Client, receiver: Receiver
) -> None:
    _, token = await user_token(hooks_client)
    hook = await add_webhook(hooks_client, token, receiver.url("old"))
    receiver.fail_next = 10**6  # nothing goes through: the last one stays pending
    ids = [(await (await hooks_client.post(f"/api/v1/webhooks/{hook['id']}/test", headers=bearer(token))).json())
           ["delivery_id"] for _ in range(3)]
    pool = hooks_client.app[DB]
    await pool.execute("UPDATE webhook_deliveries SET status = 'delivered' WHERE id = $1", ids[0])
    await pool.execute("UPDATE webhook_deliveries SET status = 'failed' WHERE id = $1", ids[1])
    await pool.execute("UPDATE webhook_deliveries SET created_at = now() - interval '31 days'")
    await pool.execute("UPDATE notification_events SET created_at = now() - interval '31 days'")
    assert await hooks_client.app[DELIVERY_WORKER].prune() == 2
    assert [d["id"] for d in await deliveries(hooks_client, token, hook["id"])] == [ids[2]]
    assert await pool.fetchval("SELECT count(*) FROM notification_events") == 1


async def test_starting_and_stopping_a_bot_over_the_api_are_state_events(
    aiohttp_client: AiohttpClient, settings: Settings, test_secrets: Secrets, clean_db: str, redis_url: str,
    receiver: Receiver,
) -> None:
    fast = settings.model_copy(update={"notifications_poll_s": 0.02})
    app = create_app(fast, test_secrets, database_url=clean_db, redis_url=redis_url, replica_id="test-replica")
    app[SYMBOLS] = MARKETS
    client = await aiohttp_client(app)
    user = await new_user(client)
    hook = await add_webhook(client, user.token, receiver.url("api"), events=["state"])
    receiver.secrets["api"] = hook["secret"]
    bot = await create_api_bot(client, user)
    assert (await client.post(f"/api/v1/bots/{bot['id']}/start", headers=user.headers)).status == 202
    assert (await client.post(f"/api/v1/bots/{bot['id']}/stop", headers=user.headers)).status == 202
    await wait_delivered(client, user.token, hook["id"], 2)
    got = receiver.received("api")
    assert [r.body["data"]["status"] for r in got] == ["starting", "stopping"]
    assert all(r.signature_ok and r.body["bot_id"] == bot["id"] for r in got)
