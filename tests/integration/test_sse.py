"""GET /bots/{id}/status-stream: snapshot, live relay, Last-Event-ID replay, heartbeat, shutdown."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import cast

import pytest
import redis.asyncio as aioredis
from aiohttp import web

from tests.integration.auth_helpers import Client, problem
from tests.integration.bots_helpers import MARKETS, SseReader, User, create_bot, new_user
from tradebot.config import Settings
from tradebot.http.appkeys import BOT_EVENTS, OPEN_STREAMS, SYMBOLS
from tradebot.runtime.events import LISTENER_QUEUE, STREAM_MAXLEN, BotEvents

HEARTBEAT_S = 0.3


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"sse_heartbeat_s": HEARTBEAT_S})


@pytest.fixture
async def app(app: web.Application) -> web.Application:
    app[SYMBOLS] = MARKETS
    return app


@pytest.fixture
async def alice(client: Client) -> User:
    return await new_user(client, "alice")


@pytest.fixture
async def publisher(redis_client: aioredis.Redis, settings: Settings) -> AsyncIterator[BotEvents]:
    """Events published the way the runtime on any replica publishes them."""
    events = BotEvents(redis_client, settings.redis_prefix)
    yield events
    await events.close()


async def open_stream(client: Client, user: User, bot_id: int, **headers: str) -> SseReader:
    r = await client.get(f"/api/v1/bots/{bot_id}/status-stream", headers={**user.headers, **headers})
    assert r.status == 200, await r.text()
    assert r.headers["Content-Type"].startswith("text/event-stream")
    return SseReader(r)


async def wait_listening(app: web.Application, count: int = 1) -> None:
    """The handler listens before it sends the snapshot, so one read event means it is listening."""
    deadline = time.monotonic() + 3
    while app[BOT_EVENTS].listener_count() < count:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)


async def test_snapshot_then_live_events_in_order(
    client: Client, alice: User, publisher: BotEvents
) -> None:
    bot = await create_bot(client, alice)
    stream = await open_stream(client, alice, bot["id"])
    first = await stream.next()
    assert first.event == "state"
    assert json.loads(first.data) == bot["state"]
    assert first.id == "0-0"  # nothing was ever published for this bot: a reconnect replays from the start

    ids = []
    for i in range(5):
        ids.append(await publisher.publish(bot["id"], "state", {"status": "running", "daily_trades_count": i}))
    ids.append(await publisher.publish(bot["id"], "trade", {"id": 1, "side": "buy", "price": 101.5}))
    got = [await stream.next() for _ in range(6)]
    assert [e.id for e in got] == ids
    assert [e.event for e in got] == ["state"] * 5 + ["trade"]
    assert [json.loads(e.data).get("daily_trades_count") for e in got[:5]] == list(range(5))
    assert json.loads(got[5].data) == {"id": 1, "side": "buy", "price": 101.5}


async def test_api_state_changes_reach_the_stream(client: Client, alice: User) -> None:
    bot = await create_bot(client, alice)
    stream = await open_stream(client, alice, bot["id"])
    assert json.loads((await stream.next()).data)["status"] == "stopped"
    assert (await client.post(f"/api/v1/bots/{bot['id']}/start", headers=alice.headers)).status == 202
    event = await stream.next()
    assert event.event == "state" and event.id is not None
    assert json.loads(event.data)["status"] == "starting"
    assert (await client.post(f"/api/v1/bots/{bot['id']}/stop", headers=alice.headers)).status == 202
    assert json.loads((await stream.next()).data)["status"] == "stopping"


async def test_other_bots_events_are_not_relayed(client: Client, alice: User, publisher: BotEvents) -> None:
    bot = await create_bot(client, alice)
    other = await create_bot(client, alice)
    stream = await open_stream(client, alice, bot["id"])
    await stream.next()
    await publisher.publish(other["id"], "state", {"status": "running"})
    mine = await publisher.publish(bot["id"], "state", {"status": "paused"})
    event = await stream.next()
    assert event.id == mine


async def test_a_fresh_connection_gets_the_newest_id_and_no_replay(
    client: Client, alice: User, publisher: BotEvents
) -> None:
    bot = await create_bot(client, alice)
    earlier = [await publisher.publish(bot["id"], "state", {"status": "running", "n": i}) for i in range(3)]
    stream = await open_stream(client, alice, bot["id"])
    snapshot = await stream.next()
    assert snapshot.event == "state" and snapshot.id == earlier[-1]
    later = await publisher.publish(bot["id"], "trade", {"id": 7})
    event = await stream.next()
    assert (event.id, event.event) == (later, "trade")


@pytest.mark.parametrize("how", ["header", "query"])
async def test_last_event_id_replays_exactly_the_missed_events(
    client: Client, alice: User, publisher: BotEvents, how: str
) -> None:
    bot = await create_bot(client, alice)
    ids = [await publisher.publish(bot["id"], "state", {"status": "running", "n": i}) for i in range(6)]
    ids.append(await publisher.publish(bot["id"], "trade", {"id": 99}))
    seen = ids[2]
    if how == "header":
        stream = await open_stream(client, alice, bot["id"], **{"Last-Event-ID": seen})
    else:
        r = await client.get(f"/api/v1/bots/{bot['id']}/status-stream?last_event_id={seen}", headers=alice.headers)
        assert r.status == 200
        stream = SseReader(r)
    # Exactly the missed events: no snapshot in front of them.
    replayed = [await stream.next() for _ in range(4)]
    assert [e.id for e in replayed] == ids[3:]
    assert [json.loads(e.data).get("n") for e in replayed] == [3, 4, 5, None]
    assert replayed[-1].event == "trade"
    # Then live, with nothing repeated.
    live = await publisher.publish(bot["id"], "state", {"status": "stopping"})
    assert (await stream.next()).id == live


async def test_reconnect_after_a_drop_replays_what_was_missed(
    client: Client, alice: User, publisher: BotEvents
) -> None:
    bot = await create_bot(client, alice)
    stream = await open_stream(client, alice, bot["id"])
    await stream.next()
    last = await publisher.publish(bot["id"], "state", {"status": "running", "n": 0})
    assert (await stream.next()).id == last
    stream.response.close()
    missed = [await publisher.publish(bot["id"], "state", {"status": "running", "n": i}) for i in (1, 2)]
    again = await open_stream(client, alice, bot["id"], **{"Last-Event-ID": last})
    assert [(await again.next()).id for _ in missed] == missed


async def test_reconnect_from_the_first_snapshot_replays_every_event(
    client: Client, alice: User, publisher: BotEvents
) -> None:
    bot = await create_bot(client, alice)
    stream = await open_stream(client, alice, bot["id"])
    assert (await stream.next()).id == "0-0"
    stream.response.close()
    missed = [await publisher.publish(bot["id"], "state", {"status": "running", "n": i}) for i in range(3)]
    again = await open_stream(client, alice, bot["id"], **{"Last-Event-ID": "0-0"})
    assert [(await again.next()).id for _ in missed] == missed


@pytest.mark.parametrize("last_seen", [
    "abc", "99999999999999-0", "1-0", "1-99999999999999999999", "99999999999999999999-0",
    "18446744073709551616", "-1", "-1-0", "1--1", " 1-0", "1-0\u00e9", "0x10-0",
])
async def test_an_id_the_log_cannot_place_gets_a_fresh_snapshot(
    client: Client, alice: User, publisher: BotEvents, last_seen: str
) -> None:
    """Made up, from the future, or older than the log (Redis lost it): the state, with the newest id."""
    bot = await create_bot(client, alice)
    newest = [await publisher.publish(bot["id"], "state", {"status": "running", "n": i}) for i in range(2)][-1]
    stream = await open_stream(client, alice, bot["id"], **{"Last-Event-ID": last_seen})
    snapshot = await stream.next()
    assert (snapshot.event, snapshot.id) == ("state", newest)
    assert json.loads(snapshot.data)["status"] == "stopped"  # the database's state (the publisher is a test's)
    live = await publisher.publish(bot["id"], "trade", {"id": 3})
    assert (await stream.next()).id == live


async def test_a_replay_from_deep_in_a_full_log_sends_every_missed_event(
    client: Client, alice: User, publisher: BotEvents, redis_client: aioredis.Redis
) -> None:
    bot = await create_bot(client, alice)
    ids = [await publisher.publish(bot["id"], "state", {"n": i}) for i in range(STREAM_MAXLEN + 150)]
    entries = await redis_client.xrange(publisher.stream_key(bot["id"]))
    assert entries is not None
    kept = [cast(str, eid) for eid, _ in entries]  # the client decodes responses: ids are str
    assert len(kept) > STREAM_MAXLEN  # trimmed approximately: more than STREAM_MAXLEN remain
    seen = kept[3]
    stream = await open_stream(client, alice, bot["id"], **{"Last-Event-ID": seen})
    missed = ids[ids.index(seen) + 1:]
    got = [await stream.next() for _ in missed]
    assert [e.id for e in got] == missed


@pytest.mark.parametrize("last_seen", ["1-99999999999999999999", "99999999999999999999", "18446744073709551615-1"])
async def test_a_query_id_with_numbers_redis_cannot_hold_gets_a_fresh_snapshot(
    client: Client, alice: User, publisher: BotEvents, last_seen: str
) -> None:
    """Well formed but beyond Redis's 64-bit stream ids: not a 503 while Redis is healthy."""
    bot = await create_bot(client, alice)
    newest = await publisher.publish(bot["id"], "state", {"status": "running"})
    r = await client.get(f"/api/v1/bots/{bot['id']}/status-stream?last_event_id={last_seen}", headers=alice.headers)
    assert r.status == 200, await r.text()
    snapshot = await SseReader(r).next()
    assert (snapshot.event, snapshot.id) == ("state", newest)


