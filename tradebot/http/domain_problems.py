"""The one mapping from domain refusals to problem responses, consulted by the problems middleware.

Handlers call the domain and let its refusals through; the middleware looks the error's class up
here (the most specific registered class of its MRO wins, so a package's base error is the
fallback for a refusal without its own entry) and answers with the problem it gives. Details never
say more than the client may know: "not found" for someone else's bot, one answer for every bad
credential. An error that is in no entry is a bug, and stays a 500.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from tradebot.accounts import errors as accounts
from tradebot.backtests import drift
from tradebot.backtests import errors as backtests
from tradebot.bots import errors as bots
from tradebot.http.problems import (
    FieldError,
    Problem,
    conflict,
    field_problem,
    not_found,
    unauthorized,
    validation_problem,
)
from tradebot.notifications import errors as notifications
from tradebot.optimizations import errors as optimizations
from tradebot.security.password_policy import WeakPassword
from tradebot.security.rate_limit import retry_after_header

ToProblem = Callable[[Any], Problem]


def _fields(error: bots.InvalidBotSettings | backtests.InvalidBacktest | optimizations.InvalidOptimization) -> Problem:
    return validation_problem([FieldError(f, m) for f, m in error.errors])


def _rate_limited(error: accounts.RateLimited) -> Problem:
    return Problem(429, "too many attempts; try again later",
                   headers={"Retry-After": retry_after_header(error.retry_after_s)})


def _unavailable(detail: str, retry_after_s: int) -> ToProblem:
    return lambda _: Problem(503, detail, headers={"Retry-After": str(retry_after_s)})


def _refused(_: Exception) -> Problem:
    return Problem(400, "request refused")


_MARKETS_UNAVAILABLE = _unavailable("market data is unavailable right now; try again shortly", 5)

DOMAIN_PROBLEMS: Mapping[type[Exception], ToProblem] = MappingProxyType({
    # accounts and API keys
    accounts.RateLimited: _rate_limited,
    accounts.InvalidCredentials: lambda _: unauthorized("invalid email or password"),
    accounts.WrongCurrentPassword: lambda _: unauthorized("the current password is not correct"),
    accounts.EmailTaken: lambda _: conflict("an account with this email already exists"),
    accounts.InvalidResetToken: lambda _: Problem(400, "the reset token is invalid, expired or already used"),
    accounts.ApiKeyNotFound: lambda _: not_found("api key"),
    accounts.TooManyApiKeys: lambda _: conflict("the maximum number of api keys is reached; delete one first"),
    accounts.ApiKeyInUse: lambda _: conflict("a running bot uses this api key; stop it first"),
    accounts.ExchangeUnavailable: _unavailable("the exchange did not answer clearly; try again later", 5),
    accounts.AccountError: _refused,
    # A 422 naming the body field that carried the refused password.
    WeakPassword: lambda e: field_problem(e.field, e.reason),
    # bots
    bots.BotNotFound: lambda _: not_found("bot"),
    bots.BotAlreadyRunning: lambda _: conflict("the bot is already running"),
    bots.BotHasNoApiKey: lambda _: conflict("the bot has no api key; set api_key_id first"),
    bots.BotIsRunning: lambda e: conflict(e.detail),
    bots.CommandRefused: lambda e: conflict(e.detail),
    # 409, not 429: waiting does not help; the account is full until the user deletes a bot.
    bots.BotLimitReached: lambda e: conflict(f"this account already has the maximum of {e.limit} bots "
                                             "(TRADEBOT_MAX_BOTS_PER_USER); delete one to create another"),
    bots.InvalidBotSettings: _fields,
    bots.MarketsUnavailable: _MARKETS_UNAVAILABLE,
    bots.BotError: _refused,
    # backtests
    backtests.BacktestNotFound: lambda _: not_found("backtest"),
    backtests.InvalidBacktest: _fields,
    backtests.BacktestQueueFull: _unavailable("too many backtests queued on this server; try again shortly", 10),
    backtests.TooManyBacktests: lambda e: Problem(429, f"{e}; wait for one to finish", headers={"Retry-After": "10"}),
    backtests.MarketsUnavailable: _MARKETS_UNAVAILABLE,
    drift.InvalidDriftWindow: _fields,
    drift.DriftUnavailable: _unavailable("the exchange's candles for this window cannot be read right now; "
                                         "try again shortly", 10),
    backtests.BacktestError: _refused,
    # optimisations
    optimizations.OptimizationNotFound: lambda _: not_found("optimization"),
    optimizations.InvalidOptimization: _fields,
    optimizations.TooManyOptimizations: lambda e: Problem(429, f"{e}; wait for one to finish or cancel one",
                                                          headers={"Retry-After": "10"}),
    optimizations.OptimizationError: _refused,
    # webhooks and notification preferences
    notifications.WebhookNotFound: lambda _: not_found("webhook"),
    notifications.DeliveryNotFound: lambda _: not_found("delivery"),
    notifications.TooManyWebhooks: lambda e: conflict(f"this account already has the maximum of {e.limit} webhooks; "
                                                      "delete one to add another"),
    notifications.DeliveryNotRetryable: lambda e: conflict(str(e)),
    notifications.InvalidNotificationField: lambda e: field_problem(e.field, e.message),
    notifications.TelegramNotConfigured: lambda _: conflict("Telegram is not set up on this deployment "
                                                            "(no TRADEBOT_TELEGRAM_BOT_TOKEN)"),
    notifications.NotificationError: _refused,
})  # fmt: skip


def problem_for(error: BaseException, mapping: Mapping[type[Exception], ToProblem] = DOMAIN_PROBLEMS) -> Problem | None:
    """The problem `error` answers with, or None when no entry covers it (then it is a 500)."""
    for cls in type(error).__mro__:
        to_problem = mapping.get(cls)
        if to_problem is not None:
            return to_problem(error)
    return None
