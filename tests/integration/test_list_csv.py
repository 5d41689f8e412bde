"""Trades and orders as CSV (`?format=csv` or `Accept: text/csv`): streamed, the same filters and owner
scoping as the JSON lists, and parsed back they equal the JSON items of all pages."""

from __future__ import annotations

import csv
import io
from typing import Any

import asyncpg
import pytest
from aiohttp import web

from tests.integration.auth_helpers import Client, problem
from tests.integration.bots_helpers import MARKETS, User, create_bot, new_user
from tests.integration.stats_helpers import all_items, insert_trade
from tradebot.http.appkeys import SYMBOLS
from tradebot.http.csv_export import BATCH_ROWS

INTS = {"id", "bot_id"}
FLOATS = {"price", "amount", "fee", "realized_pnl"}
BOOLS = {"paper"}


@pytest.fixture
async def app(app: web.Application) -> web.Application:
    app[SYMBOLS] = MARKETS
    return app


async def _bulk(pool: asyncpg.Pool, user: User, bot_id: int, count: int) -> None:
    """`count` orders and trades, one second apart, with varied money (some fees unknown)."""
    await pool.execute(
        """
        WITH o AS (
            INSERT INTO orders (bot_id, user_id, client_order_id, exchange_order_id, symbol, side, amount, intent,
                                signal_seq, fence_token, status, filled_amount, average_price, created_at, updated_at)
            SELECT $1::bigint, $2::bigint, 'b' || $1::bigint || 'n' || g, CASE WHEN g % 3 = 0 THEN NULL ELSE 'ex,"' || g END,
                   'BTC/USDT:USDT', CASE WHEN g % 2 = 0 THEN 'buy' ELSE 'sell' END, 0.001 * g, 'open',
                   g, 1, 'filled', 0.001 * g, 100, '2025-06-01'::timestamptz + make_interval(secs => g),
                   '2025-06-01'::timestamptz + make_interval(secs => g)
              FROM generate_series(1, $3::int) g
            RETURNING id, side, amount, signal_seq, client_order_id, created_at)
        INSERT INTO trades (bot_id, user_id, order_id, symbol, side, price, amount, fee, realized_pnl,
                            client_order_id, created_at)
        SELECT $1::bigint, $2::bigint, id, 'BTC/USDT:USDT', side, 100 + signal_seq / 7.0, amount,
               CASE WHEN signal_seq % 5 = 0 THEN NULL ELSE signal_seq * 0.0001 END,
               (signal_seq % 11 - 5) * 0.1, client_order_id, created_at
          FROM o
        """,
        bot_id, user.id, count,
    )


