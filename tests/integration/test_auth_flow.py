"""CONTRACT.md "Auth", row by row: success and failure codes through the real app."""

from __future__ import annotations

import re
import statistics
import time

import asyncpg
import pytest

from tests.integration.auth_helpers import (
    PASSWORD,
    Client,
    bearer,
    login,
    new_email,
    problem,
    register,
    user_token,
)

ISO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


async def test_register_returns_the_user(client: Client) -> None:
    email = new_email()
    r = await client.post("/api/v1/auth/register", json={"email": f"  {email.upper()} ", "password": PASSWORD})
    assert r.status == 201
    body = await r.json()
    assert set(body) == {"id", "email", "created_at"}
    assert body["email"] == email  # trimmed and lower-cased
    assert isinstance(body["id"], int)
    assert ISO_UTC.match(body["created_at"])


async def test_register_taken_email_is_409_whatever_the_case(client: Client) -> None:
    email = new_email()
    await register(client, email)
    r = await client.post("/api/v1/auth/register", json={"email": email.upper(), "password": PASSWORD})
    await problem(r, 409)


async def test_register_validation(client: Client) -> None:
    cases = [
        ({"email": "not-an-email", "password": PASSWORD}, "email"),
        ({"email": new_email(), "password": "short"}, "password"),
        ({"email": new_email(), "password": "x" * 1025}, "password"),
        ({"email": new_email()}, "password"),
        ({"email": new_email(), "password": 12345678}, "password"),
        ({"email": new_email(), "password": PASSWORD, "is_active": False}, "is_active"),
        ({"email": new_email(), "password": PASSWORD, "id": 1}, "id"),
    ]
    for payload, field in cases:
        r = await client.post("/api/v1/auth/register", json=payload)
        body = await problem(r, 422)
        assert field in {e["field"] for e in body["errors"]}, (payload, body)
        # The rejected value is never echoed back.
        assert "short" not in await r.text() or field != "password"


async def test_passwords_of_8_to_1024_characters_outside_the_blocklist_are_accepted(client: Client) -> None:
    """CONTRACT: 8–1024 characters, not common, not the email; no composition rules. (This test once
    accepted "password123", "zzzzzzzz" and "12345678": the contract now refuses them, see
    test_auth_password_policy.py.)"""
    for password in ("ünïcödé!", "all lower case words", "zq8vnw3k", "Tr0ub4dor&3x"):
        email = new_email()
        await register(client, email, password)
        await login(client, email, password)


async def test_password_is_never_trimmed_and_1024_chars_is_fine(client: Client) -> None:
    email = new_email()
    long_password = " " + "p" * 1022 + " "
    await register(client, email, long_password)
    await login(client, email, long_password)
    r = await client.post("/api/v1/auth/login", json={"email": email, "password": long_password.strip()})
    await problem(r, 401)


async def test_login_gives_a_bearer_token(client: Client) -> None:
    email = new_email()
    await register(client, email)
    r = await client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert r.status == 200
    body = await r.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 7 * 24 * 3600
    assert r.headers["Cache-Control"] == "no-store"
    r = await client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD, "remember_me": True})
    assert (await r.json())["expires_in"] == 30 * 24 * 3600


async def test_login_failures_are_indistinguishable(client: Client) -> None:
    email = new_email()
    await register(client, email)
    wrong = await client.post("/api/v1/auth/login", json={"email": email, "password": "wrong password!"})
    unknown = await client.post("/api/v1/auth/login", json={"email": new_email(), "password": PASSWORD})
    a, b = await problem(wrong, 401), await problem(unknown, 401)
    a.pop("request_id")
    b.pop("request_id")
    assert a == b


async def test_me_and_logout(client: Client) -> None:
    email, token = await user_token(client)
    r = await client.get("/api/v1/auth/me", headers=bearer(token))
    assert r.status == 200
    body = await r.json()
    assert set(body) == {"id", "email", "is_active", "created_at"}
    assert body["email"] == email and body["is_active"] is True
    other = await login(client, email)

    r = await client.post("/api/v1/auth/logout", headers=bearer(token))
    assert r.status == 204
    await problem(await client.get("/api/v1/auth/me", headers=bearer(token)), 401)
    await problem(await client.post("/api/v1/auth/logout", headers=bearer(token)), 401)
    # Only that token: another session of the same user still works.
    assert (await client.get("/api/v1/auth/me", headers=bearer(other))).status == 200


