"""Server-Sent Events frames, encoded once per event for all of a replica's streams.

Every listener of a bot receives the same BotEvent; with two thousand streams on one bot, encoding
the JSON and the frame per stream was most of the fan-out's cost. The cache is bounded (an event
is wanted only while it is being fanned out or replayed) and lives on the app, not in a global.
"""

from __future__ import annotations

import re

from tradebot import jsonutil
from tradebot.runtime.events import BotEvent

SEP = "\r\n"  # aiohttp-sse's separator, so every frame of a stream looks alike
CACHE_SIZE = 1024

_EVENT_ID = re.compile(r"^(\d{1,20})(?:-(\d{1,20}))?$", re.ASCII)
# Both halves of a Redis stream id are unsigned 64-bit; a larger number is no id Redis can hold
# (XRANGE would answer an error, which is not Redis being unavailable).
_U64_MAX = 2**64 - 1
EventKey = tuple[int, int]


def event_key(event_id: str) -> EventKey | None:
    """A Redis stream id ("<ms>-<seq>") as a comparable pair; None when malformed."""
    m = _EVENT_ID.match(event_id)
    if m is None:
        return None
    ms, seq = int(m.group(1)), int(m.group(2) or 0)
    if ms > _U64_MAX or seq > _U64_MAX:
        return None
    return ms, seq


def encode(event: BotEvent) -> bytes:
    # orjson never writes a line break (breaks inside strings are escaped), so data is one line.
    data = jsonutil.dumps(event.data).decode()
    return f"id: {event.id}{SEP}event: {event.event}{SEP}data: {data}{SEP}{SEP}".encode()


class FrameCache:
    def __init__(self, size: int = CACHE_SIZE) -> None:
        self._size = size
        self._frames: dict[tuple[int, str], tuple[EventKey | None, bytes]] = {}

    def get(self, event: BotEvent) -> tuple[EventKey | None, bytes]:
        """The event's ordering key and its encoded frame."""
        cache_key = (event.bot_id, event.id)
        hit = self._frames.get(cache_key)
        if hit is None:
            hit = (event_key(event.id), encode(event))
            if len(self._frames) >= self._size:
                del self._frames[next(iter(self._frames))]  # oldest first: dicts keep insertion order
            self._frames[cache_key] = hit
        return hit


# The combined stream of a user's bots (GET /status-stream): each bot's events live in that bot's
# own log, and logs' ids are not comparable across bots (two bots' events get the same id in the
# same millisecond, and pub/sub may deliver them in either order). So its event id is the cursor of
# every bot's position, `<bot>:<ms>-<seq>` joined by commas: a reconnect replays, bot by bot,
# exactly what that bot's log holds after its position. A bot missing from it gets a fresh state.
MAX_CURSOR_BOTS = 10_000
Cursor = dict[int, EventKey]


def encode_cursor(positions: Cursor) -> str:
    return ",".join(f"{bot}:{ms}-{seq}" for bot, (ms, seq) in sorted(positions.items()))


def decode_cursor(text: str) -> Cursor | None:
    """A combined stream's id as positions by bot; None when it is not one."""
    parts = text.split(",")
    if not text or len(parts) > MAX_CURSOR_BOTS:
        return None
    out: Cursor = {}
    for part in parts:
        bot, sep, eid = part.partition(":")
        key = event_key(eid)
        if not sep or not (bot.isascii() and bot.isdigit() and len(bot) <= 18) or key is None or int(bot) in out:
            return None
        out[int(bot)] = key
    return out


def key_text(key: EventKey) -> str:
    return f"{key[0]}-{key[1]}"


def encode_user_frame(cursor: str, event: str, data: dict[str, object]) -> bytes:
    return f"id: {cursor}{SEP}event: {event}{SEP}data: {jsonutil.dumps(data).decode()}{SEP}{SEP}".encode()