def _typed(row: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, text in row.items():
        if text == "":
            out[name] = None
        elif name in INTS:
            out[name] = int(text)
        elif name in FLOATS:
            out[name] = float(text)
        elif name in BOOLS:
            assert text in ("true", "false")
            out[name] = text == "true"
        else:
            out[name] = text
    return out


async def _csv(client: Client, user: User, url: str, **headers: str) -> tuple[list[str], list[dict[str, Any]]]:
    r = await client.get(url, headers={**user.headers, **headers})
    assert r.status == 200, await r.text()
    assert r.content_type == "text/csv"
    assert r.headers.get("Transfer-Encoding") == "chunked"
    assert "attachment" in r.headers["Content-Disposition"]
    text = (await r.read()).decode()
    assert text.endswith("\r\n")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    rows = [_typed(row) for row in reader]
    return list(reader.fieldnames or []), rows


async def test_trades_csv_round_trips_to_the_json_of_all_pages(client: Client, pool: asyncpg.Pool) -> None:
    alice = await new_user(client, "alice")
    bot = await create_bot(client, alice)
    other = await create_bot(client, alice, symbol="ETHUSDT")
    count = 2 * BATCH_ROWS + 123  # several batches of the export
    await _bulk(pool, alice, bot["id"], count)
    await insert_trade(pool, alice, other["id"], "2025-06-01T00:10:00Z", "-1.5", None, paper=True)
    bob = await new_user(client, "bob")
    await _bulk(pool, bob, (await create_bot(client, bob))["id"], 5)

    for query in ("", f"bot_id={bot['id']}", "since=2025-06-01T00:10:00Z&until=2025-06-01T00:20:00Z",
                  "paper=true", "paper=false&since=2025-06-01T00:30:00Z"):
        sep = "&" if query else ""
        want = await all_items(client, alice, f"/api/v1/trades?{query}", limit=500)
        header, got = await _csv(client, alice, f"/api/v1/trades?{query}{sep}format=csv")
        assert header == ["id", "bot_id", "symbol", "side", "price", "amount", "fee", "realized_pnl", "reason",
                          "paper", "client_order_id", "created_at"]
        assert got == want, query
    everything = await all_items(client, alice, "/api/v1/trades", limit=500)
    assert len(everything) == count + 1 and any(t["fee"] is None for t in everything)

    # Accept: text/csv asks for it too; ?format=json wins over the header; a cursor starts the export.
    _, by_header = await _csv(client, alice, "/api/v1/trades", Accept="text/csv")
    assert by_header == everything
    r = await client.get("/api/v1/trades?format=json&limit=3", headers={**alice.headers, "Accept": "text/csv"})
    assert r.content_type == "application/json" and len((await r.json())["items"]) == 3
    first = await (await client.get("/api/v1/trades?limit=10", headers=alice.headers)).json()
    _, rest = await _csv(client, alice, f"/api/v1/trades?format=csv&cursor={first['next_cursor']}")
    assert rest == everything[10:]
    r = await client.get("/api/v1/trades", headers={**alice.headers, "Accept": "text/csv;q=0.5, application/json"})
    assert r.content_type == "application/json"

    # Bob's export holds his five trades only.
    _, bobs = await _csv(client, bob, "/api/v1/trades?format=csv")
    assert len(bobs) == 5 and all(t["bot_id"] != bot["id"] for t in bobs)


async def test_a_bots_trades_and_orders_as_csv(client: Client, pool: asyncpg.Pool) -> None:
    alice = await new_user(client, "alice")
    bot = await create_bot(client, alice)
    await _bulk(pool, alice, bot["id"], BATCH_ROWS + 7)
    for sub in ("trades", "orders"):
        want = await all_items(client, alice, f"/api/v1/bots/{bot['id']}/{sub}", limit=500)
        header, got = await _csv(client, alice, f"/api/v1/bots/{bot['id']}/{sub}?format=csv")
        assert len(got) == BATCH_ROWS + 7
        assert header == list(want[0])
        # exchange_order_id holds a comma and a quote: RFC 4180 quoting brings them back intact.
        assert got == want, sub
    empty = await create_bot(client, alice, symbol="ETHUSDT")
    header, rows = await _csv(client, alice, f"/api/v1/bots/{empty['id']}/orders", Accept="text/csv")
    assert rows == [] and "client_order_id" in header


async def test_csv_keeps_owner_scoping_and_validation(client: Client, pool: asyncpg.Pool) -> None:
    alice, bob = await new_user(client, "alice"), await new_user(client, "bob")
    bot = await create_bot(client, alice)
    await _bulk(pool, alice, bot["id"], 3)
    for sub in ("trades", "orders"):
        await problem(await client.get(f"/api/v1/bots/{bot['id']}/{sub}?format=csv", headers=bob.headers), 404)
        await problem(
            await client.get(f"/api/v1/bots/{bot['id']}/{sub}", headers={**bob.headers, "Accept": "text/csv"}), 404
        )
    for url in ("/api/v1/trades?format=xml", f"/api/v1/bots/{bot['id']}/trades?format=CSV",
                f"/api/v1/bots/{bot['id']}/orders?format="):
        body = await problem(await client.get(url, headers=alice.headers), 422)
        assert [e["field"] for e in body["errors"]] == ["format"]
    body = await problem(await client.get("/api/v1/trades?format=csv&until=x", headers=alice.headers), 422)
    assert [e["field"] for e in body["errors"]] == ["until"]


async def test_the_openapi_document_names_the_csv_form(client: Client) -> None:
    spec = await (await client.get("/api/openapi.json")).json()
    for path in ("/api/v1/trades", "/api/v1/bots/{id}/trades", "/api/v1/bots/{id}/orders"):
        op = spec["paths"][path]["get"]
        assert set(op["responses"]["200"]["content"]) == {"application/json", "text/csv"}
        formats = [p for p in op["parameters"] if p["name"] == "format"]
        assert formats and "csv" in str(formats[0]["schema"])
    for path in ("/api/v1/stats", "/api/v1/portfolio"):
        assert "get" in spec["paths"][path]
