"""Users' webhooks and their delivery log (CONTRACT.md "Webhooks"), every query scoped to its owner.

Another user's webhook or delivery id finds nothing: the same 404 as one that never existed
(DESIGN.md invariant 5). The secret leaves only once, in the answer to the creation.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import asyncpg

from tradebot.notifications.errors import (
    DeliveryNotFound,
    DeliveryNotRetryable,
    InvalidNotificationField,
    TooManyWebhooks,
    WebhookNotFound,
)
from tradebot.notifications.events import WEBHOOK_EVENTS, Event
from tradebot.notifications.signing import new_secret
from tradebot.notifications.ssrf import UnsafeUrl
from tradebot.statuses import DeliveryStatus

log = logging.getLogger(__name__)

MAX_WEBHOOKS_PER_USER = 20
_COLUMNS = "id, url, events, description, created_at"
_DELIVERY_COLUMNS = ("d.id, e.event, d.status, d.attempts, d.last_status_code, d.last_error, d.created_at, "
                     "d.delivered_at, d.next_attempt_at")


class UrlChecker(Protocol):
    """The SSRF guard's check of a new URL (tradebot.notifications.ssrf.GuardedResolver)."""

    async def check_url(self, url: str) -> None: ...


@dataclass(frozen=True, slots=True)
class Webhook:
    id: int
    url: str
    events: tuple[str, ...]
    description: str
    created_at: dt.datetime
    secret: str | None = None  # only on the object creation returns


@dataclass(frozen=True, slots=True)
class Delivery:
    id: int
    event: str
    status: str
    attempts: int
    last_status_code: int | None
    last_error: str | None
    created_at: dt.datetime
    delivered_at: dt.datetime | None
    next_attempt_at: dt.datetime | None


def _webhook(row: asyncpg.Record, secret: str | None = None) -> Webhook:
    return Webhook(row["id"], row["url"], tuple(row["events"]), row["description"], row["created_at"], secret)


def _delivery(row: asyncpg.Record) -> Delivery:
    pending = row["status"] == DeliveryStatus.PENDING
    return Delivery(row["id"], row["event"], row["status"], row["attempts"], row["last_status_code"],
                    row["last_error"], row["created_at"], row["delivered_at"],
                    row["next_attempt_at"] if pending else None)


def checked_events(events: Sequence[str] | None) -> list[str]:
    """The events a webhook takes, in the contract's order; every one by default."""
    if events is None:
        return [str(e) for e in WEBHOOK_EVENTS]
    allowed = {str(e) for e in WEBHOOK_EVENTS}
    unknown = [e for e in events if e not in allowed]
    if unknown:
        raise InvalidNotificationField("events", f"unknown event {unknown[0]!r}; known: {', '.join(sorted(allowed))}")
    if not events:
        raise InvalidNotificationField("events", "must name at least one event")
    return [str(e) for e in WEBHOOK_EVENTS if e in set(events)]


