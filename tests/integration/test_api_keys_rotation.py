"""`tradebot rotate-keys`: every stored key is re-encrypted with the newest Fernet key and stays readable."""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys

import asyncpg
from cryptography.fernet import Fernet

from tradebot.accounts.key_rotation import rotate_all_keys
from tradebot.security.secrets_box import SecretBox


async def _seed(pool: asyncpg.Pool, box: SecretBox, n: int) -> dict[int, tuple[str, str]]:
    user_id = await pool.fetchval(
        "INSERT INTO users (email, password_hash) VALUES ($1, 'x') RETURNING id",
        f"r-{secrets.token_hex(4)}@example.com",
    )
    clear: dict[int, tuple[str, str]] = {}
    for i in range(n):
        key, secret = f"KEY{secrets.token_hex(8)}", secrets.token_hex(32)
        key_id = await pool.fetchval(
            """INSERT INTO api_keys
                 (user_id, label, exchange, api_key_encrypted, secret_encrypted, api_key_hint)
               VALUES ($1, $2, 'binanceusdm', $3, $4, '') RETURNING id""",
            user_id,
            f"k{i}",
            box.encrypt(key),
            box.encrypt(secret),
        )
        clear[key_id] = (key, secret)
    return clear


async def _assert_all_under(pool: asyncpg.Pool, newest: str, clear: dict[int, tuple[str, str]]) -> None:
    only_new = SecretBox([newest])
    rows = await pool.fetch("SELECT id, api_key_encrypted, secret_encrypted FROM api_keys")
    assert len(rows) == len(clear)
    for row in rows:
        assert only_new.decrypt(row["api_key_encrypted"]) == clear[row["id"]][0]
        assert only_new.decrypt(row["secret_encrypted"]) == clear[row["id"]][1]


async def test_rotation_moves_every_row_to_the_newest_key(pool: asyncpg.Pool) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    clear = await _seed(pool, SecretBox([old]), 7)
    report = await rotate_all_keys(pool, SecretBox([new, old]), batch_size=3)
    assert (report.examined, report.rotated) == (7, 7)
    await _assert_all_under(pool, new, clear)
    # A second run has nothing left to do.
    again = await rotate_all_keys(pool, SecretBox([new, old]), batch_size=3)
    assert (again.examined, again.rotated) == (7, 0)


async def test_rotate_keys_command(pool: asyncpg.Pool, clean_db: str, redis_url: str) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    clear = await _seed(pool, SecretBox([old]), 3)
    env = {
        **os.environ,
        "DATABASE_URL": clean_db,
        "REDIS_URL": redis_url,
        "TRADEBOT_ENV": "test",
        "TRADEBOT_JWT_SECRET": secrets.token_urlsafe(48),
        "TRADEBOT_FERNET_KEYS": f"{new},{old}",
    }
    proc = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "tradebot", "rotate-keys", "--batch-size", "2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "re-encrypted 3 of 3" in proc.stdout
    await _assert_all_under(pool, new, clear)
    for value in clear.values():
        assert value[0] not in proc.stdout + proc.stderr and value[1] not in proc.stdout + proc.stderr

    # Without the old key nothing can be read: one clear line, status 2, nothing changed.
    env["TRADEBOT_FERNET_KEYS"] = Fernet.generate_key().decode()
    proc = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "tradebot", "rotate-keys"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2
    assert "cannot be decrypted" in proc.stderr
    await _assert_all_under(pool, new, clear)
