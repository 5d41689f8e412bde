"""JSON for the wire and for Redis: orjson, with money as numbers and times as ISO 8601 UTC."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import orjson

_OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC | orjson.OPT_SERIALIZE_NUMPY


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        # Contract: money and prices are JSON numbers.
        return float(value)
    if isinstance(value, date):
        return value.isoformat()
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="python")
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def dumps(value: Any) -> bytes:
    return orjson.dumps(value, default=_default, option=_OPTIONS)


loads = orjson.loads
