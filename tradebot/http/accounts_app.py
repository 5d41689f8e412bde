"""Wires accounts and API keys into the app: services in a cleanup context and the bearer
authenticator (the services' refusals become problems in http.domain_problems)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from aiohttp import web

from tradebot.accounts.api_keys import ApiKeyService
from tradebot.accounts.errors import InvalidCredentials
from tradebot.accounts.key_validator import CcxtKeyValidator
from tradebot.accounts.service import AccountService, AuthLimits
from tradebot.accounts.session_cache import SessionCache
from tradebot.http.appkeys import (
    ACCOUNTS,
    API_KEYS,
    AUTHENTICATOR,
    DB,
    OPERATIONS,
    PASSWORD_HASHER,
    REDIS,
    SECRETS,
    SESSION_CACHE,
    SETTINGS,
    Principal,
)
from tradebot.http.problems import unauthorized
from tradebot.security.mailer import make_mailer
from tradebot.security.password_policy import PasswordPolicy, load_common_passwords
from tradebot.security.passwords import PasswordHasher
from tradebot.security.rate_limit import RateLimiter
from tradebot.security.secrets_box import SecretBox
from tradebot.security.tokens import TokenCodec


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
