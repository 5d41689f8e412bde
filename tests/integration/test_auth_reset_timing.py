"""Issue #14 item 10: a reset request must not answer later for an email that has an account.

The audit measured a known email 2.6 ms slower (the token's UPDATE matched a row and wrote it, and
the mail was scheduled). Timing thresholds are flaky, so the test asserts the cause instead: the
work done before the answer is the same, operation by operation and result by result, for a known
and an unknown email. The medians over HTTP are measured and printed, not asserted.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis
from pytest_aiohttp import AiohttpClient

from tests.integration.auth_helpers import Client, new_email, register
from tradebot.accounts.service import AccountService, AuthLimits
from tradebot.config import Secrets, Settings
from tradebot.http.app import create_app
from tradebot.security.password_policy import PasswordPolicy
from tradebot.security.passwords import PasswordHasher
from tradebot.security.rate_limit import RateLimiter
from tradebot.security.tokens import TokenCodec


class RecordingPool:
    """The real pool; each query's method, text and outcome is noted (the outcome tells a write of
    one row from a write of none)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self.calls: list[tuple[str, str, str]] = []

    async def fetchrow(self, query: str, *args: Any) -> Any:
        row = await self._pool.fetchrow(query, *args)
        self.calls.append(("fetchrow", query, "row" if row is not None else "none"))
        return row

    async def fetchval(self, query: str, *args: Any) -> Any:
        value = await self._pool.fetchval(query, *args)
        self.calls.append(("fetchval", query, "value" if value is not None else "none"))
        return value

    async def execute(self, query: str, *args: Any) -> str:
        status: str = await self._pool.execute(query, *args)
        self.calls.append(("execute", query, status))
        return status

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pool, name)


class RecordingMailer:
    def __init__(self) -> None:
        self.sent: list[str] = []

    async def send(self, to: str, subject: str, body: str) -> None:
        self.sent.append(to)


async def test_a_reset_request_does_the_same_work_before_answering_for_known_and_unknown_emails(
    pool: asyncpg.Pool, redis_client: aioredis.Redis, redis_prefix: str, test_secrets: Secrets
) -> None:
    recording, mailer = RecordingPool(pool), RecordingMailer()
    hasher = PasswordHasher(max_workers=1)
    service = AccountService(
        pool=recording,
        redis=redis_client,
        redis_prefix=redis_prefix,
        hasher=hasher,
        policy=PasswordPolicy(frozenset()),
        tokens=TokenCodec(test_secrets.jwt_secret),
        limiter=RateLimiter(redis_client, redis_prefix),
        mailer=mailer,
        limits=AuthLimits.per_minute(login_ip=10, login_account=10, register_ip=10, reset_ip=100),
        public_url="http://127.0.0.1:8080",
    )
    try:
        known = new_email("known")
        await service.register(known, "correct horse battery staple", client_ip="192.0.2.1")
        before_answer = {}
        for label, email in (("known", known), ("unknown", new_email("unknown"))):
            recording.calls.clear()
            mails_before = len(mailer.sent)
            await service.request_password_reset(email, client_ip="192.0.2.1")
            before_answer[label] = list(recording.calls), mailer.sent[mails_before:]
            await service.close()  # waits for the work after the answer, so the next call does not see it
        assert before_answer["known"] == before_answer["unknown"]
    finally:
        await service.close()
        hasher.close()
    assert mailer.sent == [known]  # the mail still goes out, after the answer


@pytest.mark.parametrize("rounds", [150])
async def test_reset_answer_times_are_measured(
    aiohttp_client: AiohttpClient, settings: Settings, test_secrets: Secrets, clean_db: str, redis_url: str, rounds: int
) -> None:
    """Reported, not asserted: the medians of known and unknown emails, interleaved."""
    app = create_app(
        settings.model_copy(update={"trusted_proxies": "127.0.0.1,::1", "auth_reset_per_ip_per_min": 100_000,
                                    "auth_register_per_ip_per_min": 100_000}),
        test_secrets, database_url=clean_db, redis_url=redis_url, replica_id="test-replica",
    )
    client: Client = await aiohttp_client(app)
    users = [new_email("timing") for _ in range(rounds // 10 + 1)]
    for email in users:
        await register(client, email)
    url = "/api/v1/auth/password-reset/request"
    times: dict[str, list[float]] = {"known": [], "unknown": []}
    for i in range(rounds):
        for label, email in (("known", users[i // 10]), ("unknown", new_email("nobody"))):
            # A fresh address each time: the per-address limits are not what is measured here.
            headers = {"X-Forwarded-For": f"10.{i // 250}.{i % 250}.{1 if label == 'known' else 2}"}
            started = time.perf_counter()
            r = await client.post(url, json={"email": email}, headers=headers)
            times[label].append((time.perf_counter() - started) * 1000)
            assert r.status == 202, await r.text()
    known, unknown = statistics.median(times["known"]), statistics.median(times["unknown"])
    print(f"\nreset request medians over {rounds}: known {known:.2f} ms, unknown {unknown:.2f} ms, "
          f"difference {known - unknown:+.2f} ms")
