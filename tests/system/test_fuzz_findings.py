"""Regressions for what the schemathesis run (test_api_fuzz.py) found, one test per finding."""

from __future__ import annotations

import pytest

from tests.integration.auth_helpers import Client, bearer, problem, user_token


@pytest.mark.parametrize("since", ["0.0", "1700000000", "-1", "1e5"])
async def test_trades_since_refuses_a_bare_number(client: Client, since: str) -> None:
    # GET /api/v1/trades?since=0.0 answered 200, reading the number as Unix seconds; OpenAPI and the
    # contract say ISO 8601 (format: date-time), so a number is a 422 naming the field.
    _, token = await user_token(client)
    body = await problem(await client.get(f"/api/v1/trades?since={since}", headers=bearer(token)), 422)
    assert [e["field"] for e in body["errors"]] == ["since"]
