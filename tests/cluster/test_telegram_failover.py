"""The Telegram bot is polled by exactly one replica (the holder of a Redis lease); when that
replica is killed with -9 another takes the lease over and answers the chat."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from tests.cluster.harness import Cluster
from tests.processes import wait_until
from tests.telegram_server import TelegramServer


@pytest.fixture
def telegram() -> Iterator[TelegramServer]:
    server = TelegramServer().start()
    yield server
    server.stop()


def test_polling_moves_to_the_surviving_replica_when_the_holder_dies(cluster: Cluster,
                                                                     telegram: TelegramServer) -> None:
    cluster.extra_env.update({"TRADEBOT_TELEGRAM_BOT_TOKEN": telegram.token, "TRADEBOT_TELEGRAM_API_URL": telegram.url,
                              "TRADEBOT_TELEGRAM_POLL_TIMEOUT_S": "2"})  # fmt: skip
    cluster.start("r1", "r2")
    cluster.sign_up()
    store = redis.Redis.from_url(cluster.redis_url, decode_responses=True)
    key = f"{cluster.prefix}:telegram:poller"
    wait_until(lambda: store.get(key) in ("r1", "r2"), 30, "a replica to hold the telegram lease")
    holder = str(store.get(key))
    survivor = "r2" if holder == "r1" else "r1"

    status, body = cluster.api("POST", "/api/v1/notifications/telegram/link", url=cluster.nodes[survivor].url)
    assert status == 201, body
    telegram.say(77, body["command"])
    wait_until(lambda: any(t.startswith("Linked") for t in telegram.texts(77)), 30, "the chat linked")

    cluster.kill(holder)
    telegram.say(77, "/status")
    wait_until(lambda: any(t == "You have no bots." for t in telegram.texts(77)), 60,
               "the survivor to answer /status")
    assert store.get(key) == survivor
    # One answer per command: nothing handled twice across the takeover.
    assert telegram.texts(77).count("You have no bots.") == 1
