"""Drains the notification outbox: webhook deliveries and mail, on every replica, no leader.

Webhooks. A batch belongs to one webhook. The worker finds the webhooks whose oldest pending
delivery (the head) is due, and for each takes the head's row lock with `FOR UPDATE SKIP LOCKED`:
whoever holds a webhook's head owns the webhook until it commits, so two replicas never send one
webhook's deliveries side by side and each webhook's are sent one at a time in id order (see
`outbox` for why that is the order its events happened in). The batch then locks the pending rows after the head, sends them in order,
and records every attempt in one statement before committing. It stops at the first failure: a
delivery waiting for its retry holds the webhook's later ones back until it is delivered or
failed (CONTRACT.md). The locks are held while sending, so a replica killed with -9 simply drops
its connection: PostgreSQL releases the locks, nothing was recorded, and another replica sends
the batch again (at least once; receivers dedup by the delivery id).

Retries: after attempt n (1-based) fails, the next is due after `Backoff(retry_s).ceiling(n - 1)`
(TRADEBOT_WEBHOOK_RETRY_S, doubling); after `attempts_allowed` (8) attempts the delivery is failed.

Mail works the same way without the ordering: pending rows claimed with SKIP LOCKED, sent, recorded.

Telegram messages too, but only on the replica that holds the Telegram lease (the one polling for
updates, tradebot.runtime.telegram_poller): one sender keeps each chat's messages in id order and
stays under the Bot API's rate limits.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp
import asyncpg

from tradebot import jsonutil
from tradebot.backoff import Backoff, Retrier
from tradebot.notifications.mail_text import mail_text
from tradebot.notifications.signing import signature
from tradebot.notifications.ssrf import BlockedAddress, GuardedResolver, UnsafeUrl, parse_url
from tradebot.notifications.telegram_text import bot_label, event_text
from tradebot.security.mailer import Mailer

log = logging.getLogger(__name__)

SEND_TIMEOUT_S = 10.0  # CONTRACT.md: a 2xx within 10 s delivers
MAX_RESPONSE_BYTES = 64 * 1024  # a receiver's answer is read this far, never further
BATCH = 200  # deliveries of one webhook per transaction
BATCH_SECONDS = 5.0  # a batch stops taking the next delivery after this long
USER_AGENT = "tradebot-webhooks/1"
MAIL_ATTEMPTS = 8
ERROR_CHARS = 300

_HEADS = """
WITH RECURSIVE hooks AS (
    (SELECT webhook_id FROM webhook_deliveries WHERE status = 'pending' ORDER BY webhook_id LIMIT 1)
    UNION ALL
    SELECT (SELECT d.webhook_id FROM webhook_deliveries d
            WHERE d.status = 'pending' AND d.webhook_id > hooks.webhook_id ORDER BY d.webhook_id LIMIT 1)
    FROM hooks WHERE hooks.webhook_id IS NOT NULL
)
SELECT h.id FROM hooks
CROSS JOIN LATERAL (SELECT d.id, d.next_attempt_at FROM webhook_deliveries d
                    WHERE d.webhook_id = hooks.webhook_id AND d.status = 'pending' ORDER BY d.id LIMIT 1) AS h
WHERE hooks.webhook_id IS NOT NULL AND h.next_attempt_at <= now()
LIMIT $1
"""

# One statement: take the head's lock (or nothing: another replica has the webhook), then lock and
# read the pending rows from the head on, with the webhook's URL and secret. The event's data comes
# as JSON text and is spliced into the body as it is (no decode and re-encode per attempt).
_CLAIM = """
WITH head AS (
    SELECT webhook_id FROM webhook_deliveries
    WHERE id = $1 AND status = 'pending' AND next_attempt_at <= now()
    FOR UPDATE SKIP LOCKED
)
SELECT d.id, d.attempts, e.event, e.bot_id, e.data::text AS data, e.created_at, w.url, w.secret
FROM head
JOIN webhook_deliveries d ON d.webhook_id = head.webhook_id
JOIN notification_events e ON e.id = d.event_id
JOIN webhooks w ON w.id = d.webhook_id
WHERE d.status = 'pending' AND d.id >= $1
ORDER BY d.id LIMIT $2
FOR UPDATE OF d
"""

_RECORD = """
UPDATE webhook_deliveries d SET
    attempts = d.attempts + 1,
    status = CASE WHEN v.ok THEN 'delivered'
                  WHEN d.attempts + 1 >= d.attempts_allowed THEN 'failed' ELSE 'pending' END,
    last_status_code = v.code,
    last_error = v.error,
    delivered_at = CASE WHEN v.ok THEN now() END,
    next_attempt_at = CASE WHEN v.ok THEN d.next_attempt_at ELSE now() + make_interval(secs => v.retry_in) END
