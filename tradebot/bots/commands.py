"""What the API asks of whichever replica runs a bot, and the port it asks through.

The runtime carries the commands (tradebot.runtime.commands: Redis pub/sub) and acts on them. A
command is only a prompt to act now: the database row (is_active, status) is the truth, and every
replica's reconcile loop converges on it when a command is lost.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

# "manual": a force-exit / force-entry row was recorded (bot_commands); the owner reads the rows.
CommandKind = Literal["start", "stop", "reconfigure", "delete", "manual"]


@dataclass(frozen=True, slots=True)
class BotCommand:
    bot_id: int
    kind: CommandKind
    close_position: bool = False


class CommandSender(Protocol):
    """Sends a command on its way; never raises for a lost one (the reconcile loop catches up)."""

    async def __call__(self, command: BotCommand) -> None: ...
