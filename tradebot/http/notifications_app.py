"""Wires notifications into the app: the webhook and preference services, and this replica's
delivery worker (two supervised loops, cancelled and awaited on shutdown)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator

from aiohttp import web
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from tradebot.http.appkeys import DB, DELIVERY_WORKER, HTTP_METRICS, NOTIFICATION_PREFERENCES, SETTINGS, WEBHOOKS
from tradebot.notifications.delivery_worker import DeliveryWorker, WebhookSender, WorkerTiming
from tradebot.notifications.preferences import PreferenceStore
from tradebot.notifications.ssrf import AddressPolicy, GuardedResolver
from tradebot.notifications.webhooks import WebhookService
from tradebot.runtime.supervised import BackgroundTasks
from tradebot.security.mailer import make_mailer

log = logging.getLogger(__name__)

RESTART_DELAY_S = 1.0

# Set before startup, replaces the resolver the SSRF guard asks (tests: DNS answers of their own).
RESOLVER = web.AppKey("webhook_resolver", GuardedResolver)


async def notifications_context(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    resolver = app.get(RESOLVER) or GuardedResolver(AddressPolicy(allow_private=settings.webhooks_may_target_private))
    app[WEBHOOKS] = WebhookService(app[DB], resolver)
    app[NOTIFICATION_PREFERENCES] = PreferenceStore(app[DB])
    worker = DeliveryWorker(
        app[DB],
        WebhookSender(resolver),
        make_mailer(settings.smtp_url, settings.outbox_dir or settings.data_dir / "outbox"),
        settings.public_url,
        WorkerTiming(poll_s=settings.notifications_poll_s, retry_s=settings.webhook_retry_s,
                     keep_days=settings.notifications_keep_days),
    )
    app[DELIVERY_WORKER] = worker
    loop = asyncio.get_running_loop()

    def restart(name: str, error: BaseException) -> None:
        # A crash is a bug, logged and counted by BackgroundTasks; the outbox keeps every row, so
        # the loop starts again after a pause rather than leaving deliveries to pile up.
        def again() -> None:
            try:
                tasks.spawn(name, loops[name]())
            except RuntimeError:
                pass  # closing

        loop.call_later(RESTART_DELAY_S, again)

    tasks = BackgroundTasks("notifications", on_crash=restart)
    loops = {"notifications-webhooks": worker.run_webhooks, "notifications-mail": worker.run_mail,
             "notifications-pruning": worker.run_pruning}
    collector = DeliveryCollector(worker, tasks)
    app[HTTP_METRICS].registry.register(collector)
    if settings.notifications_enabled:
        for name, run in loops.items():
            tasks.spawn(name, run())
    try:
        yield
    finally:
        app[HTTP_METRICS].registry.unregister(collector)
        await tasks.close()
        await worker.sender.close()


class DeliveryCollector(Collector):
    """What this replica's delivery worker did: deliveries, failed attempts, mails, loop crashes."""

    def __init__(self, worker: DeliveryWorker, tasks: BackgroundTasks) -> None:
        self._worker = worker
        self._tasks = tasks

    def collect(self) -> Iterator[Metric]:
        c = self._worker.counters
        attempts = CounterMetricFamily("tradebot_webhook_attempts", "Webhook delivery attempts by outcome",
                                       labels=["outcome"])
        attempts.add_metric(["delivered"], c.delivered)
        attempts.add_metric(["failed"], c.failed_attempts)
        yield attempts
        mails = CounterMetricFamily("tradebot_notification_mails", "Notification mails by outcome", labels=["outcome"])
        mails.add_metric(["sent"], c.mails_sent)
        mails.add_metric(["failed"], c.mail_failures)
        yield mails
        telegram = CounterMetricFamily("tradebot_telegram_messages", "Telegram messages of the outbox by outcome",
                                       labels=["outcome"])
        telegram.add_metric(["sent"], c.telegram_sent)
        telegram.add_metric(["failed"], c.telegram_failures)
        yield telegram
        crashes = CounterMetricFamily("tradebot_notification_loop_crashes", "Delivery loops that crashed",
                                      labels=["task"])
        for name, count in sorted(self._tasks.crashes.items()):
            crashes.add_metric([name], count)
        yield crashes
