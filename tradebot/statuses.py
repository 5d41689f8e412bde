"""Statuses and sides: StrEnums whose values are the strings the API, the database's CHECK
constraints and the exchange already use (a member compares and serialises as its string).

`BOT_TRANSITIONS` is the bot status machine that the API, the actor and the runtime implement
between them (nautilus' ComponentState, written down):

    stopped ──start──► starting ──claimed by its owner──► running ◄──resume (00:00 UTC)──► paused
       ▲                  ▲  ▲                               │  │                            │
       │                  │  └──lease lapsed / new owner─────┘  └──────────stop─────┐        │
       │                  └──start (again)── error ◄──failed (any live status)      ▼        │
       └─────────────── wound down ◄──────────────────────────────────────────── stopping ◄──┘

A status may also be written again unchanged (a new owner re-claiming a bot writes starting).
Pure: imports nothing of tradebot.
"""

from __future__ import annotations

from enum import StrEnum


class BotStatus(StrEnum):
    STOPPED = "stopped"
    STARTING = "starting"
    RUNNING = "running"
    PAUSED = "paused"  # a daily limit: exits and protects, no entries, resumes at 00:00 UTC
    STOPPING = "stopping"
    ERROR = "error"  # stopped until a person looks; `last_error_message` says why


# Statuses in which a bot is meant to run (an owner trades it or is about to).
LIVE_STATUSES: frozenset[BotStatus] = frozenset({BotStatus.STARTING, BotStatus.RUNNING, BotStatus.PAUSED})

BOT_TRANSITIONS: dict[BotStatus, frozenset[BotStatus]] = {
    BotStatus.STOPPED: frozenset({BotStatus.STARTING}),
    BotStatus.STARTING: frozenset({BotStatus.RUNNING, BotStatus.PAUSED, BotStatus.STOPPING, BotStatus.ERROR}),
    BotStatus.RUNNING: frozenset({BotStatus.PAUSED, BotStatus.STARTING, BotStatus.STOPPING, BotStatus.ERROR}),
    BotStatus.PAUSED: frozenset({BotStatus.RUNNING, BotStatus.STARTING, BotStatus.STOPPING, BotStatus.ERROR}),
    BotStatus.STOPPING: frozenset({BotStatus.STOPPED, BotStatus.STARTING, BotStatus.ERROR}),
    BotStatus.ERROR: frozenset({BotStatus.STARTING, BotStatus.STOPPED}),
}


def can_move(current: BotStatus, new: BotStatus) -> bool:
    """Whether a bot may go from `current` to `new` (staying put is always allowed)."""
    return new is current or new in BOT_TRANSITIONS[current]


class OrderStatus(StrEnum):
    PENDING = "pending"  # recorded, not yet known to the exchange
    OPEN = "open"
    FILLED = "filled"
    PARTIALLY_FILLED = "partially_filled"
    CANCELED = "canceled"
    REJECTED = "rejected"
    EXPIRED = "expired"
    UNKNOWN = "unknown"  # sent, outcome unclear: resolved by querying its client id, never by resending


# Orders whose outcome must be reconciled with the exchange before the bot trades again.
UNSETTLED_ORDER_STATUSES: frozenset[OrderStatus] = frozenset({OrderStatus.PENDING, OrderStatus.UNKNOWN,
                                                              OrderStatus.OPEN})


class OrderSide(StrEnum):
    BUY = "buy"
    SELL = "sell"


class PositionSide(StrEnum):
    LONG = "long"
    SHORT = "short"

    @property
    def sign(self) -> int:
        return 1 if self is PositionSide.LONG else -1

    @property
    def opening_side(self) -> OrderSide:
        """The order side that opens (or adds to) this position."""
        return OrderSide.BUY if self is PositionSide.LONG else OrderSide.SELL

    @property
    def closing_side(self) -> OrderSide:
        """The order side that reduces or closes this position."""
        return OrderSide.SELL if self is PositionSide.LONG else OrderSide.BUY


class BacktestStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class DriftLineStatus(StrEnum):
    """A fill in a drift report (tradebot.strategies.drift): in both the backtest replay and the
    bot's trades, only in the replay (a signal the bot did not act on), or only in the bot's trades."""

    MATCHED = "matched"
    MISSING = "missing"
    EXTRA = "extra"


class OptimizationStatus(StrEnum):
    """An optimisation's life: pending (queued) → running (a worker took a chunk) → done | failed;
    cancelled by DELETE from pending or running."""

    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


LIVE_OPTIMIZATION_STATUSES: frozenset[OptimizationStatus] = frozenset(
    {OptimizationStatus.PENDING, OptimizationStatus.RUNNING}
)


class DeliveryStatus(StrEnum):
    """A webhook delivery or a mail in the notification outbox (CONTRACT.md "Webhooks")."""

    PENDING = "pending"  # stored, not yet sent, or waiting for its next attempt
    DELIVERED = "delivered"
    FAILED = "failed"  # every attempt allowed has been made
