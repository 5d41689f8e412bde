"""Per user: which events go to which channel. No row means the defaults (everything on)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import asyncpg

from tradebot.notifications.errors import InvalidNotificationField
from tradebot.notifications.events import CHANNEL_EVENTS, DEFAULT_PREFERENCES, Channel

Preferences = dict[Channel, list[str]]

# One column per channel (the outbox statement reads them); a new channel adds its column.
_COLUMN = {Channel.WEBHOOK: "webhook_events", Channel.MAIL: "mail_events"}


def defaults() -> Preferences:
    return {channel: [str(e) for e in events] for channel, events in DEFAULT_PREFERENCES.items()}


def checked(channel: Channel, events: Sequence[str]) -> list[str]:
    allowed = [str(e) for e in CHANNEL_EVENTS[channel]]
    for i, event in enumerate(events):
        if event not in allowed:
            raise InvalidNotificationField(f"{channel}.{i}", f"{channel} carries only {', '.join(allowed)}")
    return [e for e in allowed if e in set(events)]


class PreferenceStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def get(self, user_id: int) -> Preferences:
        row = await self._pool.fetchrow(
            "SELECT webhook_events, mail_events FROM notification_preferences WHERE user_id = $1", user_id
        )
        if row is None:
            return defaults()
        return {channel: list(row[column]) for channel, column in _COLUMN.items()}

    async def update(self, user_id: int, changes: Mapping[Channel, Sequence[str]]) -> Preferences:
        """Set the channels named; the others keep what they had (a client that does not know a
        newer channel cannot reset it)."""
        new = {channel: checked(channel, events) for channel, events in changes.items()}
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "SELECT webhook_events, mail_events FROM notification_preferences WHERE user_id = $1 FOR UPDATE",
                user_id,
            )
            current = defaults() if row is None else {c: list(row[col]) for c, col in _COLUMN.items()}
            merged = {**current, **new}
            await conn.execute(
                """INSERT INTO notification_preferences (user_id, webhook_events, mail_events) VALUES ($1, $2, $3)
                   ON CONFLICT (user_id) DO UPDATE SET webhook_events = EXCLUDED.webhook_events,
                       mail_events = EXCLUDED.mail_events, updated_at = now()""",
                user_id, merged[Channel.WEBHOOK], merged[Channel.MAIL],
            )
        return merged
