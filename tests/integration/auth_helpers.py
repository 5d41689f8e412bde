"""Small helpers shared by the auth and API-key integration tests (real app, PostgreSQL, Redis)."""

from __future__ import annotations

import secrets
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

PROBLEM = "application/problem+json"
PASSWORD = "correct horse battery staple"

Client = TestClient[web.Request, web.Application]


def new_email(tag: str = "user") -> str:
    return f"{tag}-{secrets.token_hex(4)}@example.com"


async def register(client: Client, email: str, password: str = PASSWORD) -> dict[str, Any]:
    r = await client.post("/api/v1/auth/register", json={"email": email, "password": password})
    assert r.status == 201, await r.text()
    body: dict[str, Any] = await r.json()
    return body


async def login(client: Client, email: str, password: str = PASSWORD, **extra: Any) -> str:
    r = await client.post("/api/v1/auth/login", json={"email": email, "password": password, **extra})
    assert r.status == 200, await r.text()
    token: str = (await r.json())["access_token"]
    return token


async def user_token(client: Client, tag: str = "user") -> tuple[str, str]:
    """A registered user's email and a fresh access token."""
    email = new_email(tag)
    await register(client, email)
    return email, await login(client, email)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status == status, f"{response.status}: {await response.text()}"
    assert response.content_type == PROBLEM
    body: dict[str, Any] = await response.json()
    assert body["status"] == status
    return body
