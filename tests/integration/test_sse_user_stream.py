"""GET /api/v1/status-stream: every event of all the user's bots on one stream, with exact replay."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis
from aiohttp import web

from tests.integration.auth_helpers import Client, problem
from tests.integration.bots_helpers import MARKETS, SseEvent, SseReader, User, create_bot, new_user
from tradebot.config import Settings
from tradebot.http.appkeys import SYMBOLS
from tradebot.http.sse_frames import Cursor, decode_cursor
from tradebot.runtime.events import BotEvents

URL = "/api/v1/status-stream"


@pytest.fixture
async def app(app: web.Application) -> web.Application:
    app[SYMBOLS] = MARKETS
    return app


@pytest.fixture
async def alice(client: Client) -> User:
    return await new_user(client, "alice")


@pytest.fixture
async def publisher(redis_client: aioredis.Redis, settings: Settings) -> AsyncIterator[BotEvents]:
    events = BotEvents(redis_client, settings.redis_prefix)
    yield events
    await events.close()


async def _open(client: Client, user: User, **headers: str) -> SseReader:
    r = await client.get(URL, headers={**user.headers, **headers})
    assert r.status == 200, await r.text()
    assert r.headers["Content-Type"].startswith("text/event-stream")
    return SseReader(r)


def _cursor(event: SseEvent) -> Cursor:
    cursor = decode_cursor(event.id or "")
    assert cursor is not None, event.id
    return cursor


def _of(event: SseEvent) -> tuple[int, str, dict[str, object]]:
    data = json.loads(event.data)
    return int(data["bot_id"]), event.event or "", data


async def test_a_state_for_every_bot_then_every_bots_live_events(
    client: Client, alice: User, publisher: BotEvents
) -> None:
    bots = [await create_bot(client, alice) for _ in range(3)]
    bob = await new_user(client, "bob")
    bobs = await create_bot(client, bob)
    stream = await _open(client, alice)
    snapshots = [_of(await stream.next()) for _ in bots]
    assert sorted(b for b, _, _ in snapshots) == sorted(b["id"] for b in bots)
    assert all(kind == "state" and data["status"] == "stopped" for _, kind, data in snapshots)

    await publisher.publish(bobs["id"], "state", {"status": "running"})  # not alice's
    await publisher.publish(bots[2]["id"], "trade", {"id": 5, "bot_id": bots[2]["id"], "price": 1.5})
    await publisher.publish(bots[0]["id"], "state", {"status": "running"})
    got = [_of(await stream.next()) for _ in range(2)]
    assert [(b, kind) for b, kind, _ in got] == [(bots[2]["id"], "trade"), (bots[0]["id"], "state")]
    # The state changes made through the API arrive too.
    assert (await client.post(f"/api/v1/bots/{bots[1]['id']}/start", headers=alice.headers)).status == 202
    bot_id, kind, data = _of(await stream.next())
    assert (bot_id, kind, data["status"]) == (bots[1]["id"], "state", "starting")


async def test_a_reconnect_replays_exactly_what_each_bot_missed(
    client: Client, alice: User, publisher: BotEvents
) -> None:
    a, b = (await create_bot(client, alice))["id"], (await create_bot(client, alice))["id"]
    stream = await _open(client, alice)
    for _ in range(2):
        await stream.next()
    await publisher.publish(a, "state", {"n": 1})
    last = await stream.next()
    assert last.id is not None and decode_cursor(last.id) is not None
    stream.response.close()
    missed = []
    for i in range(3):
        missed.append((b, await publisher.publish(b, "state", {"n": 10 + i})))
        missed.append((a, await publisher.publish(a, "trade", {"id": i})))
    for how in ("header", "query"):
        if how == "header":
            again = await _open(client, alice, **{"Last-Event-ID": last.id})
        else:
            r = await client.get(f"{URL}?last_event_id={last.id}", headers=alice.headers)
            assert r.status == 200, await r.text()
            again = SseReader(r)
        replayed = [await again.next() for _ in missed]
        # Per bot, in the bot's order; nothing else (no snapshot in front).
        for bot in (a, b):
            ids = [_cursor(e)[bot] for e in replayed if _of(e)[0] == bot]
            assert [f"{ms}-{seq}" for ms, seq in ids] == [eid for bb, eid in missed if bb == bot]
        live = await publisher.publish(b, "state", {"n": 99})
        nxt = await again.next()
        cursor = decode_cursor(nxt.id or "")
        assert _of(nxt)[0] == b and cursor is not None
        assert f"{cursor[b][0]}-{cursor[b][1]}" == live
        again.response.close()
        missed = []
        last = nxt


async def test_a_bot_the_cursor_does_not_place_gets_a_fresh_state(
    client: Client, alice: User, publisher: BotEvents
) -> None:
    a = (await create_bot(client, alice))["id"]
    stream = await _open(client, alice)
    first = await stream.next()
    stream.response.close()
    b = (await create_bot(client, alice))["id"]  # created after: not in the cursor
    missed = await publisher.publish(a, "state", {"n": 1})
    again = await _open(client, alice, **{"Last-Event-ID": first.id or ""})
    got = [_of(await again.next()) for _ in range(2)]
    assert (b, "state") in [(bot, kind) for bot, kind, _ in got]
    assert (a, "state") in [(bot, kind) for bot, kind, _ in got]
    assert next(d for bot, _, d in got if bot == a) == {"n": 1, "bot_id": a}
    assert missed


@pytest.mark.parametrize("cursor", ["garbage", "1-0", "5:99999999999999999999-0", "1:1-0,1:2-0", ",", "x:1-0"])
async def test_a_cursor_that_is_not_one_gets_fresh_states(client: Client, alice: User, cursor: str) -> None:
    bots = [await create_bot(client, alice) for _ in range(2)]
    stream = await _open(client, alice, **{"Last-Event-ID": cursor})
    got = [_of(await stream.next()) for _ in bots]
    assert sorted(b for b, _, _ in got) == sorted(b["id"] for b in bots)


async def test_logout_ends_the_combined_stream_and_it_is_in_the_openapi_document(
    client: Client, alice: User
) -> None:
    await create_bot(client, alice)
    stream = await _open(client, alice)
    await stream.next()
    assert (await client.post("/api/v1/auth/logout", headers=alice.headers)).status == 204
    assert await stream.at_end(timeout=3)
    await problem(await client.get(URL, headers=alice.headers), 401)
    doc = await (await client.get("/api/openapi.json")).json()
    assert "get" in doc["paths"]["/api/v1/status-stream"]
