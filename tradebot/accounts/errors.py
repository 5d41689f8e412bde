"""What the account and API-key services can refuse; the HTTP layer maps each to one status."""

from __future__ import annotations


class AccountError(Exception):
    """Base of every refusal from this package."""


class EmailTaken(AccountError):
    pass


class InvalidCredentials(AccountError):
    """Unknown email, wrong password, inactive user, bad or revoked token: one indistinct answer."""


class WrongCurrentPassword(AccountError):
    pass


class InvalidResetToken(AccountError):
    """Unknown, expired or already used."""


class RateLimited(AccountError):
    def __init__(self, retry_after_s: float) -> None:
        super().__init__(f"rate limited; retry after {retry_after_s:.1f}s")
        self.retry_after_s = retry_after_s


class ApiKeyNotFound(AccountError):
    """Absent or someone else's: the same answer for both (DESIGN.md invariant 5)."""


class ApiKeyInUse(AccountError):
    pass


class TooManyApiKeys(AccountError):
    """A user's key count is capped (OWASP API4: unrestricted resource consumption)."""


class ExchangeUnavailable(AccountError):
    """The exchange could not give a clear answer (network, outage); says nothing about the key."""
