"""Forged, altered, incomplete and expired tokens are refused by the running app (401)."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import asyncpg
import jwt

from tests.integration.auth_helpers import Client, bearer, problem, user_token
from tradebot.config import Secrets


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


async def test_forged_tokens_are_401(client: Client, test_secrets: Secrets, pool: asyncpg.Pool) -> None:
    email, token = await user_token(client)
    user_id = await pool.fetchval("SELECT id FROM users WHERE email = $1", email)
    good = jwt.decode(token, options={"verify_signature": False})
    assert set(good) == {"iss", "aud", "sub", "jti", "iat", "exp", "ver"}
    now = int(time.time())
    secret = test_secrets.jwt_secret

    def sign(payload: dict[str, Any], key: str = secret, alg: str = "HS256") -> str:
        return jwt.encode(payload, key, algorithm=alg)

    # Sanity: a token we sign ourselves with the app's secret and the same claims is accepted.
    assert (await client.get("/api/v1/auth/me", headers=bearer(sign(good)))).status == 200

    header, _, signature = token.split(".")
    none_header = b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    forged: list[str] = [
        f"{none_header}.{b64(json.dumps(good).encode())}.",
        sign(good, key="another secret that is long enough!!"),
        sign(good, alg="HS512"),
        f"{header}.{b64(json.dumps({**good, 'sub': str(user_id + 1)}).encode())}.{signature}",
        sign({**good, "exp": now - 60, "iat": now - 3600}),
        sign({**good, "iss": "evil"}),
        sign({**good, "aud": "other"}),
        sign({**good, "ver": good["ver"] + 1}),
        sign({**good, "sub": "999999999"}),
    ]
    forged += [sign({k: v for k, v in good.items() if k != claim}) for claim in good]
    for bad in forged:
        await problem(await client.get("/api/v1/auth/me", headers=bearer(bad)), 401)
    assert (await client.get("/api/v1/auth/me", headers=bearer(token))).status == 200


async def test_inactive_users_tokens_are_refused(client: Client, pool: asyncpg.Pool) -> None:
    email, token = await user_token(client)
    await pool.execute("UPDATE users SET is_active = false WHERE email = $1", email)
    await problem(await client.get("/api/v1/auth/me", headers=bearer(token)), 401)
    r = await client.post("/api/v1/auth/login", json={"email": email, "password": "correct horse battery staple"})
    await problem(r, 401)
