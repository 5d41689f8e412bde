"""The one pub/sub listener against a real Redis: delivery, reconnect with backoff, clean cancellation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from tests.timing import eventually
from tradebot.backoff import Backoff
from tradebot.runtime.pubsub_listener import PubSubListener
from tradebot.runtime.tasks import cancel_and_wait, reraise_if_cancelling


@pytest.fixture
async def named_redis(redis_url: str, redis_prefix: str) -> AsyncIterator[aioredis.Redis]:
    # A connection name of its own, so the test kills only this listener's connection (other
    # test runs share the server).
    client = aioredis.Redis.from_url(redis_url, client_name=f"{redis_prefix}-listener")
    yield client
    await client.aclose()


async def _kill_listener_connections(admin: aioredis.Redis, name: str) -> int:
    killed = 0
    for client in await admin.client_list(_type="pubsub"):
        if client.get("name") == name:
            killed += await admin.client_kill_filter(_id=client["id"])
    return killed


async def test_delivers_reconnects_and_reports_up_and_down(
    named_redis: aioredis.Redis, redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    a, b = f"{redis_prefix}:a", f"{redis_prefix}:b"
    got: list[tuple[str, str]] = []
    transitions: list[str] = []
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        await asyncio.sleep(0)

    def on_message(channel: str, data: bytes | str) -> None:
        if data == b"bad":
            raise ValueError("a handler bug")
        got.append((channel, data.decode() if isinstance(data, bytes) else data))

    listener = PubSubListener(named_redis, (a, b), on_message, name="test", on_up=lambda: transitions.append("up"),
                              on_down=lambda: transitions.append("down"), backoff=Backoff(base=0.1, cap=5.0),
                              rng=lambda: 0.5, sleep=sleep)
    task = asyncio.create_task(listener.run(), name="test-listener")
    try:
        async def up() -> bool:
            return listener.connected

        await eventually(up)
        assert transitions == ["up"]
        await redis_client.publish(a, "bad")  # a handler's exception costs that message only
        await redis_client.publish(a, "1")
        await redis_client.publish(b, "2")

        async def two() -> bool:
            return len(got) == 2

        await eventually(two)
        assert got == [(a, "1"), (b, "2")]

        assert await _kill_listener_connections(redis_client, f"{redis_prefix}-listener") == 1

        async def back() -> bool:
            return transitions == ["up", "down", "up"]

        await eventually(back)
        assert slept == [0.05]  # attempt 0 of base 0.1 at the injected draw 0.5
        assert listener.reconnects == 1
        await redis_client.publish(b, "3")

        async def three() -> bool:
            return got[-1:] == [(b, "3")]

        await eventually(three)
    finally:
        await cancel_and_wait(task)
    assert task.cancelled()
    assert transitions[-1] == "down"

    async def closed() -> bool:
        return await _kill_listener_connections(redis_client, f"{redis_prefix}-listener") == 0

    await eventually(closed)


async def test_a_cancellation_during_the_backoff_ends_it(redis_client: aioredis.Redis, redis_prefix: str) -> None:
    dead = aioredis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)  # nothing listens on port 1
    sleeping = asyncio.Event()

    async def sleep(seconds: float) -> None:
        sleeping.set()
        await asyncio.sleep(3600)

    listener = PubSubListener(dead, (f"{redis_prefix}:x",), lambda c, d: None, name="dead", sleep=sleep)
    task = asyncio.create_task(listener.run(), name="dead-listener")
    async with asyncio.timeout(5):
        await sleeping.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await dead.aclose()


async def test_a_cancellation_turned_into_a_connection_error_still_cancels() -> None:
    # redis-py may catch our cancellation mid-read and raise ConnectionError instead; the loop must
    # end as cancelled instead of taking it for an outage and resubscribing (its owner would wait).
    reading = asyncio.Event()

    async def read() -> None:
        try:
            reading.set()
            await asyncio.sleep(3600)
        except asyncio.CancelledError as e:
            raise aioredis.ConnectionError("Connection closed by server.") from e

    async def loop() -> str:
        for _ in range(3):
            try:
                await read()
            except aioredis.ConnectionError as e:
                reraise_if_cancelling(e)
        return "kept running"

    task = asyncio.create_task(loop())
    await reading.wait()
    task.cancel()
    async with asyncio.timeout(5):
        with pytest.raises(asyncio.CancelledError):
            await task
