"""The notification vocabulary: events, channels and what each channel carries by default."""

from __future__ import annotations

from enum import StrEnum


class Event(StrEnum):
    TRADE = "trade"
    STATE = "state"
    ERROR = "error"  # a bot went to status error
    PAUSED = "paused"  # a bot was paused by a daily limit (mail; webhooks see it as a state event)
    PING = "ping"  # POST /webhooks/{id}/test


class Channel(StrEnum):
    WEBHOOK = "webhook"
    MAIL = "mail"
    TELEGRAM = "telegram"


# What a webhook may subscribe to (CONTRACT.md), and what each channel can carry at all. Mail is
# for what needs a person: a bot that stopped trading. Telegram tells a person what happens: trades
# (entries, exits with PnL), status changes (pauses, failovers, stops) and errors.
WEBHOOK_EVENTS: tuple[Event, ...] = (Event.TRADE, Event.STATE, Event.ERROR)
CHANNEL_EVENTS: dict[Channel, tuple[Event, ...]] = {
    Channel.WEBHOOK: WEBHOOK_EVENTS,
    Channel.MAIL: (Event.ERROR, Event.PAUSED),
    Channel.TELEGRAM: (Event.TRADE, Event.STATE, Event.ERROR),
}
# Everything on until the user says otherwise.
DEFAULT_PREFERENCES: dict[Channel, tuple[Event, ...]] = dict(CHANNEL_EVENTS)
