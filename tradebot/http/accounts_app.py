"""Wires accounts and API keys into the app: services in a cleanup context, the bearer
authenticator, and the one mapping from domain refusals to problem responses."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from aiohttp import web

from tradebot.accounts.api_keys import ApiKeyService
from tradebot.accounts.errors import (
    AccountError,
    ApiKeyInUse,
    ApiKeyNotFound,
    EmailTaken,
    ExchangeUnavailable,
    InvalidCredentials,
    InvalidResetToken,
    RateLimited,
    TooManyApiKeys,
    WrongCurrentPassword,
)
from tradebot.accounts.key_validator import CcxtKeyValidator
from tradebot.accounts.service import AccountService, AuthLimits
from tradebot.accounts.session_cache import SessionCache
from tradebot.http.appkeys import AUTHENTICATOR, DB, OPERATIONS, REDIS, SECRETS, SETTINGS, Principal
from tradebot.http.problems import FieldError, Problem, conflict, not_found, unauthorized, validation_problem
from tradebot.security.mailer import make_mailer
from tradebot.security.password_policy import PasswordPolicy, WeakPassword, load_common_passwords
from tradebot.security.passwords import PasswordHasher
from tradebot.security.rate_limit import RateLimiter
from tradebot.security.secrets_box import SecretBox
from tradebot.security.tokens import TokenCodec

ACCOUNTS = web.AppKey("accounts", AccountService)
API_KEYS = web.AppKey("api_keys", ApiKeyService)
PASSWORD_HASHER = web.AppKey("password_hasher", PasswordHasher)
# Wired to the replica's pub/sub subscription by bots_app's bot_events_context.
SESSION_CACHE = web.AppKey("session_cache", SessionCache)


class BearerAuthenticator:
    """`Authorization: Bearer <jwt>` checked by the account service on every protected request."""

    def __init__(self, accounts: AccountService) -> None:
        self._accounts = accounts

    async def __call__(self, request: web.Request) -> Principal:
        header = request.headers.get("Authorization")
        if header is None and _takes_query_token(request):
            # Browsers' EventSource cannot send headers; such routes take ?access_token= (never logged).
            scheme, token = "bearer", request.query.get("access_token", "")
        else:
            scheme, _, token = (header or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise unauthorized("a bearer token is required")
        try:
            user = await self._accounts.authenticate(token.strip())
        except InvalidCredentials:
            raise unauthorized("invalid, expired or revoked token") from None
        return Principal(user.user_id, user.email, user.token_id, user.token_expires_at,
                         user.token_version, user.token_accepted_until)


def _takes_query_token(request: web.Request) -> bool:
    op = request.app[OPERATIONS].get(request.match_info.route)
    return op is not None and op.query_token


def problem_for(error: AccountError) -> Problem:
    """The HTTP answer to a domain refusal; details never say more than the client may know."""
    if isinstance(error, RateLimited):
        p = Problem(429, "too many attempts; try again later")
        p.headers["Retry-After"] = str(max(1, int(error.retry_after_s + 0.999)))
        return p
    if isinstance(error, InvalidCredentials):
        return unauthorized("invalid email or password")
    if isinstance(error, WrongCurrentPassword):
        return unauthorized("the current password is not correct")
    if isinstance(error, EmailTaken):
        return conflict("an account with this email already exists")
    if isinstance(error, InvalidResetToken):
        return Problem(400, "the reset token is invalid, expired or already used")
    if isinstance(error, ApiKeyNotFound):
        return not_found("api key")
    if isinstance(error, TooManyApiKeys):
        return conflict("the maximum number of api keys is reached; delete one first")
    if isinstance(error, ApiKeyInUse):
        return conflict("a running bot uses this api key; stop it first")
    if isinstance(error, ExchangeUnavailable):
        return Problem(503, "the exchange did not answer clearly; try again later", headers={"Retry-After": "5"})
    return Problem(400, "request refused")


def weak_password_problem(error: WeakPassword, field: str) -> Problem:
    """A 422 naming the body field that carried the refused password."""
    return validation_problem([FieldError(field, error.reason)])


async def accounts_context(app: web.Application) -> AsyncIterator[None]:
    """Runs after the PostgreSQL and Redis contexts; closed before them."""
    settings, secrets = app[SETTINGS], app[SECRETS]
    hasher = PasswordHasher()
    await hasher.start()
    policy = PasswordPolicy(await asyncio.to_thread(load_common_passwords))
    # One limiter (one Redis circuit breaker, one local fallback) for every limit of this replica.
    limiter = RateLimiter(app[REDIS], settings.redis_prefix)
    app[SESSION_CACHE] = sessions = SessionCache(app[REDIS], settings.redis_prefix)
    accounts = AccountService(
        pool=app[DB],
        redis=app[REDIS],
        redis_prefix=settings.redis_prefix,
        hasher=hasher,
        policy=policy,
        tokens=TokenCodec(secrets.jwt_secret),
        limiter=limiter,
        mailer=make_mailer(settings.smtp_url, settings.outbox_dir or settings.data_dir / "outbox"),
        limits=AuthLimits.per_minute(
            login_ip=settings.auth_login_per_ip_per_min,
            login_account=settings.auth_login_per_account_per_min,
            register_ip=settings.auth_register_per_ip_per_min,
            reset_ip=settings.auth_reset_per_ip_per_min,
            login_account_address_per_hour=settings.auth_login_per_account_address_per_hour,
            login_account_ceiling_per_hour=settings.auth_login_account_ceiling_per_hour,
        ),
        public_url=settings.public_url,
        sessions=sessions,
    )
    app[PASSWORD_HASHER] = hasher
    app[ACCOUNTS] = accounts
    app[API_KEYS] = ApiKeyService(
        app[DB], SecretBox(secrets.fernet_keys), CcxtKeyValidator(settings.exchange_url), limiter
    )
    app[AUTHENTICATOR] = BearerAuthenticator(accounts)
    try:
        yield
    finally:
        await accounts.close()
        await asyncio.to_thread(hasher.close)  # waits for a hash in flight; not on the loop
