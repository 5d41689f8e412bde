"""CONTRACT "Auth": a new password (register, change, reset) is not common and not the email; 422 names the field.

The audit (issue #14, item 2) registered `12345678`, `password` and eight spaces with a 201.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from tests.integration.auth_helpers import PASSWORD, Client, bearer, login, new_email, problem, register
from tests.integration.test_auth_reset import request_reset, token_from, wait_for_mails
from tradebot.config import Settings
from tradebot.security.password_policy import PasswordPolicy, WeakPassword, load_common_passwords
from tradebot.security.passwords import PasswordHasher

COMMON = ("12345678", "password", "Password", "PASSWORD", "password1", "iloveyou", "qwertyuiop", "1q2w3e4r5t")
REPEATED = (" " * 8, "aaaaaaaaaaaa", "1" * 20)


async def _refused(response: Any, field: str) -> str:
    body = await problem(response, 422)
    [error] = [e for e in body["errors"] if e["field"] == field]
    message: str = error["message"]
    return message


async def test_register_refuses_common_and_repeated_passwords(client: Client) -> None:
    for password in COMMON + REPEATED:
        r = await client.post("/api/v1/auth/register", json={"email": new_email(), "password": password})
        message = await _refused(r, "password")
        assert "common" in message or "repeated" in message, (password, message)


async def test_register_refuses_the_email_and_its_local_part(client: Client) -> None:
    email = new_email("someone-long")
    local = email.split("@")[0]
    for password in (email, email.upper(), local, local.upper()):
        r = await client.post("/api/v1/auth/register", json={"email": email, "password": password})
        assert "email" in await _refused(r, "password")
    await register(client, email)  # nothing was half-written: the address is still free


async def test_change_refuses_them_naming_new_password(client: Client) -> None:
    email = new_email()
    await register(client, email)
    token = await login(client, email)
    for new_password in ("12345678", " " * 8, email, email.split("@")[0].upper()):
        r = await client.post("/api/v1/auth/password", headers=bearer(token),
                              json={"current_password": PASSWORD, "new_password": new_password})
        await _refused(r, "new_password")
    # Refused changes changed nothing: the old password and the token still work.
    assert (await client.get("/api/v1/auth/me", headers=bearer(token))).status == 200
    await login(client, email)


async def test_reset_confirm_refuses_them_and_keeps_the_token(client: Client, settings: Settings) -> None:
    assert settings.outbox_dir is not None
    email = new_email()
    await register(client, email)
    await request_reset(client, email)
    [mail] = await wait_for_mails(settings.outbox_dir, 1)
    token = token_from(mail)
    for new_password in ("password", " " * 8, email.split("@")[0]):
        r = await client.post("/api/v1/auth/password-reset/confirm", json={"token": token, "new_password": new_password})
        await _refused(r, "new_password")
    r = await client.post("/api/v1/auth/password-reset/confirm",
                          json={"token": token, "new_password": "a fresh uncommon phrase"})
    assert r.status == 204
    await login(client, email, "a fresh uncommon phrase")


async def test_the_email_rule_needs_a_valid_token(client: Client) -> None:
    """A forged token must not learn, from a 422, whether an account id has a given email."""
    email = new_email()
    user = await register(client, email)
    r = await client.post("/api/v1/auth/password-reset/confirm",
                          json={"token": f"{user['id']}.forged", "new_password": email})
    await problem(r, 400)


async def test_an_existing_common_password_still_logs_in(client: Client, pool: asyncpg.Pool) -> None:
    """Login never re-checks: accounts made before the rule keep working."""
    email = new_email()
    await register(client, email)
    hasher = PasswordHasher(max_workers=1)
    try:
        await pool.execute("UPDATE users SET password_hash = $2 WHERE email = $1", email, await hasher.hash("12345678"))
    finally:
        hasher.close()
    await login(client, email, "12345678")


def test_the_bundled_list_is_the_100k_most_common() -> None:
    common = load_common_passwords()
    # Entries shorter than 8 characters are not kept (no new password can be one); 39,330 of the
    # 100,000 are 8 or longer, 38,000-odd once case-folded duplicates merge.
    assert 35_000 < len(common) < 40_000
    policy = PasswordPolicy(common)
    for password in ("12345678", "PassWord", "sunshine", "trustno1", "starwars", "00000000"):
        try:
            policy.check(password, "x@example.com")
        except WeakPassword:
            continue
        raise AssertionError(f"{password!r} accepted")
    policy.check(PASSWORD, "x@example.com")
