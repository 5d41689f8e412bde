"""Password reset: 202 always, one mail with a single-use 30-minute link, only its hash stored."""

from __future__ import annotations

import asyncio
import email
import hashlib
import re
import time
from email.message import Message
from pathlib import Path

import asyncpg

from tests.integration.auth_helpers import PASSWORD, Client, bearer, login, new_email, problem, register
from tradebot.config import Settings
from tradebot.http.appkeys import ACCOUNTS

NEW_PASSWORD = "a completely new password"


def _read_mails(folder: Path) -> list[Message]:
    return [email.message_from_bytes(f.read_bytes()) for f in sorted(folder.glob("*.eml"))]


async def wait_for_mails(folder: Path, count: int, within: float = 5.0) -> list[Message]:
    deadline = time.monotonic() + within
    while True:
        mails = await asyncio.to_thread(_read_mails, folder)
        if len(mails) >= count:
            return mails
        if time.monotonic() > deadline:
            raise AssertionError(f"{count} mail(s) expected, found {len(mails)}")
        await asyncio.sleep(0.02)


def raw_tokens(folder: Path) -> list[str]:
    """What a script grepping the outbox finds: the link stands whole in the file (no encoding)."""
    return [m.group(1) for f in sorted(folder.glob("*.eml"))
            for m in re.finditer(r"\?token=(\S+)", f.read_text(encoding="ascii"))]


def token_from(mail: Message) -> str:
    body = mail.get_payload(decode=True)
    assert isinstance(body, bytes)
    link = next(line for line in body.decode().splitlines() if "?token=" in line)
    assert link.startswith("http://127.0.0.1:8080/")
    return link.rsplit("?token=", 1)[1]


async def request_reset(client: Client, address: str) -> None:
    r = await client.post("/api/v1/auth/password-reset/request", json={"email": address})
    assert r.status == 202, await r.text()


async def test_reset_round_trip(client: Client, settings: Settings, pool: asyncpg.Pool) -> None:
    assert settings.outbox_dir is not None
    address = new_email()
    await register(client, address)
    old_token = await login(client, address)
    await request_reset(client, address.upper())
    [mail] = await wait_for_mails(settings.outbox_dir, 1)
    assert mail["To"] == address
    token = token_from(mail)
    assert raw_tokens(settings.outbox_dir) == [token]

    # Only the SHA-256 of the token is stored, with a 30-minute expiry.
    row = await pool.fetchrow(
        "SELECT reset_token_hash, reset_token_expires_at - now() AS ttl FROM users WHERE email = $1", address
    )
    assert bytes(row["reset_token_hash"]) == hashlib.sha256(token.encode()).digest()
    assert 29 * 60 < row["ttl"].total_seconds() <= 30 * 60
    dump = "".join(r[0] for r in await pool.fetch("SELECT u::text FROM users u"))
    assert token not in dump and token.split(".", 1)[1] not in dump

    r = await client.post("/api/v1/auth/password-reset/confirm", json={"token": token, "new_password": NEW_PASSWORD})
    assert r.status == 204
    await problem(await client.get("/api/v1/auth/me", headers=bearer(old_token)), 401)
    await problem(await client.post("/api/v1/auth/login", json={"email": address, "password": PASSWORD}), 401)
    await login(client, address, NEW_PASSWORD)
    # The owner is told (ASVS 2.5.5); the notice carries no link or token.
    notice = next(
        m
        for m in await wait_for_mails(settings.outbox_dir, 2)
        if m is not mail and m["To"] == address and "changed" in str(m["Subject"])
    )
    assert "?token=" not in str(notice.get_payload())

    # Single use.
    r = await client.post(
        "/api/v1/auth/password-reset/confirm", json={"token": token, "new_password": "yet another one!"}
    )
    await problem(r, 400)


async def test_unknown_email_gets_202_and_no_mail(client: Client, settings: Settings) -> None:
    assert settings.outbox_dir is not None
    await request_reset(client, new_email("nobody"))
    # A known address afterwards proves the mailer works; its mail is the only one.
    known = new_email()
    await register(client, known)
    await request_reset(client, known)
    await wait_for_mails(settings.outbox_dir, 1)
    # Every mail the two requests could cause has been written once the service's work after the
    # answers is done.
    await client.app[ACCOUNTS].close()
    mails = await wait_for_mails(settings.outbox_dir, 1)
    assert [m["To"] for m in mails] == [known]


async def test_expired_or_replaced_token_is_refused(client: Client, settings: Settings, pool: asyncpg.Pool) -> None:
    assert settings.outbox_dir is not None
    address = new_email()
    await register(client, address)
    await request_reset(client, address)
    first = token_from((await wait_for_mails(settings.outbox_dir, 1))[0])
    await request_reset(client, address)
    mails = await wait_for_mails(settings.outbox_dir, 2)
    second = next(t for t in map(token_from, mails) if t != first)
    # Only the latest link works.
    r = await client.post("/api/v1/auth/password-reset/confirm", json={"token": first, "new_password": NEW_PASSWORD})
    await problem(r, 400)
    # Past its 30 minutes, it does not work either.
    await pool.execute(
        "UPDATE users SET reset_token_expires_at = now() - interval '1 second' WHERE email = $1", address
    )
    r = await client.post("/api/v1/auth/password-reset/confirm", json={"token": second, "new_password": NEW_PASSWORD})
    await problem(r, 400)
    await login(client, address)


async def test_confirm_validation(client: Client) -> None:
    for token in ("", "garbage", "0.abc", "12.", "99999999999999999999.abc", "1.x"):
        r = await client.post(
            "/api/v1/auth/password-reset/confirm", json={"token": token, "new_password": NEW_PASSWORD}
        )
        assert r.status in (400, 422), token
    r = await client.post("/api/v1/auth/password-reset/confirm", json={"token": "1.abc", "new_password": "short"})
    body = await problem(r, 422)
    assert body["errors"][0]["field"] == "new_password"
    r = await client.post("/api/v1/auth/password-reset/request", json={"email": "nope"})
    await problem(r, 422)


async def test_a_password_change_is_notified_by_mail(client: Client, settings: Settings) -> None:
    assert settings.outbox_dir is not None
    address = new_email()
    await register(client, address)
    token = await login(client, address)
    r = await client.post(
        "/api/v1/auth/password",
        headers=bearer(token),
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
    )
    assert r.status == 204
    [notice] = await wait_for_mails(settings.outbox_dir, 1)
    assert notice["To"] == address and "changed" in str(notice["Subject"])


async def test_a_token_used_twice_at_once_works_once(client: Client, settings: Settings) -> None:
    assert settings.outbox_dir is not None
    address = new_email()
    await register(client, address)
    await request_reset(client, address)
    token = token_from((await wait_for_mails(settings.outbox_dir, 1))[0])
    responses = await asyncio.gather(
        *(
            client.post(
                "/api/v1/auth/password-reset/confirm", json={"token": token, "new_password": f"{NEW_PASSWORD} {i}"}
            )
            for i in range(4)
        )
    )
    assert sorted(r.status for r in responses) == [204, 400, 400, 400]
