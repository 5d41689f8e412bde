"""What the bots service can refuse; the HTTP layer maps each to one status."""

from __future__ import annotations

from collections.abc import Sequence


class BotError(Exception):
    """Base of every refusal from this package."""


class BotNotFound(BotError):
    """Absent, deleted or someone else's: one answer for all three (DESIGN.md invariant 5)."""


class BotAlreadyRunning(BotError):
    pass


class BotHasNoApiKey(BotError):
    pass


class BotLimitReached(BotError):
    """The user already has as many bots as one account may hold (TRADEBOT_MAX_BOTS_PER_USER)."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"at most {limit} bots per user")
        self.limit = limit


class BotIsRunning(BotError):
    """A change that cannot be applied to a running bot (its open position belongs to the old one)."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class CommandRefused(BotError):
    """A manual command that makes no sense now: the bot is not running, holds no position to
    exit, already holds one to enter... (409 with the reason)."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class InvalidBotSettings(BotError):
    """Settings that are well-formed but not acceptable (unknown symbol, someone else's key...)."""

    def __init__(self, errors: Sequence[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{f}: {m}" for f, m in errors))
        self.errors = tuple(errors)  # (field, message) pairs


class MarketsUnavailable(BotError):
    """The market list could not be read (exchange and cache both away): the symbol cannot be checked."""
