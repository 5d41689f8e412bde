"""Keyset pagination shared by every list endpoint: `?limit=&cursor=` in, `{items, next_cursor}` out.

The cursor is opaque to clients: url-safe base64 of a small JSON array holding the sort key of the
last item served (for example `[id]`, or `[created_at_us, id]` for newest-first lists). A route
fetches `limit + 1` rows after the decoded key; `build_page` trims the extra row and derives the
next cursor from the last row kept. A tampered cursor is a 422 naming `cursor`; because every query
is scoped to its owner, a forged one can only skip through the caller's own rows.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

import orjson
from pydantic import BaseModel, ConfigDict, Field

from tradebot.http.problems import field_problem

T = TypeVar("T")
Scalar = int | str

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
MAX_CURSOR_CHARS = 512


class PageQuery(BaseModel):
    """`?limit=` (1–500, default 50) and `?cursor=` (opaque, from the previous page)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    limit: int = Field(default=DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)
    cursor: str | None = Field(default=None, min_length=1, max_length=MAX_CURSOR_CHARS)


class Page(BaseModel, Generic[T]):
    """One page of a list; `next_cursor` is null on the last page."""

    items: list[T]
    next_cursor: str | None


def encode_cursor(key: Sequence[Scalar]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(list(key))).decode().rstrip("=")


def decode_cursor(cursor: str | None, types: Sequence[type[Scalar]]) -> tuple[Scalar, ...] | None:
    """The key a cursor holds, checked against the expected types; None for the first page."""
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        values = orjson.loads(raw)
    except (binascii.Error, ValueError):
        raise field_problem("cursor", "invalid cursor") from None
    if not isinstance(values, list) or len(values) != len(types):
        raise field_problem("cursor", "invalid cursor")
    for value, expected in zip(values, types, strict=True):
        if type(value) is not expected:
            raise field_problem("cursor", "invalid cursor")
        if isinstance(value, int) and not 0 <= value < 2**63:
            raise field_problem("cursor", "invalid cursor")
    return tuple(values)


def decode_id_cursor(cursor: str | None) -> int | None:
    """For lists ordered by id: the last id served, or None."""
    key = decode_cursor(cursor, (int,))
    if key is None:
        return None
    value = key[0]
    assert isinstance(value, int)
    return value


def build_page(rows: Sequence[T], limit: int, key: Callable[[T], Sequence[Scalar]]) -> tuple[list[T], str | None]:
    """Given up to `limit + 1` rows: the rows to show and the cursor of the next page (or None)."""
    if len(rows) > limit:
        kept = list(rows[:limit])
        return kept, encode_cursor(key(kept[-1]))
    return list(rows), None
