"""Request-body and query rules every endpoint shares (issue #14: NUL, encodings, duplicate keys,
content types, times), through the real app, PostgreSQL and Redis."""

from __future__ import annotations

import gzip

import pytest
from aiohttp import web

from tests.integration.auth_helpers import Client, bearer, new_email, problem, user_token
from tests.integration.bots_helpers import MARKETS, new_user, settings_for
from tradebot.http.appkeys import SYMBOLS

PASSWORD = "correct horse battery staple 42"
REGISTER = "/api/v1/auth/register"


@pytest.fixture
async def app(app: web.Application) -> web.Application:
    app[SYMBOLS] = MARKETS
    return app


async def test_a_nul_in_a_bot_name_is_a_422_naming_the_field(client: Client) -> None:
    alice = await new_user(client, "alice")
    r = await client.post("/api/v1/bots", json=settings_for(alice, name="evil\x00bot"), headers=alice.headers)
    body = await problem(r, 422)
    assert [e["field"] for e in body["errors"]] == ["name"]
    # Nested values are named by their path.
    r = await client.post("/api/v1/bots", json=settings_for(alice, parameters={"ema_period": 5, "x\x00": 1}),
                          headers=alice.headers)
    body = await problem(r, 422)
    assert [e["field"] for e in body["errors"]] == ["parameters"]
    r = await client.post(REGISTER, json={"email": "a\x00@example.com", "password": PASSWORD})
    assert [e["field"] for e in (await problem(r, 422))["errors"]] == ["email"]


async def test_a_nul_in_a_query_parameter_is_a_422(client: Client) -> None:
    _, token = await user_token(client)
    r = await client.get("/api/v1/trades", params={"since": "2026-01-01T00:00:00\x00"}, headers=bearer(token))
    assert [e["field"] for e in (await problem(r, 422))["errors"]] == ["since"]
    r = await client.get("/api/v1/markets", params={"cursor": "ab\x00cd"}, headers=bearer(token))
    assert [e["field"] for e in (await problem(r, 422))["errors"]] == ["cursor"]


async def test_a_corrupt_gzip_body_is_a_400_problem(client: Client) -> None:
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    r = await client.post(REGISTER, data=b"\x1f\x8b\x08\x00garbage-not-deflate", headers=headers)
    assert "decoded" in (await problem(r, 400))["detail"]
    # A well-formed gzip body still works.
    body = b'{"email": "%s", "password": "%s"}' % (new_email().encode(), PASSWORD.encode())
    r = await client.post(REGISTER, data=gzip.compress(body), headers=headers)
    assert r.status == 201, await r.text()


async def test_an_unknown_content_encoding_is_a_415_problem(client: Client) -> None:
    for coding in ("compress", "gzip, gzip", "identity;q=1"):
        r = await client.post(REGISTER, data=b"{}", headers={"Content-Type": "application/json",
                                                             "Content-Encoding": coding})
        await problem(r, 415)


async def test_duplicate_json_keys_are_a_400_problem(client: Client) -> None:
    email = new_email()
    raw = b'{"email": "%s", "password": "%s", "email": "other@example.com"}' % (email.encode(), PASSWORD.encode())
    r = await client.post(REGISTER, data=raw, headers={"Content-Type": "application/json"})
    assert "duplicate key 'email'" in (await problem(r, 400))["detail"]
    # A large body (checked off the event loop) follows the same rules.
    pad = b"x" * 100_000
    for raw, status in ((b'{"pad": "%s", "email": "a", "pad": 1}' % pad, 400),
                        (b'{"pad": "%s", "email": "a\\u0000"}' % pad, 422)):
        r = await client.post(REGISTER, data=raw, headers={"Content-Type": "application/json"})
        await problem(r, status)
    alice = await new_user(client, "alice")
    raw = (b'{"api_key_id": %d, "symbol": "BTCUSDT", "timeframe": "1m", '
           b'"parameters": {"ema_period": 5, "ema_period": 7}}' % alice.key_id)
    r = await client.post("/api/v1/bots", data=raw, headers={**alice.headers, "Content-Type": "application/json"})
    assert "duplicate key 'ema_period'" in (await problem(r, 400))["detail"]


async def test_only_json_media_types_are_parsed(client: Client) -> None:
    body = b'{"email": "%s", "password": "%s"}' % (new_email().encode(), PASSWORD.encode())
    # What a cross-site form or fetch "simple request" can send without a preflight.
    for ctype in ("text/plain", "text/plain; charset=utf-8", "application/x-www-form-urlencoded",
                  "multipart/form-data; boundary=x", None):
        headers = {"Content-Type": ctype} if ctype else {}
        r = await client.post(REGISTER, data=body, headers=headers)
        await problem(r, 415)
        r = await client.post("/api/v1/auth/password-reset/request", data=b'{"email": "a@example.com"}',
                              headers=headers)
        await problem(r, 415)
    r = await client.post(REGISTER, data=body, headers={"Content-Type": "application/merge-patch+json"})
    assert r.status == 201, await r.text()


async def test_times_before_2000_are_refused_naming_the_field(client: Client) -> None:
    _, token = await user_token(client)
    body = {"symbol": "BTCUSDT", "timeframe": "1h", "start_time": "0001-01-01T00:00:00Z",
            "end_time": "2026-01-02T00:00:00Z", "strategy": "ema_cross", "parameters": {"ema_period": 5},
            "initial_balance": 1000.0}
    r = await client.post("/api/v1/backtests", json=body, headers=bearer(token))
    errors = (await problem(r, 422))["errors"]
    assert [e["field"] for e in errors] == ["start_time"] and "2000" in errors[0]["message"]
    r = await client.post("/api/v1/backtests", json={**body, "start_time": "2026-01-01T00:00:00Z",
                                                      "end_time": "1999-12-31T23:59:59Z"}, headers=bearer(token))
    assert [e["field"] for e in (await problem(r, 422))["errors"]] == ["end_time"]
    r = await client.get("/api/v1/trades", params={"since": "0001-01-01T00:00:00Z"}, headers=bearer(token))
    errors = (await problem(r, 422))["errors"]
    assert [e["field"] for e in errors] == ["since"] and "2000" in errors[0]["message"]
    r = await client.get("/api/v1/trades", params={"since": "2000-01-01T00:00:00Z"}, headers=bearer(token))
    assert r.status == 200
