"""Lists as CSV: `?format=csv` or `Accept: text/csv`, streamed a batch at a time (RFC 4180).

The export walks the same keyset-paginated query as the JSON list, `BATCH_ROWS` rows per step, so
a list of any length is never held in memory. The header row holds the JSON field names; a cell is
what the JSON holds: numbers as Python's shortest round-trip form, times in the API's ISO 8601 UTC
form, booleans `true`/`false`, null as an empty cell. A text cell that a spreadsheet would run as a
formula (leading `=`, `+`, `-`, `@`, tab or CR) gets a leading `'` (OWASP "CSV injection"); no value
the API writes today starts so.

Once the first bytes are out, a failure cannot become a problem response any more: the connection
is dropped without the final chunk, so a client sees a broken transfer, never a short file that
looks complete.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any, TypeVar

from aiohttp import web

from tradebot.http.json_response import iso_utc

K = TypeVar("K")

CSV_TYPE = "text/csv"
BATCH_ROWS = 1000
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def wants_csv(request: web.Request, fmt: str | None) -> bool:
    """`?format=` decides; without it, an Accept header that prefers text/csv over application/json."""
    if fmt is not None:
        return fmt == "csv"
    accept = request.headers.get("Accept", "")
    q_csv = q_json = 0.0
    for part in accept.split(","):
        media, *params = (p.strip() for p in part.split(";"))
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        media = media.lower()
        if media == CSV_TYPE:
            q_csv = max(q_csv, q)
        elif media == "application/json":
            q_json = max(q_json, q)
    return q_csv > 0 and q_csv > q_json


def cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        return iso_utc(value)
    if isinstance(value, Decimal):
        return repr(float(value))
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, int):
        return str(value)
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def encode_rows(rows: Sequence[Sequence[Any]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerows([[cell(v) for v in row] for row in rows])
    return out.getvalue().encode()


async def keyset_batches(
    fetch: Callable[[K | None, int], Awaitable[list[dict[str, Any]]]],
    key: Callable[[Mapping[str, Any]], K],
    start: K | None,
    batch: int = BATCH_ROWS,
) -> AsyncIterator[list[dict[str, Any]]]:
    """Every row of a keyset-paginated query, `batch` at a time, from after `start`."""
    after = start
    while True:
        rows = await fetch(after, batch)
        if rows:
            yield rows
        if len(rows) < batch:
            return
        after = key(rows[-1])


async def stream_csv(
    request: web.Request,
    columns: Sequence[str],
    batches: AsyncIterator[list[dict[str, Any]]],
    *,
    filename: str,
) -> web.StreamResponse:
    # The first batch is read before any byte is sent, so a failing query is still a problem response.
    first = await anext(batches, None)
    response = web.StreamResponse(
        headers={
            "Content-Type": f"{CSV_TYPE}; charset=utf-8; header=present",
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",
        }
    )
    response.enable_chunked_encoding()
    await response.prepare(request)
    await response.write(encode_rows([columns]))
    if first is not None:
        await response.write(encode_rows([[row[c] for c in columns] for row in first]))
        async for rows in batches:
            await response.write(encode_rows([[row[c] for c in columns] for row in rows]))
    await response.write_eof()
    return response