async def test_a_malformed_header_does_not_hide_a_good_query_id(
    client: Client, alice: User, publisher: BotEvents
) -> None:
    bot = await create_bot(client, alice)
    ids = [await publisher.publish(bot["id"], "state", {"n": i}) for i in range(3)]
    r = await client.get(f"/api/v1/bots/{bot['id']}/status-stream?last_event_id={ids[0]}",
                         headers={**alice.headers, "Last-Event-ID": "garbage"})
    assert r.status == 200
    stream = SseReader(r)
    assert [(await stream.next()).id for _ in ids[1:]] == ids[1:]


async def test_an_id_trimmed_from_the_log_gets_a_fresh_snapshot(
    client: Client, alice: User, publisher: BotEvents
) -> None:
    bot = await create_bot(client, alice)
    first = await publisher.publish(bot["id"], "state", {"n": 0})
    for i in range(STREAM_MAXLEN + 200):
        newest = await publisher.publish(bot["id"], "state", {"n": i + 1})
    stream = await open_stream(client, alice, bot["id"], **{"Last-Event-ID": first})
    snapshot = await stream.next()
    assert (snapshot.event, snapshot.id) == ("state", newest)


async def test_heartbeat_comments_arrive(client: Client, alice: User) -> None:
    bot = await create_bot(client, alice)
    stream = await open_stream(client, alice, bot["id"])
    await stream.next()
    started = time.monotonic()
    assert await stream.wait_comment(timeout=HEARTBEAT_S * 10) == "ping"
    assert time.monotonic() - started < HEARTBEAT_S * 5


