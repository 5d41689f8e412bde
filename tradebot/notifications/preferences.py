"""Per user: which events go to which channel. No row means the defaults (everything on)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import asyncpg

from tradebot.notifications.errors import InvalidNotificationField
from tradebot.notifications.events import CHANNEL_EVENTS, DEFAULT_PREFERENCES, Channel

Preferences = dict[Channel, list[str]]

# One column per channel (the outbox statement reads them); a new channel adds its column.
# NULL in a column (a row written before the channel existed) is that channel's defaults.
_COLUMN = {Channel.WEBHOOK: "webhook_events", Channel.MAIL: "mail_events", Channel.TELEGRAM: "telegram_events"}
_SELECT = "SELECT webhook_events, mail_events, telegram_events FROM notification_preferences WHERE user_id = $1"


def _of(row: asyncpg.Record | None) -> Preferences:
    prefs = defaults()
    if row is not None:
        prefs.update({channel: list(row[column]) for channel, column in _COLUMN.items() if row[column] is not None})
    return prefs


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
        return _of(await self._pool.fetchrow(_SELECT, user_id))

    async def update(self, user_id: int, changes: Mapping[Channel, Sequence[str]]) -> Preferences:
        """Set the channels named; the others keep what they had (a client that does not know a
        newer channel cannot reset it)."""
        new = {channel: checked(channel, events) for channel, events in changes.items()}
        async with self._pool.acquire() as conn, conn.transaction():
            merged = {**_of(await conn.fetchrow(_SELECT + " FOR UPDATE", user_id)), **new}
            await conn.execute(
                """INSERT INTO notification_preferences (user_id, webhook_events, mail_events, telegram_events)
                   VALUES ($1, $2, $3, $4)
                   ON CONFLICT (user_id) DO UPDATE SET webhook_events = EXCLUDED.webhook_events,
                       mail_events = EXCLUDED.mail_events, telegram_events = EXCLUDED.telegram_events,
                       updated_at = now()""",
                user_id, merged[Channel.WEBHOOK], merged[Channel.MAIL], merged[Channel.TELEGRAM],
            )
        return merged
