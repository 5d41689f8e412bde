"""`tradebot rotate-keys`: re-encrypt every stored exchange key with the newest Fernet key.

This is the one place that reads api_keys across users, on purpose: it is an operator's command,
not a request. Rows are done in keyset batches, each batch in its own transaction with its rows
locked, so a crash leaves every row readable (old or new key) and a rerun finishes the job.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import asyncpg

from tradebot.security.secrets_box import SecretBox, SecretDecryptError

log = logging.getLogger(__name__)

DEFAULT_BATCH = 200


@dataclass(frozen=True, slots=True)
class RotationReport:
    examined: int
    rotated: int


async def rotate_all_keys(pool: asyncpg.Pool, box: SecretBox, *, batch_size: int = DEFAULT_BATCH) -> RotationReport:
    examined = rotated = 0
    last_id = 0
    while True:
        async with pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                """
                SELECT id, api_key_encrypted, secret_encrypted FROM api_keys
                 WHERE id > $1 ORDER BY id LIMIT $2 FOR UPDATE
                """,
                last_id,
                batch_size,
            )
            if not rows:
                break
            updates = []
            for row in rows:
                key_ct, secret_ct = bytes(row["api_key_encrypted"]), bytes(row["secret_encrypted"])
                if box.is_current(key_ct) and box.is_current(secret_ct):
                    continue
                try:
                    updates.append((row["id"], box.rotate(key_ct), box.rotate(secret_ct)))
                except SecretDecryptError as e:
                    # The batch rolls back; earlier batches stay done and a rerun continues.
                    message = f"api key {row['id']} cannot be decrypted with any configured key"
                    raise SecretDecryptError(message) from e
            if updates:
                await conn.executemany(
                    "UPDATE api_keys SET api_key_encrypted = $2, secret_encrypted = $3 WHERE id = $1", updates
                )
            examined += len(rows)
            rotated += len(updates)
            last_id = rows[-1]["id"]
        log.info("rotate-keys batch done", extra={"examined": examined, "rotated": rotated})
    return RotationReport(examined, rotated)
