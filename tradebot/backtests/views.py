"""The JSON shape of a backtest in the API: the request as stored plus, once done, its result."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

# The request's fields, in the order the API shows them.
REQUEST_FIELDS = (
    "id",
    "status",
    "symbol",
    "timeframe",
    "start_time",
    "end_time",
    "strategy",
    "parameters",
    "initial_balance",
    "fee_rate",
    "slippage_bps",
    "created_at",
    "updated_at",
    "started_at",
    "finished_at",
    "error_message",
)


def backtest_view(row: Mapping[str, Any]) -> dict[str, Any]:
    out = {name: row[name] for name in REQUEST_FIELDS}
    if isinstance(out["initial_balance"], Decimal):
        out["initial_balance"] = float(out["initial_balance"])
    result = row["result"]
    if row["status"] == "done" and result:
        out.update(result)
    return out
