"""Commands from the API to whichever replica runs a bot, over Redis pub/sub (the commands
themselves are the bots package's: tradebot.bots.commands).

Pub/sub can lose a message (a replica reconnecting), so a command is only a prompt to act now; the
database row (is_active, status) is the truth and every replica's reconcile loop converges on it.
"""

from __future__ import annotations

import logging

import redis.asyncio as aioredis

from tradebot import jsonutil
from tradebot.bots.commands import BotCommand

log = logging.getLogger(__name__)

_KINDS = frozenset({"start", "stop", "reconfigure", "delete", "manual"})


def command_channel(prefix: str) -> str:
    return f"{prefix}:bot-commands"


async def publish_command(redis: aioredis.Redis, prefix: str, command: BotCommand) -> None:
    payload = {"bot_id": command.bot_id, "kind": command.kind, "close_position": command.close_position}
    try:
        await redis.publish(command_channel(prefix), jsonutil.dumps(payload))
    except (OSError, aioredis.RedisError) as e:
        # The reconcile loop picks the change up from the database; the request still succeeds.
        log.warning("could not publish bot command; replicas will reconcile", extra={"bot_id": command.bot_id,
                                                                                    "error": str(e)})


def decode_command(raw: bytes | str) -> BotCommand | None:
    try:
        data = jsonutil.loads(raw)
        kind = data["kind"]
        if kind not in _KINDS:
            return None
        return BotCommand(int(data["bot_id"]), kind, bool(data.get("close_position", False)))
    except (ValueError, KeyError, TypeError):
        log.warning("ignoring a malformed bot command")
        return None
