"""The one Redis pub/sub listener: a fixed set of channels on one connection, reconnecting forever.

- Every message of a subscribed channel goes to `on_message(channel, data)`, in order, on the
  listener's task; a handler's exception is logged and the next message is read (one malformed
  message must not take a replica's relay down).
- `on_up()` runs once Redis has confirmed the SUBSCRIBE of every channel (a message published
  before that would be lost), `on_down()` when that connection is gone; each at most once per
  connection, so an owner can tell its users "events may have been missed" exactly when they were.
- A lost connection is retried after a full-jitter backoff (`tradebot.backoff`), reset once a
  subscription is confirmed, so replicas that lost Redis together do not come back in lockstep.
- Cancellation always ends it: redis-py can turn a cancellation that lands mid-read into a
  connection error, which would otherwise look like an outage and keep the loop alive while its
  owner waits for it in vain; the pubsub connection is closed on every way out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import redis.asyncio as aioredis

from tradebot.backoff import Backoff, Retrier, Rng
from tradebot.runtime.tasks import reraise_if_cancelling

log = logging.getLogger(__name__)

MessageHandler = Callable[[str, bytes | str], None]
DEFAULT_BACKOFF = Backoff(base=0.1, cap=5.0)


def _nothing() -> None:
    return None


class PubSubListener:
    def __init__(
        self,
        redis: aioredis.Redis,
        channels: Sequence[str],
        on_message: MessageHandler,
        *,
        name: str,
        on_up: Callable[[], None] = _nothing,
        on_down: Callable[[], None] = _nothing,
        backoff: Backoff = DEFAULT_BACKOFF,
        rng: Rng = random.random,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if not channels:
            raise ValueError("a pub/sub listener needs at least one channel")
        self._redis = redis
        self.channels = tuple(channels)
        self._on_message = on_message
        self.name = name
        self._on_up = on_up
        self._on_down = on_down
        self._retrier = Retrier(backoff, rng)
        self._sleep = sleep
        self.connected = False
        self.reconnects = 0

    async def run(self) -> None:
        """Listens until cancelled; never returns otherwise."""
        while True:
            pubsub = self._redis.pubsub()
            try:
                await pubsub.subscribe(*self.channels)
                async for message in pubsub.listen():
                    self._handle(message)
                reason = "the subscription ended"
            except (OSError, aioredis.RedisError) as e:
                reraise_if_cancelling(e)
                reason = str(e)
            finally:
                if self.connected:
                    self.connected = False
                    self._call(self._on_down)
                with contextlib.suppress(OSError, aioredis.RedisError):
                    await pubsub.aclose()
            # Also when the read ended without an error: a swallowed cancellation must not spin.
            reraise_if_cancelling(None)
            delay = self._retrier.next_delay()
            log.warning("pub/sub connection lost; resubscribing",
                        extra={"listener": self.name, "error": reason, "retry_in_s": round(delay, 3)})
            self.reconnects += 1
            await self._sleep(delay)

    def _handle(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "subscribe":
            # The confirmation of the last channel carries the count of all of them.
            if not self.connected and message.get("data") == len(self.channels):
                self.connected = True
                self._retrier.reset()
                self._call(self._on_up)
            return
        if kind != "message":
            return
        channel = message["channel"]
        text = channel.decode() if isinstance(channel, bytes) else str(channel)
        try:
            self._on_message(text, message["data"])
        except Exception:  # one message's bug must not end the subscription
            log.exception("pub/sub message handler failed", extra={"listener": self.name, "channel": text})

    def _call(self, callback: Callable[[], None]) -> None:
        try:
            callback()
        except Exception:
            log.exception("pub/sub connection callback failed", extra={"listener": self.name})
