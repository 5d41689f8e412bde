"""CONTRACT.md "Exchange API keys": create, list (paginated), get, delete; ownership and secrecy."""

from __future__ import annotations

import asyncio
import logging
import secrets
from typing import Any

import asyncpg
import pytest
import redis.asyncio as aioredis

from tests.integration.auth_helpers import PASSWORD, Client, bearer, new_email, problem, user_token
from tests.integration.test_auth_flow import ISO_UTC

KEY_FIELDS = {
    "id",
    "label",
    "exchange",
    "api_key_hint",
    "is_valid",
    "validated_at",
    "created_at",
    "updated_at",
}


def key_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "label": "main",
        "exchange": "binanceusdm",
        "api_key": f"AK{secrets.token_hex(16)}",
        "secret_key": f"SK{secrets.token_hex(32)}",
    }
    body.update(overrides)
    return body


async def create_key(client: Client, token: str, **overrides: Any) -> dict[str, Any]:
    r = await client.post("/api/v1/api-keys", json=key_body(**overrides), headers=bearer(token))
    assert r.status == 201, await r.text()
    body: dict[str, Any] = await r.json()
    return body


async def test_create_get_list_delete(client: Client) -> None:
    _, token = await user_token(client)
    body = key_body(label="my key")
    r = await client.post("/api/v1/api-keys", json=body, headers=bearer(token))
    assert r.status == 201
    key = await r.json()
    assert set(key) == KEY_FIELDS
    assert key["label"] == "my key" and key["exchange"] == "binanceusdm"
    assert key["api_key_hint"] == body["api_key"][-4:]
    assert key["is_valid"] is None and key["validated_at"] is None
    assert ISO_UTC.match(key["created_at"]) and ISO_UTC.match(key["updated_at"])
    text = await r.text()
    assert body["api_key"] not in text and body["secret_key"] not in text

    r = await client.get(f"/api/v1/api-keys/{key['id']}", headers=bearer(token))
    assert r.status == 200 and await r.json() == key
    assert r.headers["Cache-Control"] == "no-store"

    r = await client.get("/api/v1/api-keys", headers=bearer(token))
    assert r.status == 200
    assert await r.json() == {"items": [key], "next_cursor": None}

    r = await client.delete(f"/api/v1/api-keys/{key['id']}", headers=bearer(token))
    assert r.status == 204
    await problem(await client.get(f"/api/v1/api-keys/{key['id']}", headers=bearer(token)), 404)
    await problem(await client.delete(f"/api/v1/api-keys/{key['id']}", headers=bearer(token)), 404)


async def test_short_keys_show_less_than_four_characters(client: Client) -> None:
    _, token = await user_token(client)
    assert (await create_key(client, token, api_key="abcdefgh"))["api_key_hint"] == "gh"
    assert (await create_key(client, token, api_key="abc"))["api_key_hint"] == ""


async def test_pagination_is_keyset_and_complete(client: Client) -> None:
    _, token = await user_token(client)
    ids = [(await create_key(client, token, label=f"k{i}"))["id"] for i in range(7)]
    seen: list[int] = []
    cursor: str | None = None
    pages = 0
    while True:
        params = {"limit": "3", **({"cursor": cursor} if cursor else {})}
        r = await client.get("/api/v1/api-keys", params=params, headers=bearer(token))
        assert r.status == 200
        page = await r.json()
        assert len(page["items"]) <= 3
        seen += [k["id"] for k in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids and pages == 3
    r = await client.get("/api/v1/api-keys", headers=bearer(token))
    assert len((await r.json())["items"]) == 7  # default limit 50


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "501"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"cursor": "not-base64!!"}, "cursor"),
        ({"cursor": "WyJ4Il0"}, "cursor"),  # ["x"]: valid base64 JSON, wrong shape
        ({"offset": "5"}, "offset"),
    ],
)
async def test_bad_page_parameters_are_422(client: Client, params: dict[str, str], field: str) -> None:
    _, token = await user_token(client)
    body = await problem(await client.get("/api/v1/api-keys", params=params, headers=bearer(token)), 422)
    assert field in {e["field"] for e in body["errors"]}


async def test_another_users_key_is_404_on_every_route(client: Client) -> None:
    """BOLA (OWASP API1): user B never reaches user A's key, and learns nothing about it."""
    _, token_a = await user_token(client, "alice")
    _, token_b = await user_token(client, "bob")
    key = await create_key(client, token_a)
    own_b = await create_key(client, token_b)
    path = f"/api/v1/api-keys/{key['id']}"
    missing = await problem(await client.get("/api/v1/api-keys/999999999", headers=bearer(token_b)), 404)
    for method, url in [("GET", path), ("DELETE", path), ("POST", path + "/validate")]:
        body = await problem(await client.request(method, url, headers=bearer(token_b)), 404)
        assert body["detail"] == missing["detail"]
    r = await client.get("/api/v1/api-keys", headers=bearer(token_b))
    assert [k["id"] for k in (await r.json())["items"]] == [own_b["id"]]
    # A forged cursor only pages through B's own keys.
    from tradebot.http.pagination import encode_cursor

    r = await client.get("/api/v1/api-keys", params={"cursor": encode_cursor([0])}, headers=bearer(token_b))
    assert [k["id"] for k in (await r.json())["items"]] == [own_b["id"]]
    # A's key is intact.
    assert (await client.get(path, headers=bearer(token_a))).status == 200