async def test_logout_is_recorded_until_the_token_would_expire(client: Client, pool: asyncpg.Pool) -> None:
    _, token = await user_token(client)
    assert (await client.post("/api/v1/auth/logout", headers=bearer(token))).status == 204
    row = await pool.fetchrow("SELECT jti, expires_at FROM revoked_tokens")
    assert row is not None
    assert abs(row["expires_at"].timestamp() - (time.time() + 7 * 24 * 3600)) < 60


async def test_protected_routes_need_a_token(client: Client) -> None:
    for method, path in [
        ("GET", "/api/v1/auth/me"),
        ("POST", "/api/v1/auth/logout"),
        ("POST", "/api/v1/auth/password"),
        ("GET", "/api/v1/api-keys"),
        ("GET", "/api/v1/api-keys/1"),
    ]:
        r = await client.request(method, path)
        await problem(r, 401)
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
    for header in ("Bearer", "Bearer ", "Basic abc", "bearer not-a-jwt", "Token x.y.z"):
        await problem(await client.get("/api/v1/auth/me", headers={"Authorization": header}), 401)


async def test_change_password_revokes_every_earlier_token(client: Client) -> None:
    email, token = await user_token(client)
    second = await login(client, email)
    r = await client.post(
        "/api/v1/auth/password",
        headers=bearer(token),
        json={"current_password": "not it at all", "new_password": "a brand new password"},
    )
    await problem(r, 401)
    r = await client.post(
        "/api/v1/auth/password",
        headers=bearer(token),
        json={"current_password": PASSWORD, "new_password": "short"},
    )
    body = await problem(r, 422)
    assert body["errors"][0]["field"] == "new_password"
    r = await client.post(
        "/api/v1/auth/password",
        headers=bearer(token),
        json={"current_password": PASSWORD, "new_password": "a brand new password"},
    )
    assert r.status == 204
    for old in (token, second):
        await problem(await client.get("/api/v1/auth/me", headers=bearer(old)), 401)
    await problem(await client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD}), 401)
    fresh = await login(client, email, "a brand new password")
    assert (await client.get("/api/v1/auth/me", headers=bearer(fresh))).status == 200


async def test_openapi_describes_the_auth_and_key_routes(client: Client) -> None:
    doc = await (await client.get("/api/openapi.json")).json()
    for path in (
        "/api/v1/auth/register",
        "/api/v1/auth/login",
        "/api/v1/auth/logout",
        "/api/v1/auth/me",
        "/api/v1/auth/password",
        "/api/v1/auth/password-reset/request",
        "/api/v1/auth/password-reset/confirm",
        "/api/v1/api-keys",
        "/api/v1/api-keys/{id}",
        "/api/v1/api-keys/{id}/validate",
    ):
        assert path in doc["paths"], path
    assert "security" not in doc["paths"]["/api/v1/auth/login"]["post"]
    assert doc["paths"]["/api/v1/auth/me"]["get"]["security"] == [{"bearerAuth": []}]


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/v1/auth/login", {"email": "a@example.com", "password": PASSWORD, "role": "admin"}, "role"),
        ("/api/v1/auth/login", {"email": "a@example.com", "password": PASSWORD, "remember_me": "yes"}, "remember_me"),
        ("/api/v1/auth/password-reset/request", {"email": "a@example.com", "user_id": 1}, "user_id"),
        ("/api/v1/auth/password-reset/confirm", {"token": "1.x", "new_password": PASSWORD, "id": 2}, "id"),
    ],
)
async def test_extra_or_mistyped_fields_are_422_naming_the_field(
    client: Client, path: str, body: dict[str, object], field: str
) -> None:
    problem_body = await problem(await client.post(path, json=body), 422)
    assert field in {e["field"] for e in problem_body["errors"]}


async def test_unknown_email_costs_what_a_wrong_password_costs(client: Client) -> None:
    """The dummy hash: an unknown email is not answered faster (no account enumeration by timing)."""
    email = new_email()
    await register(client, email)

    async def median_ms(payload: dict[str, str]) -> float:
        times = []
        for _ in range(5):
            started = time.perf_counter()
            r = await client.post("/api/v1/auth/login", json=payload)
            times.append((time.perf_counter() - started) * 1000)
            assert r.status == 401
        return statistics.median(times)

    wrong = await median_ms({"email": email, "password": "wrong password"})
    unknown = await median_ms({"email": new_email(), "password": "wrong password"})
    # Without the dummy verification an unknown email would answer in ~2 ms against ~100 ms; the
    # bounds are wide so a busy machine cannot make this flaky.
    assert unknown > wrong / 5 and wrong > unknown / 5, (wrong, unknown)
