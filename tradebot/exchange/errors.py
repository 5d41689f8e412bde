"""tradebot's exchange errors, grouped by what the caller must do, and the one place ccxt's become them.

    ExchangeError             anything else the exchange said no to: log it, do not retry blindly
    ├── Retryable             network, timeouts, 5xx, rate limits, clock skew: try again later
    ├── Rejected              this request will never succeed as sent (bad order, symbol, precision,
    │   │                     minimum, duplicate client order id): do not resend it
    │   ├── OrderNotFound     the exchange knows no such order (reconciliation reads this as "never placed")
    │   ├── NotServed         no such endpoint or method (HTTP 404/405/410 without an exchange code)
    │   └── InsufficientBalance   not enough margin: stop the bot with a readable message
    └── InvalidCredentials    bad, revoked or under-privileged API key: stop every bot on that key

Use `translate(e)` in an `except ccxt.BaseError as e: raise translate(e) from e`, or wrap the call in
`with translated(): …`, which does exactly that.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager

# `import ccxt.base.errors as …` fails (ccxt's package __init__ shadows the name); ccxt.async_support
# re-exports the same classes.
import ccxt.async_support as ccxt_errors


class ExchangeError(Exception):
    """An exchange call failed; `code` is the exchange's own error code when it sent one."""

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class Retryable(ExchangeError):
    """Transient: the same request may succeed later (with backoff)."""


class Rejected(ExchangeError):
    """Final for this request: resending it unchanged gets the same answer."""


class OrderNotFound(Rejected):
    """The exchange has no order with that id or client order id."""


class NotServed(Rejected):
    """The exchange (or the proxy in front of it) has no such endpoint: asking again gets the same 404.

    Says nothing about any order: a caller that needed the answer to learn an order's fate still
    does not know it.
    """


class InsufficientBalance(Rejected):
    """Not enough balance or margin for the order."""


class InvalidCredentials(ExchangeError):
    """The API key or secret is wrong, revoked or lacks permission."""


# Most specific first: ccxt's classes form a tree (OrderNotFound is an InvalidOrder, InvalidNonce and
# RequestTimeout are NetworkErrors, NetworkError is an OperationFailed).
_MAPPING: tuple[tuple[type[ccxt_errors.BaseError], type[ExchangeError]], ...] = (
    (ccxt_errors.InsufficientFunds, InsufficientBalance),
    (ccxt_errors.AuthenticationError, InvalidCredentials),  # includes PermissionDenied, AccountSuspended
    (ccxt_errors.OrderNotFound, OrderNotFound),
    (ccxt_errors.InvalidOrder, Rejected),  # includes DuplicateOrderId
    (ccxt_errors.BadRequest, Rejected),  # includes BadSymbol; precision, quantity below minimum
    (ccxt_errors.OperationRejected, Rejected),
    (ccxt_errors.ArgumentsRequired, Rejected),
    (ccxt_errors.NotSupported, Rejected),
    (ccxt_errors.NetworkError, Retryable),  # DDoSProtection, RateLimitExceeded, ExchangeNotAvailable, …
    (ccxt_errors.OperationFailed, Retryable),  # BadResponse, CancelPending: the operation may succeed later
)

_CODE = re.compile(r'"code"\s*:\s*(-?\d+)')

# ccxt raises ExchangeNotAvailable (a NetworkError) both for a connection that failed (no HTTP
# status) and for an HTTP answer without an exchange error code, quoting it as
# "<exchange id> <METHOD> <url> <status> <reason> <body>". Of those answers these are final: a
# missing route or method stays missing, and a 400 or 451 is refused again unchanged. 5xx, 408/504
# (RequestTimeout) and 403 (Binance's WAF limit, which lifts) stay retryable.
_HTTP_STATUS = re.compile(r"^\S+ (?:GET|POST|PUT|DELETE|PATCH|HEAD|OPTIONS) \S+ (\d{3})\b")
_NOT_SERVED = frozenset({404, 405, 410})
_REFUSED = frozenset({400, 451})


def _exchange_code(message: str) -> str | None:
    """The exchange's error code, from the response body ccxt quotes in its message."""
    start = message.find("{")
    if start >= 0:
        try:
            body = json.loads(message[start:])
        except ValueError:
            body = None
        if isinstance(body, dict) and "code" in body:
            return str(body["code"])
    match = _CODE.search(message)
    return match.group(1) if match else None


def http_status(message: str) -> int | None:
    """The HTTP status ccxt quotes in an error it raised for the status alone, else None."""
    match = _HTTP_STATUS.match(message)
    return int(match.group(1)) if match else None


def translate(exc: ccxt_errors.BaseError) -> ExchangeError:
    """tradebot's error for a ccxt one; raise it `from exc` to keep the cause."""
    message = str(exc) or type(exc).__name__
    code = _exchange_code(message)
    if isinstance(exc, ccxt_errors.ExchangeNotAvailable) and code is None:
        status = http_status(message)
        if status in _NOT_SERVED:
            return NotServed(message)
        if status in _REFUSED:
            return Rejected(message)
    for ccxt_class, ours in _MAPPING:
        if isinstance(exc, ccxt_class):
            return ours(message, code=code)
    return ExchangeError(message, code=code)


@contextmanager
def translated() -> Iterator[None]:
    """Turns any ccxt error raised inside the block into tradebot's, chained with `from`."""
    try:
        yield
    except ccxt_errors.BaseError as e:
        raise translate(e) from e
