"""What the backtests service can refuse; the HTTP layer maps each to one status."""

from __future__ import annotations

from collections.abc import Sequence


class BacktestError(Exception):
    """Base of every refusal from this package."""


class BacktestNotFound(BacktestError):
    """Absent or someone else's: one answer for both (DESIGN.md invariant 5)."""


class InvalidBacktest(BacktestError):
    """A well-formed request that cannot be run (unknown symbol, empty range, bad parameters...)."""

    def __init__(self, errors: Sequence[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{f}: {m}" for f, m in errors))
        self.errors = tuple(errors)  # (field, message) pairs


class BacktestQueueFull(BacktestError):
    """This replica already has as many backtests running and queued as it accepts."""


class TooManyBacktests(BacktestError):
    """The user already has as many backtests pending or running as one user may have."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"at most {limit} backtests may be pending or running at once")
        self.limit = limit


class MarketsUnavailable(BacktestError):
    """The market list could not be read, so the symbol cannot be checked."""


class HistoryUnavailable(Exception):
    """Candles could not be read from the exchange (after retries); the message is for the user."""