async def test_access_token_in_the_query_for_eventsource(client: Client, alice: User) -> None:
    bot = await create_bot(client, alice)
    r = await client.get(f"/api/v1/bots/{bot['id']}/status-stream?access_token={alice.token}")
    assert r.status == 200
    assert (await SseReader(r).next()).event == "state"
    r.close()
    await problem(await client.get(f"/api/v1/bots/{bot['id']}/status-stream?access_token=nope"), 401)
    await problem(await client.get(f"/api/v1/bots/{bot['id']}/status-stream?access_token="), 401)


@pytest.mark.parametrize("last_seen", ["-1", "-1-0", "1--1", "abc", "1-0x", "%00", "1-0%0a", "9" * 21])
async def test_a_malformed_last_event_id_query_names_the_field(client: Client, alice: User, last_seen: str) -> None:
    bot = await create_bot(client, alice)
    url = f"/api/v1/bots/{bot['id']}/status-stream?last_event_id={last_seen}"
    body = await problem(await client.get(url, headers=alice.headers), 422)
    assert body["errors"][0]["field"] == "last_event_id"


async def test_a_malformed_last_event_id_query_is_422(client: Client, alice: User) -> None:
    bot = await create_bot(client, alice)
    url = f"/api/v1/bots/{bot['id']}/status-stream"
    body = await problem(await client.get(f"{url}?last_event_id=1-2-3", headers=alice.headers), 422)
    assert body["errors"][0]["field"] == "last_event_id"


async def test_a_deleted_bots_stream_is_404(client: Client, alice: User) -> None:
    bot = await create_bot(client, alice)
    assert (await client.delete(f"/api/v1/bots/{bot['id']}", headers=alice.headers)).status == 204
    await problem(await client.get(f"/api/v1/bots/{bot['id']}/status-stream", headers=alice.headers), 404)


async def test_a_listener_that_falls_behind_is_closed_so_it_replays(
    client: Client, app: web.Application, alice: User
) -> None:
    bot = await create_bot(client, alice)
    stream = await open_stream(client, alice, bot["id"])
    await stream.next()
    await wait_listening(app)
    # Deliver more than a listener holds without yielding to the loop: its queue overflows.
    events = app[BOT_EVENTS]
    for i in range(LISTENER_QUEUE + 10):
        raw = json.dumps({"id": f"{10**12 + i}-0", "bot_id": bot["id"], "event": "state", "data": {"n": i}})
        events._fan_out(raw)
    received = 0
    with pytest.raises(EOFError):
        while True:
            await stream.next()
            received += 1
    assert received == LISTENER_QUEUE
    assert len(app[OPEN_STREAMS]) == 0


async def test_streams_close_promptly_on_shutdown(client: Client, app: web.Application, alice: User) -> None:
    bots = [await create_bot(client, alice) for _ in range(3)]
    streams = [await open_stream(client, alice, b["id"]) for b in bots]
    for s in streams:
        await s.next()
    assert len(app[OPEN_STREAMS]) == 3
    started = time.monotonic()
    await client.server.close()
    # The server did not wait for the streams: they ended cleanly, and quickly.
    assert time.monotonic() - started < 2.0
    for s in streams:
        assert await s.at_end(timeout=2)
    assert len(app[OPEN_STREAMS]) == 0