@pytest.mark.parametrize("key_id", ["abc", "0", "-1", "99999999999999999999", "1.5", "١"])
async def test_malformed_ids_are_404(client: Client, key_id: str) -> None:
    _, token = await user_token(client)
    await problem(await client.get(f"/api/v1/api-keys/{key_id}", headers=bearer(token)), 404)


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"id": 1}, "id"),
        ({"user_id": 1}, "user_id"),
        ({"is_valid": True}, "is_valid"),
        ({"api_key_hint": "abcd"}, "api_key_hint"),
        ({"exchange": "kraken"}, "exchange"),
        ({"label": ""}, "label"),
        ({"label": "x" * 101}, "label"),
        ({"label": "nul\u0000inside"}, "label"),
        ({"label": "   "}, "label"),
        ({"api_key": ""}, "api_key"),
        ({"secret_key": "has space"}, "secret_key"),
        ({"secret_key": 123}, "secret_key"),
    ],
)
async def test_mass_assignment_and_bad_fields_are_422(
    client: Client, pool: asyncpg.Pool, overrides: dict[str, Any], field: str
) -> None:
    _, token = await user_token(client)
    r = await client.post("/api/v1/api-keys", json=key_body(**overrides), headers=bearer(token))
    body = await problem(r, 422)
    assert field in {e["field"] for e in body["errors"]}
    # Nothing half-written.
    assert await pool.fetchval("SELECT count(*) FROM api_keys") == 0


async def test_delete_is_refused_while_a_running_bot_uses_the_key(client: Client, pool: asyncpg.Pool) -> None:
    _, token = await user_token(client)
    key = await create_key(client, token)
    user_id = await pool.fetchval("SELECT user_id FROM api_keys WHERE id = $1", key["id"])
    bot_id = await pool.fetchval(
        """INSERT INTO bot_configs (user_id, api_key_id, symbol, timeframe, ema_period, is_active)
           VALUES ($1, $2, 'BTC/USDT:USDT', '1m', 20, true) RETURNING id""",
        user_id,
        key["id"],
    )
    await problem(await client.delete(f"/api/v1/api-keys/{key['id']}", headers=bearer(token)), 409)
    assert (await client.get(f"/api/v1/api-keys/{key['id']}", headers=bearer(token))).status == 200
    # A stopped bot does not hold the key.
    await pool.execute("UPDATE bot_configs SET is_active = false WHERE id = $1", bot_id)
    assert (await client.delete(f"/api/v1/api-keys/{key['id']}", headers=bearer(token))).status == 204
    assert await pool.fetchval("SELECT api_key_id FROM bot_configs WHERE id = $1", bot_id) is None


async def test_no_secret_reaches_the_database_redis_or_the_logs(
    client: Client,
    pool: asyncpg.Pool,
    redis_client: aioredis.Redis,
    redis_prefix: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    email = new_email("secretive")
    password = f"pw-{secrets.token_hex(12)}"
    r = await client.post("/api/v1/auth/register", json={"email": email, "password": password})
    assert r.status == 201
    r = await client.post("/api/v1/auth/login", json={"email": email, "password": password})
    token = (await r.json())["access_token"]
    body = key_body()
    await create_key(client, token, **body)
    await client.get("/api/v1/api-keys", headers=bearer(token))
    await client.post("/api/v1/auth/password-reset/request", json={"email": email})
    await client.post("/api/v1/auth/login", json={"email": email, "password": "wrong " + password})
    await client.post("/api/v1/auth/logout", headers=bearer(token))

    dump: list[str] = []
    for table in ("users", "revoked_tokens", "api_keys"):
        dump += [r[0] for r in await pool.fetch(f"SELECT t::text FROM {table} t")]
    async for k in redis_client.scan_iter(match=f"{redis_prefix}:*"):
        dump.append(k)
        if await redis_client.type(k) == "string":
            dump.append(str(await redis_client.get(k)))
    logs = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert dump and logs
    for secret in (password, body["api_key"], body["secret_key"], token, token.split(".")[2]):
        assert not any(secret in row for row in dump), "a secret reached storage"
        assert secret not in logs, "a secret reached the logs"
    assert PASSWORD not in logs


async def test_the_number_of_keys_per_user_is_capped(client: Client, pool: asyncpg.Pool) -> None:
    """OWASP API4: one account cannot fill the table."""
    from tradebot.accounts.api_keys import MAX_KEYS_PER_USER

    _, token = await user_token(client)
    results = await asyncio.gather(
        *(
            client.post("/api/v1/api-keys", json=key_body(label=f"k{i}"), headers=bearer(token))
            for i in range(MAX_KEYS_PER_USER + 5)
        )
    )
    statuses = sorted(r.status for r in results)
    assert statuses == [201] * MAX_KEYS_PER_USER + [409] * 5
    assert await pool.fetchval("SELECT count(*) FROM api_keys") == MAX_KEYS_PER_USER
    # Another user is not affected.
    _, other = await user_token(client, "other")
    await create_key(client, other)