class WebhookService:
    def __init__(self, pool: asyncpg.Pool, urls: UrlChecker, *, max_per_user: int = MAX_WEBHOOKS_PER_USER) -> None:
        self._pool = pool
        self._urls = urls
        self._max = max_per_user

    async def create(self, user_id: int, url: str, events: Sequence[str] | None, description: str) -> Webhook:
        chosen = checked_events(events)
        try:
            await self._urls.check_url(url)
        except UnsafeUrl as e:
            raise InvalidNotificationField("url", str(e)) from None
        secret = new_secret()
        async with self._pool.acquire() as conn, conn.transaction():
            # The user's row serialises concurrent creations, so the limit holds under a race.
            await conn.execute("SELECT 1 FROM users WHERE id = $1 FOR UPDATE", user_id)
            count = await conn.fetchval("SELECT count(*) FROM webhooks WHERE user_id = $1", user_id)
            if count >= self._max:
                raise TooManyWebhooks(self._max)
            row = await conn.fetchrow(
                f"INSERT INTO webhooks (user_id, url, events, description, secret) VALUES ($1, $2, $3, $4, $5) "
                f"RETURNING {_COLUMNS}",
                user_id, url, chosen, description, secret,
            )
        assert row is not None
        log.info("webhook created", extra={"user_id": user_id, "webhook_id": row["id"]})
        return _webhook(row, secret)

    async def page(self, user_id: int, *, after_id: int | None, limit: int) -> list[Webhook]:
        rows = await self._pool.fetch(
            f"SELECT {_COLUMNS} FROM webhooks WHERE user_id = $1 AND id > $2 ORDER BY id LIMIT $3",
            user_id, after_id or 0, limit,
        )
        return [_webhook(r) for r in rows]

    async def get(self, user_id: int, webhook_id: int) -> Webhook:
        row = await self._pool.fetchrow(f"SELECT {_COLUMNS} FROM webhooks WHERE id = $1 AND user_id = $2",
                                        webhook_id, user_id)
        if row is None:
            raise WebhookNotFound
        return _webhook(row)

    async def delete(self, user_id: int, webhook_id: int) -> None:
        done = await self._pool.execute("DELETE FROM webhooks WHERE id = $1 AND user_id = $2", webhook_id, user_id)
        if done != "DELETE 1":
            raise WebhookNotFound
        log.info("webhook deleted", extra={"user_id": user_id, "webhook_id": webhook_id})

    async def ping(self, user_id: int, webhook_id: int) -> int:
        """Queue a `ping` event for this webhook alone; returns its delivery id."""
        async with self._pool.acquire() as conn, conn.transaction():
            # KEY SHARE: a concurrent delete waits for this insert instead of failing it.
            hook = await conn.fetchrow(
                "SELECT id FROM webhooks WHERE id = $1 AND user_id = $2 FOR KEY SHARE",
                webhook_id, user_id,
            )
            if hook is None:
                raise WebhookNotFound
            event_id = await conn.fetchval(
                "INSERT INTO notification_events (user_id, bot_id, event, data) VALUES ($1, NULL, $2, $3) RETURNING id",
                user_id, str(Event.PING), {"webhook_id": webhook_id, "message": "ping from tradebot"},
            )
            delivery_id: int = await conn.fetchval(
                "INSERT INTO webhook_deliveries (webhook_id, event_id) VALUES ($1, $2) RETURNING id",
                webhook_id, event_id,
            )
        return delivery_id

    async def deliveries(self, user_id: int, webhook_id: int, *, before_id: int | None, limit: int) -> list[Delivery]:
        """Newest first."""
        await self.get(user_id, webhook_id)
        rows = await self._pool.fetch(
            f"SELECT {_DELIVERY_COLUMNS} FROM webhook_deliveries d JOIN notification_events e ON e.id = d.event_id "
            "WHERE d.webhook_id = $1 AND d.id < $2 ORDER BY d.id DESC LIMIT $3",
            webhook_id, before_id if before_id is not None else 2**63 - 1, limit,
        )
        return [_delivery(r) for r in rows]

    async def retry(self, user_id: int, webhook_id: int, delivery_id: int) -> Delivery:
        """A failed delivery gets one more attempt, now (the same id: receivers dedup by it)."""
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                """SELECT d.status FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id
                   WHERE d.id = $1 AND d.webhook_id = $2 AND w.user_id = $3 FOR UPDATE OF d""",
                delivery_id, webhook_id, user_id,
            )
            if row is None:
                raise DeliveryNotFound
            if row["status"] != DeliveryStatus.FAILED:
                raise DeliveryNotRetryable(f"the delivery is {row['status']}; only a failed one is retried")
            updated = await conn.fetchrow(
                f"""WITH d AS (
                        UPDATE webhook_deliveries SET status = 'pending', attempts_allowed = attempts + 1,
                               next_attempt_at = now()
                        WHERE id = $1 RETURNING *)
                    SELECT {_DELIVERY_COLUMNS} FROM d JOIN notification_events e ON e.id = d.event_id""",
                delivery_id,
            )
        assert updated is not None
        return _delivery(updated)

