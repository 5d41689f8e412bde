"""The JSON shape of an optimisation in the API: the request as stored, progress, windows, and the
ranked trials (best first by the train objective)."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from typing import Any

REQUEST_FIELDS = (
    "id", "status", "symbol", "timeframe", "start_time", "end_time", "strategy", "space", "fixed", "objective",
    "method", "max_trials", "seed", "test_fraction", "initial_balance", "fee_rate", "slippage_bps", "candles_count",
    "error_message", "created_at", "updated_at", "started_at", "finished_at",
)  # fmt: skip


def trial_view(row: Mapping[str, Any]) -> dict[str, Any]:
    score = float(row["score"])
    return {
        "trial": int(row["trial_no"]),
        "parameters": row["parameters"],
        "score": score if math.isfinite(score) else None,
        "train": row["train"],
        "test": row["test"],
    }


def optimization_view(
    row: Mapping[str, Any], trials: Sequence[Mapping[str, Any]] | None, best: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """``trials`` None leaves the list out (GET /optimizations); ``best`` then comes from ``best``."""
    out = {name: row[name] for name in REQUEST_FIELDS}
    out["progress"] = {"done": int(row["trials_done"]), "total": int(row["trials_total"])}
    split: dt.datetime | None = row["split_time"]
    out["train_window"] = {"start_time": row["start_time"], "end_time": split or row["end_time"]}
    out["test_window"] = None if split is None else {"start_time": split, "end_time": row["end_time"]}
    if trials is not None:
        ranked = [trial_view(t) for t in trials]
        out["trials"] = ranked
        out["best"] = ranked[0] if ranked else None
    else:
        out["best"] = None if best is None else trial_view(best)
    return out