FROM unnest($1::bigint[], $2::boolean[], $3::integer[], $4::text[], $5::float8[]) AS v(id, ok, code, error, retry_in)
WHERE d.id = v.id
"""

_MAIL_BATCH = """
SELECT m.id, m.kind, m.attempts, u.email, e.bot_id, e.data, e.created_at, c.name AS bot_name, c.symbol
FROM mail_deliveries m
JOIN users u ON u.id = m.user_id
JOIN notification_events e ON e.id = m.event_id
LEFT JOIN bot_configs c ON c.id = e.bot_id
WHERE m.status = 'pending' AND m.next_attempt_at <= now()
ORDER BY m.id LIMIT $1
FOR UPDATE OF m SKIP LOCKED
"""

_MAIL_RECORD = """
UPDATE mail_deliveries m SET
    attempts = m.attempts + 1,
    status = CASE WHEN v.ok THEN 'delivered' WHEN m.attempts + 1 >= $5 THEN 'failed' ELSE 'pending' END,
    last_error = v.error,
    delivered_at = CASE WHEN v.ok THEN now() END,
    next_attempt_at = CASE WHEN v.ok THEN m.next_attempt_at ELSE now() + make_interval(secs => v.retry_in) END
FROM unnest($1::bigint[], $2::boolean[], $3::text[], $4::float8[]) AS v(id, ok, error, retry_in)
WHERE m.id = v.id
"""


_TELEGRAM_BATCH = """
SELECT t.id, t.chat_id, t.attempts, e.event, e.bot_id, e.data, c.name AS bot_name, c.symbol
FROM telegram_deliveries t
JOIN notification_events e ON e.id = t.event_id
LEFT JOIN bot_configs c ON c.id = e.bot_id
WHERE t.status = 'pending' AND t.next_attempt_at <= now()
  -- in order per chat: nothing overtakes an earlier message waiting for its retry
  AND NOT EXISTS (SELECT 1 FROM telegram_deliveries o
                  WHERE o.chat_id = t.chat_id AND o.status = 'pending' AND o.id < t.id AND o.next_attempt_at > now())
ORDER BY t.id LIMIT $1
FOR UPDATE OF t SKIP LOCKED
"""

_TELEGRAM_RECORD = """
UPDATE telegram_deliveries t SET
    attempts = t.attempts + 1,
    status = CASE WHEN v.ok THEN 'delivered' WHEN t.attempts + 1 >= $5 THEN 'failed' ELSE 'pending' END,
    last_error = v.error,
    delivered_at = CASE WHEN v.ok THEN now() END,
    next_attempt_at = CASE WHEN v.ok THEN t.next_attempt_at ELSE now() + make_interval(secs => v.retry_in) END
