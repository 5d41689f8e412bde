"""GET /api/v1/bots/{id}/status-stream: a bot's state and trade events as Server-Sent Events.

Order of work on connect, so that nothing falls between the cracks:
1. listen to live events first (from now on nothing published is missed),
2. read the event log's window (oldest and newest id), then the state from the database (the
   runtime writes the row before it publishes, so the state includes every change up to the newest id),
3. with a Last-Event-ID the log still covers: replay exactly the events after it (CONTRACT);
   otherwise (a fresh stream, or an id the log no longer covers): send the state as a `state` event
   with the newest id ("0-0" before the bot's first event, so a reconnect replays from the start),
4. relay live events, skipping any already sent (ids are Redis stream ids, ordered).
Every event carries an id, so a reconnect can always say where it stopped.
A comment heartbeat keeps proxies from closing an idle stream; an overflowing listener (a client
too slow to keep up) ends the stream, and the client's reconnect replays from its last id.
Every stream (this one and the user's combined one, sse_user_routes) goes through `open_stream`: it
ends when its token stops being valid (stream_registry) and holds one of its user's slots
(stream_slots).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Coroutine
from typing import Any, Protocol

import redis.asyncio as aioredis
from aiohttp import web
from aiohttp_sse import EventSourceResponse, sse_response

from tradebot import jsonutil
from tradebot.http.appkeys import BOT_EVENTS, BOTS, OPEN_STREAMS, PRINCIPAL, SETTINGS, STREAM_REGISTRY, STREAM_SLOTS
from tradebot.http.bot_routes import PREFIX, TAGS, bot_id_of
from tradebot.http.bot_schemas import StreamQuery
from tradebot.http.problems import Problem, unauthorized
from tradebot.http.request_body import parse_query
from tradebot.http.routing import RouteTable
from tradebot.http.sse_frames import EventKey, FrameCache, event_key
from tradebot.http.stream_registry import StreamHandle
from tradebot.runtime.events import BotEvent, EventWindow, ListenerOverflow
from tradebot.runtime.tasks import cancel_and_wait
from tradebot.security.redis_guard import REDIS_ERRORS

log = logging.getLogger(__name__)

# The id of a snapshot taken before the bot's first event: a reconnect with it replays every event.
EMPTY_LOG_ID = "0-0"
# A user at the stream cap waits for one of their streams to close: no sooner than a person would.
RETRY_AFTER_FULL_S = 5

routes = RouteTable()


class Listener(Protocol):
    """What BotEvents.listen yields."""

    async def next(self) -> BotEvent: ...


@routes.route(
    "GET",
    PREFIX + "/{id}/status-stream",
    summary="Live state and trade events (Server-Sent Events)",
    description="Events `state` and `trade` carry JSON data and an `id`; a comment heartbeat arrives "
    "periodically. Send `Last-Event-ID` (or `?last_event_id=`) to replay what was missed. Browsers' "
    "EventSource may pass the token as `?access_token=`.",
    query=StreamQuery,
    responses={200: "text/event-stream"},
    errors=(429, 503),
    query_token=True,
    tags=TAGS,
)
async def bot_status_stream(request: web.Request) -> web.StreamResponse:
    bot_id = bot_id_of(request)
    query = parse_query(request, StreamQuery)
    # An id that is not one of this stream's (a proxy's, another server's) is no id at all: the client
    # then gets a fresh snapshot.
    last_seen = next((i for i in (request.headers.get("Last-Event-ID"), query.last_event_id)
                      if i is not None and event_key(i) is not None), None)
    async with open_stream(request) as handle:
        return await _serve(request, bot_id, last_seen, handle)


@contextlib.asynccontextmanager
async def open_stream(request: web.Request) -> AsyncIterator[StreamHandle]:
    """The rules every stream obeys: registered with its token (it ends when the token stops being
    valid) and holding one of its user's stream slots (429 beyond the cap)."""
    principal = request[PRINCIPAL]
    registry = request.app[STREAM_REGISTRY]
    # Registered before anything is awaited, so no announcement about this token can fall between
    # its check (the authenticator's, just now) and this stream's.
    handle = registry.add(principal.user_id, principal.token_id, principal.token_version,
                          principal.token_accepted_until)
    try:
        slots = request.app[STREAM_SLOTS]
        try:
            slot = await slots.acquire(principal.user_id)
        except REDIS_ERRORS as e:
            raise Problem(503, "live events are unavailable right now", headers={"Retry-After": "2"}) from e
        if slot is None:
            raise Problem(429, f"at most {slots.cap} live streams may be open at once; close one first",
                          headers={"Retry-After": str(RETRY_AFTER_FULL_S)})
        try:
            yield handle
        finally:
            await slots.release(slot)
    finally:
        registry.discard(handle)


