"""The transactional outbox: an event and its delivery rows, written in the caller's transaction.

`record_bot_change` is the one hook the writers of bot states and trades call (tradebot.runtime.
bot_store, tradebot.bots.repo), on the connection of the transaction that records the change: the
deliveries commit with it or not at all, so a crash can lose neither (DESIGN.md "Outbound
notifications"). One statement per event; when the bot's user has no webhook and no mail is due it
writes nothing.

Order per webhook: the worker sends a webhook's deliveries in id order. Every event of one bot is
written under that bot's state-row lock (the runtime's fenced transactions, the API's start and
stop), so one bot's delivery ids grow in the order its events were committed and it is delivered
strictly in that order. Events of different bots come from concurrent transactions with no order
between them; they go in id order among those committed. Nothing else is locked: holding a
webhook's row until commit would serialise every commit (and its fsync) of the user's bots, which
measured 33 trades/s instead of 1,000 (bench/bench_webhooks.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import asyncpg

from tradebot import jsonutil
from tradebot.notifications.events import DEFAULT_PREFERENCES, Channel, Event
from tradebot.statuses import BotStatus

_DEFAULT_HOOK_EVENTS = [str(e) for e in DEFAULT_PREFERENCES[Channel.WEBHOOK]]
_DEFAULT_MAIL_EVENTS = [str(e) for e in DEFAULT_PREFERENCES[Channel.MAIL]]
_DEFAULT_TELEGRAM_EVENTS = [str(e) for e in DEFAULT_PREFERENCES[Channel.TELEGRAM]]
# A chat is told what a person acts on: a state event only when the status moved to one of these
# (a failover shows as `running` on another replica); `error` comes as its own event.
_TELEGRAM_STATUSES = frozenset({BotStatus.RUNNING, BotStatus.PAUSED, BotStatus.STOPPED})

# $1 bot, $2 event, $3 data, $4 mail kind or NULL, $5/$6/$7 the default preferences, $8 whether the
# event is one a linked Telegram chat is told.
_RECORD = """
WITH bot AS (
    SELECT c.user_id,
           COALESCE(p.webhook_events, $5::text[]) AS hook_events,
           COALESCE(p.mail_events, $6::text[]) AS mail_events,
           COALESCE(p.telegram_events, $7::text[]) AS telegram_events
    FROM bot_configs c LEFT JOIN notification_preferences p ON p.user_id = c.user_id
    WHERE c.id = $1
),
hooks AS (
    SELECT w.id FROM webhooks w JOIN bot ON w.user_id = bot.user_id
    WHERE $2 = ANY (w.events) AND $2 = ANY (bot.hook_events)
),
mail AS (
    SELECT bot.user_id FROM bot WHERE $4::text IS NOT NULL AND $4::text = ANY (bot.mail_events)
),
chats AS (
    SELECT l.chat_id FROM telegram_links l JOIN bot ON l.user_id = bot.user_id
    WHERE $8::boolean AND $2 = ANY (bot.telegram_events)
),
ev AS (
    INSERT INTO notification_events (user_id, bot_id, event, data)
    SELECT bot.user_id, $1, $2, $3 FROM bot
    WHERE EXISTS (SELECT 1 FROM hooks) OR EXISTS (SELECT 1 FROM mail) OR EXISTS (SELECT 1 FROM chats)
    RETURNING id, user_id
),
deliveries AS (
    INSERT INTO webhook_deliveries (webhook_id, event_id)
    SELECT hooks.id, ev.id FROM ev, hooks
    RETURNING id
),
messages AS (
    INSERT INTO telegram_deliveries (event_id, chat_id)
    SELECT ev.id, chats.chat_id FROM ev, chats
    RETURNING id
)
INSERT INTO mail_deliveries (event_id, user_id, kind)
SELECT ev.id, ev.user_id, $4 FROM ev, mail
"""


def _plain(data: Mapping[str, Any]) -> Any:
    # The same JSON the SSE stream carries (money as numbers, times ISO 8601 with Z).
    return jsonutil.loads(jsonutil.dumps(dict(data)))


async def record(conn: asyncpg.Connection, bot_id: int, event: Event, data: Mapping[str, Any],
                 *, mail: Event | None = None, telegram: bool = False) -> None:
    """Queue `event` for the bot's user's webhooks that take it, `mail` for the user if wanted, and
    (`telegram`) a message to the user's linked chat if it takes the event."""
    await conn.execute(_RECORD, bot_id, str(event), _plain(data), None if mail is None else str(mail),
                       _DEFAULT_HOOK_EVENTS, _DEFAULT_MAIL_EVENTS, _DEFAULT_TELEGRAM_EVENTS, telegram)


def tells_telegram(event: str, status: object, previous_status: str | None) -> bool:
    """Whether a chat hears of this: every trade; a state only when its status moved to one of
    _TELEGRAM_STATUSES (the runtime rewrites a state on every candle and fill: a chat must not)."""
    if event == Event.TRADE:
        return True
    return event == Event.STATE and status != previous_status and status in _TELEGRAM_STATUSES


async def record_bot_change(conn: asyncpg.Connection, bot_id: int, event: str, data: Mapping[str, Any],
                            *, previous_status: str | None = None) -> None:
    """The hook: a `trade` or `state` event of a bot, inside the transaction that wrote it.

    A state whose status just became `error` is also an `error` event (and a mail); one that went
    from `running` to `paused` (only a daily limit pauses a bot) is a mail. A paused bot that a
    restart or a failover resumes goes starting → paused: nothing new happened, so nothing is
    mailed. `previous_status` is the status before this write; a status written again unchanged is
    no transition.
    """
    status = data.get("status") if event == Event.STATE else None
    paused = status == BotStatus.PAUSED and previous_status == BotStatus.RUNNING
    await record(conn, bot_id, Event(event), data, mail=Event.PAUSED if paused else None,
                 telegram=tells_telegram(event, status, previous_status))
    if status == BotStatus.ERROR and previous_status != BotStatus.ERROR:
        await record(conn, bot_id, Event.ERROR, data, mail=Event.ERROR, telegram=True)