FROM unnest($1::bigint[], $2::boolean[], $3::text[], $4::float8[]) AS v(id, ok, error, retry_in)
WHERE t.id = v.id
"""


# Retention: delivered and failed rows older than the kept days go, a bounded batch at a time, and
# then the events no delivery refers to any more. Any replica may run it; SKIP LOCKED keeps two apart.
_PRUNE = """
WITH hooks AS (
    DELETE FROM webhook_deliveries WHERE id IN (
        SELECT id FROM webhook_deliveries
        WHERE status <> 'pending' AND created_at < now() - make_interval(days => $1)
        LIMIT $2 FOR UPDATE SKIP LOCKED)
    RETURNING event_id
), mails AS (
    DELETE FROM mail_deliveries WHERE id IN (
        SELECT id FROM mail_deliveries
        WHERE status <> 'pending' AND created_at < now() - make_interval(days => $1)
        LIMIT $2 FOR UPDATE SKIP LOCKED)
    RETURNING event_id
), messages AS (
    DELETE FROM telegram_deliveries WHERE id IN (
        SELECT id FROM telegram_deliveries
        WHERE status <> 'pending' AND created_at < now() - make_interval(days => $1)
        LIMIT $2 FOR UPDATE SKIP LOCKED)
    RETURNING event_id
)
SELECT (SELECT count(*) FROM hooks) + (SELECT count(*) FROM mails) + (SELECT count(*) FROM messages)
"""

_PRUNE_EVENTS = """
DELETE FROM notification_events e WHERE e.id IN (
    SELECT id FROM notification_events
    WHERE created_at < now() - make_interval(days => $1)
      AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.event_id = notification_events.id)
      AND NOT EXISTS (SELECT 1 FROM mail_deliveries m WHERE m.event_id = notification_events.id)
      AND NOT EXISTS (SELECT 1 FROM telegram_deliveries t WHERE t.event_id = notification_events.id)
    LIMIT $2 FOR UPDATE SKIP LOCKED)
"""
PRUNE_BATCH = 10_000


@dataclass(frozen=True, slots=True)
class Attempt:
    ok: bool
    status_code: int | None
    error: str | None


@dataclass
class DeliveryCounters:
    delivered: int = 0
    failed_attempts: int = 0
    mails_sent: int = 0
    mail_failures: int = 0
    telegram_sent: int = 0
    telegram_failures: int = 0


class TelegramSender(Protocol):
    async def send_message(self, chat_id: int, text: str) -> int: ...


def delivery_body(delivery_id: int, event: str, created_at: Any, bot_id: int | None, data_json: str) -> bytes:
    """The POSTed JSON: the same bytes on every attempt of a delivery (the signature's t changes).
    `data_json` is the event's data as stored (JSON text), spliced in unchanged."""
    head = jsonutil.dumps({"id": delivery_id, "event": event, "created_at": created_at, "bot_id": bot_id})
    return head[:-1] + b',"data":' + data_json.encode() + b"}"


class WebhookSender:
    """One HTTP client for every webhook of the replica: guarded resolver, no redirects, 10 s."""

    def __init__(self, resolver: GuardedResolver, *, timeout_s: float = SEND_TIMEOUT_S,
                 clock: Callable[[], float] = time.time) -> None:
        self._resolver = resolver
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._clock = clock
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(resolver=self._resolver, limit=100, limit_per_host=8)
            # trust_env=False: no proxy from the environment may carry a request past the guard.
            self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout, trust_env=False,
                                                  cookie_jar=aiohttp.DummyCookieJar())
        return self._session

    async def send(self, url: str, secret: str, delivery_id: int, event: str, body: bytes) -> Attempt:
        try:
            _, host, _ = parse_url(url)
            self._resolver.policy.check_name(host)  # IP literals never reach the resolver
        except UnsafeUrl as e:
            return Attempt(False, None, f"refused: {e}"[:ERROR_CHARS])
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "X-Tradebot-Event": event,
            "X-Tradebot-Delivery": str(delivery_id),
            "X-Tradebot-Signature": signature(secret, int(self._clock()), body),
        }
        try:
            async with self._client().post(url, data=body, headers=headers, allow_redirects=False) as response:
                await response.content.read(MAX_RESPONSE_BYTES)  # at most 64 KiB of whatever it says
                ok = 200 <= response.status < 300
                return Attempt(ok, response.status, None if ok else f"HTTP {response.status}")
        except aiohttp.ClientConnectorError as e:
            if isinstance(e.os_error, BlockedAddress):
                return Attempt(False, None, f"refused: {e.os_error}"[:ERROR_CHARS])
            return Attempt(False, None, f"connection failed: {e.os_error.strerror or e.os_error}"[:ERROR_CHARS])
        except TimeoutError:
            return Attempt(False, None, f"no answer within {self._timeout.total:g} s")
        except (aiohttp.ClientError, OSError, ValueError) as e:
            return Attempt(False, None, f"{type(e).__name__}: {e}"[:ERROR_CHARS])

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
        await self._resolver.close()