async def _serve(request: web.Request, bot_id: int, last_seen: str | None, handle: StreamHandle) -> web.StreamResponse:
    events = request.app[BOT_EVENTS]
    streams = request.app[OPEN_STREAMS]
    async with events.listen(bot_id) as listener:
        try:
            async with streams.connect_slots:
                window, replayed = await events.window(bot_id, replay_after=last_seen)
                state = await request.app[BOTS].state(request[PRINCIPAL].user_id, bot_id)
                missed = replayed if last_seen is not None and _replayable(last_seen, window) else None
        except (OSError, aioredis.RedisError) as e:
            # Without the event log there is no id to hand out and nothing to replay: the client
            # retries (EventSource does so by itself) instead of getting a stream with a hole.
            raise Problem(503, "live events are unavailable right now", headers={"Retry-After": "2"}) from e
        if streams.closing:
            raise Problem(503, "this replica is shutting down", headers={"Retry-After": "1"})
        if handle.ended.is_set():
            raise unauthorized("invalid, expired or revoked token")
        async with sse_response(request, ping_interval=request.app[SETTINGS].sse_heartbeat_s) as resp:
            streams.add(resp)
            try:
                sent: EventKey | None
                if missed is None:
                    newest = window.newest or EMPTY_LOG_ID
                    await resp.send(jsonutil.dumps(state).decode(), event="state", id=newest)
                    sent = event_key(newest)
                else:
                    assert last_seen is not None
                    sent = event_key(last_seen)
                    for event in missed:
                        key, frame = streams.frames.get(event)
                        await write(resp, frame)
                        sent = _later(sent, key)
                await relay(resp, _pump(resp, listener, streams.frames, sent), handle)
            except (ConnectionResetError, TimeoutError):
                pass  # the client went away; nothing to tell it
            finally:
                streams.discard(resp)
    return resp


async def relay(resp: EventSourceResponse, pumping: Coroutine[Any, Any, None], handle: StreamHandle) -> None:
    """Send live events (`pumping` does) until the client leaves, the app shuts down, the listener
    overflows or the token stops being valid."""
    closed = asyncio.create_task(resp.wait(), name="sse-closed")  # ping task ends: shutdown or client gone
    pump = asyncio.create_task(pumping, name="sse-pump")
    ended = asyncio.create_task(handle.ended.wait(), name="sse-token-ended")
    try:
        await asyncio.wait((closed, pump, ended), return_when=asyncio.FIRST_COMPLETED)
    finally:
        await cancel_and_wait((closed, pump, ended), timeout=1.0)
    if handle.ended.is_set():
        # The client's EventSource reconnects with the same token and is refused (401), as it must be.
        log.info("SSE stream ended: its token is no longer valid", extra={"reason": handle.reason})


async def _pump(
    resp: EventSourceResponse, listener: Listener, frames: FrameCache, sent: EventKey | None
) -> None:
    with contextlib.suppress(ConnectionResetError, TimeoutError):
        while True:
            try:
                event = await listener.next()
            except ListenerOverflow:
                log.info("SSE client fell behind; closing its stream so that it reconnects and replays")
                return
            key, frame = frames.get(event)
            if key is None or (sent is not None and key <= sent):
                continue  # published before the snapshot or the replay, which covered it
            await write(resp, frame)
            sent = key


async def write(resp: EventSourceResponse, frame: bytes) -> None:
    # resp.send() would encode the frame again for every stream; the frame is shared instead. A
    # peer that stops reading is cut by TCP_USER_TIMEOUT (aiohttp-sse sets it at prepare) and, well
    # before, by its listener overflowing; a write to a closed stream raises ConnectionResetError.
    await resp.write(frame)


def _replayable(last_seen: str, window: EventWindow) -> bool:
    seen = event_key(last_seen)
    return seen is not None and replayable(seen, window)


def replayable(seen: EventKey, window: EventWindow) -> bool:
    """Every event after `seen` is still in the log, so replaying them is all the client needs."""
    newest = event_key(window.newest or EMPTY_LOG_ID)
    if newest is None or seen > newest:
        return False  # not an id of this log (made up, or from before Redis lost it)
    oldest = event_key(window.oldest) if window.oldest is not None else None
    if oldest is not None and oldest <= seen:
        return True
    # Older than everything kept: complete only for a snapshot taken before the first event, and
    # only while nothing was trimmed since.
    return seen == (0, 0) and not window.trimmed


def _later(sent: EventKey | None, key: EventKey | None) -> EventKey | None:
    if key is None:
        return sent
    return key if sent is None or key > sent else sent
