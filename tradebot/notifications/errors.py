"""What the notifications service can refuse; the HTTP layer maps each to one status."""

from __future__ import annotations


class NotificationError(Exception):
    """Base of every refusal from this package."""


class WebhookNotFound(NotificationError):
    """Absent or someone else's: one answer for both (DESIGN.md invariant 5)."""


class DeliveryNotFound(NotificationError):
    pass


class TooManyWebhooks(NotificationError):
    def __init__(self, limit: int) -> None:
        super().__init__(f"at most {limit} webhooks per user")
        self.limit = limit


class DeliveryNotRetryable(NotificationError):
    """Only a failed delivery is retried by hand; a pending one is on its way already."""


class InvalidNotificationField(NotificationError):
    """A 422 naming the field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class TelegramNotConfigured(NotificationError):
    """No platform bot on this deployment (TRADEBOT_TELEGRAM_BOT_TOKEN unset): nothing to link."""