@dataclass
class WorkerTiming:
    poll_s: float = 0.1  # how often an idle worker looks for due rows (enqueue-to-send latency)
    retry_s: float = 10.0  # TRADEBOT_WEBHOOK_RETRY_S: the first retry's delay, doubling after
    concurrency: int = 4  # webhooks sent to side by side by one replica (each holds a connection)
    mail_batch: int = 20
    telegram_batch: int = 20
    keep_days: float = 30.0  # TRADEBOT_NOTIFICATIONS_KEEP_DAYS: the delivery log's length
    prune_every_s: float = 60.0


@dataclass
class DeliveryWorker:
    """Both loops of one replica; the owner runs `run_webhooks` and `run_mail` as supervised tasks."""

    pool: asyncpg.Pool
    sender: WebhookSender
    mailer: Mailer
    public_url: str
    timing: WorkerTiming = field(default_factory=WorkerTiming)
    rng: Callable[[], float] = random.random
    counters: DeliveryCounters = field(default_factory=DeliveryCounters)

    @property
    def retry_policy(self) -> Backoff:
        # Deterministic: the n-th retry waits exactly retry_s * 2**(n-1) (its ceiling, no jitter),
        # as the contract promises receivers.
        return Backoff(base=self.timing.retry_s, cap=self.timing.retry_s * 2**MAIL_ATTEMPTS)

    async def run_webhooks(self) -> None:
        await self._loop("webhook deliveries", self.deliver_due)

    async def run_mail(self) -> None:
        await self._loop("mail deliveries", self.mail_due)

    async def run_pruning(self) -> None:
        async def prune_then_wait() -> int:
            await self.prune()
            await asyncio.sleep(self.timing.prune_every_s)
            return 1

        await self._loop("notification log pruning", prune_then_wait)

    async def prune(self) -> int:
        """Delete one batch of old delivered/failed rows, then the events left without deliveries."""
        removed = int(await self.pool.fetchval(_PRUNE, self.timing.keep_days, PRUNE_BATCH))
        await self.pool.execute(_PRUNE_EVENTS, self.timing.keep_days, PRUNE_BATCH)
        return removed

    async def _loop(self, what: str, step: Callable[[], Awaitable[int]]) -> None:
        errors = Retrier(Backoff(base=0.5, cap=10.0), rng=self.rng)
        while True:
            try:
                done = await step()
                errors.reset()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as e:
                delay = errors.next_delay()
                log.warning("%s: database unavailable; retrying in %.1f s", what, delay, extra={"error": str(e)})
                await asyncio.sleep(delay)
                continue
            if not done:
                await asyncio.sleep(self.timing.poll_s)

    # ------------------------------------------------------------------ webhooks

    async def deliver_due(self) -> int:
        """One pass: every webhook with a due head, up to `concurrency` at once; deliveries attempted."""
        heads = [r["id"] for r in await self.pool.fetch(_HEADS, self.timing.concurrency * 4)]
        if not heads:
            return 0
        limit = asyncio.Semaphore(self.timing.concurrency)

        async def one(head: int) -> int:
            async with limit:
                return await self._deliver_batch(head)

        return sum(await asyncio.gather(*(one(h) for h in heads)))

    async def _deliver_batch(self, head: int) -> int:
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(_CLAIM, head, BATCH)
            if not rows:
                return 0  # another replica has the webhook, or the head was sent meanwhile
            attempts = await self._send_in_order(rows[0]["url"], rows[0]["secret"], rows)
            await conn.execute(
                _RECORD,
                [rows[i]["id"] for i in range(len(attempts))],
                [a.ok for a in attempts],
                [a.status_code for a in attempts],
                [a.error for a in attempts],
                [self.retry_policy.ceiling(rows[i]["attempts"]) for i in range(len(attempts))],
            )
        for a in attempts:
            if a.ok:
                self.counters.delivered += 1
            else:
                self.counters.failed_attempts += 1
                log.info("webhook delivery failed; retried later",
                         extra={"head_delivery_id": head, "error": a.error, "status_code": a.status_code})
        return len(attempts)

    async def _send_in_order(self, url: str, secret: str, rows: Sequence[asyncpg.Record]) -> list[Attempt]:
        attempts: list[Attempt] = []
        started = time.monotonic()
        for row in rows:
            body = delivery_body(row["id"], row["event"], row["created_at"], row["bot_id"], row["data"])
            attempt = await self.sender.send(url, secret, row["id"], row["event"], body)
            attempts.append(attempt)
            if not attempt.ok or time.monotonic() - started > BATCH_SECONDS:
                break  # the rest wait for this one (in order), or for the next batch
        return attempts

    # ------------------------------------------------------------------ mail

    async def mail_due(self) -> int:
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(_MAIL_BATCH, self.timing.mail_batch)
            if not rows:
                return 0
            results: list[tuple[bool, str | None]] = []
            for row in rows:
                subject, text = mail_text(row["kind"], row["bot_id"], row["bot_name"], row["symbol"], row["data"],
                                          self.public_url)
                try:
                    await self.mailer.send(row["email"], subject, text)
                    results.append((True, None))
                    self.counters.mails_sent += 1
                except Exception as e:  # a mailer's failure is this row's failed attempt, never the loop's
                    results.append((False, f"{type(e).__name__}"[:ERROR_CHARS]))
                    self.counters.mail_failures += 1
                    log.warning("notification mail not sent; retried later", extra={"error": type(e).__name__})
            await conn.execute(
                _MAIL_RECORD,
                [r["id"] for r in rows],
                [ok for ok, _ in results],
                [err for _, err in results],
                [self.retry_policy.ceiling(r["attempts"]) for r in rows],
                MAIL_ATTEMPTS,
            )
        return len(rows)

    # ------------------------------------------------------------------ telegram

    async def telegram_due(self, chat: TelegramSender) -> int:
        """One batch of due Telegram messages, sent in id order; only the Telegram lease holder calls it."""
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(_TELEGRAM_BATCH, self.timing.telegram_batch)
            if not rows:
                return 0
            attempted: list[tuple[asyncpg.Record, bool, str | None]] = []
            failed_chats: set[int] = set()
            for row in rows:
                if row["chat_id"] in failed_chats:
                    continue  # the chat's order: what follows a failed message waits for its retry
                label = bot_label(row["bot_id"], row["bot_name"], row["symbol"])
                try:
                    await chat.send_message(row["chat_id"], event_text(row["event"], row["data"], label))
                    attempted.append((row, True, None))
                    self.counters.telegram_sent += 1
                except Exception as e:  # a failed send is this row's failed attempt, never the loop's
                    task = asyncio.current_task()
                    if task is not None and task.cancelling():
                        raise asyncio.CancelledError from e  # a cancellation a client library turned into an error
                    failed_chats.add(row["chat_id"])
                    attempted.append((row, False, f"{e}"[:ERROR_CHARS]))
                    self.counters.telegram_failures += 1
                    log.warning("telegram message not sent; retried later", extra={"error": f"{e}"[:ERROR_CHARS]})
            await conn.execute(
                _TELEGRAM_RECORD,
                [r["id"] for r, _, _ in attempted],
                [ok for _, ok, _ in attempted],
                [err for _, _, err in attempted],
                [self.retry_policy.ceiling(r["attempts"]) for r, _, _ in attempted],
                MAIL_ATTEMPTS,
            )
        return len(rows)
