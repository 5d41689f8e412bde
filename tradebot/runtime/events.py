"""Bot events (state changes, trades) from whichever replica runs a bot to every SSE client.

Each event is appended to a short per-bot Redis stream (its entry id is the SSE event id, so a
client's Last-Event-ID replays exactly what it missed) and announced on one pub/sub channel. Each
replica holds a single pub/sub connection and fans events out to its local listeners, so two
thousand SSE clients cost two thousand in-memory queues, not two thousand Redis connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import redis.asyncio as aioredis

from tradebot import jsonutil
from tradebot.runtime.pubsub_listener import PubSubListener
from tradebot.runtime.tasks import cancel_and_wait

log = logging.getLogger(__name__)

STREAM_MAXLEN = 1000  # events kept per bot for Last-Event-ID replay
LISTENER_QUEUE = 256  # a listener this far behind is dropped; its client reconnects and replays
# How long `listen` waits for the replica's subscription to be confirmed before going on without it
# (Redis away: the stream then serves its snapshot and replay, and live events once it is back).
SUBSCRIBE_WAIT_S = 2.0


@dataclass(frozen=True, slots=True)
class EventWindow:
    oldest: str | None
    newest: str | None
    length: int

    @property
    def trimmed(self) -> bool:
        """Older events may have been dropped (XADD trims to about STREAM_MAXLEN)."""
        return self.length >= STREAM_MAXLEN


def _after(event_id: str | None) -> str:
    return f"({event_id}" if event_id else "-"


def _first_id(entries: Any) -> str | None:
    if not entries:
        return None
    raw_id = entries[0][0]
    return raw_id.decode() if isinstance(raw_id, bytes) else str(raw_id)


@dataclass(frozen=True, slots=True)
class BotEvent:
    id: str
    bot_id: int
    event: str  # "state" | "trade"
    data: dict[str, Any]


class ListenerOverflow(Exception):
    """The listener fell too far behind; its client should reconnect with Last-Event-ID."""


class _Listener:
    __slots__ = ("overflowed", "queue")

    def __init__(self) -> None:
        self.queue: asyncio.Queue[BotEvent] = asyncio.Queue(LISTENER_QUEUE)
        self.overflowed = False

    def offer(self, event: BotEvent) -> None:
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.overflowed = True

    async def next(self) -> BotEvent:
        if self.overflowed and self.queue.empty():
            raise ListenerOverflow
        return await self.queue.get()


class SubscriptionWatcher(Protocol):
    """Told when the replica's subscription is confirmed (again) and when it is lost: whatever was
    published in between never arrives, so a watcher that must not miss anything re-checks then."""

    def subscription_up(self) -> None: ...

    def subscription_down(self) -> None: ...


class BotEvents:
    def __init__(self, redis: aioredis.Redis, prefix: str) -> None:
        self._redis = redis
        self._prefix = prefix
        self._listeners: dict[int, set[_Listener]] = defaultdict(set)
        self._task: asyncio.Task[None] | None = None
        self._closed = asyncio.Event()
        # Set while Redis has confirmed the subscription: only then is no published event missed.
        self._subscribed = asyncio.Event()
        # Other channels that ride on this one connection (each replica holds a single pub/sub
        # connection), with their handlers; registered before the first listener.
        self._extra: dict[str, Callable[[bytes | str], None]] = {}
        self._watchers: list[SubscriptionWatcher] = []

    def also_relay(self, channel: str, handler: Callable[[bytes | str], None], watcher: SubscriptionWatcher) -> None:
        """Deliver `channel`'s messages to `handler` over this replica's subscription. The handler
        runs on the dispatcher's task: it must not block or raise."""
        if self._task is not None:
            raise RuntimeError("channels are added before the subscription starts")
        self._extra[channel] = handler
        self._watchers.append(watcher)

    def start(self) -> None:
        """Subscribe now rather than at the first listener (a relayed channel may need it at once)."""
        self._ensure_dispatcher()

    @property
    def channel(self) -> str:
        return f"{self._prefix}:bot-events"

    def stream_key(self, bot_id: int) -> str:
        return f"{self._prefix}:bot-events:{bot_id}"

    async def publish(self, bot_id: int, event: str, data: dict[str, Any]) -> str:
        """Append to the bot's stream, then announce; returns the event id."""
        payload = jsonutil.dumps(data)
        event_id = await self._redis.xadd(
            self.stream_key(bot_id), {"event": event, "data": payload}, maxlen=STREAM_MAXLEN, approximate=True
        )
        eid = event_id.decode() if isinstance(event_id, bytes) else str(event_id)
        await self._redis.publish(
            self.channel, jsonutil.dumps({"id": eid, "bot_id": bot_id, "event": event, "data": data})
        )
        return eid

    async def replay(self, bot_id: int, after_id: str | None) -> list[BotEvent]:
        """Every kept event after `after_id` (exclusive); all kept events when None."""
        return self._events(bot_id, await self._redis.xrange(self.stream_key(bot_id), min=_after(after_id), max="+"))

    async def window(self, bot_id: int, *, replay_after: str | None = None) -> tuple[EventWindow, list[BotEvent]]:
        """The oldest and newest kept event ids and how many are kept, and (with `replay_after`) every
        kept event after that id, all read at one instant: a trim cannot fall between them."""
        return (await self.windows({bot_id: replay_after}))[bot_id]

    async def windows(
        self, replay_after: Mapping[int, str | None]
    ) -> dict[int, tuple[EventWindow, list[BotEvent]]]:
        """`window` of several bots, all in one transaction (one round trip)."""
        bots = list(replay_after)
        async with self._redis.pipeline(transaction=True) as pipe:
            for bot_id in bots:
                key = self.stream_key(bot_id)
                pipe.xrange(key, count=1)
                pipe.xrevrange(key, count=1)
                pipe.xlen(key)
                if replay_after[bot_id] is not None:
                    pipe.xrange(key, min=_after(replay_after[bot_id]), max="+")
            results = iter(await pipe.execute() if bots else [])
        out = {}
        for bot_id in bots:
            first, last, length = next(results), next(results), next(results)
            replayed = self._events(bot_id, next(results)) if replay_after[bot_id] is not None else []
            out[bot_id] = (EventWindow(_first_id(first), _first_id(last), int(length)), replayed)
        return out

    @staticmethod
    def _events(bot_id: int, raw: Any) -> list[BotEvent]:
        out = []
        for raw_id, fields in list(raw or []):
            eid = raw_id.decode() if isinstance(raw_id, bytes) else str(raw_id)
            out.append(BotEvent(eid, bot_id, _text(fields["event"]), jsonutil.loads(fields["data"])))
        return out

    @contextlib.asynccontextmanager
    async def listen(self, *bot_ids: int) -> AsyncIterator[_Listener]:
        """Live events of these bots on this replica, in arrival order, from the moment of entry."""
        self._ensure_dispatcher()
        listener = _Listener()
        for bot_id in bot_ids:
            self._listeners[bot_id].add(listener)
        try:
            if not self._subscribed.is_set():
                # The first listener starts the subscription; an event published before Redis has
                # confirmed it would be lost, and a snapshot taken now would not cover it.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(SUBSCRIBE_WAIT_S):
                        await self._subscribed.wait()
            yield listener
        finally:
            for bot_id in bot_ids:
                group = self._listeners.get(bot_id)
                if group is not None:
                    group.discard(listener)
                    if not group:
                        del self._listeners[bot_id]

    def listener_count(self) -> int:
        return sum(len(g) for g in self._listeners.values())

    def _ensure_dispatcher(self) -> None:
        if self._closed.is_set():
            return
        if self._task is None or self._task.done():
            listener = PubSubListener(self._redis, (self.channel, *self._extra), self._dispatch,
                                      name="bot-events", on_up=self._up, on_down=self._down)
            self._task = asyncio.create_task(listener.run(), name="bot-events-dispatcher")

    def _dispatch(self, channel: str, data: bytes | str) -> None:
        """One pub/sub connection per replica (the shared listener reconnects it until closed)."""
        handler = self._extra.get(channel)
        if handler is None:
            self._fan_out(data)
        else:
            handler(data)

    def _up(self) -> None:
        self._subscribed.set()  # Redis has processed the SUBSCRIBE of every channel
        self._tell_watchers(up=True)

    def _down(self) -> None:
        self._subscribed.clear()
        self._tell_watchers(up=False)

    def _tell_watchers(self, *, up: bool) -> None:
        for watcher in self._watchers:
            try:
                watcher.subscription_up() if up else watcher.subscription_down()
            except Exception:  # one watcher's bug must not take the event relay down
                log.exception("subscription watcher failed")

    def _fan_out(self, raw: bytes | str) -> None:
        try:
            msg = jsonutil.loads(raw)
            event = BotEvent(str(msg["id"]), int(msg["bot_id"]), str(msg["event"]), dict(msg["data"]))
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring a malformed bot event")
            return
        for listener in tuple(self._listeners.get(event.bot_id, ())):
            listener.offer(event)

    async def close(self) -> None:
        self._closed.set()
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
