"""Accounts: register, log in and out, the per-request token check, password change and reset.

Every public method is one use case; the HTTP handlers call exactly one of them. Passwords are
hashed and verified in the hasher's executor; nothing here logs a password, token or reset link.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
import secrets
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

import asyncpg
import redis.asyncio as aioredis

from tradebot.accounts.emails import normalize_email
from tradebot.accounts.errors import (
    EmailTaken,
    InvalidCredentials,
    InvalidResetToken,
    RateLimited,
    WrongCurrentPassword,
)
from tradebot.accounts.revocations import RevocationStore
from tradebot.accounts.session_cache import SessionCache
from tradebot.accounts.session_events import SessionAnnouncer
from tradebot.accounts.users import DuplicateEmail, User, UserRecord, UserRepository
from tradebot.security.known_addresses import KnownAddresses
from tradebot.security.mailer import Mailer
from tradebot.security.password_policy import PasswordPolicy
from tradebot.security.passwords import PasswordHasher
from tradebot.security.rate_limit import Decision, Limit, RateLimiter
from tradebot.security.tokens import InvalidToken, IssuedToken, TokenCodec

log = logging.getLogger(__name__)

RESET_TOKEN_TTL = dt.timedelta(minutes=30)
# Reset mails to one email: 3 per 15 minutes asked from one address, 10 from all addresses together.
# One address refills at 3 per 15 minutes, below the ceiling's 10, so it never reaches the ceiling:
# it cannot stop the owner asking from elsewhere.
RESET_PER_EMAIL_ADDRESS = Limit("reset-email-address", 3, 15 * 60)
RESET_PER_EMAIL = Limit("reset-email", 10, 15 * 60)
LOGIN_PER_ACCOUNT_ADDRESS_HOURLY = Limit("login-account-address-hour", 30, 3600)
LOGIN_ACCOUNT_CEILING = Limit("login-account", 100, 3600)


@dataclass(frozen=True, slots=True)
class AuthLimits:
    """Failed logins count per address, per (account, address) per minute and per hour, and per
    account over all addresses (the ceiling); reset requests per address, per (email, address) and
    per email. A ceiling refills faster than one address's own budget does, so no single address
    can reach it; addresses that signed in to the account before skip it (KnownAddresses)."""

    login_per_ip: Limit
    login_per_account: Limit  # per (account, address), the short window
    register_per_ip: Limit
    reset_per_ip: Limit
    login_per_account_address: Limit = LOGIN_PER_ACCOUNT_ADDRESS_HOURLY
    login_account_ceiling: Limit = LOGIN_ACCOUNT_CEILING
    reset_per_email_address: Limit = RESET_PER_EMAIL_ADDRESS
    reset_per_email: Limit = RESET_PER_EMAIL

    @classmethod
    def per_minute(
        cls,
        *,
        login_ip: int,
        login_account: int,
        register_ip: int,
        reset_ip: int,
        login_account_address_per_hour: int = 30,
        login_account_ceiling_per_hour: int = 100,
    ) -> AuthLimits:
        return cls(
            login_per_ip=Limit("login-ip", login_ip, 60),
            login_per_account=Limit("login-account-address", login_account, 60),
            register_per_ip=Limit("register-ip", register_ip, 60),
            reset_per_ip=Limit("reset-ip", reset_ip, 60),
            login_per_account_address=Limit("login-account-address-hour", login_account_address_per_hour, 3600),
            login_account_ceiling=Limit("login-account", login_account_ceiling_per_hour, 3600),
        )


def _pair(account: str, client_ip: str) -> str:
    return f"{account}\n{client_ip}"


@dataclass(frozen=True, slots=True)
class AuthenticatedUser:
    user_id: int
    email: str
    token_id: str
    token_expires_at: int
    token_version: int = 0
    # The last second this token is accepted (expiry plus the clock leeway): what is kept open on it
    # ends then.
    token_accepted_until: int = 0


def hash_reset_token(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class AccountService:
    def __init__(
        self,
        *,
        pool: asyncpg.Pool,
        redis: aioredis.Redis,
        redis_prefix: str,
        hasher: PasswordHasher,
        policy: PasswordPolicy,
        tokens: TokenCodec,
        limiter: RateLimiter,
        mailer: Mailer,
        limits: AuthLimits,
        public_url: str,
        sessions: SessionCache | None = None,
    ) -> None:
        self._users = UserRepository(pool)
        # Never trusted until wired to the replica's subscription: without it every request is
        # checked against Redis and PostgreSQL.
        self._cache = sessions if sessions is not None else SessionCache(redis, redis_prefix)
        self._revocations = RevocationStore(pool, redis, redis_prefix)
        self._sessions = SessionAnnouncer(redis, redis_prefix)
        self._hasher = hasher
        self._policy = policy
        self._tokens = tokens
        self._limiter = limiter
        self._known = KnownAddresses(redis, redis_prefix)
        self._mailer = mailer
        self._limits = limits
        self._public_url = public_url.rstrip("/")
        # Work done after the response (reset tokens, mails), so its timing tells nothing about
        # which emails have accounts; awaited on close.
        self._background: set[asyncio.Task[None]] = set()
        self._reset_order = asyncio.Lock()

    async def close(self) -> None:
        """Wait for the work in flight (the service stays usable)."""
        if self._background:
            await asyncio.wait(set(self._background), timeout=30)

    async def _limit(self, limit: Limit, subject: str) -> Decision:
        decision = await self._limiter.hit(limit, subject)
        if not decision.allowed:
            raise RateLimited(decision.retry_after_s)
        return decision

    async def _ceiling(self, limit: Limit, account: str, client_ip: str) -> Decision:
        """Count against an account's ceiling over all addresses; an address that signed in to the
        account before is not refused by it (it still has its own per-address budget)."""
        decision = await self._limiter.hit(limit, account)
        if not decision.allowed and not await self._known.is_known(account, client_ip):
            raise RateLimited(decision.retry_after_s)
        return decision

    async def register(self, email: str, password: str, *, client_ip: str) -> User:
        email = normalize_email(email)
        await self._limit(self._limits.register_per_ip, client_ip)
        self._policy.check(password, email)
        password_hash = await self._hasher.hash(password)
        try:
            user = await self._users.create(email, password_hash)
        except DuplicateEmail as e:
            raise EmailTaken from e
        log.info("user registered", extra={"user_id": user.id})
        return user

    async def login(self, email: str, password: str, *, remember_me: bool, client_ip: str) -> IssuedToken:
        try:
            email = normalize_email(email)
            well_formed = True
        except ValueError:
            # No account can have it: the same 401 as an unknown email, after the same work.
            email, well_formed = email.strip().lower(), False
        # The limits count failed attempts. Each attempt is counted before any hashing (so a flood
        # costs us no argon2 time and concurrent guesses cannot slip past) and given back if it
        # succeeds, so signing in often never locks anybody out.
        # An attempt refused by a narrower limit is not counted by the wider ones, so what reaches
        # an account's ceiling is only what got through to a password check.
        limits, pair = self._limits, _pair(email, client_ip)
        counted = [
            (limits.login_per_ip, client_ip, await self._limit(limits.login_per_ip, client_ip)),
            (limits.login_per_account, pair, await self._limit(limits.login_per_account, pair)),
            (limits.login_per_account_address, pair, await self._limit(limits.login_per_account_address, pair)),
            (limits.login_account_ceiling, email, await self._ceiling(limits.login_account_ceiling, email, client_ip)),
        ]
        creds = await self._users.credentials_by_email(email) if well_formed else None
        if creds is None:
            await self._hasher.verify_dummy(password)
            raise InvalidCredentials
        result = await self._hasher.verify(creds.password_hash, password)
        if not result.ok or not creds.is_active:
            log.info("login refused", extra={"user_id": creds.id})
            raise InvalidCredentials
        for limit, subject, decision in counted:
            if decision.allowed:  # a known address past the ceiling was not counted there
                await self._limiter.refund(limit, subject, decision)
        await self._known.remember(email, client_ip)
        if result.needs_rehash:
            new_hash = await self._hasher.hash(password)
            await self._users.replace_hash_if_unchanged(creds.id, creds.password_hash, new_hash)
            log.info("password rehashed with current parameters", extra={"user_id": creds.id})
        issued = self._tokens.issue(creds.id, creds.token_version, remember_me=remember_me)
        log.info("user logged in", extra={"user_id": creds.id})
        return issued

    async def authenticate(self, token: str) -> AuthenticatedUser:
        """The per-request check: signature and claims, revocation, token version, active user."""
        try:
            claims = self._tokens.decode(token)
        except InvalidToken as e:
            log.info("token refused", extra={"reason": str(e)})
            raise InvalidCredentials from e
        cache = self._cache
        record = cache.accepted_user(claims.user_id, claims.jti)
        if record is None:
            # What was read before `epoch` moved is not stored: it may predate a change.
            epoch = cache.epoch
            if await self._revocations.is_revoked(claims.jti):
                raise InvalidCredentials
            record = cache.user(claims.user_id) or await self._users.record(claims.user_id)
            if record is None:
                raise InvalidCredentials
            cache.store(epoch, record, claims.jti)
        if not record.is_active or record.token_version != claims.token_version:
            raise InvalidCredentials
        return AuthenticatedUser(claims.user_id, record.email, claims.jti, claims.expires_at,
                                 claims.token_version, claims.expires_at + self._tokens.leeway_s)

    async def logout(self, user: AuthenticatedUser) -> None:
        # Forgotten here before the answer (and on every replica when the announcement arrives);
        # again after the write, so a check that read the record meanwhile cannot store it.
        self._cache.forget_token(user.token_id)
        await self._revocations.revoke(user.token_id, user.user_id, user.token_expires_at)
        self._cache.forget_token(user.token_id)
        await self._sessions.token_revoked(user.user_id, user.token_id)
        log.info("user logged out", extra={"user_id": user.user_id})

    async def me(self, user_id: int) -> User:
        record = await self.user_record(user_id)
        return record.public()

    async def user_record(self, user_id: int) -> UserRecord:
        """The user's row, from this replica's session cache when it can answer."""
        record = self._cache.user(user_id)
        if record is None:
            epoch = self._cache.epoch
            record = await self._users.record(user_id)
            if record is None:
                raise InvalidCredentials
            self._cache.store(epoch, record)
        return record

    async def set_active(self, user_id: int, active: bool) -> bool:
        """Deactivate (or reactivate) an account; a deactivated user's tokens are refused on every
        replica at once, and what they keep open ends. False if there is no such user."""
        found = await self._users.set_active(user_id, active)
        if found:
            self._cache.forget_user(user_id)
            log.info("account %s", "reactivated" if active else "deactivated", extra={"user_id": user_id})
            await self._sessions.credentials_changed(user_id)
        return found

    async def change_password(self, user_id: int, current_password: str, new_password: str) -> None:
        creds = await self._users.credentials_by_id(user_id)
        if creds is None or not creds.is_active:
            raise InvalidCredentials
        self._policy.check(new_password, creds.email, field="new_password")
        # A stolen token must not become a password-guessing oracle: same budget of failures as logins.
        counted = await self._limit(self._limits.login_per_account, f"user:{user_id}")
        if not (await self._hasher.verify(creds.password_hash, current_password)).ok:
            raise WrongCurrentPassword
        await self._limiter.refund(self._limits.login_per_account, f"user:{user_id}", counted)
        new_hash = await self._hasher.hash(new_password)
        if not await self._users.set_password_if_unchanged(user_id, creds.password_hash, new_hash):
            raise WrongCurrentPassword  # changed by someone else meanwhile
        self._cache.forget_user(user_id)
        log.info("password changed; earlier tokens revoked", extra={"user_id": user_id})
        await self._sessions.credentials_changed(user_id)
        self._notify_password_changed(creds.email)

    async def request_password_reset(self, email: str, *, client_ip: str) -> None:
        """Same answer after the same work whether or not the email has an account: only the rate
        limits (which count unknown emails alike) run before the answer; looking the account up,
        storing the token and mailing it happen after it, in the background."""
        email = normalize_email(email)
        await self._limit(self._limits.reset_per_ip, client_ip)
        await self._limit(self._limits.reset_per_email_address, _pair(email, client_ip))
        await self._ceiling(self._limits.reset_per_email, email, client_ip)
        self._in_background(self._issue_reset_token(email), "password-reset")

    async def _issue_reset_token(self, email: str) -> None:
        try:
            # In request order on this replica, so the latest request's link is the one stored.
            async with self._reset_order:
                creds = await self._users.credentials_by_email(email)
                # The user id in front lets confirm find the row by primary key; the random part
                # is the secret, and only its hash is stored.
                token = f"{creds.id if creds else 0}.{secrets.token_urlsafe(32)}"
                await self._users.store_reset_token(creds.id if creds else 0, hash_reset_token(token), RESET_TOKEN_TTL)
        except Exception as e:  # nobody waits for this answer; the user can ask again
            log.error("password reset token not stored", extra={"error": type(e).__name__})
            return
        if creds is None or not creds.is_active:
            return
        link = f"{self._public_url}/reset-password?token={token}"
        await self._send_mail(
            creds.email,
            "Reset your tradebot password",
            "Someone asked to reset the password of your tradebot account.\n\n"
            f"To choose a new password, open this link within 30 minutes:\n\n{link}\n\n"
            "The link works once. If you did not ask for this, ignore this mail.\n",
        )

    def _in_background(self, work: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(work, name=name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _mail_later(self, to: str, subject: str, body: str) -> None:
        self._in_background(self._send_mail(to, subject, body), "account-mail")

    async def _send_mail(self, to: str, subject: str, body: str) -> None:
        try:
            await self._mailer.send(to, subject, body)
        except Exception as e:  # a mail failure must not surface anywhere else; the user can ask again
            log.error("account mail not sent", extra={"error": type(e).__name__})

    def _notify_password_changed(self, email: str) -> None:
        # OWASP ASVS 2.5.5: the owner hears of a credential change they did not make.
        self._mail_later(
            email,
            "Your tradebot password was changed",
            "The password of your tradebot account was just changed, and every session was signed out.\n\n"
            "If this was not you, reset your password at once and review your API keys.\n",
        )

    async def confirm_password_reset(self, token: str, new_password: str) -> None:
        user_part, _, secret_part = token.partition(".")
        if not (user_part.isascii() and user_part.isdigit() and int(user_part) < 2**63 and secret_part):
            raise InvalidResetToken
        user_id, token_hash = int(user_part), hash_reset_token(token)
        # The token first: the email rule must not tell a caller without a valid token whose email
        # an account id has.
        owner = await self._users.reset_token_owner(user_id, token_hash)
        if owner is None:
            raise InvalidResetToken
        self._policy.check(new_password, owner, field="new_password")
        new_hash = await self._hasher.hash(new_password)
        email = await self._users.consume_reset_token(user_id, token_hash, new_hash)
        if email is None:
            raise InvalidResetToken  # used or expired meanwhile
        self._cache.forget_user(user_id)
        log.info("password reset; earlier tokens revoked", extra={"user_id": user_id})
        await self._sessions.credentials_changed(user_id)
        self._notify_password_changed(email)
